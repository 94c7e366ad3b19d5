"""A conflict under the daemon: recorded once when it appears and once when it clears,
not every cycle, and not again after a restart; ``/healthz`` stays ok while it stands,
``syncd_conflicts`` counts it. The daemon runs in-process on a memory target
(``tests.unit.test_daemon.Bench``); ``StandingConflicts`` is also driven alone for the
cycles that cannot see a conflict clear."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.audit import AuditWriter
from syncd.core.model import Conflict, Observed, TargetPlan
from syncd.engine import CyclePlan
from syncd.standing import StandingConflicts
from syncd.state import StateDir
from syncd.targets.memory import Unmanaged
from tests.unit.test_daemon import Bench, bench, contract, in_days, wait_for

__all__ = ["bench"]  # the fixture, shared with tests.unit.test_daemon
CONFLICT = Conflict(
    "corp",
    "ana@vendor.example",
    "ana",
    "ana",
    "username 'ana' is taken by an unmanaged account",
    ("C-1",),
)


def conflict_records(bench: Bench) -> list[tuple[str, str, list[str]]]:
    return [
        (r["unmapped"]["phase"], r["user"]["name"], r["unmapped"]["contract_ids"])
        for r in bench.audit()
        if r["unmapped"].get("phase", "").startswith("conflict")
    ]


def cycles(bench: Bench, running: Any, count: int) -> None:
    """Force cycles until ``count`` have run."""
    while (running.sample("syncd_cycles_total", result="ok") or 0) < count:
        running.controls.request_cycle()
        done = running.sample("syncd_cycles_total", result="ok") or 0
        wait_for(lambda d=done: (running.sample("syncd_cycles_total", result="ok") or 0) > d, 3)


def test_a_standing_conflict_is_recorded_once_and_its_clearing_once(bench: Bench) -> None:
    bench.corp.unmanaged.append(Unmanaged("ana"))
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    cycles(bench, running, 3)

    assert conflict_records(bench) == [("conflict", "ana", ["C-1"])]
    assert running.daemon.health.answer()[0] == 200
    assert running.daemon.health.status == "ok"
    assert running.sample("syncd_conflicts", target="corp") == 1

    running.stop()
    again = bench.started()  # a restart: the conflict still stands, and was recorded
    cycles(bench, again, 2)
    assert conflict_records(bench) == [("conflict", "ana", ["C-1"])]

    bench.corp.unmanaged.clear()  # an administrator removed the account in the way
    cycles(bench, again, 4)
    again.stop()

    assert conflict_records(bench) == [
        ("conflict", "ana", ["C-1"]),
        ("conflict_cleared", "ana", ["C-1"]),
    ]
    [cleared] = [r for r in bench.audit() if r["unmapped"].get("phase") == "conflict_cleared"]
    assert cleared["status"] == "Success"
    assert cleared["activity_name"] == "Conflict Cleared"
    assert cleared["status_detail"] == (
        "conflict cleared: username 'ana' is taken by an unmanaged account"
    )
    assert "ana@vendor.example" in bench.corp.accounts


def plan_of(*conflicts: Conflict, targeted: frozenset[str] | None = None) -> CyclePlan:
    cycle = CyclePlan(datetime.now(UTC), [], [], {}, targeted=targeted)
    cycle.plans = [TargetPlan("corp", (), conflicts)]
    cycle.observed = {"corp": Observed({})}
    return cycle


def test_a_conflict_clears_only_where_a_cycle_could_see_it(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    standing = StandingConflicts(state)
    with AuditWriter(tmp_path / "audit.jsonl") as audit:
        assert standing.record(plan_of(CONFLICT), audit, "c1")[0] == [CONFLICT]
        assert standing.record(plan_of(CONFLICT), audit, "c2") == ([], [])
        unseen = plan_of()
        unseen.observed = {}  # the target could not be read
        assert standing.record(unseen, audit, "c3") == ([], [])
        others = plan_of(targeted=frozenset({"bo@vendor.example"}))
        assert standing.record(others, audit, "c4") == ([], [])
        assert standing.record(plan_of(), audit, "c5", trusted=False) == ([], [])
        moved = replace(CONFLICT, ref="ana2", reason="username 'ana' is taken by ana2")
        appeared, cleared = standing.record(plan_of(moved), audit, "c6")
        assert appeared == [moved]
        assert [s.conflict for s in cleared] == [CONFLICT]
    state.close()
    assert StandingConflicts(StateDir(tmp_path / "state")).standing.keys() == {
        ("corp", "ana@vendor.example", "ana", "ana2", "username 'ana' is taken by ana2")
    }


def test_an_unreadable_record_of_conflicts_only_records_them_again(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "conflicts.json").write_text("{not json", encoding="utf-8")
    standing = StandingConflicts(StateDir(tmp_path / "state"))
    assert standing.standing == {}
