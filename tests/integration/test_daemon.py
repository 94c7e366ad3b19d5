"""``syncd run`` as a real subprocess against a real slapd: timing, signals, fail-safe."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.labs.common import contract, day, moment
from tests.labs.ldap import Lab, dn_of

# An end this many seconds ahead still lies ahead once the daemon has started and run its
# first cycle, even on a loaded machine (a start there can take 5 s).
START_MARGIN = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    """A ``syncd run`` child process with its metrics port."""

    def __init__(self, lab: Lab, port: int) -> None:
        self.lab, self.port = lab, port
        self.log = lab.work / f"daemon-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"],
            stderr=self.log.open("w"),
        )

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def logs(self) -> str:
        return self.log.read_text()


@pytest.fixture
def daemon(lab: Lab) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**daemon_config: object) -> Running:
        port = free_port()
        lab.overrides["daemon"] = {
            "interval": "300s",
            "state_dir": "state",
            "metrics_address": f"127.0.0.1:{port}",
            **daemon_config,
        }
        lab.write_config()
        running = Running(lab, port)
        started.append(running)
        wait_for(lambda: running.get("/healthz")[0] == 200, 15, running)
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()


def wait_for(check: Callable[[], bool], seconds: float, running: Running | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    raise AssertionError("timed out" + (f"; daemon log:\n{running.logs()}" if running else ""))


def disabled_at(lab: Lab, username: str) -> datetime:
    for record in lab.audit():
        if (
            record.get("activity_name") == "Disable"
            and record["status"] == "Success"
            and record["user"]["name"] == username
        ):
            return datetime.fromisoformat(record["time_dt"].replace("Z", "+00:00"))
    raise AssertionError(f"no disable of {username} in the audit trail")


def test_access_ends_within_a_second_of_the_end_whatever_the_interval(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    end = moment(START_MARGIN)
    lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), end))
    running = daemon(interval="300s")
    assert lab.entry(dn_of("ana.lopez")) is not None, "the daemon took too long to start"

    wait_for(lambda: "pwdaccountlockedtime" in (lab.entry(dn_of("ana.lopez")) or {}), 10)

    lag = (disabled_at(lab, "ana.lopez") - datetime.fromisoformat(end)).total_seconds()
    print(f"expiry lag: {lag:.3f} s")
    assert 0 <= lag <= 1.0
    assert running.stop() == 0


def test_an_edited_source_file_is_applied_within_two_seconds(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10))
    lab.contracts(ana)
    running = daemon()
    edited = time.monotonic()
    lab.contracts(ana, contract("C-2", "Bo", "Chen", ["writer"], day(-1), day(10)))

    wait_for(lambda: lab.entry(dn_of("bo.chen")) is not None, 2.0, running)

    print(f"grant after edit: {time.monotonic() - edited:.3f} s")
    assert running.stop() == 0


def test_sighup_with_a_broken_config_keeps_the_old_one(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10))
    lab.contracts(ana)
    running = daemon()
    good = lab.config_path.read_text()
    lab.config_path.write_text(good.replace("type: ldap", "type: ldapp"))

    running.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in running.logs(), 5, running)
    lab.contracts(ana, contract("C-2", "Bo", "Chen", ["writer"], day(-1), day(10)))

    wait_for(lambda: lab.entry(dn_of("bo.chen")) is not None, 3, running)
    assert running.proc.poll() is None
    assert "targets.corp" in running.logs()
    lab.config_path.write_text(good)
    running.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in running.logs(), 5, running)
    assert running.stop() == 0


def test_sigterm_exits_0_and_leaves_consistent_state(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    lab.contracts(
        *[contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9)) for i in range(150)]
    )
    running = daemon()
    lab.contracts(
        *[contract(f"C-{i}", "Per", f"Son{i}", ["writer"], day(-1), day(9)) for i in range(150)]
    )
    time.sleep(0.7)  # somewhere in the middle of moving 150 people's groups

    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < 5
    state = lab.work / "state"
    assert json.loads((state / "source-snapshot.json").read_text())["valid"] == 150
    assert not list(state.glob("*.tmp"))
    assert lab.syncd("audit", "verify").code == 0
    records = lab.audit()
    assert records[-1]["activity_name"] == "Stop"
    intents = {r["metadata"]["uid"] for r in records if r["status"] == "Intent"}
    closed = {r["unmapped"].get("intent_uid") for r in records}
    assert intents <= closed  # the write in flight finished and was recorded


def test_an_unreadable_source_still_expires_on_time_and_disables_no_orphan(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    end = moment(START_MARGIN)
    lab.contracts(
        contract("C-1", "Ana", "Lopez", ["developer"], day(-1), end),
        contract("C-2", "Bo", "Chen", ["writer"], day(-1), day(10)),
    )
    running = daemon()
    assert lab.entry(dn_of("ana.lopez")) is not None, "the daemon took too long to start"
    source = lab.work / "contracts.yaml"
    source.write_text("contracts: [ {id: C-2, broken\n")  # Bo vanishes with the breakage

    wait_for(lambda: "pwdaccountlockedtime" in (lab.entry(dn_of("ana.lopez")) or {}), 10, running)

    assert (disabled_at(lab, "ana.lopez") - datetime.fromisoformat(end)).total_seconds() <= 1
    assert "pwdaccountlockedtime" not in (lab.entry(dn_of("bo.chen")) or {"x": 1})
    # the end came as a targeted cycle over the snapshot: Ana alone
    [boundary] = [r for r in lab.audit() if r.get("activity_name") == "Targeted Cycle"]
    assert boundary["unmapped"]["people"] == 1
    code, body = running.get("/healthz")
    assert code == 503
    assert "source unreadable" in json.loads(body)["reason"]
    _, metrics = running.get("/metrics")
    assert b"syncd_source_failures_total 0.0" not in metrics
    assert running.stop() == 0


def test_a_sudden_drop_of_contracts_is_suspicious(lab: Lab, daemon: Callable[..., Running]) -> None:
    people = [
        contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9)) for i in range(10)
    ]
    lab.contracts(*people)
    running = daemon()
    lab.contracts(*people[:5])

    wait_for(lambda: running.get("/healthz")[0] == 503, 5, running)

    assert "dropped from 10 to 5" in json.loads(running.get("/healthz")[1])["reason"]
    for i in range(10):
        assert "pwdaccountlockedtime" not in (lab.entry(dn_of(f"per.son{i}")) or {}), i
    assert running.stop() == 0


def test_a_second_instance_refuses_to_start(lab: Lab, daemon: Callable[..., Running]) -> None:
    lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10)))
    running = daemon()

    second = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"],
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert second.returncode == 2
    assert f"another syncd (pid {running.proc.pid})" in second.stderr
    assert running.stop() == 0


def test_metrics_and_health_answer_as_documented(lab: Lab, daemon: Callable[..., Running]) -> None:
    lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10)))
    running = daemon()
    os.kill(running.proc.pid, signal.SIGUSR1)  # a forced cycle on top of the first
    wait_for(lambda: b'syncd_cycles_total{result="ok"} 2.0' in running.get("/metrics")[1], 5)

    code, body = running.get("/healthz")
    _, metrics = running.get("/metrics")

    assert code == 200
    assert json.loads(body)["status"] == "ok"
    text = metrics.decode()
    for name in (
        "syncd_cycle_duration_seconds_count",
        "syncd_last_success_timestamp_seconds",
        'syncd_actions_total{kind="create",result="success",target="corp"} 1.0',
        'syncd_managed_accounts{state="enabled",target="corp"}',
        'syncd_contracts{state="active"} 1.0',
        "syncd_source_age_seconds",
        "syncd_next_expiry_timestamp_seconds",
        "syncd_expiry_lag_seconds_bucket",
        'syncd_expired_enabled_accounts{target="corp"} 0.0',
        "syncd_daemon_interval_seconds 300.0",
    ):
        assert name in text, name
    assert running.get("/nope")[0] == 404
    assert running.stop() == 0


def test_systemd_hears_ready_status_watchdog_and_stopping(lab: Lab, tmp_path: Path) -> None:
    lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(10)))
    lab.overrides["daemon"] = {"state_dir": "state", "metrics_address": ""}
    lab.write_config()
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(15)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    heard: list[str] = []
    try:
        while not any("READY=1" in m for m in heard):
            heard.append(listener.recv(4096).decode())
        ready = next(m for m in heard if "READY=1" in m)
        time.sleep(1.5)  # the loop wakes at least every WATCHDOG_USEC / 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        listener.settimeout(0.5)
        while True:
            try:
                heard.append(listener.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert "STATUS=ok: 1 active" in ready
    assert "STATUS=first cycle" in heard[0]
    assert sum("WATCHDOG=1" in m for m in heard) >= 2
    assert "STOPPING=1" in heard[-1]
