"""``syncd explain PERSON``: one person's contracts, and per target the account syncd
wants (each group with the role and contract granting it), what the target holds now,
and what syncd will do about the difference, and when.

Called by ``syncd.commands.explain``, which reads the source and plans the person alone
(``engine.plan_targeted``: ``Target.observe_people`` for their key, the conflict look-up,
the same planner as every cycle). The wants come from ``syncd.core.explain`` (pure);
this module puts the three together and renders them for a terminal or as
``syncd.explain/1`` JSON (fields are only ever added).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syncd.core.explain import Change, ContractState, Wants, contract_state, next_change, wants
from syncd.core.model import Action, Conflict, InvalidRecord, ObservedAccount, Person
from syncd.core.plan import Wait
from syncd.core.policy import Policy
from syncd.core.text import shown
from syncd.core.timeutil import iso_utc
from syncd.engine import CyclePlan
from syncd.report import action_line, conflict_json, conflict_line, plan_action_json

NOW_OR_NEXT = "at the next cycle (syncd sync, or the daemon within daemon.interval)"


@dataclass(frozen=True)
class TargetView:
    """One target for one person: wanted, held, and to be done."""

    wants: Wants
    holds: ObservedAccount | None
    conflict: Conflict | None
    actions: tuple[Action, ...]
    waits: tuple[Wait, ...]


@dataclass(frozen=True)
class Explanation:
    """One person: ``person`` is None when they only have invalid records."""

    key: str
    person: Person | None
    contracts: tuple[ContractState, ...]
    invalid: tuple[InvalidRecord, ...]
    change: Change | None
    targets: tuple[TargetView, ...]


def explain(
    cycle: CyclePlan, invalid: Sequence[InvalidRecord], policy: Policy, key: str
) -> Explanation:
    """The explanation of ``key`` from a cycle that planned it (alone or with others)."""
    mine = sorted((c for c in cycle.contracts if c.person == key), key=lambda c: c.id)
    person = cycle.people.get(key)
    views = []
    for plan in cycle.plans:
        if person is None:
            break
        observed = cycle.observed[plan.target]
        views.append(
            TargetView(
                wants(person, mine, cycle.policies[plan.target], policy, cycle.at),
                observed.accounts.get(key),
                next((c for c in plan.conflicts if c.person == key), None),
                tuple(a for a in plan.actions if a.person == key),
                tuple(w for w in cycle.waits.get(plan.target, ()) if w.action.person == key),
            )
        )
    return Explanation(
        key,
        person,
        tuple(contract_state(c, policy, cycle.at) for c in mine),
        tuple(r for r in invalid if r.person == key),
        next_change(mine, policy, cycle.at) if mine else None,
        tuple(views),
    )


# -- for a terminal ---------------------------------------------------------------------
def render(explanations: Sequence[Explanation], cycle: CyclePlan, later: bool) -> str:
    """``later``: planned at a time given with ``--at``, from the targets as they are now."""
    out = [f"As of {iso_utc(cycle.at)}" + ("; the targets as they are now" if later else "")]
    for name, error in sorted(cycle.errors.items()):
        out.append(f"{name}: NOT READ: {error}")
    for explanation in explanations:
        out += _person_lines(explanation)
    return "\n".join(shown(line) for line in out)


def _person_lines(e: Explanation) -> list[str]:
    p = e.person
    if p is None:
        out = [f"{e.key}: no valid contract: nothing is granted, nothing taken away"]
    else:
        out = [f"{p.key} (username {p.username}): {p.state.value}: {p.reason}"]
    out.append("  contracts:")
    for s in e.contracts:
        c = s.contract
        span = f"{iso_utc(c.start)} → {iso_utc(c.end)}"
        out.append(f"    {c.id}  roles {', '.join(c.roles)}  {span}  {s.why}  [{c.origin}]")
    out += [f"    invalid: {r}" for r in e.invalid]
    if e.change is not None:
        out.append(f"  next boundary: {iso_utc(e.change.at)}: {_change_text(e.change)}")
    for view in e.targets:
        out += _target_lines(view)
    return out


def _change_text(change: Change) -> str:
    text = f"{change.state.value}: {change.reason}"
    if change.gained:
        text += f"; gains roles {', '.join(sorted(change.gained))}"
    if change.lost:
        text += f"; loses roles {', '.join(sorted(change.lost))}"
    return text + " (the daemon wakes then)"


def _target_lines(view: TargetView) -> list[str]:
    w = view.wants
    out = [f"  {w.target}:", f"    wants:   {w.note}"]
    if w.expiry is not None:
        out.append(f"             expiry {iso_utc(w.expiry)}")
    for group in w.groups:
        by = ", ".join(f"role {g.role} ({g.contract_id})" for g in w.grants if g.group == group)
        out.append(f"             group {group}  ← {by}")
    for g in w.withheld:
        out.append(f"             not {g.group}  ← role {g.role} ({g.contract_id}): {g.why}")
    out += _holds_lines(view.holds)
    if view.conflict is not None:
        out.append(f"  {conflict_line(view.conflict)}")
    if not view.actions and not view.waits:
        done = "nothing until the conflict is resolved" if view.conflict else "nothing to do"
        out.append(f"    will do: {done}")
    for i, action in enumerate(view.actions):
        out.append(("    will do: " if i == 0 else " " * 13) + action_line(action))
    if view.actions:
        out.append(f"             {NOW_OR_NEXT}")
    out += [f"    waits:   {action_line(x.action)}  [{x}]" for x in view.waits]
    return out


def _holds_lines(held: ObservedAccount | None) -> list[str]:
    if held is None:
        return ["    holds:   no managed account"]
    state = "enabled" if held.enabled else "disabled"
    expiry = iso_utc(held.expiry) if held.expiry else "none"
    creds = "credentials set" if held.has_credentials else "no credentials"
    out = [f"    holds:   {held.ref}: {state}, expiry {expiry}, {creds}"]
    out += [f"             group {g}" for g in sorted(held.groups)]
    return out


# -- for machines -----------------------------------------------------------------------
def as_json(query: str, explanations: Sequence[Explanation], cycle: CyclePlan) -> dict[str, Any]:
    """``syncd explain --json``, format ``syncd.explain/1``."""
    return {
        "format": "syncd.explain/1",
        "at": iso_utc(cycle.at),
        "query": query,
        "people": [_person_json(e) for e in explanations],
        "target_errors": dict(sorted(cycle.errors.items())),
    }


def _person_json(e: Explanation) -> dict[str, Any]:
    p = e.person
    return {
        "person": e.key,
        "username": p.username if p else None,
        "email": p.email if p else None,
        "state": p.state.value if p else None,
        "reason": p.reason if p else "no valid contract",
        "contracts": [
            {
                "id": s.contract.id,
                "roles": list(s.contract.roles),
                "start": iso_utc(s.contract.start),
                "end": iso_utc(s.contract.end),
                "status": s.contract.status.value,
                "state": s.state,
                "why": s.why,
                "origin": s.contract.origin,
            }
            for s in e.contracts
        ],
        "invalid": [
            {
                "origin": r.origin,
                "contract_id": r.contract_id,
                "field": r.field,
                "reason": r.reason,
                "fix": r.fix,
            }
            for r in e.invalid
        ],
        "next_boundary": None
        if e.change is None
        else {
            "at": iso_utc(e.change.at),
            "state": e.change.state.value,
            "reason": e.change.reason,
            "gains_roles": sorted(e.change.gained),
            "loses_roles": sorted(e.change.lost),
        },
        "targets": [_target_json(v) for v in e.targets],
    }


def _target_json(view: TargetView) -> dict[str, Any]:
    w, held = view.wants, view.holds
    return {
        "name": w.target,
        "wants": {
            "enabled_account": w.account,
            "expiry": iso_utc(w.expiry) if w.expiry else None,
            "groups": [
                {
                    "group": group,
                    "grants": [
                        {"role": g.role, "contract_id": g.contract_id}
                        for g in w.grants
                        if g.group == group
                    ],
                }
                for group in w.groups
            ],
            "not_granted": [
                {"group": g.group, "role": g.role, "contract_id": g.contract_id, "why": g.why}
                for g in w.withheld
            ],
            "why": w.note,
        },
        "holds": None
        if held is None
        else {
            "username": held.username,
            "ref": held.ref,
            "enabled": held.enabled,
            "expiry": iso_utc(held.expiry) if held.expiry else None,
            "credentials": held.has_credentials,
            "groups": sorted(held.groups),
        },
        "conflict": conflict_json(view.conflict) if view.conflict else None,
        "actions": [plan_action_json(a) for a in view.actions],
        "waits": [{**plan_action_json(x.action), "until": iso_utc(x.until)} for x in view.waits],
    }
