"""``policy.orphan_grace`` across cycles: the daemon driven in-process (a real contracts
file, audit trail and state directory in a temporary folder, a ``MemoryTarget`` in place
of the directory), the setting itself, and the record of absences in the state
directory (``syncd.state``) as the daemon, ``syncd sync`` and ``plan`` use it.

A person who vanishes from the source is disabled and removed from their groups at
once; their credentials are revoked only once they have been absent for the grace, and
the daemon wakes for that moment as it wakes for a contract's end.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.config import Config, load_config
from syncd.core.model import Action, ActionKind
from syncd.core.plan import Wait
from syncd.daemon import Daemon
from syncd.errors import ConfigError
from syncd.state import ABSENCES, Absences, StateDir, StateLocked, read_absences
from syncd.targets.base import Target
from syncd.targets.memory import MemoryTarget
from syncd.watch import Controls

DEVS = "cn=devs,dc=example,dc=test"
ANA, BO, CY = "ana@vendor.example", "bo@vendor.example", "cy@vendor.example"
GRACE = 2.0  # seconds of policy.orphan_grace in these tests


def contract(given: str) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "id": f"C-{given}",
        "email": f"{given}@vendor.example",
        "given_name": given.title(),
        "family_name": "Test",
        "username": given,
        "roles": ["developer"],
        "start": (today - timedelta(days=1)).isoformat(),
        "end": (today + timedelta(days=30)).isoformat(),
    }


def wait_for(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s")
        time.sleep(0.02)


class Bench:
    """A work folder with a config (grace ``GRACE``), a contracts file, one memory
    target ``corp``, and the daemons started on it, each in a thread of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config_path = folder / "syncd.yaml"
        self.state = folder / "state"
        self.corp = MemoryTarget("corp", groups={DEVS: set()})
        self.threads: list[tuple[Controls, threading.Thread]] = []
        self.configure(GRACE)

    def configure(self, grace: float) -> None:
        target = {
            "type": "ldap",
            "urls": "ldaps://127.0.0.1:1",  # never dialled: the daemon gets ``corp`` instead
            "bind_user": "cn=syncd,dc=example,dc=test",
            "base_dn": "ou=people,dc=example,dc=test",
            "password_env": "SYNCD_TEST_BIND_PASSWORD",
        }
        doc = {
            "source": {"type": "file", "path": "contracts.yaml"},
            "policy": {"orphan_grace": f"{grace:.0f}s"},
            # one of three contracts gone is a drop of a third: let it through
            "safety": {"max_source_drop": "50%"},
            "roles": {"developer": {"corp": [DEVS]}},
            "targets": {"corp": target},
            "audit": {"path": "audit.jsonl"},
            "daemon": {"interval": "300s", "state_dir": "state", "metrics_address": ""},
        }
        self.config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def contracts(self, *names: str) -> None:
        text = yaml.safe_dump({"contracts": [contract(n) for n in names]})
        temporary = self.folder / "contracts.yaml.new"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.folder / "contracts.yaml")

    def open_targets(self, _config: Config) -> dict[str, Target]:
        return {"corp": self.corp}

    def start(self) -> Controls:
        """A daemon that has finished its first cycle."""
        daemon = Daemon(
            self.config_path, load_config(self.config_path), open_targets=self.open_targets
        )
        controls, ready = Controls(), threading.Event()
        thread = threading.Thread(target=daemon.run, args=(controls, ready), daemon=True)
        self.threads.append((controls, thread))
        thread.start()
        assert ready.wait(10), "not ready"
        return controls

    def stop(self) -> None:
        for controls, thread in self.threads:
            controls.request_stop()
            thread.join(10)
            assert not thread.is_alive(), "run() did not return"

    def offboarded(self, key: str) -> bool:
        """The disable and the group removal of ``key``'s cycle are done."""
        return not self.corp.accounts[key].enabled and key not in self.corp.groups[DEVS]

    def give_credentials(self, key: str) -> None:
        """Someone set the account's password, as a helpdesk does."""
        self.corp.accounts[key] = replace(self.corp.accounts[key], has_credentials=True)

    def absences(self) -> dict[str, datetime]:
        return read_absences(self.state)

    def audit(self, activity: str, username: str) -> list[datetime]:
        """When ``activity`` succeeded on ``username``, from the audit trail (its
        complete lines: the daemon may be writing the next one)."""
        lines = (self.folder / "audit.jsonl").read_text().split("\n")[:-1]
        return [
            datetime.fromisoformat(r["time_dt"].replace("Z", "+00:00"))
            for r in map(json.loads, lines)
            if r.get("activity_name") == activity
            and r["status"] == "Success"
            and r.get("user", {}).get("name") == username
        ]


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    monkeypatch.setenv("SYNCD_TEST_BIND_PASSWORD", "unused")
    for name in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(name, raising=False)
    bench = Bench(tmp_path)
    yield bench
    bench.stop()


def test_a_vanished_person_is_disabled_at_once_and_revoked_when_the_grace_ends(
    bench: Bench,
) -> None:
    bench.contracts("ana", "bo", "cy")
    bench.start()
    bench.give_credentials(BO)

    bench.contracts("ana", "cy")  # bo's contract is gone from the file
    wait_for(lambda: bench.offboarded(BO), 5)

    assert bench.corp.accounts[BO].has_credentials  # kept through the grace
    assert bench.corp.groups[DEVS] == {ANA, CY}
    [absent] = bench.absences().values()
    assert list(bench.absences()) == [BO]
    assert bench.audit("Password Reset", "bo") == []

    # the poll is five minutes away: only the end of the grace wakes the daemon
    wait_for(lambda: bench.audit("Password Reset", "bo") != [], GRACE + 3)

    assert not bench.corp.accounts[BO].has_credentials
    [revoked] = bench.audit("Password Reset", "bo")
    late = (revoked - (absent + timedelta(seconds=GRACE))).total_seconds()
    assert 0 <= late <= 1.0
    assert bench.corp.accounts[ANA].enabled
    assert bench.corp.accounts[CY].enabled
    assert list(bench.absences()) == [BO]  # the account stays, disabled, for audit


def test_a_person_back_within_the_grace_lost_nothing_for_good(bench: Bench) -> None:
    bench.contracts("ana", "bo", "cy")
    bench.start()
    bench.give_credentials(BO)

    bench.contracts("ana", "cy")  # a source read half-written ...
    wait_for(lambda: bench.offboarded(BO), 5)
    bench.contracts("ana", "bo", "cy")  # ... and whole again
    wait_for(lambda: BO in bench.corp.groups[DEVS], 5)

    assert bench.corp.accounts[BO].enabled
    assert bench.corp.groups[DEVS] == {ANA, BO, CY}
    assert bench.absences() == {}
    time.sleep(GRACE + 0.5)  # past the moment the revocation would have been due
    assert bench.corp.accounts[BO].has_credentials
    assert bench.audit("Password Reset", "bo") == []


def test_the_first_sighting_survives_a_restart(bench: Bench) -> None:
    grace = 2 * GRACE  # room for a stop and a start within it
    bench.configure(grace)
    bench.contracts("ana", "bo", "cy")
    bench.start()
    bench.give_credentials(BO)
    bench.contracts("ana", "cy")
    wait_for(lambda: bench.offboarded(BO), 5)
    absent = bench.absences()[BO]
    bench.stop()

    bench.start()  # its first cycle finds bo absent, still within the grace

    assert bench.absences() == {BO: absent}
    assert bench.corp.accounts[BO].has_credentials
    wait_for(lambda: bench.audit("Password Reset", "bo") != [], grace + 3)
    [revoked] = bench.audit("Password Reset", "bo")
    assert 0 <= (revoked - absent).total_seconds() - grace <= 1.0  # the clock did not restart


@pytest.mark.parametrize(
    ("policy", "grace"),
    [
        ({}, timedelta(hours=1)),
        ({"orphan_grace": "90m"}, timedelta(minutes=90)),
        ({"orphan_grace": "0s"}, timedelta(0)),
    ],
)
def test_the_grace_is_a_policy_duration(
    bench: Bench, policy: dict[str, str], grace: timedelta
) -> None:
    doc = yaml.safe_load(bench.config_path.read_text())
    doc["policy"] = policy
    bench.config_path.write_text(yaml.safe_dump(doc))

    assert load_config(bench.config_path).core_policy().orphan_grace == grace


def test_a_grace_that_is_no_duration_is_a_config_error(bench: Bench) -> None:
    doc = yaml.safe_load(bench.config_path.read_text())
    doc["policy"] = {"orphan_grace": "a while"}
    bench.config_path.write_text(yaml.safe_dump(doc))

    with pytest.raises(ConfigError, match=r"syncd.yaml:\d+ policy\.orphan_grace: .*not a duration"):
        load_config(bench.config_path)


# -- the record in the state directory ---------------------------------------------------
NOW = datetime(2027, 6, 15, 12, tzinfo=UTC)


def test_absences_are_written_atomically_and_read_back(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    try:
        state.save_absences({BO: NOW, ANA: NOW - timedelta(hours=2)})
        assert state.load_absences() == {BO: NOW, ANA: NOW - timedelta(hours=2)}
        data = json.loads((tmp_path / "state" / ABSENCES).read_text())
        assert data["format"] == "syncd.absent-since/1"
        assert list(data["absent_since"]) == [ANA, BO]
        assert (tmp_path / "state" / ABSENCES).stat().st_mode & 0o777 == 0o640
        assert not list((tmp_path / "state").glob("*.tmp"))
        state.save_absences({})
        assert read_absences(tmp_path / "state") == {}
    finally:
        state.close()


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '{"absent_since": {"bo@vendor.example": "yesterday"}}',
        '{"absent_since": {"bo@vendor.example": "2027-06-15T12:00:00"}}',  # no offset
        '{"absent_since": ["bo@vendor.example"]}',
        '{"format": "syncd.absent-since/1"}',
    ],
)
def test_an_unreadable_record_restarts_the_grace_and_says_so(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ABSENCES).write_text(text)

    assert read_absences(tmp_path) == {}

    assert "policy.orphan_grace starts again now" in caplog.text


def test_no_state_directory_means_nothing_recorded(tmp_path: Path) -> None:
    assert read_absences(tmp_path / "missing") == {}
    assert read_absences(tmp_path / "a-file" / "below") == {}


def waiting(*keys: str) -> dict[str, tuple[Wait, ...]]:
    def wait(key: str) -> Wait:
        action = Action("corp", ActionKind.REVOKE_CREDENTIALS, key, key[:2], f"uid={key}", "x")
        return Wait(action, NOW + timedelta(hours=1))

    return {"corp": tuple(wait(k) for k in keys)}


def test_a_sync_that_holds_the_lock_records(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / ABSENCES).write_text(json.dumps({"absent_since": {ANA: NOW.isoformat()}}))

    with Absences.open(folder, record=True) as absences:
        assert absences.since == {ANA: NOW}
        absences.record({ANA: NOW, BO: NOW + timedelta(minutes=5)})
        assert absences.note(waiting(ANA, BO)) == ""
        with pytest.raises(StateLocked, match="one instance per state directory"):
            StateDir(folder)  # a daemon starting now is refused until the sync is done

    assert read_absences(folder) == {ANA: NOW, BO: NOW + timedelta(minutes=5)}
    StateDir(folder).close()


def test_a_sync_beside_a_running_daemon_starts_the_grace_and_says_so(tmp_path: Path) -> None:
    daemon = StateDir(tmp_path / "state")
    daemon.save_absences({ANA: NOW})
    try:
        with Absences.open(tmp_path / "state", record=True) as absences:
            assert absences.since == {ANA: NOW}  # read without the lock
            absences.record({ANA: NOW, BO: NOW})  # the daemon's to write: not written
            note = absences.note(waiting(ANA, BO))
            assert absences.note(waiting(ANA)) == ""  # recorded: nothing to say
    finally:
        daemon.close()

    assert read_absences(tmp_path / "state") == {ANA: NOW}
    assert note.startswith("1 orphan(s) not recorded as absent count as absent since now")
    assert "the running daemon holds daemon.state_dir" in note


def test_a_sync_without_a_state_directory_never_makes_one_and_says_what_it_costs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with Absences.open(tmp_path / "state", record=True) as absences:
        absences.record({BO: NOW})
        note = absences.note(waiting(BO))

    assert not (tmp_path / "state").exists()
    assert "does not exist" in note
    assert "no sync revokes their credentials" in note
    assert "policy.orphan_grace: 0s" in note


def test_a_plan_only_reads(tmp_path: Path) -> None:
    daemon = StateDir(tmp_path / "state")
    try:
        daemon.save_absences({BO: NOW})
        with Absences.open(tmp_path / "state", record=False) as absences:
            assert absences.since == {BO: NOW}
            assert absences.note(waiting(ANA)) == ""  # a plan changes nothing: no note
    finally:
        daemon.close()
