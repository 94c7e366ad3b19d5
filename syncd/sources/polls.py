"""When the daemon next asks each source whether it changed (``source.poll``).

Called by ``syncd.watch.SourceWatch`` for sources other than a single file (a file is
watched by its size and times every half second). Each source is asked at its own
``poll`` interval, through ``Readers.unchanged`` (http: ETag, Last-Modified or each
page's digest; sql: the rows' digest; file: its size and times); a source unchanged
since the last read costs its question and nothing else: no read, no planning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from syncd.config import SourceBase
from syncd.sources.registry import Readers, key


class Polls:
    """The next time each source is asked, on ``clock`` (monotonic seconds)."""

    def __init__(self, readers: Readers, clock: Callable[[], float] = time.monotonic) -> None:
        self.readers = readers
        self.clock = clock
        self._due: dict[str, float] = {}  # by ``registry.key``
        self.asked = 0  # questions asked, for metrics and tests

    def changed(self, sources: Sequence[SourceBase]) -> bool:
        """Whether a source whose poll has come changed since its last read."""
        now = self.clock()
        changed = False
        for source in sources:
            due = self._due.setdefault(key(source), now + source.poll.total_seconds())
            if now < due:
                continue
            self._due[key(source)] = now + source.poll.total_seconds()
            self.asked += 1
            if not self.readers.unchanged(source):
                changed = True
        return changed

    def read(self, sources: Sequence[SourceBase]) -> None:
        """The sources were just read: the next question is one poll from now."""
        now = self.clock()
        for source in sources:
            self._due[key(source)] = now + source.poll.total_seconds()

    def seconds_left(self, sources: Sequence[SourceBase]) -> float | None:
        """Until the next question is due (None: no source is polled)."""
        now = self.clock()
        due = [self._due.get(key(s), now) for s in sources]
        return max(0.0, min(due) - now) if due else None
