"""``syncd run``: the long-running service of SPEC §4. Entry point ``Daemon.run``.

Called by ``syncd.cli`` (``syncd run``), which owns the process's signals and turns
them into ``Controls`` requests: SIGHUP reloads the config (a bad one is rejected, the
old one keeps running), SIGUSR1 forces a cycle, SIGTERM/SIGINT stop after the write in
flight. Tests run ``Daemon.run`` in a thread and set the same requests themselves,
handing it in-memory targets through ``open_targets``.

The loop runs a cycle (``syncd.engine``) when the schedule says so (``syncd.watch``:
every ``daemon.interval``, at the next grant time or access end, after a backoff) or
when the source file changed, and sleeps in between. Contracts come from the fail-safe
source (``syncd.watch.SourceWatch``). After each cycle it attests every target it
observed (``syncd.core.attest``: one record per target in the audit trail), records
metrics (``syncd.metrics``), sets the health state and tells systemd how things stand
(``syncd.sdnotify``). One instance per state directory (``syncd.state``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from syncd import engine
from syncd.apply import ApplyReport
from syncd.audit import AuditWriter
from syncd.audit.records import START, STOP
from syncd.config import Config, load_config
from syncd.core.attest import Attestation
from syncd.core.desired import next_boundary
from syncd.core.model import PersonState
from syncd.engine import CyclePlan, close_all, gc_relaxed, plan_cycle, run_cycle
from syncd.errors import ConfigError, SyncdError
from syncd.metrics import CycleResult, Health, Metrics, serve
from syncd.sdnotify import Notifier
from syncd.state import StateDir
from syncd.targets.base import Target
from syncd.watch import Reading, Schedule, SourceWatch

log = logging.getLogger(__name__)
OpenTargets = Callable[[Config], dict[str, Target]]
HEALTH = {CycleResult.SOURCE_ERROR: "degraded", CycleResult.FAILED: "failing"}


class Controls:
    """Requests to a running daemon, from another thread or a signal handler.

    ``stop``: finish the write in flight, then end ``run``. Each request also sets
    ``wake``, on which the loop sleeps, so it is served at once; ``stop`` set on its own
    is seen within ``syncd.watch.WATCH_EVERY``."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.wake = threading.Event()
        self._reload = False
        self._cycle = False

    def request_stop(self) -> None:
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self._reload = True
        self.wake.set()

    def request_cycle(self) -> None:
        self._cycle = True
        self.wake.set()

    def take_reload(self) -> bool:
        """Whether a reload was requested since the last call. A request that lands
        while this runs is served by the reload that follows."""
        requested, self._reload = self._reload, False
        return requested

    def take_cycle(self) -> bool:
        """Whether a cycle was requested since the last call."""
        requested, self._cycle = self._cycle, False
        return requested


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
        state = StateDir(self.config.daemon.state_dir)
        server = None
        try:
            if self.config.daemon.metrics_address:
                server = serve(self.config.daemon.metrics_address, self.metrics, self.health)
            with AuditWriter.from_config(self.config.audit, str(uuid.uuid4())) as audit:
                audit.event(
                    START,
                    "Start",
                    "daemon started",
                    audit.correlation,
                    config=str(self.config_path),
                )
                self._loop(SourceWatch(state), audit)
                self.notify.stopping()
                audit.event(STOP, "Stop", "daemon stopped", audit.correlation)
        finally:
            close_all(self.targets)
            self.targets = {}
            if server is not None:
                server.shutdown()
                server.server_close()
            state.close()
        log.info("stopped")

    def stopping(self) -> bool:
        """Asked between batches of writes: also keeps systemd's watchdog fed during a
        long cycle (a first sync of thousands of accounts outlasts WatchdogSec)."""
        self.notify.watchdog()
        return self._controls.stop.is_set()

    def _loop(self, source: SourceWatch, audit: AuditWriter) -> None:
        controls = self._controls
        self.metrics.set_interval(self.config.daemon.interval.total_seconds())
        self.notify.status("first cycle")
        while not controls.stop.is_set():
            if controls.take_reload():
                self._reload()
            forced = controls.take_cycle()
            if forced or self.schedule.due(time.time()) or source.changed(self.config.source.path):
                self._cycle(source, audit)
            self._ready_if_due()
            self.notify.watchdog()
            controls.wake.wait(
                self.schedule.sleep_seconds(time.time(), self.notify.watchdog_seconds)
            )
            controls.wake.clear()

    def _ready_if_due(self) -> None:
        if self._ready.is_set():
            return
        waited = time.monotonic() - self._started
        if self.health.status == "ok" or waited >= self.config.daemon.ready_timeout.total_seconds():
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
        self.config = config
        self.metrics.set_interval(config.daemon.interval.total_seconds())
        self.schedule.next_poll = 0.0  # apply the new config now
        log.info("config reloaded from %s", self.config_path)

    def _cycle(self, source: SourceWatch, audit: AuditWriter) -> None:
        config = self.config
        started = time.monotonic()
        now = datetime.now(UTC)
        self.schedule.polled(time.time(), config.daemon.interval.total_seconds())
        reading = source.read(config, now)
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
            with gc_relaxed():
                cycle = plan_cycle(
                    config,
                    now,
                    self.targets,
                    source=reading.source,
                    expiries_only=bool(reading.degraded),
                )
                run = run_cycle(cycle, self.targets, audit, correlation, stopping=self.stopping)
        except SyncdError as exc:
            self._failed(str(exc), CycleResult.FAILED)
            return
        self._finished(cycle, run.reports, run.attestations, reading, time.monotonic() - started)

    def _failed(self, reason: str, result: CycleResult) -> None:
        """No cycle could run: back off, and say so."""
        delay = self.schedule.failed(
            time.time(),
            self.config.daemon.backoff_max.total_seconds(),
            random.uniform(0.5, 1.0),  # noqa: S311 - jitter, not a secret
        )
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
        self.schedule.finished(succeeded=result.succeeded)
        if result.succeeded:
            self.health.set("ok", "", last_cycle_seconds=round(seconds, 3))
        else:
            self.health.set(HEALTH[result], reason)
        self.last_status = status_line(cycle, result, self.schedule.boundary)
        self.notify.status(self.last_status)


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
    """systemd's ``STATUS=`` after a cycle: ``ok: 3 active, 2 actions last cycle, ...``."""
    active = sum(p.state is PersonState.ACTIVE for p in cycle.people.values())
    actions = sum(len(p.actions) for p in cycle.plans)
    after = f", next boundary {boundary:%Y-%m-%dT%H:%M:%SZ}" if boundary else ""
    return f"{result}: {active} active, {actions} actions last cycle{after}"
