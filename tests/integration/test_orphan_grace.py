"""``policy.orphan_grace`` against a real slapd: a contracts file rewritten in place and
read half-written (cut at a line boundary, so it parses) costs the people cut off their
access at once, but not their passwords: those go only once the person has been absent
for the grace, and a person back within it logs in again with the password they had.
Driven through ``syncd run`` as a subprocess and through ``syncd sync``/``plan``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml

from syncd.state import read_absences
from tests.labs.common import ANA, people
from tests.labs.ldap import GROUPS, Lab, dn_of

GRACE = 4  # seconds


def wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.05)


def locked(lab: Lab, dn: str) -> bool:
    return "pwdaccountlockedtime" in (lab.entry(dn) or {})


def has_password(lab: Lab, dn: str) -> bool:
    return "userpassword" in (lab.entry(dn) or {})


def succeeded(lab: Lab, activity: str, username: str) -> list[datetime]:
    """When ``activity`` succeeded on ``username``, from the trail's complete lines."""
    lines = lab.audit_path.read_text().split("\n")[:-1] if lab.audit_path.exists() else []
    return [
        datetime.fromisoformat(r["time_dt"].replace("Z", "+00:00"))
        for r in map(json.loads, lines)
        if r.get("activity_name") == activity
        and r["status"] == "Success"
        and r.get("user", {}).get("name") == username
    ]


def rewrite_in_place(lab: Lab, records: list[dict[str, Any]], keep: int) -> None:
    """Rewrite the contracts file in place (truncate, then write) and stop after the
    first ``keep`` records, at a line boundary: a writer that died half-way."""
    text = yaml.safe_dump({"contracts": records}, allow_unicode=True)
    starts = [i for i in range(len(text)) if text.startswith("\n- ", i)]
    cut = text if keep >= len(records) else text[: starts[keep] + 1]
    with (lab.work / "contracts.yaml").open("w", encoding="utf-8") as out:
        out.write(cut)


@pytest.fixture
def daemon(lab: Lab) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        lab.overrides["daemon"] = {"interval": "300s", "state_dir": "state", "metrics_address": ""}
        lab.overrides["policy"] = {"orphan_grace": f"{GRACE}s"}
        lab.write_config()
        log = (lab.work / "daemon.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"], stderr=log
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_half_written_source_disables_at_once_and_revokes_only_after_the_grace(
    lab: Lab, daemon: Callable[[], subprocess.Popen[bytes]]
) -> None:
    staff = people(6)
    lab.contracts(*staff)
    proc = daemon()
    last = dn_of("per.son5")
    wait_for(lambda: last in lab.members(GROUPS["developers"]), 15, "first cycle")
    lab.set_password(last)
    assert lab.can_bind(last)

    rewrite_in_place(lab, staff, keep=5)  # cut before the last contract, and left so
    wait_for(lambda: locked(lab, last), 10, "disable")

    entry = lab.entry(last)
    assert entry is not None
    assert "userpassword" in entry  # not revoked: the person is only absent
    assert not any(last in lab.members(g) for g in GROUPS.values())
    assert not lab.can_bind(last)
    absent = read_absences(lab.work / "state")
    assert list(absent) == ["per.son5@vendor.example"]
    assert succeeded(lab, "Password Reset", "per.son5") == []
    assert not locked(lab, dn_of("per.son4"))  # everyone still in the file keeps access

    wait_for(lambda: not has_password(lab, last), GRACE + 4, "revoke after the grace")
    # the outcome is recorded once the change has been read back: a moment later
    wait_for(lambda: bool(succeeded(lab, "Password Reset", "per.son5")), 5, "its record")

    [revoked] = succeeded(lab, "Password Reset", "per.son5")
    due = absent["per.son5@vendor.example"] + timedelta(seconds=GRACE)
    late = (revoked - due).total_seconds()
    print(f"revoked {late:.2f} s after the grace ended")
    assert 0 <= late <= 1.5  # the daemon woke for it; the poll is five minutes away
    assert locked(lab, last)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_a_person_back_within_the_grace_logs_in_with_their_old_password(
    lab: Lab, daemon: Callable[[], subprocess.Popen[bytes]]
) -> None:
    staff = people(6)
    lab.contracts(*staff)
    proc = daemon()
    last = dn_of("per.son5")
    wait_for(lambda: last in lab.members(GROUPS["developers"]), 15, "first cycle")
    lab.set_password(last)

    rewrite_in_place(lab, staff, keep=5)
    wait_for(lambda: locked(lab, last), 10, "disable")
    rewrite_in_place(lab, staff, keep=6)  # the writer finishes
    wait_for(lambda: last in lab.members(GROUPS["developers"]), 10, "back")

    assert not locked(lab, last)
    assert lab.can_bind(last)
    assert read_absences(lab.work / "state") == {}
    time.sleep(GRACE + 1)  # past the moment the revocation would have been due
    assert has_password(lab, last)
    assert lab.can_bind(last)
    assert succeeded(lab, "Password Reset", "per.son5") == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_sync_remembers_the_absence_in_the_state_dir_and_plan_shows_the_wait(
    lab: Lab,
) -> None:
    lab.overrides["daemon"] = {"state_dir": "state"}
    lab.overrides["policy"] = {"orphan_grace": f"{GRACE}s"}
    lab.write_config()
    (lab.work / "state").mkdir()
    gone = lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.contracts(ANA)

    first = lab.syncd("sync")

    assert first.code == 0, first.out + first.err
    assert locked(lab, gone)
    assert has_password(lab, gone)
    assert "· waits  - revoke   old.hand" in first.out
    assert "waits for policy.orphan_grace until" in first.out
    absent = read_absences(lab.work / "state")["old.hand@vendor.example"]
    plan = lab.syncd("plan", "--json")
    [wait] = json.loads(plan.out)["targets"][0]["waits"]
    assert (wait["kind"], wait["username"], wait["cause"]) == (
        "revoke_credentials",
        "old.hand",
        "orphan",
    )
    due = datetime.fromisoformat(wait["until"].replace("Z", "+00:00"))
    assert abs((due - absent).total_seconds() - GRACE) < 1  # from the recorded start (to the s)
    assert "(no changes)" in lab.syncd("sync").out  # within the grace: nothing to send
    assert has_password(lab, gone)

    due = absent + timedelta(seconds=GRACE)
    time.sleep(max(0.0, (due - datetime.now(due.tzinfo)).total_seconds()) + 0.2)
    after = lab.syncd("sync")

    assert after.code == 0, after.out + after.err
    assert "- revoke   old.hand" in after.out
    assert not has_password(lab, gone)
    assert read_absences(lab.work / "state") == {"old.hand@vendor.example": absent}


def test_sync_without_a_state_dir_never_revokes_an_orphan_and_says_so(lab: Lab) -> None:
    lab.overrides["daemon"] = {"state_dir": "no-such-state"}
    lab.overrides["policy"] = {"orphan_grace": "1s"}
    lab.write_config()
    gone = lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.contracts(ANA)

    first = lab.syncd("sync")
    time.sleep(1.5)
    second = lab.syncd("sync")

    assert (first.code, second.code) == (0, 0)
    assert locked(lab, gone)
    assert has_password(lab, gone)  # every run counts the absence from itself
    assert "daemon.state_dir" in second.err
    assert "does not exist" in second.err
    assert not (lab.work / "no-such-state").exists()
