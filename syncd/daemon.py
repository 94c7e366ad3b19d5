"""``syncd run``: the long-running service of SPEC §4. Entry point ``Daemon.run``.

Called by ``syncd.cli`` (``syncd run``), which owns the process's signals and turns
them into ``Controls`` requests: SIGHUP reloads the config (a bad one is rejected, the
old one keeps running), SIGUSR1 forces a cycle, SIGTERM/SIGINT stop after the write in
flight. Tests run ``Daemon.run`` in a thread and set the same requests themselves,
handing it in-memory targets through ``open_targets``.

The loop runs a cycle (``syncd.engine``) when the schedule says so (``syncd.watch``:
every ``daemon.interval``, at the next grant time or access end, after a backoff) or
when the source file changed, and sleeps in between. When only a boundary is due, the
cycle is a targeted one (``syncd.targeted``): just the people whose access changes
then (a burst: its vanguard first), planned from the last full cycle's contracts.
Contracts come from the fail-safe source (``syncd.watch.SourceWatch``). After each
cycle it attests every target it observed (one record per target), records metrics,
sets the health state and tells systemd how things stand. One instance per state
directory (``syncd.state``). With ``ha:``, only the host holding the leader lease
runs cycles, and no request reaches a target unless the lease is known to be held
(``syncd.ha``); the others follow.

The loop and its connections beat a ``syncd.pulse.Pulse``; a thread of its own sends
``WATCHDOG=1`` while that pulse is alive, so a slow or frozen target never starves the
watchdog and a hung loop still gets killed. On a stop, waits and retries end at once;
requests still in flight ``STOP_GRACE`` seconds later are broken off, their writes
recorded with an unknown outcome (checked by the next cycle), so a stop takes seconds
whatever a target is doing.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from syncd import engine, pulse
from syncd.apply import ApplyReport
from syncd.audit import AuditWriter
from syncd.audit.records import START, STOP
from syncd.config import Config, load_config
from syncd.core.attest import Attestation
from syncd.core.desired import next_boundary
from syncd.engine import CyclePlan, CycleRun, close_all, gc_relaxed, plan_cycle, run_cycle
from syncd.errors import ConfigError, SyncdError
from syncd.ha.role import Role
from syncd.metrics import CycleResult, Health, Metrics, serve
from syncd.pulse import STOP_GRACE, Pulse
from syncd.sdnotify import Notifier, Watchdog
from syncd.standing import StandingConflicts
from syncd.state import StateDir
from syncd.targeted import VANGUARD, Basis, boundary_slices, plan_boundary
from syncd.targets.base import Target
from syncd.verdict import status_line, verdict
from syncd.watch import WATCH_EVERY, Controls, Reading, Schedule, SourceWatch, Stopping

log = logging.getLogger(__name__)
OpenTargets = Callable[[Config], dict[str, Target]]
HEALTH = {CycleResult.SOURCE_ERROR: "degraded", CycleResult.FAILED: "failing"}


class Daemon:
    """One daemon: its config, metrics and health, and the targets it has open.

    ``open_targets`` makes the targets a config names (default: the real ones); it is
    called again after each reload."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        *,
        open_targets: OpenTargets = engine.open_targets,
    ) -> None:
        self.config_path = config_path
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
        self.pulse = Pulse()
        self.ha: Role | None = None  # with ``ha:``: this host's role (``syncd.ha``)
        self._controls = Controls()
        self._ready = threading.Event()
        self._started = time.monotonic()

    def run(self, controls: Controls, ready: threading.Event | None = None) -> None:
        """Serve until ``controls.stop`` is set. ``ready`` is set when systemd is told
        READY=1: after the first successful cycle, or ``daemon.ready_timeout`` at the
        latest. ``StateLocked`` when another instance holds the state directory."""
        self._controls = controls
        self._ready = ready if ready is not None else threading.Event()
        self._started = time.monotonic()
        self.pulse = Pulse(controls.stop)
        self.health.retrying = self.pulse.troubles
        if self.config.ha is not None:  # read at start only: a reload keeps it
            self.ha = Role(self.config.ha, self.metrics, self.health, self.pulse)
            self.ha.start()
        state = StateDir(self.config.daemon.state_dir)
        self.standing = StandingConflicts(state)
        server = None
        self._warn()
        watchdog = Watchdog(self.notify, self.pulse.alive)
        ended = threading.Event()
        try:
            if self.config.daemon.metrics_address:
                server = serve(self.config.daemon.metrics_address, self.metrics, self.health)
            self.notify.status("first cycle")
            watchdog.start()
            threading.Thread(
                target=self._break_off_late, args=(ended,), name="syncd-stop", daemon=True
            ).start()
            with (
                pulse.running(self.pulse),
                AuditWriter.from_config(self.config.audit, str(uuid.uuid4())) as audit,
            ):
                audit.event(
                    START,
                    "Start",
                    "daemon started",
                    audit.correlation,
                    config=str(self.config_path),
                )
                self._loop(SourceWatch(state, self.pulse.wait), audit)
                if self.ha is not None:  # a clean stop hands over at once
                    self.ha.close(audit)
                watchdog.close()  # no WATCHDOG=1 after STOPPING=1
                self.notify.stopping()
                audit.event(STOP, "Stop", "daemon stopped", audit.correlation)
        finally:
            ended.set()
            watchdog.close()
            if self.ha is not None:
                self.ha.close()
            close_all(self.targets)
            self.targets = {}
            if server is not None:
                server.shutdown()
                server.server_close()
            state.close()
        log.info("stopped")

    def stopping(self) -> bool:
        """Asked between batches of writes: also a beat of the loop's pulse."""
        self.pulse.beat()
        return self._controls.stop.is_set() or (self.ha is not None and not self.ha.gate())

    def _break_off_late(self, ended: threading.Event) -> None:
        """Break off the requests still in flight ``STOP_GRACE`` seconds after a stop
        (a thread of its own: the loop may be blocked in one of them)."""
        stop = self._controls.stop
        while not stop.wait(WATCH_EVERY):
            if ended.is_set():
                return
        if not ended.wait(STOP_GRACE):
            log.warning("still busy %.0f s after the stop: breaking off requests", STOP_GRACE)
            self.pulse.abort()

    def _loop(self, source: SourceWatch, audit: AuditWriter) -> None:
        controls = self._controls
        self.metrics.set_interval(self.config.daemon.interval.total_seconds())
        while not controls.stop.is_set():
            self.pulse.beat()
            if controls.take_reload():
                self._reload()
            if self.ha is not None and not self._leads(source, audit):
                continue
            forced = controls.take_cycle()
            changed = source.changed(self.config)
            if not (forced or changed) and self._targeted_due():
                self._targeted(source, audit)
            elif forced or changed or self.schedule.due(time.time()):
                # The whole cycle, the source read included, with the collector relaxed;
                # its full collection runs once the cycle's objects are gone, over a
                # small heap: over a big source's live objects it would hold the GIL,
                # and /metrics with it, for seconds.
                with gc_relaxed():
                    self._cycle(source, audit)
            self._ready_if_due()
            sleep = self.schedule.sleep_seconds(time.time())
            sleep = min(sleep, source.settles_in or sleep)
            self.pulse.beat(allow=sleep)
            controls.wake.wait(sleep)
            controls.wake.clear()

    def _leads(self, source: SourceWatch, audit: AuditWriter) -> bool:
        """With ``ha:``: whether this host leads now; a follower waits a poll here. A new
        leader's next cycle is a full one: it settles open intents, as after a crash."""
        assert self.ha is not None
        leading, began = self.ha.check(audit)
        if began:  # a term starts afresh: no backoff left from an earlier one
            self.basis, self.schedule = None, Schedule()
        if not leading:
            self.ha.follow(self.config, source)
            self._ready_if_due()
            self.pulse.beat(allow=self.ha.poll)
            self._controls.wake.wait(self.ha.poll)
            self._controls.wake.clear()
        return leading

    def _ready_if_due(self) -> None:
        if self._ready.is_set():
            return
        waited = time.monotonic() - self._started
        up = self.health.status in ("ok", "standby")  # a follower is up
        if up or waited >= self.config.daemon.ready_timeout.total_seconds():
            status = f"{self.health.status}: {self.health.reason or 'running'}"
            self.notify.ready(self.last_status or status)
            self._ready.set()

    def _reload(self) -> None:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config:\n%s", exc)
            self.notify.status(f"reload rejected: {exc.problems[0]}")
            return
        if config.daemon.state_dir != self.config.daemon.state_dir:
            log.error("reload: state_dir cannot change while running; restart instead")
            return
        close_all(self.targets)
        self.targets = {}
        self.basis = None  # planned under the old config: the next cycle is a full one
        self.config = config
        self.metrics.set_interval(config.daemon.interval.total_seconds())
        self.schedule.next_poll = 0.0  # apply the new config now
        log.info("config reloaded from %s", self.config_path)
        self._warn()

    def _warn(self) -> None:
        """Log what the config weakens, at every start and reload, and show it in /healthz."""
        self.health.warnings = self.config.warnings()
        for warning in self.health.warnings:
            log.warning("%s", warning)

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
            self.basis = Basis.of(reading, cycle)
            # wake when an orphan's grace ends, as at a boundary
            wake = [t for t in (self.schedule.boundary, cycle.grace_end) if t is not None]
            self.schedule.boundary = min(wake, default=None)
            self.pulse.beat()
            run = self._run(cycle, audit, correlation, trusted=not reading.degraded)
        except SyncdError as exc:
            self._failed(str(exc), CycleResult.FAILED)
            return
        self._finished(cycle, run.reports, run.attestations, reading, time.monotonic() - started)

    def _run(
        self, cycle: CyclePlan, audit: AuditWriter, correlation: str, trusted: bool
    ) -> CycleRun:
        """Carry out a planned cycle, recording conflicts when they appear or clear."""
        assert self.standing is not None  # made by ``run``
        self.standing.record(cycle, audit, correlation, trusted=trusted)
        return run_cycle(
            cycle, self.targets, audit, correlation, stopping=self.stopping, conflicts=False
        )

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
