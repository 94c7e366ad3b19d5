"""How a finished cycle of the daemon stands: ``verdict`` (its result, for metrics and
``/healthz``) and ``status_line`` (systemd's ``STATUS=``).

Called by ``syncd.daemon`` after every cycle. Pure functions of what the cycle planned
and did. A standing conflict is not a failure here: it waits for a person to decide,
and ``syncd_conflicts`` (with its alert) carries it, while ``/healthz`` stays ok.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from syncd.apply import ApplyReport
from syncd.core.model import PersonState
from syncd.engine import CyclePlan
from syncd.metrics import CycleResult


def verdict(
    cycle: CyclePlan, reports: Sequence[ApplyReport], degraded: str
) -> tuple[CycleResult, str]:
    """A finished cycle's result, and why it is not a success ("" when it is).

    Planning from the snapshot (``degraded``) outranks failed changes: the source is
    what an operator has to fix first."""
    if degraded:
        return CycleResult.SOURCE_ERROR, degraded
    if cycle.errors or any(not r.ok for r in reports):
        unavailable = [r.unavailable for r in reports if r.unavailable]
        reason = "; ".join([*cycle.errors.values(), *unavailable])
        return CycleResult.FAILED, reason or "some changes failed"
    held = any(p.holds for p in cycle.plans)
    return (CycleResult.HELD if held else CycleResult.OK), ""


def status_line(cycle: CyclePlan, result: CycleResult, boundary: datetime | None) -> str:
    """systemd's ``STATUS=`` after a cycle: ``ok: 3 active, 2 actions last cycle, ...``
    (``ok: targeted, 2 people, 4 actions last cycle, ...`` after a targeted one)."""
    active = sum(p.state is PersonState.ACTIVE for p in cycle.people.values())
    scope = f"{active} active"
    if cycle.targeted is not None:
        scope = f"targeted, {len(cycle.targeted)} people"
    actions = sum(len(p.actions) for p in cycle.plans)
    after = f", next boundary {boundary:%Y-%m-%dT%H:%M:%SZ}" if boundary else ""
    return f"{result}: {scope}, {actions} actions last cycle{after}"
