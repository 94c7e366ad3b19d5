"""``syncd.engine`` against in-memory targets: the one cycle the CLI and the daemon
share. A real config file, a real contract file and a real audit trail in a temporary
folder; the targets the config names are replaced by ``MemoryTarget``s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.audit import AuditWriter
from syncd.audit.verify import verify
from syncd.config import Config, load_config
from syncd.core.model import Action, ActionKind, ObservedAccount, PersonState
from syncd.engine import plan_cycle, read_source, run_cycle, summary_line
from syncd.errors import TemporaryError
from syncd.targets.base import Target
from syncd.targets.memory import MemoryTarget, Unmanaged

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
DEVS, OPS = "cn=devs,dc=example,dc=test", "cn=ops,dc=example,dc=test"


def contract(cid: str, given: str, start: str, end: str, roles: list[str]) -> dict[str, Any]:
    return {
        "id": cid,
        "email": f"{given}@vendor.example",
        "given_name": given.title(),
        "family_name": "Test",
        "username": given,
        "roles": roles,
        "start": start,
        "end": end,
    }


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("BIND_PASSWORD", "unused")
    (tmp_path / "contracts.yaml").write_text(
        yaml.safe_dump(
            {
                "contracts": [
                    contract("C-1", "ana", "2027-01-01", "2027-12-31", ["developer"]),
                    contract("C-2", "ben", "2026-01-01", "2027-02-01", ["developer"]),
                    contract("C-3", "cleo", "2027-01-01", "2027-12-31", ["operator"]),
                ]
            }
        )
    )
    target = {
        "type": "ldap",
        "urls": "ldaps://127.0.0.1:1",
        "bind_user": "cn=syncd,dc=example,dc=test",
        "base_dn": "ou=people,dc=example,dc=test",
        "password_env": "BIND_PASSWORD",
    }
    doc = {
        "source": {"type": "file", "path": "contracts.yaml"},
        "roles": {"developer": {"corp": [DEVS]}, "operator": {"corp": [OPS]}},
        "targets": {"corp": target},
        "audit": {"path": "audit.jsonl"},
    }
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def memory(config: Config, **kw: Any) -> MemoryTarget:
    managed = config.target_policy("corp").managed_groups
    return MemoryTarget("corp", groups={g: set() for g in managed}, managed=managed, **kw)


def targets(target: MemoryTarget) -> dict[str, Target]:
    return {"corp": target}


def account(key: str, username: str) -> ObservedAccount:
    return ObservedAccount(key, f"mem:{username}", username, True, None, True)


def test_a_cycle_plans_from_the_source_and_run_cycle_makes_the_target_hold_it(
    config: Config, tmp_path: Path
) -> None:
    target = memory(config)
    target.accounts["ben@vendor.example"] = account("ben@vendor.example", "ben")
    target.groups[DEVS].add("ben@vendor.example")

    cycle = plan_cycle(config, NOW, targets(target))
    assert cycle.people["ben@vendor.example"].state is PersonState.ENDED
    with AuditWriter(tmp_path / "audit.jsonl") as audit:
        run = run_cycle(cycle, targets(target), audit, "c1", session="sync")

    assert all(r.ok for r in run.reports)
    # the cycle attests what it observed, marking what its own changes corrected
    (attestation,) = run.attestations
    assert {(v.person, v.corrected) for v in attestation.violations} == {
        ("ben@vendor.example", True)
    }
    assert set(target.accounts) == {
        "ana@vendor.example",
        "ben@vendor.example",
        "cleo@vendor.example",
    }
    assert not target.accounts["ben@vendor.example"].enabled
    assert target.groups == {DEVS: {"ana@vendor.example"}, OPS: {"cleo@vendor.example"}}
    again = plan_cycle(config, NOW, targets(target))
    assert summary_line(again) == "Summary: nothing to do"


def test_run_cycle_brackets_a_one_shot_session_and_records_a_mass_change(
    config: Config, tmp_path: Path
) -> None:
    target = memory(config)
    trail = tmp_path / "audit.jsonl"
    cycle = plan_cycle(config, NOW, targets(target), allow_mass_change=True)
    with AuditWriter(trail) as audit:
        run_cycle(cycle, targets(target), audit, "c1", session="sync", mass_change=True)
    with AuditWriter(trail) as audit:
        run_cycle(plan_cycle(config, NOW, targets(target)), targets(target), audit, "c2")

    records = [json.loads(line) for line in trail.read_text().splitlines()]
    events = [
        (r["activity_name"], r["message"])
        for r in records
        if r["metadata"]["correlation_uid"] == "c1" and r["class_uid"] == 1008
    ]
    assert [name for name, _ in events] == ["Start", "Safety Override", "Stop"]
    assert events[0][1] == "sync started"
    assert "--allow-mass-change" in events[1][1]
    assert events[2][1].startswith("sync finished: Summary: 2 create")
    # a cycle of the daemon (no session) writes no start or stop of its own, only the
    # attestation of each target
    c2 = [r for r in records if r["metadata"]["correlation_uid"] == "c2"]
    assert [r["unmapped"]["phase"] for r in c2] == ["attestation"]
    assert verify([trail]).ok


def test_conflicts_come_from_the_target_and_block_only_that_person(
    config: Config, tmp_path: Path
) -> None:
    target = memory(config)
    target.unmanaged.append(Unmanaged("ana"))

    cycle = plan_cycle(config, NOW, targets(target))

    (plan,) = cycle.plans
    assert [(c.person, c.reason) for c in plan.conflicts] == [
        ("ana@vendor.example", "username 'ana' is taken by an unmanaged account")
    ]
    assert {a.person for a in plan.actions} == {"cleo@vendor.example"}


def test_missing_groups_are_kept_for_the_report(config: Config) -> None:
    target = memory(config)
    del target.groups[OPS]

    cycle = plan_cycle(config, NOW, targets(target))

    assert cycle.observed["corp"].missing_groups == frozenset({OPS})


def test_a_target_that_cannot_be_observed_gets_no_plan_and_the_others_go_on(
    config: Config,
) -> None:
    class Down(MemoryTarget):
        def observe(self) -> Any:
            raise TemporaryError("down: connection failed", code=0)

    down = Down("down")
    cycle = plan_cycle(config, NOW, {"corp": memory(config)}, source=read_source(config))
    assert cycle.errors == {}
    cycle = plan_cycle(config, NOW, {"corp": down})
    assert cycle.errors == {"corp": "down: connection failed"}
    assert cycle.plans == []


def test_a_write_a_crash_left_without_outcome_is_settled_from_what_the_target_holds(
    config: Config, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.jsonl"
    target = memory(config)
    cycle = plan_cycle(config, NOW, targets(target))
    create_ana = next(a for a in cycle.plans[0].actions if a.username == "ana")
    with AuditWriter(trail) as audit:  # the intent is on disk, then the process dies
        audit.intent(create_ana, "c1")
        audit.sync()
    target.accounts["ana@vendor.example"] = account("ana@vendor.example", "ana")

    with AuditWriter(trail) as audit:
        run_cycle(plan_cycle(config, NOW, targets(target)), targets(target), audit, "c2")

    records = [json.loads(line) for line in trail.read_text().splitlines()]
    settled = [r for r in records if r["unmapped"].get("observed") is True]
    assert [(r["user"]["name"], r["status"]) for r in settled] == [("ana", "Success")]
    assert verify([trail]).ok


def test_the_memory_target_is_a_target() -> None:
    kind = ActionKind.CREATE
    target: Target = MemoryTarget("m", batch_size=7)
    assert target.batch_size == 7
    outcomes: list[Any] = []
    target.apply([Action("m", kind, "p", "u", None, "r")], outcomes.append)
    assert [o.ok for o in outcomes] == [True]
