"""An in-memory target: accounts and groups in dictionaries, changed by actions the way
a directory would change them.

Used by unit tests of ``syncd.apply``, ``syncd.engine`` and ``syncd.daemon``, which need
a target whose state they can read and whose faults they choose, without a server (as
httpx ships ``MockTransport``). Not a configurable target kind: tests hand it to the
engine in place of the targets a config names. A ``fault`` callable decides, per action,
whether the target refuses it (``PermanentError``: reported as failed) or is unreachable
(``TemporaryError``: raised, as a real target does after its retries); ``observe_fault``
does the same for ``observe`` and ``observe_people``, which ``observations`` counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from syncd.core.model import (
    FOREIGN_KEY_FIX,
    TAKEN_FIX,
    Action,
    ActionKind,
    Conflict,
    Observed,
    ObservedAccount,
    Outcome,
    ReadBack,
)
from syncd.errors import PermanentError, TargetError
from syncd.targets.base import BATCH_SIZE, WHOLE_SHARE, Report

Fault = Callable[[Action], TargetError | None]


def no_fault(_action: Action) -> TargetError | None:
    return None


@dataclass
class Unmanaged:
    """An account syncd does not manage, standing where a new account might go."""

    username: str
    key: str = ""  # its person key, when it carries one outside the managed scope


@dataclass
class MemoryTarget:
    """Holds managed accounts by person key and the members of each group."""

    name: str = "memory"
    groups: Mapping[str, set[str]] = field(default_factory=dict)  # group -> member keys
    managed: frozenset[str] = frozenset()  # groups the config maps roles to
    batch_size: int = BATCH_SIZE
    whole_share: int = WHOLE_SHARE
    fault: Fault = no_fault
    accounts: dict[str, ObservedAccount] = field(default_factory=dict)
    unmanaged: list[Unmanaged] = field(default_factory=list)
    batches: list[tuple[ActionKind, int]] = field(default_factory=list)  # what apply got
    reads: list[tuple[int, int]] = field(default_factory=list)  # (accounts, groups) read back
    # what the target keeps of a write it answered: a test that sets it to
    # ``lambda before, after: before`` has a target that answers success and changes nothing
    keeps: Callable[[ObservedAccount, ObservedAccount], ObservedAccount] = field(
        default=lambda _before, after: after, repr=False
    )
    # what observation answers (keys: None for ``observe``, else those asked for)
    observe_fault: Callable[[Collection[str] | None], TargetError | None] = field(
        default=lambda _keys: None, repr=False
    )
    observations: list[frozenset[str] | None] = field(default_factory=list)  # each asked
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self) -> Observed:
        self._observing(None)
        missing = self.managed - set(self.groups)
        return Observed(self._held(self.accounts), missing_groups=missing, others=self._others())

    def observe_people(self, keys: Collection[str]) -> Observed:
        self._observing(keys)
        return Observed(self._held(set(keys)), others=self._others())

    def _others(self) -> dict[str, frozenset[str]]:
        """Per group, the members that are not managed accounts."""
        with self._lock:
            return {g: frozenset(m - set(self.accounts)) for g, m in self.groups.items()}

    def _observing(self, keys: Collection[str] | None) -> None:
        """Count the observation (``keys``: None for the whole scope) and raise what
        ``observe_fault`` says the target answers to it."""
        self.observations.append(None if keys is None else frozenset(keys))
        error = self.observe_fault(keys)
        if error is not None:
            raise error

    def _held(self, keys: Iterable[str]) -> dict[str, ObservedAccount]:
        with self._lock:
            return {
                key: replace(
                    self.accounts[key],
                    groups=frozenset(g for g, members in self.groups.items() if key in members),
                )
                for key in sorted(keys)
                if key in self.accounts
            }

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        conflicts: dict[str, Conflict] = {}
        for person, name in wanted:
            for other in self.unmanaged:
                if other.key == person:
                    reason = "an account outside the managed scope carries this person's key"
                    fix = FOREIGN_KEY_FIX
                elif other.username.lower() == name.lower():
                    reason, fix = f"username {name!r} is taken by an unmanaged account", TAKEN_FIX
                else:
                    continue
                conflicts[person] = Conflict(
                    self.name, person, name, other.username, reason, fix=fix
                )
                break
        return conflicts

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        self.batches.append((actions[0].kind, len(actions)))
        for action in actions:
            error = self.fault(action)
            if isinstance(error, PermanentError):
                report(Outcome(action, False, str(error), action.ref))
                continue
            if error is not None:
                raise error
            with self._lock:
                report(self._change(action))

    def _change(self, action: Action) -> Outcome:
        key, kind = action.person, action.kind
        if kind is ActionKind.CREATE:
            self.accounts[key] = ObservedAccount(
                key=key,
                ref=f"mem:{action.username}",
                username=action.username,
                enabled=True,
                expiry=action.expiry,
                has_credentials=False,
                attributes=dict(action.changes),
            )
            return Outcome(action, True, "", f"mem:{action.username}")
        account = self.accounts.get(key)
        if account is None:
            return Outcome(action, False, f"{self.name}: no account for {key}", action.ref)
        if kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
            if action.group not in self.groups:
                return Outcome(action, False, f"{self.name}: no group {action.group}", account.ref)
            members = self.groups[action.group]
            (members.add if kind is ActionKind.ADD_MEMBER else members.discard)(key)
        elif kind is ActionKind.DELETE:
            del self.accounts[key]
        else:
            self.accounts[key] = self.keeps(account, _changed(account, action))
        return Outcome(action, True, "", account.ref)

    def read_back(
        self,
        kind: ActionKind,
        accounts: Sequence[tuple[str, str | None]],
        groups: Sequence[str],
        members: Sequence[str] = (),  # read the groups whole all the same
    ) -> ReadBack:
        """The accounts (person key, reference) and groups asked for, as held now."""
        self.reads.append((len(accounts), len(groups)))
        now = self._held(self.accounts)
        with self._lock:
            held = {g: frozenset(self.groups[g]) for g in groups if g in self.groups}
        found = {key: now.get(key) for key, _ref in accounts}
        evidence = {key: {"enabled": (str(a.enabled).lower(),)} for key, a in found.items() if a}
        managed = {g: frozenset(k for k in keys if k in self.accounts) for g, keys in held.items()}
        others = {g: keys - managed[g] for g, keys in held.items()}
        return ReadBack(found, evidence, managed, others)

    def check(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed = True


def _changed(account: ObservedAccount, action: Action) -> ObservedAccount:
    kind = action.kind
    if kind is ActionKind.DISABLE:
        return replace(account, enabled=False)
    if kind is ActionKind.ENABLE:
        return replace(account, enabled=True)
    if kind is ActionKind.REVOKE_CREDENTIALS:
        return replace(account, has_credentials=False)
    if kind is ActionKind.SET_EXPIRY:
        return replace(account, expiry=action.expiry)
    return replace(account, attributes={**account.attributes, **action.changes})
