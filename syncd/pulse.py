"""The daemon's pulse: how its loop shows it is alive, and how it is told to stop.

``syncd.daemon`` makes one ``Pulse`` per run and makes it current in the loop's thread
(``running``); the connections of the targets (``targets.directory.connection``,
``targets.scim.session``) take the current pulse when they are made, so one-shot
commands get ``IDLE``, which never stops. What the pulse carries:

- a **heartbeat**: the loop beats between steps and its connections beat before each
  request and retry, saying how long the request may block (``allow``); and a loop
  thread that computes (a long parse, a big plan) counts as beating: it used CPU time
  since the last look, which a thread blocked on a lock or a socket does not. The
  watchdog thread
  (``syncd.sdnotify.Watchdog``) sends ``WATCHDOG=1`` only while the heartbeat is fresh
  (``alive``), so a loop busy with a big source, or waiting on a slow server it will give
  up on, keeps the watchdog fed, and a loop stuck where it announced nothing (a lock
  never released, a call without a timeout) does not;
- the **stop**: waits (``wait``: retry delays, pauses a server asked for) end at once
  when it is set and retries are refused; ``abort`` (``STOP_GRACE`` after the stop, when
  the loop has not finished by then) breaks off requests in flight through the abort
  hooks that connections register around each request (``guard``), and refuses new
  ones;
- the **fence** (with ``ha:``, ``syncd.ha``): no request is sent unless it says so,
  the leader lease's gate, checked before every request and retry;
- **trouble**: what a connection is retrying right now, so that ``/healthz`` says so
  while the cycle is still waiting, not only when it ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

STOP_GRACE = 5.0  # seconds a request in flight may take after a stop before it is broken off
SLICE = 1.0  # a long wait beats at least this often


class Stopped(Exception):
    """The daemon is stopping and its requests were broken off: no request is sent."""


class Pulse:
    """The loop's heartbeat, its stop, and what its connections are retrying."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop if stop is not None else threading.Event()
        self._lock = threading.Lock()
        self._last = time.monotonic()  # the last beat
        self._until = 0.0  # what followed the last beat may block until then
        self._aborted = False
        # per request in flight: how to break it off, and until when it may block
        self._hooks: dict[object, tuple[Callable[[], None], float]] = {}
        self._trouble: dict[int, str] = {}
        # with ha: requests are sent only while this says so (the leader lease's gate)
        self.fence: Callable[[], bool] | None = None
        self._cpu: int | None = None  # the CPU-time clock of the loop's thread (running)
        self._used = (0.0, 0.0)  # at the last look: that thread's CPU time, and the time

    # -- heartbeat ---------------------------------------------------------------------
    def beat(self, allow: float = 0.0) -> None:
        """The loop is alive now; ``allow``: what follows may block that many seconds
        (a wait, the next page of an answer) and is no sign of a hang."""
        now = time.monotonic()
        with self._lock:
            self._last = now
            self._until = now + allow

    def alive(self, within: float) -> bool:
        """Whether the loop beat less than ``within`` seconds ago, or is inside the time
        it announced the step after its last beat, or a request in flight, may block."""
        self._moved()
        now = time.monotonic()
        with self._lock:
            until = max([self._until, *(until for _, until in self._hooks.values())])
            return now - self._last < within or now < until

    def _moved(self) -> None:
        """Count it as a beat when the loop's thread was busy on a CPU for a tenth of the
        time since the last look: computing, not blocked."""
        if self._cpu is None:
            return
        try:
            used = time.clock_gettime(self._cpu)
        except OSError:  # the thread has ended
            return
        now = time.monotonic()
        before, looked = self._used
        self._used = (used, now)
        if looked and used - before >= (now - looked) / 10:
            with self._lock:
                self._last = now

    # -- stopping ----------------------------------------------------------------------
    def stopping(self) -> bool:
        """The daemon stops, or the fence is closed: a retry would be refused."""
        return self.stop.is_set() or (self.fence is not None and not self.fence())

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, beating; False, at once, when the stop is (or gets) set."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self.beat()
                return True
            self.beat(allow=min(left, SLICE))  # waiting on purpose is no hang
            self.stop.wait(min(left, SLICE))
        return False

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Break off every request in flight and refuse new ones (after a stop whose
        grace ran out)."""
        with self._lock:
            self._aborted = True
            hooks = [hook for hook, _ in self._hooks.values()]
        for hook in hooks:
            hook()

    @contextmanager
    def guard(self, abort: Callable[[], None], allow: float) -> Iterator[None]:
        """Around one blocking request, which may block ``allow`` seconds: beat, and
        have ``abort`` called should the pulse be aborted meanwhile. ``Stopped`` when it
        already is. The allowance ends with the request."""
        key = object()
        self.beat()
        with self._lock:
            if self._aborted:
                raise Stopped("stopping: requests were broken off")
            if self.fence is not None and not self.fence():
                raise Stopped("not the leader (ha): the lease is not known to be held")
            self._hooks[key] = (abort, time.monotonic() + allow)
        try:
            yield
        finally:
            with self._lock:
                self._hooks.pop(key, None)
            self.beat()

    def quiet(self) -> bool:
        """Whether no request is in flight."""
        with self._lock:
            return not self._hooks

    # -- trouble -----------------------------------------------------------------------
    def trouble(self, source: object, text: str) -> None:
        """``source`` (a connection) is retrying after ``text``."""
        with self._lock:
            self._trouble[id(source)] = text

    def cleared(self, source: object) -> None:
        """``source`` got an answer: whatever it was retrying is over."""
        if self._trouble:
            with self._lock:
                self._trouble.pop(id(source), None)

    def troubles(self) -> list[str]:
        with self._lock:
            return list(self._trouble.values())

    def clear_troubles(self) -> None:
        """A cycle ended: its verdict says how things stand now."""
        with self._lock:
            self._trouble.clear()


IDLE = Pulse()  # outside the daemon: never stops, nobody listens to its beats
_CURRENT: ContextVar[Pulse] = ContextVar("syncd_pulse", default=IDLE)


def current() -> Pulse:
    """The pulse of the daemon running in this thread, or ``IDLE``."""
    return _CURRENT.get()


@contextmanager
def running(pulse: Pulse) -> Iterator[Pulse]:
    """Make ``pulse`` current in this thread, the loop's, for the duration."""
    if hasattr(time, "pthread_getcpuclockid"):  # POSIX
        pulse._cpu = time.pthread_getcpuclockid(threading.get_ident())
    token = _CURRENT.set(pulse)
    try:
        yield pulse
    finally:
        _CURRENT.reset(token)
