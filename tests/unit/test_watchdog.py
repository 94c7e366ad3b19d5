"""``syncd.pulse`` and the watchdog thread of ``syncd.sdnotify``, on their own: a real
notify socket listened to as systemd would, real threads and clocks."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd import pulse
from syncd.pulse import Pulse, Stopped
from syncd.sdnotify import Notifier, Watchdog


class Listener:
    """systemd's end of ``$NOTIFY_SOCKET``: when each WATCHDOG=1 came."""

    def __init__(self, path: Path) -> None:
        self.address = str(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.address)
        self.socket.settimeout(0.05)
        self.pings: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                if b"WATCHDOG=1" in self.socket.recv(4096):
                    self.pings.append(time.monotonic())
            except TimeoutError:
                continue

    def silence(self, since: float, until: float) -> float:
        """The longest time without a ping between ``since`` and ``until``."""
        marks = [since, *(t for t in self.pings if since <= t <= until), until]
        return max(b - a for a, b in itertools.pairwise(marks))

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    heard = Listener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", heard.address)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pings every 0.1 s, alive within 0.2 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield heard
    heard.close()


def test_a_wait_ends_at_once_when_the_stop_is_set() -> None:
    beat = Pulse()
    threading.Timer(0.2, beat.stop.set).start()
    started = time.monotonic()

    assert beat.wait(30) is False

    assert time.monotonic() - started < 0.5
    assert beat.wait(30) is False  # and any later one does not wait at all
    assert Pulse().wait(0.05) is True


def test_the_pulse_is_alive_while_it_beats_or_within_what_a_request_announced() -> None:
    beat = Pulse()
    assert beat.alive(0.1)
    time.sleep(0.15)
    assert not beat.alive(0.1)  # no beat: the loop may hang

    beat.beat(allow=0.3)  # a request that may block 0.3 s
    time.sleep(0.2)
    assert beat.alive(0.1)
    time.sleep(0.15)
    assert not beat.alive(0.1)


def test_abort_breaks_off_the_requests_in_flight_and_refuses_new_ones() -> None:
    beat = Pulse()
    broken: list[str] = []
    with beat.guard(lambda: broken.append("first"), allow=5):
        with beat.guard(lambda: broken.append("second"), allow=5):
            pass
        beat.abort()

    assert broken == ["first"]  # only the one still in flight
    with pytest.raises(Stopped), beat.guard(lambda: None, allow=5):
        pass


def test_connections_take_the_pulse_current_in_their_thread() -> None:
    mine = Pulse()
    with pulse.running(mine):
        assert pulse.current() is mine
        elsewhere: list[Pulse] = []
        thread = threading.Thread(target=lambda: elsewhere.append(pulse.current()))
        thread.start()
        thread.join()
    assert elsewhere == [pulse.IDLE]
    assert pulse.current() is pulse.IDLE


def test_trouble_shows_until_an_answer_comes() -> None:
    beat = Pulse()
    one, two = object(), object()
    beat.trouble(one, "corp: connection failed: timed out; retry 1 of 5")
    beat.trouble(two, "app: 503 Service Unavailable; retry 2 of 5")
    beat.cleared(two)
    assert beat.troubles() == ["corp: connection failed: timed out; retry 1 of 5"]
    beat.clear_troubles()
    assert beat.troubles() == []


def test_the_watchdog_pings_while_the_loop_is_alive_and_stops_when_it_hangs(
    listener: Listener,
) -> None:
    beat = Pulse()
    dog = Watchdog(Notifier(), beat.alive)
    dog.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < 0.6:  # a loop beating
            beat.beat()
            time.sleep(0.05)
        beating = time.monotonic()
        with beat.guard(lambda: None, allow=0.8):  # a request that may block 0.8 s
            time.sleep(0.6)
        waited = time.monotonic()
        time.sleep(0.8)  # a hang: no beat, nothing announced
        hung = time.monotonic()
    finally:
        dog.close()

    assert listener.silence(started, waited) < 0.25
    assert len(listener.pings) >= 8
    assert listener.silence(waited, hung) >= 0.5  # pings stopped about 0.2 s after
    assert beating < waited


def test_without_a_watchdog_interval_nothing_is_sent(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC")
    dog = Watchdog(Notifier(), Pulse().alive)
    dog.start()
    time.sleep(0.3)
    dog.close()
    assert listener.pings == []


def test_a_loop_thread_running_python_code_is_alive_one_blocked_is_not() -> None:
    beat = Pulse()
    phase = {"now": "busy"}
    ready, done = threading.Event(), threading.Event()

    def loop() -> None:
        with pulse.running(beat):
            ready.set()
            total, started = 0, time.monotonic()
            while time.monotonic() - started < 1.0:  # a big parse: no beat, all Python
                total += sum(range(100))
            phase["now"] = "blocked"
            done.wait(1.0)  # stuck in one call, nothing announced

    thread = threading.Thread(target=loop)
    thread.start()
    assert ready.wait(1)
    seen: dict[str, list[bool]] = {"busy": [], "blocked": []}
    while thread.is_alive():
        now = phase["now"]
        time.sleep(0.1)
        seen[now].append(beat.alive(0.3))
    thread.join()

    assert all(seen["busy"]), seen
    assert not any(seen["blocked"][4:]), seen  # 0.3 s after it blocked


def test_a_status_quoting_an_error_cannot_add_an_assignment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # systemd reads one assignment per line: a newline in a quoted source error must
    # not become a second one (MAINPID=, STOPPING=1, ...)
    path = tmp_path / "status.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        Notifier().status("source unreadable: bad value\nSTOPPING=1\u2028MAINPID=1")
        message = server.recv(4096).decode()
    finally:
        server.close()
    assert message.splitlines() == [
        "STATUS=source unreadable: bad value\\nSTOPPING=1\\u2028MAINPID=1"
    ]
