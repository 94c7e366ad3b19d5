"""When the daemon wakes, and which contracts it plans with. Called by ``syncd.daemon``.

``Controls`` carries the requests made to a running daemon (stop, reload, a cycle now)
from signal handlers and other threads to its loop.

``Schedule`` holds the loop's timers: the next poll (``daemon.interval``), the retry
after a failed cycle (exponential backoff, whatever the poll), and the next known
boundary (a grant time or an access end), so access ends on time whatever the interval,
and the next notice moment (a warning or a digest), which wakes the loop without a cycle.
It remembers up to which instant every boundary has been handled, so that the daemon can
run a targeted cycle when only a boundary is due (``only_boundary``). A boundary whose
cycle failed stays overdue, and while it is, the retry comes every ``FIRST_RETRY``
seconds instead of backing off further: an access end that passed while a target was
down is carried out within seconds of its return. It never reads the clock: the daemon
passes ``now``.

``SourceWatch`` is the fail-safe source of SPEC §4. A read the daemon accepts is kept
as a snapshot in the state directory (``syncd.state``); when the source cannot be read,
or its valid contracts drop by more than ``safety.max_source_drop``, the contracts come
from that snapshot instead and the reading says why (``degraded``): the daemon then
plans in ``expiries_only`` mode, so dated expiries happen on time while grants and
orphan handling wait. It also notices that a source changed: a single file source with a
cheap ``stat``, any other at its ``source.poll`` (``syncd.sources.polls``). A single
file is read only once it has been still (size and times unchanged) for
``daemon.source_debounce``, and again when it changed while being read: a file rewritten
in place is never read half-written unless its writer pauses for longer than that.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.config import Config, FileSource
from syncd.engine import SourceRead, read_source, validated
from syncd.errors import SourceError
from syncd.sources.polls import Polls
from syncd.sources.registry import Readers
from syncd.state import SNAPSHOT, Snapshot, StateDir

log = logging.getLogger(__name__)
WATCH_EVERY = 0.5  # seconds between cheap checks of a file source's mtime and size
FIRST_RETRY = 5.0  # seconds after the first failed cycle; doubled after each further one
SETTLE_FOR = 10  # debounce periods a file may keep changing before it counts as unreadable
READS = 3  # reads of a file that changes under them before it counts as unreadable
Stat = tuple[int, int, int, int]  # mtime and ctime (ns), size, inode


@dataclass
class Schedule:
    """The loop's timers, as Unix times."""

    next_poll: float = 0.0  # 0: poll at once (at start, and after a reload)
    retry_at: float = 0.0  # after a failed cycle: the next try, instead of the poll
    boundary: datetime | None = None  # the next instant some person's access changes
    failures: int = 0  # cycles in a row that failed or planned from the snapshot
    overdue: bool = False  # a boundary came and no cycle has reached the targets since
    # every boundary up to this instant has been handled: the planning time of the last
    # cycle that reached the targets (a boundary passing while a cycle runs lies after
    # it, so the next cycle handles it)
    handled: datetime | None = None
    notice: datetime | None = None  # the next warning or digest moment (``syncd.notify``)
    full_seconds: float = 0.0  # how long the last full cycle took
    yielded_since: float = 0.0  # since when the poll gives way to boundaries (0: it does not)

    def due(self, now: float) -> bool:
        """A cycle is due: the boundary has come, or the retry after a failure, or
        (when no retry is pending) the poll."""
        if self.boundary is not None and now >= self.boundary.timestamp():
            return True
        return now >= (self.retry_at or self.next_poll)

    def only_boundary(self, now: float) -> bool:
        """Only a boundary is due: not the poll, not a retry after a failure, and an
        earlier cycle reached the targets (``handled``). The daemon may then run a
        targeted cycle over the people changing since ``handled``."""
        if self.boundary is None or now < self.boundary.timestamp():
            return False
        return not self.retry_at and now < self.next_poll and self.handled is not None

    def yield_poll(self, now: float, cap: float) -> bool:
        """Let a poll that is due wait for a boundary that comes before a full cycle
        would end (the last one took ``full_seconds``): a full cycle at 100,000
        accounts takes tens of seconds, and an access ending while it runs would wait
        for it. The poll moves to a second after that boundary, whose targeted cycle
        runs first; it gives way for ``cap`` seconds in a row at most, so that a steady
        stream of boundaries never starves reconciliation. Whether it gave way."""
        if self.retry_at or now < self.next_poll or self.handled is None or not self.boundary:
            return False
        until = self.boundary.timestamp()
        soon = until - now <= self.full_seconds * 1.25 + 1.0
        self.yielded_since = self.yielded_since or now
        if not soon or now - self.yielded_since >= cap:
            return False
        self.next_poll = max(now, until) + 1.0
        return True

    def started(self, now: float, interval: float, *, targeted: bool = False) -> None:
        """A cycle starts now; after a full one the next poll is one interval later (a
        targeted cycle leaves the poll where it is). When the boundary has come, it is
        overdue until a cycle reaches the targets."""
        if self.boundary is not None and now >= self.boundary.timestamp():
            self.overdue = True
        if not targeted:
            self.next_poll = now + interval
            self.yielded_since = 0.0

    def failed(self, now: float, backoff_max: float, jitter: float) -> float:
        """A cycle could not run, or could not reach a target: try again after a
        backoff, up to ``backoff_max`` seconds (``FIRST_RETRY`` while a boundary is
        overdue), shortened by ``jitter`` (0.5 to 1) so that many daemons do not retry
        in step. Returns the delay."""
        self.failures += 1
        backoff = FIRST_RETRY * 2 ** min(self.failures - 1, 30)
        delay = min(backoff_max, FIRST_RETRY if self.overdue else backoff)
        self.retry_at = now + delay * jitter
        return self.retry_at - now

    def finished(self, *, succeeded: bool, planned_at: datetime | None = None) -> None:
        """A cycle reached every target: the next one comes at the poll, a boundary or
        a change of the source. ``planned_at``: the instant it planned for; every
        boundary up to it is handled."""
        if planned_at is not None:
            self.handled = planned_at
        self.failures = 0 if succeeded else self.failures + 1
        self.retry_at = 0.0
        self.overdue = False

    def sleep_seconds(self, now: float) -> float:
        """How long the loop may sleep: until the next timer, or the next look at the
        source file."""
        wake = [self.retry_at or self.next_poll, now + WATCH_EVERY]
        wake += [t.timestamp() for t in (self.boundary, self.notice) if t is not None]
        return max(0.0, min(wake) - now)


@dataclass(frozen=True)
class Reading:
    """The contracts to plan with, and why they come from the snapshot ("" when they
    do not). ``source`` is None when the source failed and there is no snapshot."""

    source: SourceRead | None
    degraded: str = ""


class Stopping(Exception):
    """The daemon was asked to stop while waiting for the source file to be still."""


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


class SourceWatch:
    """The daemon's source: read it, keep the last good read, fall back on it.

    ``wait(seconds)`` sleeps while the file settles and returns False when the daemon
    is stopping (``syncd.pulse.Pulse.wait``)."""

    def __init__(self, state: StateDir, wait: Callable[[float], bool] = _sleep) -> None:
        self.state = state
        self.wait = wait
        self.readers = Readers()  # kept between reads: what each source last looked like
        self.polls = Polls(self.readers)
        self._seen: Stat | None = None  # at the last read
        self._watched: tuple[Stat, float] | None = None  # a stat, first seen at (monotonic)
        self.settles_in: float | None = None  # seconds until a change seen is still enough
        # the snapshot's file as last seen, its valid contracts, the source read it holds
        self._snapshot: tuple[Stat | None, int | None, Stat | None] = (None, None, None)

    def changed(self, config: Config) -> bool:
        """A single file source: it changed since the last read (a cheap ``stat``) and
        has been still for ``daemon.source_debounce`` since; ``settles_in`` says when it
        will be. Other sources: one whose ``source.poll`` has come changed since it was
        last read (``syncd.sources.polls``)."""
        self.settles_in = None
        path = _file(config)
        if path is None:
            return self.polls.changed(config.all_sources)
        stat = _stat(path)
        if stat is None or self._seen is None or stat == self._seen:
            return False
        left = config.daemon.source_debounce.total_seconds() - self._still(stat)
        if left <= 0:
            return True
        self.settles_in = left
        return False

    def _still(self, stat: Stat) -> float:
        """Seconds the file has been as ``stat`` says: since its last change by its own
        times (the change time cannot be set back), or, when those lie in the future
        (a file server's clock ahead of ours), since this watch first saw it so."""
        now = time.monotonic()
        if self._watched is None or self._watched[0] != stat:
            self._watched = (stat, now)
        since = time.time() - max(stat[0], stat[1]) / 1e9
        return since if since >= 0 else now - self._watched[1]

    def _settled(self, config: Config) -> Stat | None:
        """Wait until the file has been still for the debounce; its stat then (None
        when it cannot be read). ``SourceError`` when it keeps changing, ``Stopping``."""
        debounce = config.daemon.source_debounce.total_seconds()
        deadline = time.monotonic() + SETTLE_FOR * debounce
        path = _file(config)
        while path is not None:
            stat = _stat(path)
            left = debounce - self._still(stat) if stat is not None else 0.0
            if left <= 0:
                return stat
            if time.monotonic() + left > deadline:
                raise SourceError(
                    f"{path} kept changing for {SETTLE_FOR * debounce:.0f} s; "
                    "write the new contracts to another name and rename it into place"
                )
            if not self.wait(left):
                raise Stopping
        return None

    def _read_still(self, config: Config) -> SourceRead:
        """Read the file once it is still; read it again when it changed meanwhile."""
        path = _file(config)
        if path is None:
            self.readers.retain(config.all_sources)
            read = read_source(config, self.readers)
            self.polls.read(config.all_sources)
            return read
        for _ in range(READS):
            before = self._settled(config)
            try:
                source: SourceRead | None = read_source(config)
            except SourceError:
                if _stat(path) == before:
                    raise  # broken as it stands, not cut by a write
                source = None
            self._seen = _stat(path)
            if source is not None and self._seen == before:
                return source
            log.warning("%s changed while it was read; reading it again", path)
        raise SourceError(f"{path} changed under each of {READS} reads")

    def read(self, config: Config, now: datetime) -> Reading:
        """Read the source; accept it (and snapshot it, as of ``now``) or fall back.

        ``SyncdError`` when the snapshot itself cannot be read: that needs a person;
        ``Stopping`` when the daemon stops while the file settles."""
        try:
            source = self._read_still(config)
        except SourceError as exc:
            self._seen = _stat(_file(config))
            return _fallback(config, self.state.load_snapshot(), f"source unreadable: {exc}")
        valid = len(source.contracts)
        before = self._baseline()
        limit = config.safety.max_source_drop
        dropped = before - valid if before is not None else 0
        if before is not None and dropped > 0 and not limit.allows(dropped, before):
            why = (
                f"valid contracts dropped from {before} to {valid}, "
                f"over safety.max_source_drop {limit}"
            )
            return _fallback(config, self.state.load_snapshot(), why)
        self._keep(source, valid, now)
        return Reading(source)

    # The snapshot's file is parsed only when it is not as this watch left it, and
    # written only when the source file changed: for a big source each takes seconds
    # of holding the GIL (json), during which /metrics could not answer.
    def _baseline(self) -> int | None:
        """The valid contracts of the snapshot; None when there is none."""
        stat = _stat(self.state.path / SNAPSHOT)
        if stat is None:
            return None
        if stat != self._snapshot[0]:
            snapshot = self.state.load_snapshot()
            self._snapshot = (stat, snapshot.valid if snapshot else None, None)
        return self._snapshot[1]

    def _keep(self, source: SourceRead, valid: int, now: datetime) -> None:
        """Snapshot an accepted read, unless the snapshot holds this very file already."""
        path = self.state.path / SNAPSHOT
        held = self._snapshot[2]
        if held is not None and held == self._seen and _stat(path) == self._snapshot[0]:
            return
        self.state.save_snapshot(source.records, valid, now)
        self._snapshot = (_stat(path), valid, self._seen)


def _fallback(config: Config, snapshot: Snapshot | None, why: str) -> Reading:
    log.error(
        "%s; dated expiries go on from the last good snapshot, grants and orphan handling wait",
        why,
    )
    if snapshot is None:
        return Reading(None, why)
    return Reading(validated(config, snapshot.records), why)


def _file(config: Config) -> Path | None:
    """The file of a file source (watched by its size and times), else None."""
    sources = config.all_sources
    if len(sources) == 1 and isinstance(sources[0], FileSource):
        return sources[0].path
    return None


def _stat(path: Path | None) -> Stat | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino


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
