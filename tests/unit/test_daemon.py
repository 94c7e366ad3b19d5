"""``syncd.daemon`` driven in-process: the real loop in a thread, a real contracts file, a
real audit trail and state directory in a temporary folder, and ``MemoryTarget``s in
place of the directory the config names. ``Controls`` stand in for the signals that
``syncd run`` turns into the same requests; a real notify socket stands in for systemd
where the watchdog is watched. ``syncd.watch.Schedule`` is tested on its own.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd import daemon as daemon_module
from syncd import pulse
from syncd.audit.verify import verify
from syncd.config import Config, load_config
from syncd.core.model import Action, ActionKind, ObservedAccount
from syncd.daemon import Daemon
from syncd.errors import PermanentError, TargetError, TemporaryError
from syncd.state import StateLocked
from syncd.targets.base import Target
from syncd.targets.memory import MemoryTarget
from syncd.watch import WATCH_EVERY, Controls, Schedule
from tests.unit.test_watchdog import Listener

DEVS = "cn=devs,dc=example,dc=test"
ANA, BO = "ana@vendor.example", "bo@vendor.example"


def contract(cid: str, given: str, end: datetime | str, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "email": f"{given}@vendor.example",
        "given_name": given.title(),
        "family_name": "Test",
        "username": given,
        "roles": ["developer"],
        "start": (datetime.now(UTC) - timedelta(days=1)).date().isoformat(),
        "end": end.isoformat() if isinstance(end, datetime) else end,
        **extra,
    }


def in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def seconds_ahead(seconds: int) -> datetime:
    """A whole second at least ``seconds`` from now (contract ends have whole seconds)."""
    return (datetime.now(UTC) + timedelta(seconds=seconds + 1)).replace(microsecond=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.02)


@dataclass
class Running:
    """A daemon serving in a thread."""

    daemon: Daemon
    controls: Controls
    ready: threading.Event
    thread: threading.Thread
    errors: list[BaseException]

    def stop(self) -> float:
        """Ask it to stop; how many seconds ``run`` took to return."""
        started = time.monotonic()
        self.controls.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "run() did not return"
        if self.errors:
            raise self.errors[0]
        return time.monotonic() - started

    def sample(self, name: str, **labels: str) -> float | None:
        return self.daemon.metrics.registry.get_sample_value(name, labels)


class Bench:
    """A work folder with a config, a contracts file and one memory target ``corp``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config_path = folder / "syncd.yaml"
        self.trail = folder / "audit.jsonl"
        self.corp = MemoryTarget("corp", groups={DEVS: set()})
        self.opened = 0
        self.running: list[Running] = []

    def write_config(self, broken: bool = False, **daemon: str) -> None:
        target = {
            "type": "ldapp" if broken else "ldap",
            "urls": "ldaps://127.0.0.1:1",  # never dialled: the daemon gets ``corp`` instead
            "bind_user": "cn=syncd,dc=example,dc=test",
            "base_dn": "ou=people,dc=example,dc=test",
            "password_env": "SYNCD_TEST_BIND_PASSWORD",
        }
        doc = {
            "source": {"type": "file", "path": "contracts.yaml"},
            "roles": {"developer": {"corp": [DEVS]}},
            "targets": {"corp": target},
            "audit": {"path": "audit.jsonl"},
            "daemon": {
                "interval": "300s",
                "state_dir": "state",
                "metrics_address": "",
                **daemon,
            },
        }
        self.config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def contracts(self, *records: dict[str, Any]) -> None:
        self.write_source(yaml.safe_dump({"contracts": list(records)}))

    def write_source(self, text: str) -> None:
        # a new file under the old name, as an editor or a deploy writes it
        temporary = self.folder / "contracts.yaml.new"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.folder / "contracts.yaml")

    def open_targets(self, _config: Config) -> dict[str, Target]:
        self.opened += 1
        return {"corp": self.corp}

    def start(self, controls: Controls | None = None) -> Running:
        daemon = Daemon(
            self.config_path, load_config(self.config_path), open_targets=self.open_targets
        )
        controls = controls or Controls()
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                daemon.run(controls, ready)
            except BaseException as exc:  # handed to the test by Running.stop
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=serve, name="syncd-test-daemon", daemon=True)
        running = Running(daemon, controls, ready, thread, errors)
        self.running.append(running)
        thread.start()
        return running

    def started(self) -> Running:
        """A daemon that has finished its first cycle."""
        running = self.start()
        assert running.ready.wait(10), "not ready"
        assert not running.errors, running.errors
        return running

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.trail.read_text().splitlines()]


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    monkeypatch.setenv("SYNCD_TEST_BIND_PASSWORD", "unused")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    bench = Bench(tmp_path)
    bench.write_config()
    yield bench
    for running in bench.running:
        if running.thread.is_alive():
            running.controls.request_stop()
            running.thread.join(10)


def disabled_at(bench: Bench, username: str) -> datetime:
    for record in bench.audit():
        if (
            record.get("activity_name") == "Disable"
            and record["status"] == "Success"
            and record["user"]["name"] == username
        ):
            return datetime.fromisoformat(record["time_dt"].replace("Z", "+00:00"))
    raise AssertionError(f"no disable of {username} in the audit trail")


def test_ready_is_set_after_the_first_cycle_and_the_target_holds_the_account(
    bench: Bench,
) -> None:
    port = free_port()
    bench.write_config(metrics_address=f"127.0.0.1:{port}")
    bench.contracts(contract("C-1", "ana", in_days(10)))

    running = bench.started()

    assert bench.corp.accounts[ANA].enabled
    assert bench.corp.groups[DEVS] == {ANA}
    assert running.daemon.health.answer()[0] == 200
    assert running.sample("syncd_cycles_total", result="ok") == 1
    assert running.sample("syncd_contracts", state="active") == 1
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert json.load(answer)["status"] == "ok"
    assert running.stop() < 1
    with pytest.raises(ConnectionRefusedError):  # the endpoint is gone with the daemon
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_access_ends_within_a_second_of_its_end_without_waiting_for_the_poll(
    bench: Bench,
) -> None:
    end = seconds_ahead(2)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()
    assert bench.corp.accounts[ANA].enabled

    wait_for(lambda: running.sample("syncd_expiry_lag_seconds_count") == 1, 5)

    lag = (disabled_at(bench, "ana") - end).total_seconds()
    assert 0 <= lag <= 1.0
    assert not bench.corp.accounts[ANA].enabled
    assert bench.corp.accounts[BO].enabled
    assert running.sample("syncd_expired_enabled_accounts", target="corp") == 0
    assert running.daemon.schedule.next_poll > time.time() + 200  # the poll was not due
    running.stop()


def test_stop_ends_run_promptly_and_the_trail_ends_with_a_stop_record(bench: Bench) -> None:
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()

    assert running.stop() < 1

    records = bench.audit()
    assert records[-1]["activity_name"] == "Stop"
    events = [r["activity_name"] for r in records if r["class_uid"] == 1008]
    assert events[-2:] == ["Start", "Stop"]  # after the file's own header
    assert verify([bench.trail]).ok
    assert bench.corp.closed


def test_stop_lets_the_write_in_flight_finish_and_sends_no_more(bench: Bench) -> None:
    bench.contracts(*(contract(f"C-{i}", f"per{i}", in_days(10)) for i in range(20)))
    controls = Controls()
    sent: list[Action] = []

    def stop_at_the_first_write(action: Action) -> TargetError | None:
        sent.append(action)
        controls.request_stop()
        return None

    bench.corp.batch_size = 1
    bench.corp.fault = stop_at_the_first_write
    running = bench.start(controls)
    running.thread.join(10)
    running.stop()

    assert len(sent) == 1
    assert len(bench.corp.accounts) == 1
    records = bench.audit()
    intents = {r["metadata"]["uid"] for r in records if r["status"] == "Intent"}
    assert len(intents) == 1
    assert intents <= {r["unmapped"].get("intent_uid") for r in records}
    assert records[-1]["activity_name"] == "Stop"
    assert verify([bench.trail]).ok


def test_an_unreadable_source_keeps_the_snapshot_and_dated_expiries(bench: Bench) -> None:
    end = seconds_ahead(3)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()

    bench.write_source("contracts: [ {id: C-2, broken\n")  # bo vanishes with the breakage
    wait_for(lambda: running.daemon.health.status != "ok", 2)

    code, body = running.daemon.health.answer()
    assert (code, body["status"]) == (503, "degraded")
    assert body["reason"].startswith("source unreadable")
    assert running.sample("syncd_source_failures_total") == 1
    assert running.sample("syncd_cycles_total", result="source_error") == 1
    wait_for(lambda: running.sample("syncd_expiry_lag_seconds_count") == 1, 6)  # cycle done
    assert not bench.corp.accounts[ANA].enabled
    assert (disabled_at(bench, "ana") - end).total_seconds() <= 1.0
    assert bench.corp.accounts[BO].enabled  # no orphan handling from a broken source
    assert bench.corp.groups[DEVS] == {BO}
    snapshot = json.loads((bench.folder / "state" / "source-snapshot.json").read_text())
    assert snapshot["valid"] == 2
    running.stop()


def test_a_sudden_drop_of_contracts_is_distrusted(bench: Bench) -> None:
    people = [contract(f"C-{i}", f"per{i}", in_days(10)) for i in range(10)]
    bench.contracts(*people)
    running = bench.started()

    bench.contracts(*people[:5])
    wait_for(lambda: running.daemon.health.status == "degraded", 2)

    assert "dropped from 10 to 5" in running.daemon.health.reason
    assert all(account.enabled for account in bench.corp.accounts.values())
    assert len(bench.corp.groups[DEVS]) == 10
    running.stop()


def test_a_reload_with_a_broken_config_keeps_the_old_one(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="syncd")
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    config = running.daemon.config
    bench.write_config(broken=True, interval="120s")

    running.controls.request_reload()
    wait_for(lambda: "reload rejected" in caplog.text, 2)

    assert running.daemon.config is config
    assert "targets.corp" in caplog.text
    assert running.sample("syncd_daemon_interval_seconds") == 300
    bench.contracts(contract("C-1", "ana", in_days(10)), contract("C-2", "bo", in_days(10)))
    wait_for(lambda: BO in bench.corp.accounts, 2)  # still reconciling, with the old config

    bench.write_config(interval="120s")
    running.controls.request_reload()
    wait_for(lambda: "config reloaded" in caplog.text, 2)
    assert running.sample("syncd_daemon_interval_seconds") == 120
    wait_for(lambda: bench.opened == 2, 2)  # the targets are opened afresh under the new config
    running.stop()


def test_a_forced_cycle_runs_at_once(bench: Bench) -> None:
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()

    running.controls.request_cycle()

    wait_for(lambda: running.sample("syncd_cycles_total", result="ok") == 2, 2)
    running.stop()


def test_every_cycle_attests_the_target_in_the_trail(bench: Bench) -> None:
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()

    running.controls.request_cycle()

    wait_for(lambda: running.sample("syncd_cycles_total", result="ok") == 2, 2)
    running.stop()
    first, second = [r for r in bench.audit() if r["class_uid"] == 2003]
    assert first["unmapped"]["target"] == second["unmapped"]["target"] == "corp"
    assert first["unmapped"]["counts"]["accounts"] == 0  # observed before the create
    assert second["unmapped"]["counts"]["enabled"] == 1
    assert first["unmapped"]["digest"] != second["unmapped"]["digest"]
    assert [r["compliance"]["status"] for r in (first, second)] == ["Pass", "Pass"]
    assert verify([bench.trail]).ok
    assert running.sample("syncd_expired_enabled_accounts", target="corp") == 0


def test_an_ended_account_the_target_keeps_enabled_is_attested_and_counted(
    bench: Bench,
) -> None:
    def refuse_disable(action: Action) -> TargetError | None:
        if action.kind is ActionKind.DISABLE:
            return PermanentError("insufficient access rights", code=50)
        return None

    bench.corp.accounts[ANA] = ObservedAccount(ANA, "mem:ana", "ana", True, None, False)
    bench.corp.fault = refuse_disable
    bench.contracts(contract("C-1", "ana", in_days(-1)), contract("C-2", "bo", in_days(10)))
    bench.write_config(ready_timeout="1s")
    running = bench.start()
    assert running.ready.wait(5)
    running.stop()

    assert running.sample("syncd_expired_enabled_accounts", target="corp") == 1
    violations = {"target": "corp", "kind": "ended_enabled"}
    assert running.sample("syncd_attestation_violations", **violations) == 1
    (record,) = [r for r in bench.audit() if r["class_uid"] == 2003]
    assert record["compliance"]["status"] == "Fail"
    assert record["severity"] == "High"
    (violation,) = [v for v in record["unmapped"]["violations"] if v["kind"] == "ended_enabled"]
    assert violation["username"] == "ana"
    assert violation["corrected"] is False


def test_an_access_end_missed_while_the_target_was_down_is_done_soon_after_its_return(
    bench: Bench,
) -> None:
    down = threading.Event()

    def unreachable_while_down(_action: Action) -> TargetError | None:
        return TemporaryError("connection refused", code=0) if down.is_set() else None

    end = seconds_ahead(2)
    bench.corp.accounts[ANA] = ObservedAccount(ANA, "mem:ana", "ana", True, None, False)
    bench.corp.groups[DEVS].add(ANA)
    bench.corp.fault = unreachable_while_down
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()
    down.set()

    wait_for(lambda: running.daemon.health.status == "failing", 6)  # the cycle at the end
    time.sleep(6)  # the target stays down past the first retries
    assert running.daemon.schedule.failures >= 2
    assert bench.corp.accounts[ANA].enabled
    down.clear()
    back = datetime.now(UTC)

    wait_for(lambda: not bench.corp.accounts[ANA].enabled, 8)
    wait_for(lambda: running.daemon.health.answer()[0] == 200, 0.5)  # as soon as it succeeded

    lag = (disabled_at(bench, "ana") - back).total_seconds()
    print(f"disabled {lag:.1f} s after the target came back")
    assert lag <= 5.5  # a retry every 5 s at most (jittered), not the 300 s poll
    assert running.daemon.schedule.next_poll > time.time() + 200  # the poll was not due
    assert running.daemon.schedule.failures == 0
    assert not running.daemon.schedule.overdue
    running.stop()
    assert verify([bench.trail]).ok


def test_an_unreachable_target_fails_the_cycle_and_ready_comes_at_the_timeout(
    bench: Bench,
) -> None:
    def unreachable(_action: Action) -> TargetError:
        return TemporaryError("connection refused", code=0)

    bench.write_config(ready_timeout="1s")
    bench.contracts(contract("C-1", "ana", in_days(10)))
    bench.corp.fault = unreachable
    started = time.monotonic()
    running = bench.start()

    assert running.ready.wait(5)

    assert 1 <= time.monotonic() - started < 3
    code, body = running.daemon.health.answer()
    assert (code, body["status"]) == (503, "failing")
    assert "target corp unavailable" in body["reason"]
    assert running.sample("syncd_cycles_total", result="failed") == 1
    assert (
        running.sample("syncd_actions_total", target="corp", kind="create", result="unknown") == 1
    )
    assert running.daemon.schedule.failures == 1
    assert not bench.corp.accounts
    running.stop()


def test_a_source_with_no_snapshot_to_fall_back_on_backs_off(bench: Bench) -> None:
    bench.write_source("contracts: [ {id: C-1, broken\n")
    running = bench.start()

    wait_for(lambda: running.daemon.health.status == "failing", 2)

    assert "no snapshot" in running.daemon.health.reason
    assert running.daemon.health.details == {"failures": 1}
    assert running.sample("syncd_cycles_total", result="source_error") == 1
    assert running.daemon.schedule.retry_at > time.time() + 2  # 5 s, less jitter
    running.stop()


def test_a_source_rewritten_in_place_is_read_whole_once_it_is_still(bench: Bench) -> None:
    everyone = [contract(f"C-{i}", f"per{i}", in_days(10)) for i in range(21)]
    bench.contracts(*everyone[:20])
    running = bench.started()
    text = yaml.safe_dump({"contracts": everyone})
    cut = text.index("- email: per17@")  # 17 of 21 parse: a drop within max_source_drop

    with (bench.folder / "contracts.yaml").open("w") as handle:  # in place, as in the issue
        handle.write(text[:cut])
        handle.flush()
        time.sleep(0.7)  # under the 1 s debounce
        handle.write(text[cut:])
    wait_for(lambda: running.sample("syncd_cycles_total", result="ok") == 2, 5)

    assert "per20@vendor.example" in bench.corp.accounts  # read once, whole
    assert all(account.enabled for account in bench.corp.accounts.values())
    assert not [r for r in bench.audit() if r.get("activity_name") == "Disable"]
    running.stop()
    assert running.sample("syncd_cycles_total", result="ok") == 2


def test_the_watchdog_is_fed_while_a_request_may_block_and_starves_when_the_loop_hangs(
    bench: Bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard = Listener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", heard.address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # pings every 0.5 s while alive
    blocking = {"how": ""}

    def slow(action: Action) -> TargetError | None:
        if action.kind is not ActionKind.CREATE:
            return None
        if blocking["how"] == "request":  # as a connection does around a request
            with pulse.current().guard(lambda: None, allow=10):
                time.sleep(3)
        elif blocking["how"] == "hang":  # stuck where nothing said it could block
            time.sleep(3)
        return None

    bench.corp.fault = slow
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    try:
        blocking["how"] = "request"
        waiting = time.monotonic()
        bench.contracts(contract("C-1", "ana", in_days(10)), contract("C-2", "bo", in_days(10)))
        wait_for(lambda: BO in bench.corp.accounts, 8)
        hanging = time.monotonic()
        blocking["how"] = "hang"
        bench.contracts(
            *(contract(f"C-{i}", n, in_days(10)) for i, n in enumerate(["ana", "bo", "cy"]))
        )
        wait_for(lambda: "cy@vendor.example" in bench.corp.accounts, 8)
        done = time.monotonic()
        running.stop()
    finally:
        heard.close()

    assert heard.silence(waiting, hanging) < 1.0
    assert heard.silence(hanging, done) >= 1.8  # no ping from 1 s into the hang to its end


def test_a_stop_breaks_off_a_request_still_in_flight_after_the_grace(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "STOP_GRACE", 0.5)
    entered, broken = threading.Event(), threading.Event()

    def frozen(_action: Action) -> TargetError | None:
        entered.set()
        with pulse.current().guard(broken.set, allow=60):
            broken.wait(30)  # a request to a frozen server, until it is broken off
        return TemporaryError("corp: request broken off: syncd is stopping")

    bench.corp.fault = frozen
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.start()
    assert entered.wait(5)

    seconds = running.stop()

    assert broken.is_set()
    assert 0.5 <= seconds < 1.5
    records = bench.audit()
    (intent,) = [r for r in records if r["status"] == "Intent"]
    (outcome,) = [
        r for r in records if r["unmapped"].get("intent_uid") == intent["metadata"]["uid"]
    ]
    assert outcome["status"] == "Unknown"
    assert records[-1]["activity_name"] == "Stop"
    assert verify([bench.trail]).ok


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(bench: Bench) -> None:
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    second = Daemon(
        bench.config_path, load_config(bench.config_path), open_targets=bench.open_targets
    )

    with pytest.raises(StateLocked, match="another syncd"):
        second.run(Controls())

    running.stop()


# -- the schedule, on its own ------------------------------------------------------------
T = 1_000_000.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T + seconds, UTC)


@pytest.mark.parametrize(
    ("schedule", "now", "due"),
    [
        pytest.param(Schedule(), T, True, id="first-cycle"),
        pytest.param(Schedule(next_poll=T + 60), T, False, id="before-the-poll"),
        pytest.param(Schedule(next_poll=T + 60), T + 60, True, id="at-the-poll"),
        pytest.param(Schedule(next_poll=T, retry_at=T + 9), T + 5, False, id="backing-off"),
        pytest.param(Schedule(next_poll=T + 300, retry_at=T + 5), T + 5, True, id="retry-at-5s"),
        pytest.param(Schedule(next_poll=T + 60, boundary=at(3)), T + 3, True, id="at-a-boundary"),
        pytest.param(Schedule(next_poll=T + 60, boundary=at(3)), T + 2.9, False, id="before-it"),
    ],
)
def test_a_cycle_is_due_at_the_poll_or_a_boundary(
    schedule: Schedule, now: float, due: bool
) -> None:
    assert schedule.due(now) is due


@pytest.mark.parametrize(
    ("schedule", "sleep"),
    [
        pytest.param(Schedule(next_poll=T + 60), WATCH_EVERY, id="look-at-the-file"),
        pytest.param(Schedule(next_poll=T + 60, boundary=at(0.2)), 0.2, id="boundary"),
        pytest.param(Schedule(next_poll=T + 0.1), 0.1, id="poll"),
        pytest.param(Schedule(next_poll=T - 5), 0.0, id="overdue"),
        pytest.param(Schedule(next_poll=T + 0.1, retry_at=T + 0.3), 0.3, id="retry-not-poll"),
    ],
)
def test_the_loop_sleeps_until_the_nearest_reason_to_wake(schedule: Schedule, sleep: float) -> None:
    assert schedule.sleep_seconds(T) == pytest.approx(sleep)


def test_failed_cycles_back_off_exponentially_up_to_the_limit() -> None:
    schedule = Schedule()
    schedule.started(T, interval=300)
    delays = [schedule.failed(T, backoff_max=60, jitter=1.0) for _ in range(6)]
    assert delays == [5, 10, 20, 40, 60, 60]
    assert schedule.failed(T, backoff_max=60, jitter=0.5) == 30
    assert schedule.retry_at == T + 30
    assert schedule.due(T + 30)  # the retry comes before the poll at T + 300

    schedule.finished(succeeded=False)  # a cycle ran, on the snapshot
    assert (schedule.failures, schedule.retry_at) == (8, 0.0)
    assert not schedule.due(T + 30)  # back to the poll
    schedule.finished(succeeded=True)
    assert schedule.failures == 0


def test_a_boundary_whose_cycle_failed_is_retried_every_few_seconds_until_done() -> None:
    schedule = Schedule(next_poll=T + 300, boundary=at(10), failures=3)
    assert schedule.due(T + 10)

    schedule.started(T + 10, interval=300)  # the cycle at the access end ...
    schedule.boundary = at(86_400)  # ... plans the next one, and fails
    delays = [schedule.failed(T + 10, backoff_max=300, jitter=1.0) for _ in range(3)]

    assert schedule.overdue
    assert delays == [5, 5, 5]  # not 40, 80, 160
    schedule.finished(succeeded=True)
    assert not schedule.overdue
    assert schedule.failed(T + 20, backoff_max=300, jitter=1.0) == 5  # backs off afresh
    assert schedule.failed(T + 20, backoff_max=300, jitter=1.0) == 10
