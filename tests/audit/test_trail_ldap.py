"""The trail's faults end to end against a real slapd: ``syncd sync`` and the daemon
(in-process, real loop, real LDAP target) when the trail's file system is full, when
its active file is deleted under the running daemon, and when it may not be written."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from syncd.audit.writer import rotated_files
from syncd.config import load_config
from syncd.daemon import Daemon
from syncd.watch import Controls
from tests.audit.test_trail_faults import fill, records
from tests.labs.common import ANA, people
from tests.labs.ldap import Lab, dn_of

ROOT = os.geteuid() == 0
NEWCOMERS = people(5)
NAMES = [f"per.son{i}" for i in range(5)]


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


@contextmanager
def running(lab: Lab) -> Iterator[tuple[Daemon, Controls]]:
    """The daemon serving ``lab``'s config in a thread, after its first cycle."""
    lab.configure(
        daemon={
            "interval": "300s",
            "state_dir": "state",
            "metrics_address": "",
            "backoff_max": "1s",
        }
    )
    daemon = Daemon(lab.config_path, load_config(lab.config_path))
    controls, ready = Controls(), threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            daemon.run(controls, ready)
        except BaseException as exc:  # handed to the test below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=serve, name="syncd-trail-daemon", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "not ready"
        assert not errors, errors
        yield daemon, controls
    finally:
        controls.request_stop()
        thread.join(30)
    assert not thread.is_alive(), "run() did not return"
    if errors:
        raise errors[0]


def present(lab: Lab, names: list[str]) -> list[str]:
    return [n for n in names if lab.entry(dn_of(n)) is not None]


@pytest.fixture
def small_trail(lab: Lab) -> Iterator[Path]:
    """The trail's folder on a tmpfs of 256 KiB, configured as ``audit.path``."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root (test_trail_faults covers a file size limit)")
    folder = lab.work / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    lab.configure(audit={"path": str(folder / "audit.jsonl")})
    try:
        yield folder / "audit.jsonl"
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_sync_on_a_full_disk_sends_nothing_and_the_next_sync_completes(
    lab: Lab, small_trail: Path
) -> None:
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    filler = fill(small_trail.parent)
    lab.contracts(ANA, *NEWCOMERS)

    full = lab.syncd("sync")

    assert full.code == 1, full.err
    assert f"error: audit trail {small_trail}: cannot write to it: No space left" in full.err
    assert "free space; syncd writes again by itself" in full.err
    assert "Traceback" not in full.err
    assert present(lab, NAMES) == []  # no write went out without its intent on disk
    assert small_trail.read_bytes().endswith(b"\n")
    assert lab.syncd("audit", "verify").code == 0

    filler.unlink()
    again = lab.syncd("sync")

    assert again.code == 0, again.err
    assert present(lab, NAMES) == NAMES
    assert lab.syncd("audit", "verify").code == 0


def test_the_daemon_sends_nothing_while_the_disk_is_full_and_resumes_by_itself(
    lab: Lab, small_trail: Path
) -> None:
    lab.contracts(ANA)
    with running(lab) as (daemon, controls):
        filler = fill(small_trail.parent)
        lab.contracts(ANA, *NEWCOMERS)
        controls.request_cycle()
        wait_for(lambda: daemon.health.status == "failing", 20, "a failing cycle")
        assert "No space left on device" in daemon.health.reason
        time.sleep(2.5)  # retries at the backoff, each refused before any write
        assert present(lab, NAMES) == []

        filler.unlink()
        wait_for(lambda: present(lab, NAMES) == NAMES, 30, "the newcomers created")
        wait_for(lambda: daemon.health.status == "ok", 10, "a healthy daemon")

    verified = lab.syncd("audit", "verify")
    assert verified.code == 0, verified.out
    everything = [r for f in [*rotated_files(small_trail), small_trail] for r in records(f)]
    (note,) = [r for r in everything if "failed_since" in r["unmapped"]]
    assert note["unmapped"]["failures"] >= 1
    created = {
        r["user"]["name"]
        for r in everything
        if r["unmapped"].get("phase") == "outcome" and r["unmapped"]["action"] == "create"
    }
    assert set(NAMES) <= created


def test_deleting_the_active_trail_under_the_daemon_loses_no_record_silently(lab: Lab) -> None:
    lab.contracts(ANA)
    with running(lab) as (_daemon, controls):
        lab.audit_path.unlink()
        lab.contracts(ANA, *NEWCOMERS)
        controls.request_cycle()
        wait_for(lambda: present(lab, NAMES) == NAMES, 30, "the newcomers created")

    header, recovery, *rest = lab.audit()
    assert header["unmapped"]["phase"] == "header"
    assert recovery["unmapped"]["lost_how"] == "deleted"
    assert recovery["unmapped"]["lost_first_sequence"] == 1
    creates: dict[str, dict[str, Any]] = {}
    for record in rest:
        if record.get("unmapped", {}).get("action") == "create":
            creates.setdefault(record["user"]["name"], {})[record["unmapped"]["phase"]] = record
    assert sorted(creates) == NAMES
    for name, pair in creates.items():
        assert pair["outcome"]["unmapped"]["intent_uid"] == pair["intent"]["metadata"]["uid"], name
        assert pair["outcome"]["status"] == "Success", name

    verified = lab.syncd("audit", "verify")
    assert verified.code == 4
    last = recovery["unmapped"]["lost_last_sequence"]
    assert (
        f"lost: sequence 1 to {last} were in audit.jsonl, which was deleted while syncd "
        "wrote it" in verified.out
    )


@pytest.fixture
def immutable_trail(lab: Lab) -> Iterator[Path]:
    if not ROOT:
        pytest.skip("chattr +i needs root")
    lab.contracts()
    assert lab.syncd("sync").code == 0
    flagged = subprocess.run(["chattr", "+i", str(lab.audit_path)], capture_output=True, text=True)
    if flagged.returncode:
        pytest.skip(f"chattr +i is not available here: {flagged.stderr.strip()}")
    try:
        yield lab.audit_path
    finally:
        subprocess.run(["chattr", "-i", str(lab.audit_path)], check=False)


def test_an_immutable_trail_is_a_clear_error_for_sync_and_for_the_daemon(
    lab: Lab, immutable_trail: Path
) -> None:
    expected = (
        f"error: audit trail {immutable_trail}: cannot open it for writing: Operation not "
        "permitted; an immutable or append-only attribute forbids it (see `lsattr`): remove "
        "it with `chattr -i` or `chattr -a`"
    )
    lab.contracts(ANA)

    sync = lab.syncd("sync")

    assert sync.code == 1
    assert expected in sync.err
    assert "Traceback" not in sync.err
    assert lab.entry(dn_of("ana.lopez")) is None

    lab.configure(daemon={"state_dir": "state", "metrics_address": ""})
    daemon = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert daemon.returncode == 1, daemon.stderr
    assert expected in daemon.stderr
    assert "Traceback" not in daemon.stderr
    assert lab.entry(dn_of("ana.lopez")) is None


def test_a_read_only_file_system_is_a_clear_error_for_sync(lab: Lab, small_trail: Path) -> None:
    lab.contracts()
    assert lab.syncd("sync").code == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_trail.parent)], check=True)
    lab.contracts(ANA)

    sync = lab.syncd("sync")

    assert sync.code == 1
    assert f"error: audit trail {small_trail}.lock: cannot open it for writing: Read-only" in (
        sync.err
    )
    assert "remount it read-write, or set audit.path to a writable place" in sync.err
    assert "Traceback" not in sync.err
    assert lab.entry(dn_of("ana.lopez")) is None
