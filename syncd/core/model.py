"""Frozen values that flow between the pipeline's stages. Pure: no I/O, no clock.

Produced by ``core.contracts`` (contracts, invalid records), ``core.desired`` (people),
target edges (observed accounts, outcomes) and ``core.plan`` (actions); read by everything
after.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


class Status(enum.StrEnum):
    """Contract status as the source states it."""

    ACTIVE = "active"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Contract:
    """A validated contract record, times as aware datetimes (end is exclusive)."""

    id: str
    person: str
    email: str
    given_name: str
    family_name: str
    username: str
    roles: tuple[str, ...]
    start: datetime
    end: datetime
    status: Status = Status.ACTIVE
    terminated_at: datetime | None = None
    vendor: str = ""
    sponsor: str = ""
    approved_by: str = ""
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    origin: str = ""  # "contracts.yaml:12": where the record came from


@dataclass(frozen=True)
class InvalidRecord:
    """A rejected source record: where it is, what is wrong and how to fix it."""

    origin: str
    contract_id: str
    person: str  # "" when the record names no usable person
    field: str
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        who = f" (contract {self.contract_id})" if self.contract_id else ""
        text = f"{self.origin}{who} {self.field}: {self.reason}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class PersonState(enum.StrEnum):
    """Where a person stands at ``now`` across all their contracts (SPEC §2)."""

    ACTIVE = "active"  # some contract in effect
    ENDED = "ended"  # none in effect, some already started
    FUTURE = "future"  # nothing started yet (or only cancelled / awaiting approval)


@dataclass(frozen=True, slots=True)
class Person:
    """Everything the source says about one person, resolved at one instant."""

    key: str
    state: PersonState
    username: str
    email: str
    given_name: str
    family_name: str
    vendor: str
    sponsor: str
    roles: frozenset[str]
    contract_ids: tuple[str, ...]
    access_end: datetime | None  # latest effective end among contracts in effect
    last_end: datetime | None  # latest effective end among started contracts
    next_start: datetime | None  # earliest grant time (start - lead) still ahead
    reason: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class ObservedAccount:
    """A managed account as a target sees it; ``groups`` holds managed group ids only."""

    key: str
    ref: str  # DN, SCIM id, ...
    username: str
    enabled: bool
    expiry: datetime | None
    has_credentials: bool
    groups: frozenset[str] = frozenset()
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Conflict:
    """An unmanaged (or foreign) object stands where a person's account would go.

    A target finds it knowing only the person and the username; the planner adds the
    person's ``contract_ids``. ``fix`` says how to put it right, ``{contract}`` in it
    standing for the contracts (``detail`` names them)."""

    target: str
    person: str
    username: str
    ref: str
    reason: str
    contract_ids: tuple[str, ...] = ()
    fix: str = ""

    @property
    def contracts(self) -> str:
        """``contract C-1``, ``contracts C-1, C-2``, or ``the contract`` (none known)."""
        if not self.contract_ids:
            return "the contract"
        plural = "s" if len(self.contract_ids) > 1 else ""
        return f"contract{plural} {', '.join(self.contract_ids)}"

    @property
    def remedy(self) -> str:
        """``fix`` naming the contracts: ``give contract C-1 another username``."""
        return self.fix.replace("{contract}", self.contracts)

    @property
    def detail(self) -> str:
        """The reason, and the fix naming the contracts: ``username 'x' is longer than
        20 characters (fix: give contract C-1 a username AD accepts (username: field))``."""
        return f"{self.reason} (fix: {self.remedy})" if self.fix else self.reason


# The fixes of the conflicts every target finds ({contract}: see Conflict.remedy)
TAKEN_FIX = (
    "give {contract} another username (its username: field), or rename or remove the "
    "account holding it"
)
FOREIGN_KEY_FIX = (
    "if that account is this person's, move it into the managed scope (syncd then "
    "manages it); if not, clear its key"
)


@dataclass(frozen=True)
class Observed:
    """What a target holds in its managed scope, read in one pass per cycle."""

    accounts: Mapping[str, ObservedAccount]  # by person key
    conflicts: Mapping[str, Conflict] = field(default_factory=lambda: MappingProxyType({}))
    missing_groups: frozenset[str] = frozenset()
    # What the target found out about itself where its config leaves it open (an ldap
    # target decides by its server's flavour): whether it keeps a native expiry (None:
    # as configured), and a line for the plan saying what it found and chose.
    native_expiry: bool | None = None
    about: str = ""
    # The members outside the managed scope of each managed group the observation read
    # in full (in the target's own member ids): where ``apply`` starts its watch for
    # collateral changes, instead of reading those groups again before its writes.
    others: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))


class ActionKind(enum.StrEnum):
    """What a plan asks of a target. Order of declaration is the order of execution."""

    DISABLE = "disable"
    REMOVE_MEMBER = "remove_member"
    REVOKE_CREDENTIALS = "revoke_credentials"
    CREATE = "create"
    UPDATE = "update"
    SET_EXPIRY = "set_expiry"
    ENABLE = "enable"
    ADD_MEMBER = "add_member"
    DELETE = "delete"


ACTION_ORDER = {kind: i for i, kind in enumerate(ActionKind)}


class Cause(enum.StrEnum):
    """Why an action exists; safety limits apply to ORPHAN actions and to deletes."""

    CONTRACT = "contract"  # a contract's own dates or roles call for it
    ORPHAN = "orphan"  # the account's person is absent from the source


@dataclass(frozen=True, slots=True)
class Action:
    """One change to one target. ``ref`` is None when the target derives it (creates)."""

    target: str
    kind: ActionKind
    person: str
    username: str
    ref: str | None
    reason: str
    contract_ids: tuple[str, ...] = ()
    cause: Cause = Cause.CONTRACT
    group: str = ""
    changes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    expiry: datetime | None = None
    held: str = ""  # non-empty: held by a safety limit, with the reason

    @property
    def sort_key(self) -> tuple[int, str, str]:
        """Kind first; memberships by group, then person, so that a target can send
        many members of one group in one request; other actions by person."""
        if self.group:
            return (ACTION_ORDER[self.kind], self.group, self.person)
        return (ACTION_ORDER[self.kind], self.person, self.group)


@dataclass(frozen=True)
class Outcome:
    """What happened to one action at its target: ``ok`` None means unknown (the
    connection was lost mid-write; the next cycle's observation settles it). ``ref`` is
    the account's reference at the target afterwards (a new account's DN or id)."""

    action: Action
    ok: bool | None
    detail: str = ""
    ref: str | None = None
    # None: not read back; True: the target was read after the write and holds what
    # the action meant; False: it does not (then ``ok`` is False and ``detail`` says
    # what the target reports)
    verified: bool | None = None
    # the security-relevant values the read-back saw, e.g. {"enabled": ("false",)}
    observed: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ReadBack:
    """What a target holds after a write, read again for verification.

    ``accounts``: the accounts asked for, by person key; None when the target has no
    such account (deleted, or never created). A target may read only what the action
    kind asked about (credentials for a revoke, say): the other fields are then not to
    be trusted. ``evidence``: per person key, the raw values the verdict rests on, in
    the target's own terms (``{"pwdAccountLockedTime": ("000001010000Z",)}``), for the
    audit record. Per group asked for: ``members``, the person keys of the managed
    accounts in it, and ``others``, the members outside the managed scope (DNs, SCIM
    ids), to see what changed under the write."""

    accounts: Mapping[str, ObservedAccount | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    evidence: Mapping[str, Mapping[str, tuple[str, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    members: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    others: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Collateral:
    """Members outside the managed scope whose membership of a managed group changed
    while syncd wrote to it (read back after the write): reported, never repaired."""

    target: str
    group: str
    appeared: frozenset[str]  # member references (DNs, SCIM ids) that were not there
    vanished: frozenset[str]  # member references that were there and are gone


@dataclass(frozen=True)
class TargetPlan:
    """The ordered actions for one target, with what could not be planned."""

    target: str
    actions: tuple[Action, ...]
    conflicts: tuple[Conflict, ...] = ()
    holds: tuple[str, ...] = ()  # one line per safety limit that was hit
    managed: int = 0  # managed accounts observed

    @property
    def runnable(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not a.held)

    @property
    def held(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.held)
