"""Attestation of one target's managed scope: what it holds, checked against the
contracts. Pure: no I/O, no clock (the time is passed in).

Called by ``syncd.daemon`` after each cycle (with the cycle's outcomes) and by
``syncd attest`` (without outcomes) for every target the cycle observed;
``syncd.audit.attestation`` turns the result into an audit record and
``syncd.metrics`` into gauges.

An attestation is a statement about the state observed at ``at``: how many accounts
are enabled and disabled, how many people are active, future and ended, the
violations found, and a SHA-256 digest of the observed accounts, so that the state
can be matched later against a copy of the target taken at that time. Only people in
the source are checked; accounts whose person is absent (orphans) are counted and left
to the orphan rules and their safety limits. A violation that a change of the same
cycle put right, read back from the target (or at least not contradicted by it), is
kept and marked ``corrected``: it was true at ``at``, and it no longer stands.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from syncd.core.model import ActionKind, Observed, ObservedAccount, Outcome, Person, PersonState
from syncd.core.plan import desired_groups
from syncd.core.policy import TargetPolicy
from syncd.core.timeutil import iso_utc


class ViolationKind(enum.StrEnum):
    """What the contracts forbid and the target holds anyway."""

    ENDED_ENABLED = "ended_enabled"  # access over, account enabled
    UNGRANTED_GROUP = "ungranted_group"  # a managed group no role of the person grants
    CREDENTIALS_ON_DISABLED = "credentials_on_disabled"  # no access, credentials kept
    EXPIRY_BEYOND_END = "expiry_beyond_end"  # native expiry later than the access end


# The actions that put a violation right (a delete puts every violation right).
CORRECTED_BY = {
    ViolationKind.ENDED_ENABLED: ActionKind.DISABLE,
    ViolationKind.UNGRANTED_GROUP: ActionKind.REMOVE_MEMBER,
    ViolationKind.CREDENTIALS_ON_DISABLED: ActionKind.REVOKE_CREDENTIALS,
    ViolationKind.EXPIRY_BEYOND_END: ActionKind.SET_EXPIRY,
}


@dataclass(frozen=True)
class Violation:
    """One account that breaks one rule. ``group`` only for ``UNGRANTED_GROUP``."""

    kind: ViolationKind
    person: str  # person key
    username: str
    detail: str  # what was seen, in words
    group: str = ""
    corrected: bool = False  # put right by a change of the same cycle

    @property
    def sort_key(self) -> tuple[str, str, str]:
        return (self.person, self.kind.value, self.group)


@dataclass(frozen=True)
class Counts:
    """``accounts``, ``enabled``, ``disabled`` and ``orphans`` count the managed accounts
    observed; ``active``, ``future`` and ``ended`` count the people in the source."""

    accounts: int = 0
    enabled: int = 0
    disabled: int = 0
    orphans: int = 0  # managed accounts whose person is absent from the source
    active: int = 0
    future: int = 0
    ended: int = 0


@dataclass(frozen=True)
class Attestation:
    """One target's managed scope at ``at``, checked."""

    target: str
    at: datetime
    counts: Counts
    violations: tuple[Violation, ...]
    digest: str  # SHA-256 of the observed accounts, hex (see ``digest``)

    @property
    def clean(self) -> bool:
        """No violation was observed."""
        return not self.violations

    @property
    def outstanding(self) -> tuple[Violation, ...]:
        """The violations no change of the cycle corrected: they stand now."""
        return tuple(v for v in self.violations if not v.corrected)


def attest(
    target: TargetPolicy,
    people: Mapping[str, Person],
    observed: Observed,
    at: datetime,
    outcomes: Iterable[Outcome] = (),
) -> Attestation:
    """Check what ``target`` was observed to hold against the people of the source.

    ``outcomes``: what the cycle's changes to this target became; a violation that a
    successful change corrected is marked so (a change whose read-back failed does
    not count)."""
    accounts = observed.accounts.values()
    enabled = sum(a.enabled for a in accounts)
    states = Counter(p.state for p in people.values())
    counts = Counts(
        accounts=len(accounts),
        enabled=enabled,
        disabled=len(accounts) - enabled,
        orphans=sum(key not in people for key in observed.accounts),
        active=states[PersonState.ACTIVE],
        future=states[PersonState.FUTURE],
        ended=states[PersonState.ENDED],
    )
    rules = _Rules(target)
    found = [
        violation
        for key, account in observed.accounts.items()
        if key in people
        for violation in rules.violations(people[key], account)
    ]
    fixed = _corrections(target.name, outcomes)
    violations = tuple(
        replace(v, corrected=True) if _corrected(v, fixed) else v
        for v in sorted(found, key=lambda v: v.sort_key)
    )
    return Attestation(target.name, at, counts, violations, digest(accounts))


def digest(accounts: Iterable[ObservedAccount]) -> str:
    """SHA-256 (hex) of the observed accounts as canonical JSON: a list, sorted by person
    key, of ``[key, enabled, sorted groups, expiry]`` (expiry ISO 8601 UTC to the second,
    or ``""``), serialised without whitespace, non-ASCII characters as themselves, in
    UTF-8. Anyone holding a copy of the target's state can recompute it."""
    stamps: dict[datetime, str] = {}  # most accounts share a few expiries; format each once

    def stamp(expiry: datetime | None) -> str:
        if expiry is None:
            return ""
        if expiry not in stamps:
            stamps[expiry] = iso_utc(expiry)
        return stamps[expiry]

    rows = sorted([a.key, a.enabled, sorted(a.groups), stamp(a.expiry)] for a in accounts)
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Rules:
    """The rules for one target; the groups a set of roles grants is worked out once."""

    def __init__(self, target: TargetPolicy) -> None:
        self.target = target
        self.grants: dict[frozenset[str], frozenset[str]] = {}

    def granted(self, person: Person) -> frozenset[str]:
        if person.state is not PersonState.ACTIVE:
            return frozenset()
        if person.roles not in self.grants:
            self.grants[person.roles] = desired_groups(self.target, person)
        return self.grants[person.roles]

    def violations(self, person: Person, account: ObservedAccount) -> list[Violation]:
        """What ``account`` holds that ``person``'s contracts do not allow."""
        has_access = person.state is PersonState.ACTIVE
        found = []
        if person.state is PersonState.ENDED and account.enabled:
            detail = f"{person.reason}; the account is enabled"
            found.append((ViolationKind.ENDED_ENABLED, detail, ""))
        for group in sorted(account.groups - self.granted(person)):
            why = (
                f"no role of {', '.join(sorted(person.roles)) or 'the person'} grants it"
                if has_access
                else f"the person has no access ({person.state.value})"
            )
            found.append((ViolationKind.UNGRANTED_GROUP, f"member of {group}: {why}", group))
        if not has_access and not account.enabled and account.has_credentials:
            detail = f"the account is disabled but still has credentials ({person.reason})"
            found.append((ViolationKind.CREDENTIALS_ON_DISABLED, detail, ""))
        end = person.access_end if has_access else person.last_end
        if self.target.native_expiry and end is not None and _later(account.expiry, end):
            held = iso_utc(account.expiry) if account.expiry else "none"
            detail = f"native expiry {held} is later than the access end {iso_utc(end)}"
            found.append((ViolationKind.EXPIRY_BEYOND_END, detail, ""))
        return [Violation(k, person.key, account.username, d, g) for k, d, g in found]


def _later(expiry: datetime | None, end: datetime) -> bool:
    """Whether an account's expiry lets it live past ``end`` (directories keep whole
    seconds; no expiry at all is the latest)."""
    if expiry is None:
        return True
    return expiry > end and int(expiry.timestamp()) > int(end.timestamp())


def _corrections(target: str, outcomes: Iterable[Outcome]) -> set[tuple[ActionKind, str, str]]:
    """(kind, person, group) of every change to ``target`` that succeeded and whose
    read-back did not contradict it."""
    return {
        (o.action.kind, o.action.person, o.action.group)
        for o in outcomes
        if o.action.target == target and o.ok is True and o.verified is not False
    }


def _corrected(violation: Violation, fixed: set[tuple[ActionKind, str, str]]) -> bool:
    if (ActionKind.DELETE, violation.person, "") in fixed:
        return True
    return (CORRECTED_BY[violation.kind], violation.person, violation.group) in fixed
