"""The cycles of ``syncd run``: a full cycle, the targeted cycles at a boundary, and
what each leaves behind (metrics, health, systemd's status, the schedule's next wake).

``Cycles`` holds the state a running daemon's cycles share; ``syncd.daemon.Daemon`` is
one, and adds the service around them (threads, reloads, leadership, the loop that
decides when a cycle runs). A full cycle reads the fail-safe source
(``syncd.watch.SourceWatch``), plans every target (``syncd.engine``), records the
conflicts that appear or clear (``syncd.standing``), applies, and hands the outcomes
to the notices (``syncd.notify``). A targeted cycle (``syncd.targeted``) plans just the
people whose access changes at a boundary from the last full cycle's contracts (a
burst: its vanguard first). A cycle that could not reach a target backs off
(``Schedule.failed``); ``stopping`` is asked between batches of writes.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from syncd.apply import ApplyReport
from syncd.audit import AuditWriter
from syncd.config import Config
from syncd.core.attest import Attestation
from syncd.core.desired import next_boundary
from syncd.engine import CyclePlan, CycleRun, gc_relaxed, plan_cycle, run_cycle
from syncd.errors import SyncdError
from syncd.listener import Health
from syncd.metrics import CycleResult, Metrics
from syncd.notify.service import Notices
from syncd.pulse import Pulse
from syncd.sdnotify import Notifier
from syncd.standing import StandingConflicts
from syncd.targeted import VANGUARD, Basis, boundary_slices, plan_boundary
from syncd.targets.base import Target
from syncd.verdict import status_line, verdict
from syncd.watch import Controls, Reading, Schedule, SourceWatch, Stopping

log = logging.getLogger(__name__)
OpenTargets = Callable[[Config], dict[str, Target]]
HEALTH = {CycleResult.SOURCE_ERROR: "degraded", CycleResult.FAILED: "failing"}


class Cycles:
    """The cycles of one daemon and the state they share: the config, the open
    targets (``open_targets`` makes them, again after each reload), the schedule, the
    basis of targeted cycles, metrics, health and systemd's status."""

    def __init__(self, config: Config, open_targets: OpenTargets) -> None:
        self.config = config
        self.open_targets = open_targets
        self.metrics = Metrics()
        self.health = Health()
        self.notify = Notifier()
        self.schedule = Schedule()
        self.targets: dict[str, Target] = {}
        self.last_status = ""
        self.basis: Basis | None = None  # what targeted cycles plan from (``syncd.targeted``)
        self.standing: StandingConflicts | None = None  # kept in the state directory
        self.notices: Notices  # made by ``Daemon.run``, with the state directory
        self.pulse = Pulse()
        self._controls = Controls()

    def stopping(self) -> bool:
        """Asked between batches of writes: also a beat of the loop's pulse."""
        self.pulse.beat()
        return self._controls.stop.is_set()

    def _cycle(self, source: SourceWatch, audit: AuditWriter) -> None:
        config = self.config
        started = time.monotonic()
        now = datetime.now(UTC)
        self.schedule.started(time.time(), config.daemon.interval.total_seconds())
        try:
            reading = source.read(config, now)
        except Stopping:
            return
        self.pulse.beat()
        self.metrics.source_read(ok=not reading.degraded)
        if reading.source is None:
            self._failed(
                "source unavailable and no snapshot to fall back on", CycleResult.SOURCE_ERROR
            )
            return
        self.schedule.boundary = next_boundary(reading.source.contracts, config.core_policy(), now)
        correlation = str(uuid.uuid4())
        try:
            if not self.targets:
                self.targets = self.open_targets(config)
            cycle = plan_cycle(
                config,
                now,
                self.targets,
                source=reading.source,
                expiries_only=bool(reading.degraded),
                absent_since=source.state.load_absences(),
            )
            source.state.save_absences(cycle.absent_since)
            self.basis = Basis.of(reading, cycle, config.core_policy())
            # wake when an orphan's grace ends, as at a boundary
            wake = [t for t in (self.schedule.boundary, cycle.grace_end) if t is not None]
            self.schedule.boundary = min(wake, default=None)
            self.pulse.beat()
            run = self._run(cycle, audit, correlation, trusted=not reading.degraded)
        except SyncdError as exc:
            self._failed(str(exc), CycleResult.FAILED)
            return
        self.schedule.full_seconds = time.monotonic() - started
        self._finished(cycle, run.reports, run.attestations, reading, time.monotonic() - started)
        if self.basis is not None:
            self.basis.prepare()  # now, after the writes, not at the next boundary

    def _run(
        self, cycle: CyclePlan, audit: AuditWriter, correlation: str, trusted: bool
    ) -> CycleRun:
        """Carry out a planned cycle, recording conflicts when they appear or clear."""
        assert self.standing is not None  # made by ``run``
        appeared, _ = self.standing.record(cycle, audit, correlation, trusted=trusted)
        run = run_cycle(
            cycle, self.targets, audit, correlation, stopping=self.stopping, conflicts=False
        )
        self.notices.events(cycle, run.reports, appeared, cycle.at)
        return run

    def _targeted_due(self) -> bool:
        """Only a boundary is due and a targeted cycle can serve it: switched on, the
        targets open, and a full cycle since the last reload observed them all."""
        return (
            self.config.daemon.targeted_cycles
            and self.basis is not None
            and self.basis.covers(self.targets)
            and self.schedule.only_boundary(time.time())
        )

    def _targeted(self, source: SourceWatch, audit: AuditWriter) -> None:
        """Targeted cycles (``syncd.targeted``) over the people whose state changed
        since the last handled instant, from the last full cycle's contracts, without
        reading the source: one, or for a burst its vanguard and then the rest. The
        poll stays where it is."""
        basis, after = self.basis, self.schedule.handled
        assert basis is not None  # ``_targeted_due`` said so
        assert after is not None
        now, absent = datetime.now(UTC), source.state.load_absences()
        slices = boundary_slices(self.config, now, after, basis, absent) or [frozenset()]
        for keys in slices:
            vanguard = len(slices) > 1 and keys is slices[0]  # its disables alone
            # a big one relaxes the collector as a full cycle does; a small one need not
            with gc_relaxed() if len(keys) > VANGUARD else contextlib.nullcontext():
                reached = self._boundary_cycle(basis, (after, now, vanguard), keys, absent, audit)
            if not reached:
                return  # the retry is a full cycle
            if self.stopping():
                return

    def _boundary_cycle(
        self,
        basis: Basis,
        since: tuple[datetime, datetime, bool],
        keys: frozenset[str],
        absent: Mapping[str, datetime],
        audit: AuditWriter,
    ) -> bool:
        """One targeted cycle over ``keys``, whose state changed in ``since`` (after,
        now], a burst's vanguard or not; whether it reached every target."""
        after, now, vanguard = since
        started = time.monotonic()
        self.schedule.started(time.time(), 0.0, targeted=True)
        try:
            cycle, self.schedule.boundary = plan_boundary(
                self.config, now, after, basis, self.targets, absent, keys, vanguard
            )
            self.pulse.beat()
            run = self._run(cycle, audit, str(uuid.uuid4()), trusted=not basis.reading.degraded)
        except SyncdError as exc:
            self._failed(str(exc), CycleResult.FAILED)
            return False
        log.info("targeted cycle: %d people at a boundary", len(cycle.targeted or ()))
        self._finished(cycle, run.reports, [], basis.reading, time.monotonic() - started)
        return not self.schedule.retry_at

    def _back_off(self) -> float:
        """Schedule the retry after a failure; its delay in seconds."""
        self.pulse.clear_troubles()  # the cycle's verdict takes over
        return self.schedule.failed(
            time.time(),
            self.config.daemon.backoff_max.total_seconds(),
            random.uniform(0.5, 1.0),  # noqa: S311 - jitter, not a secret
        )

    def _failed(self, reason: str, result: CycleResult) -> None:
        """No cycle could run: back off, and say so."""
        delay = self._back_off()
        self.metrics.cycle_failed(result)
        self.health.set("failing", reason, failures=self.schedule.failures)
        self.notify.status(f"failing: {reason}")
        log.error("cycle failed (%s); next try in %.0fs", reason, delay)

    def _finished(
        self,
        cycle: CyclePlan,
        reports: list[ApplyReport],
        attestations: list[Attestation],
        reading: Reading,
        seconds: float,
    ) -> None:
        """A cycle ran: record it, and tell the health endpoint and systemd."""
        result, reason = verdict(cycle, reports, reading.degraded)
        self.metrics.record_cycle(
            cycle,
            reports,
            policy=self.config.core_policy(),
            result=result,
            seconds=seconds,
            finished=time.time(),
            attestations=attestations,
        )
        unreachable = bool(cycle.errors) or any(r.unavailable for r in reports)
        if unreachable and not self._controls.stop.is_set():  # retry soon, not at the poll
            delay = self._back_off()
            log.warning("a target could not be reached; next try in %.0fs", delay)
        else:
            self.pulse.clear_troubles()
            self.schedule.finished(succeeded=result.succeeded, planned_at=cycle.at)
        if result.succeeded:
            self.health.set("ok", "", last_cycle_seconds=round(seconds, 3))
        else:
            self.health.set(HEALTH[result], reason)
        self.last_status = status_line(cycle, result, self.schedule.boundary)
        self.notify.status(self.last_status)
