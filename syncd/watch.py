"""When the daemon wakes, and which contracts it plans with. Called by ``syncd.daemon``.

``Schedule`` holds the loop's timers: the next poll (``daemon.interval``), the retry
after a failed cycle (exponential backoff), and the next known boundary (a grant time
or an access end), so access ends on time whatever the interval. It never reads the
clock: the daemon passes ``now``.

``SourceWatch`` is the fail-safe source of SPEC §4. A read the daemon accepts is kept
as a snapshot in the state directory (``syncd.state``); when the source cannot be read,
or its valid contracts drop by more than ``safety.max_source_drop``, the contracts come
from that snapshot instead and the reading says why (``degraded``): the daemon then
plans in ``expiries_only`` mode, so dated expiries happen on time while grants and
orphan handling wait. It also notices, with a cheap ``stat``, that a file source changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.config import Config
from syncd.engine import SourceRead, read_source, validated
from syncd.errors import SourceError
from syncd.state import Snapshot, StateDir

log = logging.getLogger(__name__)
WATCH_EVERY = 0.5  # seconds between cheap checks of a file source's mtime and size
FIRST_RETRY = 5.0  # seconds after the first failed cycle; doubled after each further one


@dataclass
class Schedule:
    """The loop's timers, as Unix times."""

    next_poll: float = 0.0  # 0: poll at once (at start, and after a reload)
    retry_at: float = 0.0  # after a failed cycle: not before this
    boundary: datetime | None = None  # the next instant some person's access changes
    failures: int = 0  # cycles in a row that failed or planned from the snapshot

    def due(self, now: float) -> bool:
        """A cycle is due: the boundary has come, or the poll (not before the retry)."""
        if self.boundary is not None and now >= self.boundary.timestamp():
            return True
        return now >= max(self.next_poll, self.retry_at)

    def polled(self, now: float, interval: float) -> None:
        """A cycle starts now; the next poll is one interval later."""
        self.next_poll = now + interval

    def failed(self, now: float, backoff_max: float, jitter: float) -> float:
        """A cycle could not run: back off, up to ``backoff_max`` seconds, shortened by
        ``jitter`` (0.5 to 1) so that many daemons do not retry in step. Returns the
        delay."""
        self.failures += 1
        delay = min(backoff_max, FIRST_RETRY * 2 ** min(self.failures - 1, 30))
        self.retry_at = now + delay * jitter
        return self.retry_at - now

    def finished(self, *, succeeded: bool) -> None:
        """A cycle ran to its end: the next one comes at the poll, boundary or a change."""
        self.failures = 0 if succeeded else self.failures + 1
        self.retry_at = 0.0

    def sleep_seconds(self, now: float, watchdog: float = 0.0) -> float:
        """How long the loop may sleep: until the next timer, the next look at the
        source file, or half the systemd watchdog interval (``watchdog``, 0: none)."""
        wake = [self.next_poll, now + WATCH_EVERY]
        if self.retry_at > now:
            wake.append(self.retry_at)
        if self.boundary is not None:
            wake.append(self.boundary.timestamp())
        if watchdog:
            wake.append(now + watchdog / 2)
        return max(0.0, min(wake) - now)


@dataclass(frozen=True)
class Reading:
    """The contracts to plan with, and why they come from the snapshot ("" when they
    do not). ``source`` is None when the source failed and there is no snapshot."""

    source: SourceRead | None
    degraded: str = ""


class SourceWatch:
    """The daemon's source: read it, keep the last good read, fall back on it."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self._seen: tuple[float, int] | None = None  # mtime and size at the last read

    def changed(self, path: Path) -> bool:
        """The file at ``path`` changed since the last read (a cheap ``stat``)."""
        seen = _stat(path)
        return seen is not None and self._seen is not None and seen != self._seen

    def read(self, config: Config, now: datetime) -> Reading:
        """Read the source; accept it (and snapshot it, as of ``now``) or fall back.

        ``SyncdError`` when the snapshot itself cannot be read: that needs a person."""
        self._seen = _stat(config.source.path)
        snapshot = self.state.load_snapshot()
        try:
            source = read_source(config)
        except SourceError as exc:
            return _fallback(config, snapshot, f"source unreadable: {exc}")
        valid = len(source.contracts)
        limit = config.safety.max_source_drop
        dropped = snapshot.valid - valid if snapshot is not None else 0
        if snapshot is not None and dropped > 0 and not limit.allows(dropped, snapshot.valid):
            why = (
                f"valid contracts dropped from {snapshot.valid} to {valid}, "
                f"over safety.max_source_drop {limit}"
            )
            return _fallback(config, snapshot, why)
        self.state.save_snapshot(source.records, valid, now)
        return Reading(source)


def _fallback(config: Config, snapshot: Snapshot | None, why: str) -> Reading:
    log.error(
        "%s; dated expiries go on from the last good snapshot, grants and orphan handling wait",
        why,
    )
    if snapshot is None:
        return Reading(None, why)
    return Reading(validated(config, snapshot.records), why)


def _stat(path: Path) -> tuple[float, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime, info.st_size
