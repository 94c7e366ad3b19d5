"""The systemd notification protocol (``sd_notify``), spoken directly over the socket.

Called by ``syncd.daemon``. Without ``$NOTIFY_SOCKET`` (not under systemd) every call
is a no-op. The watchdog interval comes from ``$WATCHDOG_USEC``. ``Watchdog`` is the
thread that sends ``WATCHDOG=1``: four times per interval, and only while the daemon's
loop shows it is alive (``syncd.pulse``), so the pings never wait for a slow request
and stop when the loop hangs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable

from syncd.core.text import shown


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self._address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_seconds = int(usec) / 1e6 if watched else 0.0

    def send(self, *fields: str) -> None:
        if self._socket is None:
            return
        # systemd may have gone away (or never listened): there is nothing to tell then
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(fields).encode(), self._address)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={shown(status)}")

    def status(self, status: str) -> None:
        # a status may quote an error from a source or a server: one line, never a
        # second assignment smuggled in by a newline
        self.send(f"STATUS={shown(status)}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")


class Watchdog:
    """A thread sending ``WATCHDOG=1`` every quarter of the watchdog interval while
    ``alive(seconds)`` says the loop showed life within ``seconds`` (half the interval).

    A loop that stops beating gets no more pings: systemd kills it at most one and a
    half intervals after its last sign of life (plus whatever time its last request was
    allowed to block). Nothing runs when systemd set no watchdog."""

    def __init__(self, notifier: Notifier, alive: Callable[[float], bool]) -> None:
        self.notifier = notifier
        self.alive = alive
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.notifier.watchdog_seconds > 0:
            self._thread = threading.Thread(target=self._run, name="syncd-watchdog", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        interval = self.notifier.watchdog_seconds
        while True:
            if self.alive(interval / 2):
                self.notifier.watchdog()
            if self._done.wait(interval / 4):
                return
