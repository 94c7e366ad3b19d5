"""Run a target's plan: audit intent, send, audit outcome; report what happened.

Called by ``syncd.engine.run_cycle`` for each target after planning. Actions go out in
plan order, in chunks of one kind (the target's ``batch_size``): the chunk's intents
are written and fsynced before any of its writes is sent, so a crash never leaves a
change without its intent on disk. A failed create skips the rest of that person's
actions; other failures are reported and the cycle goes on. When the target is
unreachable even after retries, the rest of its plan is reported as not attempted:
every action ends up done, failed or not attempted, none is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.audit import AuditWriter
from syncd.core.model import Action, ActionKind, Outcome, TargetPlan
from syncd.errors import TemporaryError
from syncd.targets.base import Target

log = logging.getLogger(__name__)


@dataclass
class ApplyReport:
    """Per-target results of one cycle."""

    target: str
    done: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)
    unavailable: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unavailable


def apply_plan(
    plan: TargetPlan,
    target: Target,
    audit: AuditWriter,
    correlation: str,
    stopping: Callable[[], bool] = lambda: False,
) -> ApplyReport:
    """Run ``plan``; ``stopping`` is asked between chunks (the daemon's SIGTERM): the
    write in flight finishes, the rest is reported as not attempted."""
    report = ApplyReport(plan.target)
    for action in plan.held:
        audit.held(action, correlation)
    for conflict in plan.conflicts:
        audit.conflict(conflict, correlation)
    failed_creates: set[str] = set()
    chunk = target.batch_size
    pending: list[Action] = []
    for action in plan.runnable:
        if pending and (pending[0].kind is not action.kind or len(pending) >= chunk):
            _send(pending, target, audit, correlation, report, failed_creates)
            pending = []
        # Asked between chunks only: the chunk being gathered is sent whole.
        stop = not pending and stopping()
        if report.unavailable or stop or action.person in failed_creates:
            report.skipped.append(action)
            continue
        pending.append(action)
    if pending and not report.unavailable:
        _send(pending, target, audit, correlation, report, failed_creates)
    audit.sync()
    return report


def _send(
    chunk: list[Action],
    target: Target,
    audit: AuditWriter,
    correlation: str,
    report: ApplyReport,
    failed_creates: set[str],
) -> None:
    for action in chunk:
        audit.intent(action, correlation)
    audit.sync()
    answered: set[int] = set()

    def record(outcome: Outcome) -> None:
        answered.add(id(outcome.action))
        audit.outcome(outcome, correlation)
        if outcome.ok:
            report.done.append(outcome)
            return
        report.failed.append(outcome)
        log.warning(
            "%s %s %s failed: %s",
            target.name,
            outcome.action.kind.value,
            outcome.action.username,
            outcome.detail,
            extra={"target": target.name, "account": outcome.action.username, "cycle": correlation},
        )
        if outcome.action.kind is ActionKind.CREATE:
            failed_creates.add(outcome.action.person)

    try:
        target.apply(chunk, record)
    except TemporaryError as exc:
        report.unavailable = f"target {target.name} unavailable: {exc}"
        log.error("%s", report.unavailable, extra={"target": target.name, "cycle": correlation})
        for action in chunk:
            if id(action) not in answered:
                record(Outcome(action, None, f"outcome unknown, checked next cycle: {exc}"))
