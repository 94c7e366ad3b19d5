"""Desired people + observed accounts → an ordered plan with safety verdicts. Pure.

Called by ``syncd.engine`` once per target per cycle. The plan is deterministic: actions
are sorted by kind (``ActionKind`` order: disables and removals first, deletes last),
then deadline (an ended person's access end first), then person key, then group. Safety
(SPEC §5): actions caused only by a person's absence from the source (orphans) and
deletes are counted per target; over a limit they are all held. Actions a contract's own
dates call for are never held.

Absence alone costs nothing irreversible at once (SPEC §2): an orphan is disabled and
stripped of its groups now (the next cycle undoes both if the person comes back), but its
credential revocation and delete wait, as ``Wait``s beside the plan, until the person has
been absent for ``policy.orphan_grace`` (``absences`` keeps when each was first seen
absent). A contract's own end or termination is never delayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Conflict,
    Observed,
    ObservedAccount,
    Person,
    PersonState,
    TargetPlan,
)
from syncd.core.policy import TargetPolicy
from syncd.core.render import render_attributes
from syncd.core.timeutil import format_duration, iso_utc

ORPHAN_REASON = "person absent from the source: treated as ended now"
NO_ABSENCES: Mapping[str, datetime] = MappingProxyType({})
# What no later cycle can undo: a revoked password is gone, a deleted entry with it.
IRREVERSIBLE = frozenset({ActionKind.REVOKE_CREDENTIALS, ActionKind.DELETE})


@dataclass(frozen=True)
class Wait:
    """An irreversible step (revoke credentials, delete) that only the person's absence
    calls for, put off until ``policy.orphan_grace`` has passed since they were first
    seen absent: a source read half-written must not cost anyone their credentials."""

    action: Action
    until: datetime

    def __str__(self) -> str:
        return f"waits for policy.orphan_grace until {iso_utc(self.until)}"


@dataclass(frozen=True)
class Planned:
    """One target's plan, and the irreversible steps that wait for the orphan grace."""

    plan: TargetPlan
    waits: tuple[Wait, ...] = ()


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    """Instants equal to the second (directories keep whole seconds)."""
    if a is None or b is None:
        return a is b
    return int(a.timestamp()) == int(b.timestamp())


def desired_groups(target: TargetPolicy, person: Person) -> frozenset[str]:
    return frozenset(g for role in person.roles for g in target.groups_by_role.get(role, ()))


def plan_with_waits(
    target: TargetPolicy,
    people: Mapping[str, Person],
    observed: Observed,
    now: datetime,
    *,
    protected: frozenset[str] = frozenset(),
    delete_after: timedelta | None = None,
    allow_mass_change: bool = False,
    expiries_only: bool = False,
    absent_since: Mapping[str, datetime] = NO_ABSENCES,
    orphan_grace: timedelta = timedelta(0),
    managed: int | None = None,
) -> Planned:
    """Plan one target. ``protected`` persons have invalid records: nothing is taken away
    from them except what a valid contract's own end calls for.

    ``expiries_only``: the source is down or suspicious and ``people`` come from the last
    good snapshot; only the offboarding its dated ends call for is planned. Grants,
    updates, orphans and deletes wait for a source that can be trusted again.

    ``absent_since``: when each orphan was first seen absent (missing: ``now``, its grace
    starts). Until ``orphan_grace`` has passed since, its credential revocation and
    delete are ``waits``, outside the plan and any safety limit. Group removal is not
    delayed: the next cycle puts a returning person back in their groups.

    ``managed``: the managed accounts that percentage limits are taken of (default:
    those observed). A targeted cycle observes only the people changing at a boundary
    and passes the count of the last full observation."""
    planner = _Planner(target, observed, now, protected, delete_after, absent_since, orphan_grace)
    for key in sorted(set(people) | set(observed.accounts)):
        person, account = people.get(key), observed.accounts.get(key)
        if expiries_only and (person is None or person.state is not PersonState.ENDED):
            continue
        planner.person(key, person, account)
    if expiries_only:
        planner.actions = [a for a in planner.actions if a.kind is not ActionKind.DELETE]
    scope = len(observed.accounts) if managed is None else managed
    actions, holds = _safety(target, planner.actions, scope, allow_mass_change)
    plan = TargetPlan(
        target=target.name,
        actions=tuple(sorted(actions, key=execution_order(people, now))),
        conflicts=tuple(planner.conflicts),
        holds=tuple(holds),
        managed=scope,
    )
    return Planned(plan, tuple(sorted(planner.waits, key=lambda w: w.action.sort_key)))


def execution_order(
    people: Mapping[str, Person], now: datetime
) -> Callable[[Action], tuple[int, datetime, str, str]]:
    """The order a plan runs in: by kind (``ActionKind``: disables for everyone, then
    group removals, then credential revocations...), within a kind by deadline, then
    ``Action.sort_key``. An ended person's deadline is their access end, so that in a
    burst the earliest ends go first; every other action's is ``now``."""

    def key(action: Action) -> tuple[int, datetime, str, str]:
        person = people.get(action.person)
        deadline = now
        if person is not None and person.state is PersonState.ENDED and person.last_end:
            deadline = min(person.last_end, now)
        order, first, second = action.sort_key
        return (order, deadline, first, second)

    return key


def absences(
    previous: Mapping[str, datetime],
    people: Mapping[str, Person],
    observed: Iterable[Observed],
    now: datetime,
    *,
    protected: frozenset[str] = frozenset(),
    complete: bool = True,
) -> dict[str, datetime]:
    """When each orphan was first seen absent, after this cycle (the next cycle's
    ``absent_since``). An orphan is a managed account on any target ``observed`` whose
    person has no record in the source, valid (``people``) or not (``protected``). One in
    ``previous`` keeps its time, a new one gets ``now``; a person with a record again is
    dropped, and so is one no target holds an account for any more, unless a target
    could not be observed (``complete`` false): then the clocks are kept, not restarted."""
    seen = {key for scope in observed for key in scope.accounts}
    if not complete:
        seen |= set(previous)
    absent = sorted(k for k in seen if k not in people and k not in protected)
    return {key: previous.get(key, now) for key in absent}


class _Planner:
    def __init__(
        self,
        target: TargetPolicy,
        observed: Observed,
        now: datetime,
        protected: frozenset[str],
        delete_after: timedelta | None,
        absent_since: Mapping[str, datetime],
        grace: timedelta,
    ) -> None:
        self.target = target
        self.observed = observed
        self.now = now
        self.protected = protected
        self.delete_after = delete_after
        self.actions: list[Action] = []
        self.conflicts: list[Conflict] = []
        self.waits: list[Wait] = []
        self.absent_since = absent_since
        self.grace = grace
        self.usernames = {a.username.lower(): a.key for a in observed.accounts.values()}

    def person(self, key: str, person: Person | None, account: ObservedAccount | None) -> None:
        if person is None:
            if account is not None and key not in self.protected:
                self.offboard(account, None, Cause.ORPHAN, ORPHAN_REASON, ())
        elif person.state is PersonState.ACTIVE:
            if account is None:
                self.onboard(person)
            else:
                self.reconcile(person, account)
        elif account is not None and not (
            key in self.protected and person.state is PersonState.FUTURE
        ):
            # A protected person loses access only when a valid contract has ended.
            self.offboard(account, person, Cause.CONTRACT, person.reason, person.contract_ids)

    def action(
        self,
        kind: ActionKind,
        key: str,
        username: str,
        ref: str | None,
        reason: str,
        ids: tuple[str, ...],
        *,
        cause: Cause = Cause.CONTRACT,
        group: str = "",
        changes: Mapping[str, tuple[str, ...]] | None = None,
        expiry: datetime | None = None,
    ) -> None:
        action = Action(
            self.target.name,
            kind,
            key,
            username,
            ref,
            reason,
            ids,
            cause,
            group,
            MappingProxyType(dict(changes or {})),
            expiry,
        )
        if cause is Cause.ORPHAN and kind in IRREVERSIBLE and self.grace:
            since = self.absent_since.get(key, self.now)
            if since + self.grace > self.now:
                self.waits.append(Wait(action, since + self.grace))
                return
            grace = format_duration(self.grace)
            why = f"{reason}; absent since {iso_utc(since)}, over policy.orphan_grace {grace}"
            action = replace(action, reason=why)
        self.actions.append(action)

    def onboard(self, person: Person) -> None:
        conflict = self.observed.conflicts.get(person.key)
        owner = self.usernames.get(person.username.lower())
        if conflict is None and owner is not None and owner != person.key:
            conflict = Conflict(
                self.target.name,
                person.key,
                person.username,
                "",
                f"username {person.username!r} is already used by person {owner!r}",
                fix="give {contract} another username (username: field)",
            )
        if conflict is not None:
            self.conflicts.append(replace(conflict, contract_ids=person.contract_ids))
            return
        self.usernames[person.username.lower()] = person.key
        ids, reason = person.contract_ids, person.reason
        attrs = {k: v for k, v in render_attributes(self.target.attributes, person).items() if v}
        expiry = person.access_end if self.target.native_expiry else None
        self.action(
            ActionKind.CREATE,
            person.key,
            person.username,
            None,
            reason,
            ids,
            changes=attrs,
            expiry=expiry,
        )
        for group in sorted(desired_groups(self.target, person)):
            self.action(
                ActionKind.ADD_MEMBER,
                person.key,
                person.username,
                None,
                _role_reason(self.target, person, group),
                ids,
                group=group,
            )

    def reconcile(self, person: Person, account: ObservedAccount) -> None:
        key, user, ref = person.key, account.username, account.ref
        ids, reason = person.contract_ids, person.reason
        wanted = render_attributes(self.target.attributes, person)
        changes = {
            name: values
            for name, values in wanted.items()
            if sorted(values) != sorted(account.attributes.get(name, ()))
        }
        if changes:
            self.action(ActionKind.UPDATE, key, user, ref, reason, ids, changes=changes)
        if self.target.native_expiry and not same_instant(account.expiry, person.access_end):
            self.action(
                ActionKind.SET_EXPIRY, key, user, ref, reason, ids, expiry=person.access_end
            )
        if not account.enabled:
            self.action(ActionKind.ENABLE, key, user, ref, reason, ids)
        groups = desired_groups(self.target, person)
        for group in sorted(groups - account.groups):
            self.action(
                ActionKind.ADD_MEMBER,
                key,
                user,
                ref,
                _role_reason(self.target, person, group),
                ids,
                group=group,
            )
        if key in self.protected:
            return
        for group in sorted(account.groups - groups):
            self.action(
                ActionKind.REMOVE_MEMBER,
                key,
                user,
                ref,
                f"no role in effect grants {group}",
                ids,
                group=group,
            )

    def offboard(
        self,
        account: ObservedAccount,
        person: Person | None,
        cause: Cause,
        reason: str,
        ids: tuple[str, ...],
    ) -> None:
        key, user, ref = account.key, account.username, account.ref
        end = self.now if person is None else person.last_end
        if account.enabled:
            self.action(ActionKind.DISABLE, key, user, ref, reason, ids, cause=cause)
        for group in sorted(account.groups):
            self.action(
                ActionKind.REMOVE_MEMBER, key, user, ref, reason, ids, cause=cause, group=group
            )
        if account.has_credentials:
            self.action(ActionKind.REVOKE_CREDENTIALS, key, user, ref, reason, ids, cause=cause)
        if (
            self.target.native_expiry
            and end is not None
            and (account.expiry is None or account.expiry > end)
        ):
            self.action(ActionKind.SET_EXPIRY, key, user, ref, reason, ids, cause=cause, expiry=end)
        if self.delete_after is None or (person is not None and person.state is PersonState.FUTURE):
            return
        ended = min(t for t in (end, account.expiry, self.now) if t is not None)
        if ended + self.delete_after <= self.now:
            why = (
                f"access ended {iso_utc(ended)}, delete_after {format_duration(self.delete_after)}"
            )
            self.action(ActionKind.DELETE, key, user, ref, why, ids, cause=cause)


def _role_reason(target: TargetPolicy, person: Person, group: str) -> str:
    roles = sorted(r for r in person.roles if group in target.groups_by_role.get(r, ()))
    return f"role {', '.join(roles)} ({', '.join(person.contract_ids)})"


def _safety(
    target: TargetPolicy, actions: list[Action], managed: int, allow: bool
) -> tuple[list[Action], list[str]]:
    holds: list[str] = []
    if allow:
        return actions, holds
    orphans = {a.person for a in actions if a.cause is Cause.ORPHAN}
    deletes = [a for a in actions if a.kind is ActionKind.DELETE]
    limits = target.safety
    hold_orphans = bool(orphans) and not limits.max_orphan_disables.allows(len(orphans), managed)
    hold_deletes = bool(deletes) and not limits.max_deletes.allows(len(deletes), managed)
    orphan_hold = (
        f"{len(orphans)} orphan accounts exceed safety.max_orphan_disables "
        f"{limits.max_orphan_disables} of {managed} managed"
    )
    delete_hold = (
        f"{len(deletes)} deletes exceed safety.max_deletes {limits.max_deletes} "
        f"of {managed} managed"
    )
    if hold_orphans:
        holds.append(orphan_hold)
    if hold_deletes:
        holds.append(delete_hold)
    out = []
    for action in actions:
        if hold_deletes and action.kind is ActionKind.DELETE:
            action = replace(action, held=delete_hold)
        elif hold_orphans and action.cause is Cause.ORPHAN:
            action = replace(action, held=orphan_hold)
        out.append(action)
    return out, holds
