"""``syncd run``: the long-running service of SPEC §4. Entry point ``Daemon.run``.

The loop polls the source every ``daemon.interval``, watches a file source's mtime and
size, and sleeps in between only until the next known boundary (a grant time or an
access end), so access ends on time whatever the interval. Signals: SIGHUP reloads the
config (a bad one is rejected, the old one keeps running), SIGUSR1 forces a cycle,
SIGTERM/SIGINT stop after the write in flight. One instance per state directory.

Fail-safe source: an accepted source read is kept as a snapshot in the state directory.
When the source cannot be read, or its valid contracts drop by more than
``safety.max_source_drop``, the cycle plans from the snapshot in ``expiries_only`` mode:
dated expiries happen on time, grants and orphan handling wait.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from syncd.apply import ApplyReport
from syncd.audit import AuditWriter
from syncd.audit.records import START, STOP
from syncd.audit.settle import settle_pending
from syncd.config import Config, load_config
from syncd.core.contracts import validate
from syncd.core.desired import effective_end, in_effect, next_boundary
from syncd.core.model import ActionKind, Cause, InvalidRecord, PersonState
from syncd.cycle import (
    CyclePlan,
    Source,
    apply_cycle,
    gc_relaxed,
    open_target,
    plan_cycle,
    read_records,
)
from syncd.errors import ConfigError, SourceError, SyncdError
from syncd.metrics import Health, Metrics, serve
from syncd.sdnotify import Notifier
from syncd.state import Snapshot, StateDir
from syncd.targets.base import Target

log = logging.getLogger(__name__)
WATCH_EVERY = 0.5  # seconds between cheap checks of a file source's mtime and size


@dataclass
class _Wake:
    """Why the loop should run a cycle now."""

    forced: bool = False
    reload: bool = False
    stop: bool = False


class Daemon:
    def __init__(self, config_path: Path, config: Config) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics()
        self.health = Health()
        self.notify = Notifier()
        self.flags = _Wake()
        self.event = threading.Event()
        self.targets: dict[str, Target] = {}
        self.next_poll = 0.0
        self.boundary: datetime | None = None
        self.failures = 0
        self.retry_at = 0.0
        self.ready = False
        self.started = time.monotonic()
        self.source_seen: tuple[float, int] | None = None
        self.last_status = ""

    # -- signals ------------------------------------------------------------------------
    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.flags.reload = True
        elif signum == signal.SIGUSR1:
            self.flags.forced = True
        else:
            self.flags.stop = True
        self.event.set()

    def stopping(self) -> bool:
        """Asked between batches of writes: also keeps systemd's watchdog fed during a
        long cycle (a first sync of thousands of accounts outlasts WatchdogSec)."""
        self.notify.watchdog()
        return self.flags.stop

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> int:
        state = StateDir(self.config.daemon.state_dir)
        server = None
        try:
            if self.config.daemon.metrics_address:
                server = serve(self.config.daemon.metrics_address, self.metrics, self.health)
            for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._signal)
            with AuditWriter.from_config(self.config.audit, str(uuid.uuid4())) as audit:
                audit.event(
                    START,
                    "Start",
                    "daemon started",
                    audit.correlation,
                    config=str(self.config_path),
                )
                self._loop(state, audit)
                self.notify.stopping()
                audit.event(STOP, "Stop", "daemon stopped", audit.correlation)
        finally:
            for target in self.targets.values():
                target.close()
            if server is not None:
                server.shutdown()
            state.close()
        log.info("stopped")
        return 0

    def _loop(self, state: StateDir, audit: AuditWriter) -> None:
        self.metrics.interval.set(self.config.daemon.interval.total_seconds())
        self.notify.status("first cycle")
        while not self.flags.stop:
            if self.flags.reload:
                self._reload()
            now = time.time()
            boundary_due = self.boundary is not None and now >= self.boundary.timestamp()
            poll_due = now >= max(self.next_poll, self.retry_at)
            if self.flags.forced or boundary_due or poll_due or self._source_changed():
                self.flags.forced = False
                self._cycle(state, audit)
            self._ready_if_due()
            self.notify.watchdog()
            self.event.wait(self._sleep_seconds())
            self.event.clear()

    def _sleep_seconds(self) -> float:
        now = time.time()
        wake = [self.next_poll, WATCH_EVERY + now]
        if self.retry_at > now:
            wake.append(self.retry_at)
        if self.boundary is not None:
            wake.append(self.boundary.timestamp())
        if self.notify.watchdog_seconds:
            wake.append(now + self.notify.watchdog_seconds / 2)
        return max(0.0, min(wake) - now)

    def _ready_if_due(self) -> None:
        if self.ready:
            return
        waited = time.monotonic() - self.started
        if self.health.status == "ok" or waited >= self.config.daemon.ready_timeout.total_seconds():
            self.ready = True
            self.notify.ready(self.last_status or self._status_line())

    def _source_changed(self) -> bool:
        """A file source's mtime or size moved since the last read (a cheap stat)."""
        try:
            info = self.config.source.path.stat()
        except OSError:
            return False
        seen = (info.st_mtime, info.st_size)
        return self.source_seen is not None and seen != self.source_seen

    def _reload(self) -> None:
        self.flags.reload = False
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config:\n%s", exc)
            self.notify.status(f"reload rejected: {exc.problems[0]}")
            return
        if config.daemon.state_dir != self.config.daemon.state_dir:
            log.error("reload: state_dir cannot change while running; restart instead")
            return
        for target in self.targets.values():
            target.close()
        self.targets = {}
        self.config = config
        self.metrics.interval.set(config.daemon.interval.total_seconds())
        self.next_poll = 0.0  # apply the new config now
        log.info("config reloaded from %s", self.config_path)

    # -- one cycle ----------------------------------------------------------------------
    def _cycle(self, state: StateDir, audit: AuditWriter) -> None:
        config = self.config
        started = time.monotonic()
        now = datetime.now(UTC)
        self.next_poll = time.time() + config.daemon.interval.total_seconds()
        source, degraded = self._source(state, now)
        if source is None:
            self._failed("source unavailable and no snapshot to fall back on", "source_error")
            return
        contracts, invalid = source
        self.boundary = next_boundary(contracts, config.core_policy(), now)
        try:
            if not self.targets:
                self.targets = {name: open_target(config, name) for name in config.targets}
            with gc_relaxed():
                cycle = plan_cycle(
                    config, now, self.targets, source=source, expiries_only=bool(degraded)
                )
                settle_pending(
                    audit, {n: o.accounts for n, o in cycle.observed.items()}, audit.correlation
                )
                reports = apply_cycle(cycle, self.targets, audit, str(uuid.uuid4()), self.stopping)
        except SyncdError as exc:
            self._failed(str(exc), "failed")
            return
        self._record(cycle, reports, invalid, degraded, time.monotonic() - started)

    def _source(self, state: StateDir, now: datetime) -> tuple[Source | None, str]:
        """The contracts to plan with, and why they are degraded ("" when they are not)."""
        config = self.config
        try:
            info = config.source.path.stat()
            self.source_seen = (info.st_mtime, info.st_size)
        except OSError:
            self.source_seen = None
        snapshot = state.load_snapshot()
        try:
            records = read_records(config)
            source = validate(records, config.core_policy())
        except SourceError as exc:
            return self._fallback(snapshot, f"source unreadable: {exc}")
        valid = len(source[0])
        limit = config.safety.max_source_drop
        if snapshot is not None and snapshot.valid and valid < snapshot.valid:
            dropped = snapshot.valid - valid
            if not limit.allows(dropped, snapshot.valid):
                return self._fallback(
                    snapshot,
                    f"valid contracts dropped from "
                    f"{snapshot.valid} to {valid}, over "
                    f"safety.max_source_drop {limit}",
                )
        state.save_snapshot(records, valid, now)
        self.metrics.source_ok_at = time.time()
        return source, ""

    def _fallback(self, snapshot: Snapshot | None, why: str) -> tuple[Source | None, str]:
        self.metrics.source_failures.inc()
        log.error(
            "%s; dated expiries go on from the last good snapshot, grants and orphan handling wait",
            why,
        )
        if snapshot is None:
            return None, why
        return validate(snapshot.records, self.config.core_policy()), why

    def _failed(self, reason: str, result: str) -> None:
        self.failures += 1
        delay = min(self.config.daemon.backoff_max.total_seconds(), 5 * 2 ** (self.failures - 1))
        self.retry_at = time.time() + delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        self.metrics.cycles.labels(result).inc()
        self.health.set("failing", reason, failures=self.failures)
        self.notify.status(f"failing: {reason}")
        log.error("cycle failed (%s); next try in %.0fs", reason, self.retry_at - time.time())

    def _record(
        self,
        cycle: CyclePlan,
        reports: list[ApplyReport],
        invalid: list[InvalidRecord],
        degraded: str,
        seconds: float,
    ) -> None:
        m = self.metrics
        m.cycle_duration.observe(seconds)
        m.invalid.set(len(invalid))
        self._contract_states(cycle)
        failed = bool(cycle.errors) or any(not r.ok for r in reports)
        held = any(p.holds for p in cycle.plans)
        for plan in cycle.plans:
            m.held.labels(plan.target).set(len(plan.held))
            m.conflicts.labels(plan.target).set(len(plan.conflicts))
            states = Counter(
                "enabled" if a.enabled else "disabled"
                for a in cycle.observed[plan.target].accounts.values()
            )
            for state in ("enabled", "disabled"):
                m.managed.labels(plan.target, state).set(states[state])
            for action in plan.held:
                m.actions.labels(plan.target, action.kind.value, "held").inc()
        for report in reports:
            undone = 0
            for outcome in report.done + report.failed:
                result = {True: "success", False: "failure", None: "unknown"}[outcome.ok]
                m.actions.labels(report.target, outcome.action.kind.value, result).inc()
                action = outcome.action
                if action.kind is ActionKind.DISABLE and action.cause is Cause.CONTRACT:
                    person = cycle.people.get(action.person)
                    if outcome.ok and person is not None and person.last_end is not None:
                        m.expiry_lag.observe(max(0.0, time.time() - person.last_end.timestamp()))
                    elif not outcome.ok:
                        undone += 1
            undone += sum(1 for a in report.skipped if a.kind is ActionKind.DISABLE)
            m.expired_enabled.labels(report.target).set(undone)
        ends = [p.access_end for p in cycle.people.values() if p.access_end is not None]
        m.next_expiry.set(min(ends).timestamp() if ends else 0)
        if degraded:
            result, self.failures = "source_error", self.failures + 1
            self.health.set("degraded", degraded)
        elif failed:
            result = "failed"
            self.failures += 1
            reason = "; ".join(
                [*cycle.errors.values(), *(r.unavailable for r in reports if r.unavailable)]
            )
            self.health.set("failing", reason or "some changes failed")
        else:
            result = "held" if held else "ok"
            self.failures = 0
            m.last_success.set(time.time())
            self.health.set("ok", "", last_cycle_seconds=round(seconds, 3))
        self.retry_at = 0.0
        m.cycles.labels(result).inc()
        self.last_status = self._status_line(cycle, result)
        self.notify.status(self.last_status)

    def _contract_states(self, cycle: CyclePlan) -> None:
        policy = self.config.core_policy()
        states: Counter[str] = Counter()
        for contract in cycle.contracts:
            if in_effect(contract, policy, cycle.at):
                states["active"] += 1
            elif effective_end(contract, cycle.at) <= cycle.at:
                states["ended"] += 1
            else:
                states["future"] += 1
        for state in ("active", "ended", "future"):
            self.metrics.contracts.labels(state).set(states[state])

    def _status_line(self, cycle: CyclePlan | None = None, result: str = "") -> str:
        if cycle is None:
            return f"{self.health.status}: {self.health.reason or 'running'}"
        active = sum(p.state is PersonState.ACTIVE for p in cycle.people.values())
        actions = sum(len(p.actions) for p in cycle.plans)
        boundary = f", next boundary {self.boundary:%Y-%m-%dT%H:%M:%SZ}" if self.boundary else ""
        return f"{result}: {active} active, {actions} actions last cycle{boundary}"
