"""Every kind of record the writer makes is a valid OCSF 1.3.0 event of its class
(checked offline with ``tests.audit.ocsf``): intents, verified and failed outcomes,
held actions, conflicts, collateral changes, run events, headers, seals, checkpoints
and settled intents."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from syncd.audit import AuditWriter
from syncd.audit.records import START, STOP
from syncd.audit.settle import settle_pending
from syncd.audit.writer import WriterOptions, rotated_files
from syncd.config.ha import HaConfig
from syncd.core.model import (
    Action,
    ActionKind,
    Collateral,
    Conflict,
    ObservedAccount,
    Outcome,
)
from syncd.ha.election import Change
from syncd.ha.role import record_change
from tests.audit.ocsf import problems

END = datetime(2027, 6, 30, tzinfo=UTC)


def _action(kind: ActionKind, group: str = "", held: str = "") -> Action:
    return Action(
        "corp",
        kind,
        "ana@v.example",
        "ana",
        "uid=ana,ou=c",
        "why",
        ("C-1",),
        group=group,
        held=held,
    )


def test_every_record_kind_is_valid_for_its_class(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    disable = _action(ActionKind.DISABLE)
    add = _action(ActionKind.ADD_MEMBER, group="cn=devs,ou=g")
    lost = _action(ActionKind.REVOKE_CREDENTIALS)
    with AuditWriter(trail, WriterOptions(rotate_bytes=4000, checkpoint_records=3)) as audit:
        audit.event(START, "Start", "sync started", "c1", targets=["corp"])
        for action in (disable, add, lost):
            audit.intent(action, "c1")
        audit.sync()
        audit.outcome(Outcome(disable, True, "", verified=True, observed={"x": ("1",)}), "c1")
        audit.outcome(Outcome(add, False, "corp reports not a member", verified=False), "c1")
        audit.held(_action(ActionKind.DELETE, held="limit"), "c1")
        conflict = Conflict("corp", "bo@v.example", "bo", "uid=bo,ou=x", "taken", ("C-7",))
        audit.conflict(conflict, "c1")
        audit.conflict_cleared(conflict, END, "c1")
        audit.collateral(Collateral("corp", "cn=devs,ou=g", frozenset({"a"}), frozenset()), "c1")
        audit.event(STOP, "Stop", "sync finished", "c1")
    with AuditWriter(trail, WriterOptions(rotate_bytes=4000)) as audit:  # ``lost`` is open
        account = ObservedAccount("ana@v.example", "uid=ana,ou=c", "ana", False, END, False)
        settle_pending(audit, {"corp": {"ana@v.example": account}}, "c2")

    files = [*rotated_files(trail), trail]
    records = [json.loads(line) for f in files for line in f.open()]
    phases = {r["unmapped"].get("phase", r.get("activity_name")) for r in records}
    assert {"intent", "outcome", "held", "conflict", "collateral", "header", "Start"} <= phases
    assert "conflict_cleared" in phases
    conflicts = [r for r in records if r["unmapped"].get("phase", "").startswith("conflict")]
    assert [r["unmapped"]["contract_ids"] for r in conflicts] == [["C-7"], ["C-7"]]
    assert {"seal", "checkpoint"} & phases
    for record in records:
        assert problems(record) == [], record


def test_leadership_records_are_valid_event_log_records(tmp_path: Path) -> None:
    """With ha:, each host's trail records leadership acquired and lost (Event Log
    Activity) with what stitches the hosts' trails: member, lease id, etcd revision."""
    trail = tmp_path / "audit.jsonl"
    config = HaConfig(name="idm2")
    with AuditWriter(trail, WriterOptions(), "run-1") as audit:
        record_change(audit, config, Change(True, 0x694D8D2A7C31B20F, 48213, "the key was free"))
        record_change(audit, config, Change(False, 0x694D8D2A7C31B20F, 48300, "handed over"))
    records = [json.loads(line) for line in trail.open()]
    leadership = [r for r in records if r["activity_name"].startswith("Leadership")]
    assert [r["activity_name"] for r in leadership] == ["Leadership Acquired", "Leadership Lost"]
    assert leadership[0]["unmapped"]["lease_id"] == "694d8d2a7c31b20f"
    assert [r["unmapped"]["etcd_revision"] for r in leadership] == [48213, 48300]
    assert {r["unmapped"]["member"] for r in leadership} == {"idm2"}
    assert {r["class_uid"] for r in leadership} == {1008}
    for record in records:
        assert problems(record) == [], record
