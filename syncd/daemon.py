"""``syncd run``: the long-running service of SPEC §4. Entry point ``Daemon.run``.

Called by ``syncd.cli`` (``syncd run``), which owns the process's signals and turns
them into ``Controls`` requests: SIGHUP reloads the config (a bad one is rejected, the
old one keeps running), SIGUSR1 forces a cycle, SIGTERM/SIGINT stop after the write in
flight. Tests run ``Daemon.run`` in a thread and set the same requests themselves,
handing it in-memory targets through ``open_targets``.

The loop runs a cycle (``syncd.cycles``) when the schedule says so (``syncd.watch``:
every ``daemon.interval``, at the next grant time or access end, after a backoff), when
a source changed (``SourceWatch.changed``) or when ``POST /trigger`` asked for one
(``syncd.trigger``, audited), and sleeps in between. When only a boundary is due, the
cycle is a targeted one (``syncd.targeted``): just the people whose access changes
then (a burst: its vanguard first), planned from the last full cycle's contracts.
Contracts come from the fail-safe source (``syncd.watch.SourceWatch``). After each
cycle it attests every target it observed (one record per target), records metrics,
sets the health state and tells systemd how things stand. Notices (``syncd.notify``:
warnings before access ends, grants, revocations, ops notices, the sponsor digest) are
planned after each full cycle and at each warning or digest moment, which the loop
also wakes for, and delivered by a thread of their own, so that a slow or failing mail
server never delays a cycle. One instance per state directory (``syncd.state``). With
``ha:``, only the host holding the leader lease runs cycles, and no request reaches a
target unless the lease is known to be held (``syncd.ha``); the others follow.

The loop and its connections beat a ``syncd.pulse.Pulse``; a thread of its own sends
``WATCHDOG=1`` while that pulse is alive, so a slow or frozen target never starves the
watchdog and a hung loop still gets killed. On a stop, waits and retries end at once;
requests still in flight ``STOP_GRACE`` seconds later are broken off, their writes
recorded with an unknown outcome (checked by the next cycle), so a stop takes seconds
whatever a target is doing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

from syncd import engine, pulse
from syncd.audit import AuditWriter
from syncd.audit.records import OTHER_ACTIVITY, START, STOP
from syncd.config import Config, load_config
from syncd.cycles import Cycles, OpenTargets
from syncd.engine import close_all, gc_relaxed
from syncd.errors import ConfigError
from syncd.ha.role import Role
from syncd.listener import serve
from syncd.notify.service import Notices
from syncd.pulse import STOP_GRACE, Pulse
from syncd.sdnotify import Watchdog
from syncd.standing import StandingConflicts
from syncd.state import StateDir
from syncd.trigger import Trigger, trigger_of
from syncd.watch import WATCH_EVERY, Controls, Schedule, SourceWatch

log = logging.getLogger(__name__)


class Daemon(Cycles):
    """One daemon: its cycles (``syncd.cycles``), and the service around them.

    ``open_targets`` makes the targets a config names (default: the real ones); it is
    called again after each reload."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        *,
        open_targets: OpenTargets = engine.open_targets,
    ) -> None:
        super().__init__(config, open_targets)
        self.config_path = config_path
        self.ha: Role | None = None  # with ``ha:``: this host's role (``syncd.ha``)
        self.trigger: Trigger | None = None  # POST /trigger, when daemon.trigger_token_file
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
        self.notices = Notices(self.config, state, metrics=self.metrics, background=True)
        server = None
        self._warn()
        watchdog = Watchdog(self.notify, self.pulse.alive)
        ended = threading.Event()
        try:
            if self.config.daemon.metrics_address:
                self.trigger = trigger_of(self.config.daemon, controls.request_cycle)
                post = self.trigger.answer if self.trigger else None
                server = serve(self.config.daemon.metrics_address, self.metrics, self.health, post)
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
                self.notices.finish(audit, audit.correlation)
                audit.event(STOP, "Stop", "daemon stopped", audit.correlation)
        finally:
            self.notices.close()
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
        """Also true once this host may no longer write (``ha:``, the lease not held)."""
        return super().stopping() or (self.ha is not None and not self.ha.gate())

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
            asked = self._asked(source, audit)
            if not asked and self._targeted_due():
                self._targeted(source, audit)
            elif asked or self.schedule.due(time.time()):
                # The whole cycle, the source read included, with the collector relaxed;
                # its full collection runs once the cycle's objects are gone, over a
                # small heap: over a big source's live objects it would hold the GIL,
                # and /metrics with it, for seconds.
                with gc_relaxed():
                    self._cycle(source, audit)
            contracts = self.basis.source.contracts if self.basis else None
            self.schedule.notice = self.notices.step(audit, contracts, self.basis)
            self._ready_if_due()
            sleep = self.schedule.sleep_seconds(time.time())
            sleep = min(sleep, source.settles_in or sleep)
            self.pulse.beat(allow=sleep)
            controls.wake.wait(sleep)
            controls.wake.clear()

    def _asked(self, source: SourceWatch, audit: AuditWriter) -> bool:
        """Whether a full cycle is asked for now: forced (SIGUSR1, ``POST /trigger``,
        audited) or a changed source. If not, a poll that is due gives way to a
        boundary that comes before it would end (``Schedule.yield_poll``)."""
        forced = self._controls.take_cycle()
        for client in self.trigger.take() if self.trigger else ():
            audit.event(OTHER_ACTIVITY, "Trigger", f"POST /trigger from {client}: a "
                        "cycle now", audit.correlation, client=client)  # fmt: skip
        if source.changed(self.config) or forced:  # asks the source either way
            return True
        if self.config.daemon.targeted_cycles:
            self.schedule.yield_poll(time.time(), self.config.daemon.interval.total_seconds())
        return False

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
        self.notices.reload(config)
        log.info("config reloaded from %s", self.config_path)
        self._warn()

    def _warn(self) -> None:
        """Log what the config weakens, at every start and reload, and show it in /healthz."""
        self.health.warnings = self.config.warnings()
        for warning in self.health.warnings:
            log.warning("%s", warning)
