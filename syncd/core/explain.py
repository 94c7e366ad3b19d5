"""What syncd wants for one person, and why: the pure half of ``syncd explain``.

Pure: contracts, policy and ``now`` in, frozen values out. Called by ``syncd.explain``,
which adds what each target holds and what the planner would do. The question this
answers is the one operators get most: "why does X have (or not have) group Y?" Each
group a person should hold is traced to the role and the contract that grant it; each
group a role of theirs would grant but does not is traced to the contract that is not
in effect, and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from syncd.core.desired import effective_end, grant_time, in_effect, next_boundary, resolve
from syncd.core.model import Contract, Person, PersonState, Status
from syncd.core.policy import Policy, TargetPolicy
from syncd.core.timeutil import iso_utc


@dataclass(frozen=True)
class ContractState:
    """One contract of the person, as it stands at ``now``."""

    contract: Contract
    state: str  # in_effect, ended, terminated, future, cancelled, awaiting_approval
    why: str  # "in effect until ...", "ended ...", "starts ...", ...


@dataclass(frozen=True)
class Grant:
    """A role of a contract granting a group (or, in ``Wants.withheld``, that would)."""

    group: str
    role: str
    contract_id: str
    why: str = ""  # for a withheld grant: why the contract grants nothing now


@dataclass(frozen=True)
class Wants:
    """The account syncd wants on one target for the person."""

    target: str
    account: bool  # an enabled account should exist (else: none, or a disabled one kept)
    grants: tuple[Grant, ...]  # by group, then role, then contract
    expiry: datetime | None  # the native expiry to set; None when the target keeps none
    withheld: tuple[Grant, ...]  # groups the person's roles grant, not now, and why
    note: str  # one line: what the account should look like, and why

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(sorted({g.group for g in self.grants}))


@dataclass(frozen=True)
class Change:
    """The person's next boundary: when their access changes next, and to what."""

    at: datetime
    state: PersonState
    reason: str
    gained: frozenset[str]  # roles in effect then that are not now
    lost: frozenset[str]  # roles in effect now that are not then


def find(query: str, contracts: Iterable[Contract]) -> list[str]:
    """The person keys whose contracts carry ``query`` (without case) as e-mail,
    person key, username or contract id, sorted."""
    wanted = query.strip().lower()
    return sorted(
        {
            c.person
            for c in contracts
            if wanted in (c.email.lower(), c.person.lower(), c.username.lower(), c.id.lower())
        }
    )


def contract_state(contract: Contract, policy: Policy, now: datetime) -> ContractState:
    end = effective_end(contract, now)
    if contract.status is Status.CANCELLED:
        return ContractState(contract, "cancelled", "cancelled: grants nothing")
    if policy.require_approval and not contract.approved_by:
        return ContractState(
            contract, "awaiting_approval", "not approved (policy.require_approval)"
        )
    if in_effect(contract, policy, now):
        return ContractState(contract, "in_effect", f"in effect until {iso_utc(end)}")
    if grant_time(contract, policy) > now:
        return ContractState(contract, "future", f"starts {iso_utc(grant_time(contract, policy))}")
    if contract.status is Status.TERMINATED:
        return ContractState(contract, "terminated", f"terminated {iso_utc(end)}")
    return ContractState(contract, "ended", f"ended {iso_utc(end)}")


def wants(
    person: Person,
    contracts: Sequence[Contract],
    target: TargetPolicy,
    policy: Policy,
    now: datetime,
) -> Wants:
    """What ``target`` should hold for ``person`` (resolved at ``now`` from
    ``contracts``, theirs), each group with the role and contract granting it."""
    states = [contract_state(c, policy, now) for c in contracts]
    grants, withheld = [], []
    for state in sorted(states, key=lambda s: s.contract.id):
        for role in sorted(set(state.contract.roles)):
            for group in target.groups_by_role.get(role, ()):
                if state.state == "in_effect":
                    grants.append(Grant(group, role, state.contract.id))
                else:
                    withheld.append(Grant(group, role, state.contract.id, state.why))
    granted = {g.group for g in grants}
    withheld = [g for g in withheld if g.group not in granted]
    active = person.state is PersonState.ACTIVE
    expiry = person.access_end if active else person.last_end
    return Wants(
        target=target.name,
        account=active,
        grants=tuple(sorted(grants, key=lambda g: (g.group, g.role, g.contract_id))),
        expiry=expiry if target.native_expiry else None,
        withheld=tuple(sorted(withheld, key=lambda g: (g.group, g.role, g.contract_id))),
        note=_note(person, policy, now),
    )


def _note(person: Person, policy: Policy, now: datetime) -> str:
    """What the account should look like, and why, in one line."""
    if person.state is PersonState.ACTIVE:
        return f"an enabled account: {person.reason}"
    if person.state is PersonState.FUTURE:
        return f"no account yet: {person.reason}"
    kept = "an existing account disabled, without groups or credentials (none is created)"
    if policy.delete_after is not None and person.last_end is not None:
        delete = person.last_end + policy.delete_after
        if delete <= now:
            return f"no account (deleted after policy.delete_after): {person.reason}"
        return f"{kept}: {person.reason}; deleted {iso_utc(delete)}"
    return f"{kept}: {person.reason}"


def next_change(contracts: Sequence[Contract], policy: Policy, now: datetime) -> Change | None:
    """The person's next boundary after ``now`` (a grant time or an effective end), and
    where they stand then; None when nothing is ahead."""
    at = next_boundary(contracts, policy, now)
    if at is None:
        return None
    before = _one(resolve(contracts, policy, now))
    after = _one(resolve(contracts, policy, at))
    gained, lost = after.roles - before.roles, before.roles - after.roles
    return Change(at, after.state, after.reason, gained, lost)


def _one(people: Mapping[str, Person]) -> Person:
    [person] = people.values()
    return person
