"""``syncd run`` as a subprocess while its directory hangs: a real slapd frozen with
SIGSTOP (the default timeout of 10 s and 5 retries), with systemd's notify socket
listened to as systemd would.

What must hold whatever the directory does: ``WATCHDOG=1`` keeps coming (the loop is
alive, waiting on a server it will give up on), ``/healthz`` answers within a second
and says the cycle is failing once a request timed out, SIGTERM ends the process
within 10 s, and every change announced in the audit trail gets an outcome, now or at
the next start. The connections are also driven on their own under a daemon's pulse:
LDAP retries against a closed port, a TLS handshake with the frozen slapd, and SCIM's
``Retry-After`` pauses (a real scim2-server behind the fault proxy) end at once on a
stop.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from syncd import pulse
from syncd.config import ScimTarget, load_config
from syncd.errors import TemporaryError
from syncd.pulse import Pulse
from syncd.targets.directory.connection import Endpoint, LdapConnection
from syncd.targets.scim.session import ScimSession
from tests.labs.common import contract, day
from tests.labs.ldap import SUFFIX, Lab, dn_of
from tests.labs.scim import ScimLab
from tests.servers.scim import FaultProxy

WATCHDOG = 8.0  # seconds, as WatchdogSec= would set it (pings expected every 2 s)
STOP_LIMIT = 10.0  # seconds from SIGTERM to exit, whatever the directory does
ANA = contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Notifications:
    """systemd's side of ``$NOTIFY_SOCKET``: every datagram with when it came."""

    def __init__(self, folder: Path) -> None:
        self.address = str(folder / "notify.sock")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.address)
        self.socket.settimeout(0.2)
        self.heard: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                message = self.socket.recv(4096).decode()
            except TimeoutError:
                continue
            self.heard.append((time.monotonic(), message))

    def pings(self, since: float, until: float) -> list[float]:
        return [t for t, m in self.heard if "WATCHDOG=1" in m and since <= t <= until]

    def longest_silence(self, since: float, until: float) -> float:
        """The longest time without WATCHDOG=1 between ``since`` and ``until``."""
        marks = [since, *self.pings(since, until), until]
        return max(b - a for a, b in itertools.pairwise(marks))

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.socket.close()


class Daemon:
    """``syncd run`` with a metrics port and, optionally, systemd's notify socket."""

    def __init__(self, lab: Lab, notify: Notifications | None, timeout: int = 10) -> None:
        self.lab = lab
        self.port = free_port()
        lab.overrides["daemon"] = {
            "interval": "300s",
            "state_dir": "state",
            "metrics_address": f"127.0.0.1:{self.port}",
        }
        lab.write_config(retries=5, timeout=timeout)  # the defaults: 10 s, 5 retries
        env = dict(os.environ)
        if notify is not None:
            env.update(NOTIFY_SOCKET=notify.address, WATCHDOG_USEC=str(int(WATCHDOG * 1e6)))
        self.log = lab.work / f"daemon-{time.monotonic_ns()}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"],
                stderr=log,
                env=env,
            )

    def get(self, path: str, timeout: float = 5) -> tuple[int, dict[str, Any] | bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                code, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            code, body = exc.code, exc.read()
        return code, (json.loads(body) if path == "/healthz" else body)

    def healthy(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def wait_healthy(self, seconds: float = 20) -> None:
        wait_for(self.healthy, seconds, self)

    def terminate(self) -> float:
        """SIGTERM; the seconds until the process is gone."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        return time.monotonic() - started

    def logs(self) -> str:
        return self.log.read_text()


def wait_for(check: Callable[[], bool], seconds: float, daemon: Daemon | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            logs = f"; daemon log:\n{daemon.logs()}" if daemon else ""
            raise AssertionError(f"not within {seconds} s{logs}")
        time.sleep(0.05)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notifications]:
    listener = Notifications(tmp_path)
    yield listener
    listener.close()


@pytest.fixture
def daemons(lab: Lab) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(notify: Notifications | None, timeout: int = 10) -> Daemon:
        daemon = Daemon(lab, notify, timeout)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@contextmanager
def frozen(lab: Lab) -> Iterator[None]:
    """slapd stopped dead (SIGSTOP): connections open, nothing answers."""
    assert lab.server.process is not None
    pid = lab.server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def probe_health(daemon: Daemon, seconds: float) -> list[tuple[float, float, int, dict[str, Any]]]:
    """``/healthz`` every half second for ``seconds``: (when, how long it took, code,
    body); a probe that takes more than 1 s fails the test."""
    probes = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        asked = time.monotonic()
        code, body = daemon.get("/healthz", timeout=1.0)
        assert isinstance(body, dict)
        probes.append((asked - started, time.monotonic() - asked, code, body))
        time.sleep(max(0.0, 0.5 - (time.monotonic() - asked)))
    return probes


def intents_and_outcomes(lab: Lab) -> tuple[set[str], set[str]]:
    records = lab.audit()
    intents = {r["metadata"]["uid"] for r in records if r.get("status") == "Intent"}
    closed = {r["unmapped"].get("intent_uid") for r in records if r.get("unmapped")}
    return intents, closed


def test_a_frozen_directory_keeps_the_watchdog_fed_health_answering_and_stop_prompt(
    lab: Lab, notify: Notifications, daemons: Callable[..., Daemon]
) -> None:
    lab.contracts(ANA)
    # each request may block 4 s, half WatchdogSec: the watchdog must be fed meanwhile
    daemon = daemons(notify, timeout=4)
    daemon.wait_healthy()

    with frozen(lab):
        froze = time.monotonic()
        daemon.proc.send_signal(signal.SIGUSR1)  # a cycle, which hangs observing
        probes = probe_health(daemon, 12)
        _, metrics = daemon.get("/metrics", timeout=1.0)
        silence = notify.longest_silence(froze, time.monotonic())
        stop_seconds = daemon.terminate()

    slowest = max(p[1] for p in probes)
    failing_after = next((p[0] for p in probes if p[2] == 503), None)
    print(
        f"frozen slapd: longest watchdog silence {silence:.1f} s (WatchdogSec {WATCHDOG:.0f}),"
        f" slowest /healthz {slowest * 1000:.0f} ms, 503 after {failing_after} s,"
        f" SIGTERM to exit {stop_seconds:.1f} s"
    )
    assert silence < WATCHDOG / 2
    assert b"syncd_cycles_total" in metrics
    assert probes[0][2] == 200  # the first request has not timed out yet
    assert failing_after is not None
    assert failing_after < 7  # after the first request timed out
    code, body = probes[-1][2:]
    assert (code, body["status"]) == (503, "failing")
    assert body["reason"].startswith("a cycle is retrying: corp: connection failed")
    assert "retry 2 of 5" in body["retrying"][0]
    assert stop_seconds < STOP_LIMIT
    assert daemon.proc.returncode == 0
    assert lab.audit()[-1]["activity_name"] == "Stop"
    assert lab.syncd("audit", "verify").code == 0


def test_a_directory_frozen_mid_write_stops_in_time_and_the_next_start_settles(
    lab: Lab, notify: Notifications, daemons: Callable[..., Daemon]
) -> None:
    lab.contracts(ANA)
    daemon = daemons(notify)
    daemon.wait_healthy()
    people = [contract(f"P-{i}", "Per", f"Son{i}", ["writer"], day(-1), day(9)) for i in range(800)]
    lab.contracts(ANA, *people)

    # Freeze the moment the creates' intents are on disk and their writes go out.
    wait_for(lambda: len(intents_and_outcomes(lab)[0]) >= 800, 20, daemon)
    with frozen(lab):
        froze = time.monotonic()
        time.sleep(3)
        stop_seconds = daemon.terminate()
        silence = notify.longest_silence(froze, time.monotonic())

    print(
        f"slapd frozen mid-write: SIGTERM to exit {stop_seconds:.1f} s, longest watchdog"
        f" silence {silence:.1f} s"
    )
    assert stop_seconds < STOP_LIMIT
    assert daemon.proc.returncode == 0
    assert silence < WATCHDOG / 2
    intents, closed = intents_and_outcomes(lab)
    assert intents <= closed  # the writes in flight finished or are recorded as unknown
    unknown = [r for r in lab.audit() if r.get("status") == "Unknown"]
    assert unknown, "the freeze caught no write in flight"
    assert lab.audit()[-1]["activity_name"] == "Stop"
    assert lab.syncd("audit", "verify").code == 0

    again = daemons(None)
    again.wait_healthy(60)
    again.terminate()
    intents, closed = intents_and_outcomes(lab)
    assert intents <= closed
    held = lab.snapshot()  # one search, not 800
    assert [i for i in range(800) if dn_of(f"per.son{i}") not in held] == []
    assert lab.syncd("audit", "verify").code == 0


# -- the connections on their own, under a daemon's pulse -----------------------------
def test_ldap_retries_end_at_once_on_a_stop(lab: Lab) -> None:
    beat = Pulse()
    nowhere = f"ldaps://127.0.0.1:{free_port()}"  # nothing listens: refused at once
    endpoint = Endpoint((nowhere,), lab.server.service_dn, lambda: "x", retries=50)
    with pulse.running(beat):
        conn = LdapConnection(endpoint, "corp")
    started = time.monotonic()
    timer = threading.Timer(1.0, beat.stop.set)
    timer.start()
    with pytest.raises(TemporaryError, match="not retried: syncd is stopping"):
        conn.call(lambda c: c.search(SUFFIX, "(objectClass=*)"))
    took = time.monotonic() - started
    assert 1.0 <= took < 1.3  # 50 retries with backoff would take minutes


def test_a_request_to_a_frozen_directory_is_broken_off_by_an_abort(lab: Lab) -> None:
    beat = Pulse()
    endpoint = Endpoint(
        (lab.server.ldaps_url,),
        lab.server.service_dn,
        lambda: lab.server.service_password,
        ca_file=lab.server.ca_file,
        retries=5,
    )
    with pulse.running(beat):
        conn = LdapConnection(endpoint, "corp")
    conn.call(lambda c: c.search(SUFFIX, "(objectClass=*)"))  # open and bound
    conn.close()
    with frozen(lab):
        started = time.monotonic()

        def stop_and_break_off() -> None:  # as the daemon does when the grace runs out
            beat.stop.set()
            beat.abort()

        threading.Timer(2.0, stop_and_break_off).start()
        with pytest.raises(TemporaryError, match="broken off"):  # in the TLS handshake
            conn.call(lambda c: c.search(SUFFIX, "(objectClass=*)"))
        took = time.monotonic() - started
        with pytest.raises(TemporaryError, match="broken off"):  # and no new request
            conn.call(lambda c: c.search(SUFFIX, "(objectClass=*)"))
    assert 2.0 <= took < 2.5  # not the 10 s timeout, nor 5 retries of it


def test_a_scim_retry_after_pause_ends_at_once_on_a_stop(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    config = load_config(scim_lab.write_config(retries=5)).targets["corp"]
    assert isinstance(config, ScimTarget)
    proxy.inject(10, status=503, retry_after="30")  # within max_retry_after: waited for
    beat = Pulse()
    with pulse.running(beat):
        session = ScimSession(config, "corp")
    started = time.monotonic()
    timer = threading.Timer(1.0, beat.stop.set)
    timer.start()
    try:
        with pytest.raises(TemporaryError, match="syncd is stopping"):
            session.discover()
    finally:
        session.close()
    took = time.monotonic() - started
    assert 1.0 <= took < 1.3  # not 30 s
    assert proxy.injected["503"] == 1
