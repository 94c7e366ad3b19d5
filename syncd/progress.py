"""Progress lines for long applies, on a terminal only: ``Progress.on(stream, quiet)``.

Called by ``syncd.cli`` (``syncd sync``), which hands ``engine.run_cycle`` the
``Progress``; ``run_cycle`` asks it for one callback per target, which
``apply.apply_plan`` calls after each chunk with the number of actions it sent. One
line per target, redrawn in place (at most every ``EVERY`` seconds, and when the
target is done): actions done / total, rate and time left. Nothing is written when the
stream is not a terminal (a file, a pipe, the journal) or with ``--quiet``: progress
is for a person watching, never for logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

EVERY = 0.5  # seconds between redraws of a line
CLEAR = "\x1b[K"  # erase to the end of the line


class Progress:
    """Progress lines on ``stream``, one target after another."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.open = False  # a line is drawn and not ended yet

    @classmethod
    def on(cls, stream: TextIO, quiet: bool = False) -> Progress | None:
        """A ``Progress`` on ``stream`` when it is a terminal and not ``quiet``."""
        if quiet or not stream.isatty():
            return None
        return cls(stream)

    def __call__(self, target: str, total: int) -> Callable[[int], None] | None:
        """The callback for one target's apply of ``total`` actions (None for none)."""
        if total <= 0:
            return None
        self.close()
        started = self.clock()
        state = {"done": 0, "drawn": started}

        def advance(sent: int) -> None:
            state["done"] += sent
            now = self.clock()
            finished = state["done"] >= total
            if finished or now - state["drawn"] >= EVERY:
                state["drawn"] = now
                self._draw(line(target, int(state["done"]), total, now - started), finished)

        return advance

    def _draw(self, text: str, finished: bool) -> None:
        self.stream.write(f"\r{text}{CLEAR}" + ("\n" if finished else ""))
        self.stream.flush()
        self.open = not finished

    def close(self) -> None:
        """End a line left open (an apply cut short: a target unreachable, a stop)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def line(target: str, done: int, total: int, seconds: float) -> str:
    """``corp: 120/500 actions (24%), 60/s, 6s left`` (``..., done in 8s`` at the end)."""
    rate = done / seconds if seconds > 0 else 0.0
    head = f"{target}: {done}/{total} actions ({100 * done // total}%), {rate:.0f}/s"
    if done >= total:
        return f"{head}, done in {_span(seconds)}"
    left = f"{_span((total - done) / rate)} left" if rate > 0 else "time left unknown"
    return f"{head}, {left}"


def _span(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    return f"{whole // 60}m{whole % 60:02d}s"
