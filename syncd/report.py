"""Plans, results and attestations for people (one line per change or violation) and
for machines (``--json``).

Called by the CLI. The JSON forms are versioned (``"format": "syncd.plan/1"``,
``"syncd.attest/1"``) and documented in the README; fields are only ever added to them.

Lines for people carry values from the source and the targets (contract ids, usernames,
DNs, server answers): each line is written with its control, separator and
bidirectional characters escaped (``syncd.core.text.shown``), so no value can start a
line of its own or reorder one.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from syncd.apply import ApplyReport
from syncd.core.attest import Attestation, ViolationKind
from syncd.core.model import Action, ActionKind, Conflict, Person
from syncd.core.text import shown
from syncd.core.timeutil import iso_utc
from syncd.engine import CyclePlan, counts, summary_line

SYMBOLS = {
    ActionKind.CREATE: ("+", "create"),
    ActionKind.ENABLE: ("+", "enable"),
    ActionKind.ADD_MEMBER: ("+", "add"),
    ActionKind.UPDATE: ("~", "update"),
    ActionKind.SET_EXPIRY: ("~", "expiry"),
    ActionKind.DISABLE: ("-", "disable"),
    ActionKind.REMOVE_MEMBER: ("-", "remove"),
    ActionKind.REVOKE_CREDENTIALS: ("-", "revoke"),
    ActionKind.DELETE: ("-", "delete"),
}


def lines(out: list[str]) -> str:
    """Lines for a terminal or a log: each one escaped, then joined."""
    return "\n".join(shown(line) for line in out)


def action_line(action: Action) -> str:
    symbol, verb = SYMBOLS[action.kind]
    what = action.username
    if action.group:
        what += (" → " if action.kind is ActionKind.ADD_MEMBER else " ✕ ") + action.group
    elif action.kind is ActionKind.UPDATE:
        what += " " + ",".join(sorted(action.changes))
    elif action.kind is ActionKind.SET_EXPIRY:
        what += " → " + (iso_utc(action.expiry) if action.expiry else "none")
    line = f"{symbol} {verb:<8} {what}  ({action.reason})"
    if action.held:
        line = f"! held   {line}  [held: {action.held}]"
    return line


def conflict_line(conflict: Conflict) -> str:
    """``  ! conflict ana (contract C-1): username 'ana' is taken by ... (uid=ana,...)
    (fix: give contract C-1 another username ...)``"""
    ref = f" ({conflict.ref})" if conflict.ref else ""
    fix = f" (fix: {conflict.remedy})" if conflict.fix else ""
    return f"  ! conflict {conflict.username} ({conflict.contracts}): {conflict.reason}{ref}{fix}"


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    """A conflict in ``plan --json``: ``reason`` carries the fix, as in the text report."""
    return {
        "person": conflict.person,
        "username": conflict.username,
        "ref": conflict.ref,
        "reason": conflict.detail,
        "contract_ids": list(conflict.contract_ids),
        "fix": conflict.remedy or None,
    }


def render_plan(cycle: CyclePlan) -> str:
    out = [f"Plan at {iso_utc(cycle.at)}"]
    for name, error in sorted(cycle.errors.items()):
        out.append(f"{name}: NOT PLANNED: {error}")
    for plan in cycle.plans:
        if about := cycle.observed[plan.target].about:
            out.append(f"{plan.target}: {about}")
        out.append(f"{plan.target}: {plan.managed} managed accounts")
        out += [f"  {action_line(a)}" for a in plan.actions]
        waits = cycle.waits.get(plan.target, ())
        out += [f"  · waits  {action_line(w.action)}  [{w}]" for w in waits]
        out += [conflict_line(c) for c in plan.conflicts]
        out += [f"  ! safety hold: {h}" for h in plan.holds]
        out += [
            f"  ! group {g} does not exist: its members cannot be added or removed"
            for g in sorted(cycle.observed[plan.target].missing_groups)
        ]
        if not plan.actions and not plan.conflicts:
            out.append("  (no changes)")
    if cycle.invalid:
        out.append(f"Invalid records ({len(cycle.invalid)}), ignored, nothing taken away:")
        out += [f"  {r}" for r in cycle.invalid]
    out.append(summary_line(cycle))
    return lines(out)


def plan_json(cycle: CyclePlan) -> dict[str, Any]:
    return {
        "format": "syncd.plan/1",
        "at": iso_utc(cycle.at),
        "targets": [
            {
                "name": plan.target,
                "managed": plan.managed,
                "actions": [plan_action_json(a) for a in plan.actions],
                "conflicts": [conflict_json(c) for c in plan.conflicts],
                "holds": list(plan.holds),
                "waits": [
                    {**plan_action_json(w.action), "until": iso_utc(w.until)}
                    for w in cycle.waits.get(plan.target, ())
                ],
                "missing_groups": sorted(cycle.observed[plan.target].missing_groups),
            }
            for plan in cycle.plans
        ],
        "target_errors": dict(sorted(cycle.errors.items())),
        "invalid": [
            {
                "origin": r.origin,
                "contract_id": r.contract_id,
                "person": r.person,
                "field": r.field,
                "reason": r.reason,
                "fix": r.fix,
            }
            for r in cycle.invalid
        ],
        "summary": counts(cycle),
    }


def plan_action_json(action: Action) -> dict[str, Any]:
    return {
        "kind": action.kind.value,
        "person": action.person,
        "username": action.username,
        "ref": action.ref,
        "group": action.group or None,
        "changes": {k: list(v) for k, v in sorted(action.changes.items())},
        "expiry": iso_utc(action.expiry) if action.expiry else None,
        "reason": action.reason,
        "contract_ids": list(action.contract_ids),
        "cause": action.cause.value,
        "held": action.held or None,
    }


def render_results(reports: list[ApplyReport]) -> str:
    out = []
    for report in reports:
        out.append(
            f"{report.target}: {len(report.done)} done, {len(report.failed)} failed, "
            f"{len(report.skipped)} not attempted"
        )
        for outcome in report.failed:
            out.append(f"  FAILED {action_line(outcome.action)}: {outcome.detail}")
        if report.unavailable:
            out.append(f"  {report.unavailable}")
    return lines(out)


def expiring_rows(people: list[Person]) -> list[dict[str, Any]]:
    """Active people whose access ends, soonest first (``syncd expiring``)."""
    ending = sorted((p for p in people if p.access_end), key=lambda p: (p.access_end, p.key))
    return [
        {
            "person": person.key,
            "username": person.username,
            "end": iso_utc(person.access_end) if person.access_end else None,
            "sponsor": person.sponsor or None,
            "contract_ids": list(person.contract_ids),
        }
        for person in ending
    ]


# How to put each kind of violation right, for the person reading ``syncd attest``
FIXES = {
    ViolationKind.ENDED_ENABLED: "disable the account (syncd sync does), then find out "
    "who enabled it",
    ViolationKind.UNGRANTED_GROUP: "remove it from the group (syncd sync does), or give the "
    "person a role that grants it",
    ViolationKind.CREDENTIALS_ON_DISABLED: "revoke its credentials (syncd sync does)",
    ViolationKind.EXPIRY_BEYOND_END: "set the expiry to the access end (syncd sync does)",
}


def render_attestations(attestations: list[Attestation], errors: dict[str, str]) -> str:
    """``syncd attest`` for a person: per target the counts, one line per violation
    with its fix, and the digest; then a verdict."""
    out = []
    for name, error in sorted(errors.items()):
        out.append(f"{name}: NOT ATTESTED: {error}")
    for a in attestations:
        c = a.counts
        out.append(f"{a.target}: attested at {iso_utc(a.at)}")
        out.append(
            f"  {c.accounts} managed accounts: {c.enabled} enabled, {c.disabled} disabled, "
            f"{c.orphans} without a contract"
        )
        out.append(f"  people in the source: {c.active} active, {c.future} future, {c.ended} ended")
        for v in a.violations:
            out.append(f"  ✗ {v.kind.value:<23} {v.username} ({v.person}): {v.detail}")
            out.append(f"    fix: {FIXES[v.kind]}")
        out.append(f"  digest sha256:{a.digest}")
    found = sum(len(a.violations) for a in attestations)
    if found:
        out.append(f"{found} violation{'s' if found != 1 else ''} found.")
    elif not errors:
        out.append("Clean: no violations.")
    return lines(out)


def attestations_json(
    attestations: list[Attestation], errors: dict[str, str], recorded: bool
) -> dict[str, Any]:
    """``syncd attest --json``; ``recorded``: whether the audit trail holds them."""
    return {
        "format": "syncd.attest/1",
        "recorded": recorded,
        "targets": [
            {
                "name": a.target,
                "at": iso_utc(a.at),
                "clean": a.clean,
                "counts": asdict(a.counts),
                "violations": [
                    {
                        "kind": v.kind.value,
                        "person": v.person,
                        "username": v.username,
                        "group": v.group or None,
                        "detail": v.detail,
                        "fix": FIXES[v.kind],
                    }
                    for v in a.violations
                ],
                "digest": a.digest,
            }
            for a in attestations
        ],
        "target_errors": dict(sorted(errors.items())),
    }
