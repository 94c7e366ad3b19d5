"""Run a target's plan: audit intent, send, read back, audit outcome; report.

Called by ``syncd.engine.run_cycle`` for each target after planning. Actions go out in
plan order, in chunks of one kind and up to the target's ``batch_size``; the first
chunks of disables are small (``FIRST_CHUNK``, doubling), so that in a burst of
revocations the first disables are on the target and verified within a second, not
after a thousand. The chunk's intents
are written and fsynced before any of its writes is sent, so a crash never leaves a
change without its intent on disk. A failed create skips the rest of that person's
actions; other failures are reported and the cycle goes on. When the target is
unreachable even after retries, the rest of its plan is reported as not attempted:
every action ends up done, failed or not attempted, none is lost.

An outcome is a statement about the target, checked: after each chunk the touched
accounts and groups are read back (``Target.read_back``, a few requests per chunk) and
each answer is verified against what the action meant (``core.verify``); a change the
target did not keep is a Failure naming what it holds, and the next cycle plans it
again. Members outside the managed scope that changed under a membership chunk are
recorded as collateral changes, never repaired: compared with the group as the cycle's
observation read it (``Observed.others``) or, for a target whose observation does not
read groups whole, as read before the chunk's writes; after a chunk, as read back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.audit import AuditWriter
from syncd.core.model import (
    Action,
    ActionKind,
    Collateral,
    Observed,
    Outcome,
    ReadBack,
    TargetPlan,
)
from syncd.core.verify import CHECKED, collateral, verified
from syncd.errors import TargetError, TemporaryError
from syncd.targets.base import Target

log = logging.getLogger(__name__)
# The size of a plan's first chunk of disables; each next one is twice the last, up to
# the target's batch_size.
FIRST_CHUNK = 50


@dataclass
class ApplyReport:
    """Per-target results of one cycle."""

    target: str
    done: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)
    skipped: list[Action] = field(default_factory=list)
    collateral: list[Collateral] = field(default_factory=list)
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
    observed: Observed | None = None,
    progress: Callable[[int], None] | None = None,
) -> ApplyReport:
    """Run ``plan``; ``stopping`` is asked between chunks (the daemon's SIGTERM): the
    write in flight finishes, the rest is reported as not attempted. ``observed``: the
    cycle's observation of the target, whose groups read in full need no second read
    before the writes. ``progress`` is told how many actions each chunk sent, once it
    is done."""
    run = _Run(target, audit, correlation, ApplyReport(plan.target))
    if observed is not None:
        run.others.update(observed.others)
    for action in plan.held:
        audit.held(action, correlation)
    report = run.report
    size = _Chunks(target.batch_size)
    pending: list[Action] = []
    for action in plan.runnable:
        if pending and (pending[0].kind is not action.kind or len(pending) >= size.of(pending)):
            run.send(pending)
            if progress is not None:
                progress(len(pending))
            size.sent(pending)
            pending = []
        # Asked between chunks only: the chunk being gathered is sent whole.
        stop = not pending and stopping()
        if report.unavailable or stop or action.person in run.failed_creates:
            report.skipped.append(action)
            continue
        pending.append(action)
    if pending and not report.unavailable:
        run.send(pending)
        if progress is not None:
            progress(len(pending))
    audit.sync()
    return report


@dataclass
class _Chunks:
    """How many actions go in the next chunk: the target's batch size, except for the
    disables, which start at ``FIRST_CHUNK`` and double (a lock-out is what a deadline
    is about; other kinds gain nothing from it, and a SCIM group is read back whole
    after each of its chunks)."""

    batch_size: int
    disables: int = FIRST_CHUNK

    def of(self, pending: list[Action]) -> int:
        if pending[0].kind is ActionKind.DISABLE:
            return min(self.disables, self.batch_size)
        return self.batch_size

    def sent(self, chunk: list[Action]) -> None:
        if chunk[0].kind is ActionKind.DISABLE:
            self.disables *= 2


@dataclass
class _Run:
    """One target's plan being carried out: what it has learned so far."""

    target: Target
    audit: AuditWriter
    correlation: str
    report: ApplyReport
    failed_creates: set[str] = field(default_factory=set)
    # members outside the managed scope, per group, as last read
    others: dict[str, frozenset[str]] = field(default_factory=dict)

    def send(self, chunk: list[Action]) -> None:
        """Intents on disk, the writes, the read-back, the outcomes."""
        for action in chunk:
            self.audit.intent(action, self.correlation)
        self.audit.sync()
        groups = sorted({a.group for a in chunk if a.group})
        # Groups whose other members no whole read has shown this cycle (a targeted
        # one) are asked for the chunk's members alone, where the target can.
        by_value = not any(g in self.others for g in groups)
        self._read_before(chunk, groups, by_value)
        answers: list[Outcome] = []
        try:
            self.target.apply(chunk, answers.append)
        except TemporaryError as exc:
            self.report.unavailable = f"target {self.target.name} unavailable: {exc}"
            log.error("%s", self.report.unavailable, extra=self._context())
        asked = (chunk[0].kind, answers, groups, by_value)
        read = None if self.report.unavailable else self._read_after(*asked)
        for outcome in answers:
            self._record(verified(outcome, read) if read is not None else outcome)
        answered = {id(o.action) for o in answers}
        for action in chunk:
            if id(action) not in answered:
                note = f"outcome unknown, checked next cycle: {self.report.unavailable}"
                self._record(Outcome(action, None, note))
        if read is not None:
            self._collateral(read, groups)

    def _read_before(self, chunk: list[Action], groups: list[str], by_value: bool) -> None:
        """The members outside the managed scope of groups not read yet this cycle (none
        when the target reads the chunk's members alone: no other member is judged)."""
        unseen = [g for g in groups if g not in self.others]
        if not unseen:
            return
        members = [a.ref for a in chunk if a.ref] if by_value else []
        try:
            self.others.update(self.target.read_back(chunk[0].kind, [], unseen, members).others)
        except TargetError as exc:
            log.warning("%s: groups not read before the change: %s", self.target.name, exc)

    def _read_after(
        self, kind: ActionKind, answers: list[Outcome], groups: list[str], by_value: bool
    ) -> ReadBack | None:
        """What the target holds now: the groups of a membership chunk (that is where
        memberships are judged; ``by_value``: asked for the chunk's members alone), or
        the accounts it answered success for."""
        wanted = [
            (o.action.person, o.ref or o.action.ref)
            for o in answers
            if o.ok and o.action.kind in CHECKED and not o.action.group
        ]
        if kind not in CHECKED or not (wanted or groups):
            return None
        members = [ref for o in answers if (ref := o.ref or o.action.ref)] if by_value else []
        try:
            return self.target.read_back(kind, wanted, groups, members)
        except TargetError as exc:
            log.warning(
                "%s: changes not verified, the read-back failed: %s",
                self.target.name,
                exc,
                extra=self._context(),
            )
            return None

    def _collateral(self, read: ReadBack, groups: list[str]) -> None:
        for change in collateral(self.target.name, self.others, read.others, groups):
            self.report.collateral.append(change)
            self.audit.collateral(change, self.correlation)
            log.error(
                "%s: members outside the managed scope changed in %s: %d vanished, %d "
                "appeared (recorded, not repaired)",
                self.target.name,
                change.group,
                len(change.vanished),
                len(change.appeared),
                extra=self._context(),
            )
        self.others.update({g: read.others[g] for g in groups if g in read.others})

    def _record(self, outcome: Outcome) -> None:
        self.audit.outcome(outcome, self.correlation)
        if outcome.ok:
            self.report.done.append(outcome)
            return
        self.report.failed.append(outcome)
        action = outcome.action
        log.warning(
            "%s %s %s failed: %s",
            self.target.name,
            action.kind.value,
            action.username,
            outcome.detail,
            extra=self._context(action.username),
        )
        if action.kind is ActionKind.CREATE:
            self.failed_creates.add(action.person)

    def _context(self, account: str = "") -> dict[str, str]:
        context = {"target": self.target.name, "cycle": self.correlation}
        return {**context, "account": account} if account else context
