"""Resolve contracts into one ``Person`` per person key at a given instant (SPEC §2).

Pure: ``now`` is a parameter. Called by ``syncd.engine`` before planning, and by
``syncd expiring``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from syncd.core.model import Contract, Person, PersonState, Status
from syncd.core.policy import Policy
from syncd.core.timeutil import iso_utc


def effective_end(contract: Contract, now: datetime) -> datetime:
    """``min(end, terminated_at)``; a termination without a date ends at ``now``."""
    if contract.status is Status.TERMINATED:
        return min(contract.end, contract.terminated_at or now)
    return contract.end


def grant_time(contract: Contract, policy: Policy) -> datetime:
    """When access starts: the contract start minus the lead time."""
    return contract.start - policy.lead_time


def may_grant(contract: Contract, policy: Policy) -> bool:
    """Whether the contract's status and approval allow access at all."""
    if contract.status is Status.CANCELLED:
        return False
    return not (policy.require_approval and not contract.approved_by)


def in_effect(contract: Contract, policy: Policy, now: datetime) -> bool:
    return may_grant(contract, policy) and grant_time(contract, policy) <= now < effective_end(
        contract, now
    )


def resolve(contracts: Iterable[Contract], policy: Policy, now: datetime) -> dict[str, Person]:
    """One ``Person`` per person key, from all of their valid contracts."""
    by_person: dict[str, list[Contract]] = defaultdict(list)
    for contract in contracts:
        by_person[contract.person].append(contract)
    single = _Single(policy, now)
    return {
        key: single.person(key, group[0]) if len(group) == 1 else _person(key, group, policy, now)
        for key, group in sorted(by_person.items())
    }


class _Single:
    """``_person`` for a person with one contract (most of them), without sorting, and
    with what many people share (role sets, the text of an end) made once."""

    def __init__(self, policy: Policy, now: datetime) -> None:
        self.policy, self.now = policy, now
        self.roles: dict[tuple[str, ...], frozenset[str]] = {}
        self.times: dict[datetime, str] = {}

    def person(self, key: str, contract: Contract) -> Person:
        policy, now = self.policy, self.now
        grant = contract.start - policy.lead_time
        may = may_grant(contract, policy)
        end = effective_end(contract, now)
        started = may and grant <= now
        active = started and now < end
        if active:
            state = PersonState.ACTIVE
            reason = f"contract {contract.id} in effect until {self.iso(end)}"
        elif started:
            verb = "terminated" if contract.status is Status.TERMINATED else "ended"
            state, reason = PersonState.ENDED, f"contract {contract.id} {verb} {self.iso(end)}"
        else:
            state, reason = PersonState.FUTURE, _not_started_reason([contract], policy, now)
        roles = self.roles.get(contract.roles) if active else _NO_ROLES
        if roles is None:
            roles = self.roles[contract.roles] = frozenset(contract.roles)
        return Person(
            key,
            state,
            contract.username,
            contract.email,
            contract.given_name,
            contract.family_name,
            contract.vendor,
            contract.sponsor,
            roles,
            (contract.id,),
            end if active else None,
            end if started else None,
            grant if may and grant > now else None,
            reason,
            contract.attributes,
        )

    def iso(self, moment: datetime) -> str:
        """``iso_utc``, once per instant."""
        text = self.times.get(moment)
        if text is None:
            text = self.times[moment] = iso_utc(moment)
        return text


_NO_ROLES: frozenset[str] = frozenset()


def _person(key: str, contracts: list[Contract], policy: Policy, now: datetime) -> Person:
    def by_end(c: Contract) -> tuple[datetime, datetime, str]:
        return (effective_end(c, now), c.start, c.id)

    effective = sorted((c for c in contracts if in_effect(c, policy, now)), key=by_end)
    started = sorted(
        (c for c in contracts if may_grant(c, policy) and grant_time(c, policy) <= now),
        key=by_end,
    )
    upcoming = sorted(
        grant_time(c, policy)
        for c in contracts
        if may_grant(c, policy) and grant_time(c, policy) > now
    )
    primary = (effective or sorted(contracts, key=by_end))[-1]
    state, ids, reason = _state(contracts, effective, started, policy, now)
    return Person(
        key=key,
        state=state,
        username=primary.username,
        email=primary.email,
        given_name=primary.given_name,
        family_name=primary.family_name,
        vendor=primary.vendor,
        sponsor=primary.sponsor,
        roles=frozenset(r for c in effective for r in c.roles),
        contract_ids=tuple(sorted(ids)),
        access_end=effective_end(effective[-1], now) if effective else None,
        last_end=effective_end(started[-1], now) if started else None,
        next_start=upcoming[0] if upcoming else None,
        reason=reason,
        attributes=primary.attributes,
    )


def _state(
    contracts: list[Contract],
    effective: list[Contract],
    started: list[Contract],
    policy: Policy,
    now: datetime,
) -> tuple[PersonState, tuple[str, ...], str]:
    """A person's state, the contracts it rests on and why (``effective`` and ``started``
    sorted by effective end)."""
    if effective:
        end = effective_end(effective[-1], now)
        ids = tuple(c.id for c in effective)
        return PersonState.ACTIVE, ids, f"contract {', '.join(ids)} in effect until {iso_utc(end)}"
    if started:
        last = started[-1]
        verb = "terminated" if last.status is Status.TERMINATED else "ended"
        reason = f"contract {last.id} {verb} {iso_utc(effective_end(last, now))}"
        return PersonState.ENDED, tuple(c.id for c in started), reason
    ids = tuple(c.id for c in contracts)
    return PersonState.FUTURE, ids, _not_started_reason(contracts, policy, now)


def _not_started_reason(contracts: list[Contract], policy: Policy, now: datetime) -> str:
    for contract in sorted(contracts, key=lambda c: (c.start, c.id)):
        if contract.status is Status.CANCELLED:
            continue
        if not may_grant(contract, policy):
            return f"contract {contract.id} awaits approval"
        return f"contract {contract.id} starts {iso_utc(grant_time(contract, policy))}"
    return f"contract {min(c.id for c in contracts)} cancelled"


def next_boundary(contracts: Iterable[Contract], policy: Policy, now: datetime) -> datetime | None:
    """The next instant after ``now`` at which some person's access changes: a grant
    time (start minus lead time) or an effective end. The daemon wakes exactly then."""
    moments = []
    for contract in contracts:
        if not may_grant(contract, policy):
            continue
        for moment in (grant_time(contract, policy), effective_end(contract, now)):
            if moment > now:
                moments.append(moment)
    return min(moments, default=None)
