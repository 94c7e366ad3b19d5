"""``syncd.apply`` against the in-memory target: chunking by kind and batch size, intents
on disk before each chunk is sent, skipping after a failed create, an unreachable
target, and stopping between chunks. The trail is a real one in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.apply import apply_plan
from syncd.audit import AuditWriter
from syncd.audit.verify import verify
from syncd.core.model import Action, ActionKind, ObservedAccount, TargetPlan
from syncd.errors import PermanentError, TargetError, TemporaryError
from syncd.targets.memory import MemoryTarget

GROUP = "cn=devs"


def create(i: int) -> Action:
    return Action("mem", ActionKind.CREATE, f"p{i}", f"user{i}", None, "contract in effect")


def add(i: int) -> Action:
    return Action("mem", ActionKind.ADD_MEMBER, f"p{i}", f"user{i}", None, "role", group=GROUP)


def disable(i: int) -> Action:
    return Action("mem", ActionKind.DISABLE, f"p{i}", f"user{i}", f"mem:user{i}", "ended")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def phases(path: Path) -> list[tuple[str, str]]:
    """(phase, username) of each action record, in trail order."""
    return [
        (r["unmapped"]["phase"], r["user"]["name"])
        for r in records(path)
        if r.get("user") and "phase" in r.get("unmapped", {})
    ]


def run(target: MemoryTarget, actions: list[Action], trail: Path, **kw: Any) -> Any:
    with AuditWriter(trail) as audit:
        return apply_plan(TargetPlan("mem", tuple(actions)), target, audit, "c1", **kw)


def test_actions_go_out_in_chunks_of_one_kind_and_the_targets_batch_size(tmp_path: Path) -> None:
    target = MemoryTarget("mem", groups={GROUP: set()}, batch_size=2)
    actions = [create(i) for i in range(5)] + [add(i) for i in range(3)]

    report = run(target, actions, tmp_path / "audit.jsonl")

    assert target.batches == [
        (ActionKind.CREATE, 2),
        (ActionKind.CREATE, 2),
        (ActionKind.CREATE, 1),
        (ActionKind.ADD_MEMBER, 2),
        (ActionKind.ADD_MEMBER, 1),
    ]
    assert report.ok
    assert len(report.done) == 8
    assert target.groups[GROUP] == {"p0", "p1", "p2"}
    assert set(target.accounts) == {f"p{i}" for i in range(5)}


def test_a_burst_starts_with_small_chunks_so_the_first_disables_land_at_once(
    tmp_path: Path,
) -> None:
    # 50 first, then doubling up to the batch size: the first outcomes are written after
    # 50 writes and their read-back, not after a thousand. Other kinds go out whole.
    target = MemoryTarget("mem", groups={GROUP: set()}, batch_size=300)
    for i in range(1000):
        target.accounts[f"p{i}"] = ObservedAccount(
            f"p{i}", f"mem:user{i}", f"user{i}", True, None, False
        )
    actions = [disable(i) for i in range(1000)] + [add(i) for i in range(280)]

    report = run(target, actions, tmp_path / "audit.jsonl")

    disables = [(ActionKind.DISABLE, n) for n in (50, 100, 200, 300, 300, 50)]
    assert target.batches == [*disables, (ActionKind.ADD_MEMBER, 280)]
    assert len(report.done) == 1280
    assert not any(account.enabled for account in target.accounts.values())


def test_every_intent_of_a_chunk_is_on_disk_before_the_chunk_is_sent(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    on_disk_when_sent: list[list[tuple[str, str]]] = []

    def look(action: Action) -> TargetError | None:
        on_disk_when_sent.append(phases(trail))
        return None

    target = MemoryTarget("mem", batch_size=3, fault=look)
    run(target, [create(i) for i in range(3)], trail)

    first_send = on_disk_when_sent[0]
    assert first_send == [("intent", f"user{i}") for i in range(3)]
    assert verify([trail]).ok


def test_a_failed_create_skips_the_rest_of_that_persons_actions(tmp_path: Path) -> None:
    def refuse_p1(action: Action) -> TargetError | None:
        if action.kind is ActionKind.CREATE and action.person == "p1":
            return PermanentError("mem: constraint violation")
        return None

    target = MemoryTarget("mem", groups={GROUP: set()}, fault=refuse_p1)
    trail = tmp_path / "audit.jsonl"
    report = run(target, [create(0), create(1), add(0), add(1)], trail)

    assert [o.action.person for o in report.failed] == ["p1"]
    assert [(a.kind, a.person) for a in report.skipped] == [(ActionKind.ADD_MEMBER, "p1")]
    assert target.groups[GROUP] == {"p0"}
    outcome = [r for r in records(trail) if r["unmapped"].get("phase") == "outcome"]
    assert [(r["user"]["name"], r["status"]) for r in outcome] == [
        ("user0", "Success"),
        ("user1", "Failure"),
        ("user0", "Success"),
    ]


def test_an_unreachable_target_gets_nothing_more_and_unanswered_writes_are_unknown(
    tmp_path: Path,
) -> None:
    def down_from_p2(action: Action) -> TargetError | None:
        return TemporaryError("mem: connection failed") if action.person == "p2" else None

    target = MemoryTarget("mem", batch_size=3, fault=down_from_p2)
    target.accounts.update({f"p{i}": _account(i) for i in range(6)})
    trail = tmp_path / "audit.jsonl"
    report = run(target, [disable(i) for i in range(6)], trail)

    assert "unavailable" in report.unavailable
    assert not report.ok
    assert [o.action.person for o in report.done] == ["p0", "p1"]
    assert [(o.action.person, o.ok) for o in report.failed] == [("p2", None)]
    # every action is accounted for: none is lost between "sent" and "not attempted"
    assert [a.person for a in report.skipped] == ["p3", "p4", "p5"]
    assert target.batches == [(ActionKind.DISABLE, 3)]  # nothing sent after the failure
    unknown = [r for r in records(trail) if "outcome unknown" in r.get("status_detail", "")]
    assert [r["user"]["name"] for r in unknown] == ["user2"]
    assert verify([trail]).ok


def test_stopping_lets_the_chunk_in_flight_finish_and_sends_no_more(tmp_path: Path) -> None:
    target = MemoryTarget("mem", batch_size=2)
    target.accounts.update({f"p{i}": _account(i) for i in range(5)})

    def stopping() -> bool:
        return len(target.batches) >= 1

    report = run(target, [disable(i) for i in range(5)], tmp_path / "a.jsonl", stopping=stopping)

    assert target.batches == [(ActionKind.DISABLE, 2)]
    assert [o.action.person for o in report.done] == ["p0", "p1"]
    assert [a.person for a in report.skipped] == ["p2", "p3", "p4"]
    assert not target.accounts["p0"].enabled
    assert target.accounts["p2"].enabled


def test_held_actions_and_conflicts_are_recorded_but_never_sent(tmp_path: Path) -> None:
    held = Action("mem", ActionKind.DISABLE, "p9", "user9", "mem:user9", "orphan", held="limit")
    target = MemoryTarget("mem")
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        report = apply_plan(TargetPlan("mem", (held,)), target, audit, "c1")

    assert target.batches == []
    assert report.ok
    assert [phase for phase, _ in phases(trail)] == ["held"]


def _account(i: int) -> ObservedAccount:
    return ObservedAccount(f"p{i}", f"mem:user{i}", f"user{i}", True, None, True)


@pytest.mark.parametrize("kind", [ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER])
def test_memory_target_refuses_unknown_groups_like_a_directory(kind: ActionKind) -> None:
    target = MemoryTarget("mem")
    target.accounts["p0"] = _account(0)
    outcomes: list[Any] = []
    target.apply(
        [Action("mem", kind, "p0", "user0", "mem:user0", "r", group="cn=x")], outcomes.append
    )
    assert [o.ok for o in outcomes] == [False]
    assert "no group cn=x" in outcomes[0].detail


def test_each_chunk_is_read_back_once_and_the_outcome_says_what_the_target_holds(
    tmp_path: Path,
) -> None:
    target = MemoryTarget("mem", batch_size=2)
    target.accounts.update({f"p{i}": _account(i) for i in range(3)})
    trail = tmp_path / "audit.jsonl"

    report = run(target, [disable(i) for i in range(3)], trail)

    assert target.reads == [(2, 0), (1, 0)]  # one read per chunk, not per account
    assert [o.verified for o in report.done] == [True, True, True]
    outcomes = [r for r in records(trail) if r["unmapped"].get("phase") == "outcome"]
    assert {r["unmapped"]["verified"] for r in outcomes} == {True}
    assert outcomes[0]["unmapped"]["readback"] == {"enabled": ["false"]}


def test_a_write_the_target_answered_but_did_not_keep_is_a_failure(tmp_path: Path) -> None:
    target = MemoryTarget("mem", keeps=lambda before, _after: before)  # answers, keeps nothing
    target.accounts["p0"] = _account(0)
    trail = tmp_path / "audit.jsonl"

    report = run(target, [disable(0)], trail)

    (failed,) = report.failed
    assert failed.verified is False
    assert failed.detail == "mem reports the account is still enabled after disable (enabled: true)"
    (outcome,) = [r for r in records(trail) if r["unmapped"].get("phase") == "outcome"]
    assert outcome["status"] == "Failure"
    assert outcome["unmapped"]["verified"] is False
    assert outcome["unmapped"]["readback"] == {"enabled": ["true"]}


def test_members_outside_the_managed_scope_that_change_under_a_write_are_collateral(
    tmp_path: Path,
) -> None:
    target = MemoryTarget("mem", groups={GROUP: {"outsider", "other"}})
    target.accounts["p0"] = _account(0)

    def server_wipes_others(action: Action) -> TargetError | None:
        target.groups[GROUP].difference_update({"outsider", "other"})
        return None

    target.fault = server_wipes_others
    trail = tmp_path / "audit.jsonl"
    report = run(target, [add(0)], trail)

    assert target.groups[GROUP] == {"p0"}  # never repaired
    assert [(c.group, c.vanished, c.appeared) for c in report.collateral] == [
        (GROUP, frozenset({"outsider", "other"}), frozenset())
    ]
    assert [o.verified for o in report.done] == [True]
    (record,) = [r for r in records(trail) if r["unmapped"].get("phase") == "collateral"]
    assert record["unmapped"]["vanished"] == ["other", "outsider"]
    assert record["group"]["uid"] == GROUP
    assert verify([trail]).ok


def test_the_observation_is_the_picture_of_a_group_before_the_writes(tmp_path: Path) -> None:
    # The cycle's observation read the group whole: no second read before the writes,
    # and a member that vanished since the observation is collateral of the chunk.
    target = MemoryTarget("mem", groups={GROUP: {"outsider", "other"}})
    target.accounts["p0"] = _account(0)
    observed = target.observe()
    target.groups[GROUP].discard("other")
    trail = tmp_path / "audit.jsonl"

    with AuditWriter(trail) as audit:
        plan = TargetPlan("mem", (add(0),))
        report = apply_plan(plan, target, audit, "c1", observed=observed)

    assert observed.others == {GROUP: frozenset({"outsider", "other"})}
    assert target.reads == [(0, 1)]  # the read-back alone
    assert [(c.group, c.vanished) for c in report.collateral] == [(GROUP, frozenset({"other"}))]
    assert target.groups[GROUP] == {"p0", "outsider"}


def test_a_failed_read_back_leaves_outcomes_as_answered_and_unverified(tmp_path: Path) -> None:
    class Unreadable(MemoryTarget):
        def read_back(self, kind: Any, *asked: Any) -> Any:
            raise PermanentError("mem: read refused")

    target = Unreadable("mem")
    target.accounts["p0"] = _account(0)
    report = run(target, [disable(0)], tmp_path / "audit.jsonl")

    assert [(o.ok, o.verified) for o in report.done] == [(True, None)]
