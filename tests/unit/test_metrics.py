"""``syncd.metrics``: what one recorded cycle puts into the exported series.

The names and labels are a contract with ``config/alerts.yaml`` and the dashboards that
``docs/operations.md`` describes; these tests pin their values for a cycle built by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.apply import ApplyReport
from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Conflict,
    Contract,
    InvalidRecord,
    Observed,
    ObservedAccount,
    Outcome,
    Person,
    PersonState,
    TargetPlan,
)
from syncd.core.policy import Policy
from syncd.engine import CyclePlan
from syncd.metrics import CycleResult, Metrics

AT = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ANA, BEN = "ana@vendor.example", "ben@vendor.example"


def contract(cid: str, person: str, start_days: int, end_days: int) -> Contract:
    return Contract(
        id=cid,
        person=person,
        email=person,
        given_name="Per",
        family_name="Son",
        username=person.split("@")[0],
        roles=("developer",),
        start=AT + timedelta(days=start_days),
        end=AT + timedelta(days=end_days),
    )


def person(key: str, state: PersonState, access_end: datetime | None, last_end: datetime) -> Person:
    return Person(
        key=key,
        state=state,
        username=key.split("@")[0],
        email=key,
        given_name="Per",
        family_name="Son",
        vendor="",
        sponsor="",
        roles=frozenset(),
        contract_ids=(),
        access_end=access_end,
        last_end=last_end,
        next_start=None,
        reason="",
    )


def action(kind: ActionKind, key: str, cause: Cause = Cause.CONTRACT, held: str = "") -> Action:
    return Action("corp", kind, key, key.split("@")[0], f"mem:{key}", "why", cause=cause, held=held)


def account(key: str, enabled: bool) -> ObservedAccount:
    return ObservedAccount(key, f"mem:{key}", key.split("@")[0], enabled, None, True)


def cycle(plan: TargetPlan) -> CyclePlan:
    return CyclePlan(
        at=AT,
        contracts=[
            contract("C-1", ANA, -10, 10),
            contract("C-2", BEN, -10, 0),
            contract("C-3", "cleo@vendor.example", 5, 10),
        ],
        invalid=[InvalidRecord("contracts.yaml:9", "C-9", "", "end", "end before start")],
        people={
            ANA: person(ANA, PersonState.ACTIVE, AT + timedelta(days=10), AT + timedelta(days=10)),
            BEN: person(BEN, PersonState.ENDED, None, AT - timedelta(seconds=2)),
        },
        plans=[plan],
        observed={"corp": Observed({ANA: account(ANA, True), BEN: account(BEN, True)})},
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_cycle_is_recorded_in_every_series() -> None:
    disable_ben = action(ActionKind.DISABLE, BEN)
    add_ana = action(ActionKind.ADD_MEMBER, ANA)
    held = action(ActionKind.DELETE, "old@vendor.example", Cause.ORPHAN, held="over max_deletes")
    conflict = Conflict("corp", "dan@vendor.example", "dan", "uid=dan", "username taken")
    plan = TargetPlan("corp", (disable_ben, add_ana, held), conflicts=(conflict,))
    report = ApplyReport(
        "corp", done=[Outcome(disable_ben, True)], failed=[Outcome(add_ana, False, "refused")]
    )
    metrics = Metrics()
    finished = AT.timestamp() + 1

    metrics.record_cycle(
        cycle(plan),
        [report],
        policy=Policy(),
        result=CycleResult.FAILED,
        seconds=0.25,
        finished=finished,
    )

    assert sample(metrics, "syncd_cycle_duration_seconds_sum") == 0.25
    assert sample(metrics, "syncd_cycles_total", result="failed") == 1
    assert sample(metrics, "syncd_last_success_timestamp_seconds") == 0  # not a success
    assert sample(metrics, "syncd_invalid_records") == 1
    for state, count in (("active", 1), ("ended", 1), ("future", 1)):
        assert sample(metrics, "syncd_contracts", state=state) == count, state
    assert sample(metrics, "syncd_managed_accounts", target="corp", state="enabled") == 2
    assert sample(metrics, "syncd_managed_accounts", target="corp", state="disabled") == 0
    assert sample(metrics, "syncd_safety_held_actions", target="corp") == 1
    assert sample(metrics, "syncd_conflicts", target="corp") == 1
    for kind, result in (("disable", "success"), ("add_member", "failure"), ("delete", "held")):
        assert sample(metrics, "syncd_actions_total", target="corp", kind=kind, result=result) == 1
    assert sample(metrics, "syncd_expiry_lag_seconds_count") == 1
    assert sample(metrics, "syncd_expiry_lag_seconds_sum") == pytest.approx(3)  # 2 s + 1 s
    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == 0
    assert (
        sample(metrics, "syncd_next_expiry_timestamp_seconds")
        == (AT + timedelta(days=10)).timestamp()
    )


@pytest.mark.parametrize(
    ("done", "failed", "skipped", "still_enabled"),
    [
        pytest.param([True], [], [], 0, id="disabled"),
        pytest.param([], [False], [], 1, id="refused"),
        pytest.param([], [None], [], 1, id="outcome-unknown"),
        pytest.param([], [], [ActionKind.DISABLE], 1, id="never-sent"),
    ],
)
def test_an_ended_account_that_was_not_disabled_counts_as_expired_and_enabled(
    done: list[bool], failed: list[bool | None], skipped: list[ActionKind], still_enabled: int
) -> None:
    disable = action(ActionKind.DISABLE, BEN)
    report = ApplyReport(
        "corp",
        done=[Outcome(disable, ok) for ok in done],
        failed=[Outcome(disable, ok) for ok in failed],
        skipped=[action(kind, BEN) for kind in skipped],
    )
    metrics = Metrics()

    metrics.record_cycle(
        cycle(TargetPlan("corp", (disable,))),
        [report],
        policy=Policy(),
        result=CycleResult.OK,
        seconds=0.1,
        finished=AT.timestamp(),
    )

    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == still_enabled


def test_an_orphan_disable_is_no_expiry() -> None:
    disable = action(ActionKind.DISABLE, BEN, Cause.ORPHAN)
    metrics = Metrics()

    metrics.record_cycle(
        cycle(TargetPlan("corp", (disable,))),
        [ApplyReport("corp", failed=[Outcome(disable, False)])],
        policy=Policy(),
        result=CycleResult.FAILED,
        seconds=0.1,
        finished=AT.timestamp(),
    )

    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == 0
    assert sample(metrics, "syncd_expiry_lag_seconds_count") == 0


@pytest.mark.parametrize("result", list(CycleResult))
def test_only_ok_and_held_cycles_are_a_success(result: CycleResult) -> None:
    metrics = Metrics()

    metrics.record_cycle(
        cycle(TargetPlan("corp", ())),
        [],
        policy=Policy(),
        result=result,
        seconds=0.1,
        finished=AT.timestamp(),
    )

    succeeded = result in (CycleResult.OK, CycleResult.HELD)
    assert sample(metrics, "syncd_last_success_timestamp_seconds") == (
        AT.timestamp() if succeeded else 0
    )
    assert sample(metrics, "syncd_cycles_total", result=result.value) == 1


def test_source_reads_interval_and_failed_cycles() -> None:
    metrics = Metrics()
    metrics.source_ok_at = 0.0

    metrics.source_read(ok=False)
    assert sample(metrics, "syncd_source_failures_total") == 1
    assert (sample(metrics, "syncd_source_age_seconds") or 0) > 1e9  # never read well
    metrics.source_read(ok=True)
    assert (sample(metrics, "syncd_source_age_seconds") or 0) < 60
    metrics.set_interval(300)
    assert sample(metrics, "syncd_daemon_interval_seconds") == 300
    metrics.cycle_failed(CycleResult.SOURCE_ERROR)
    assert sample(metrics, "syncd_cycles_total", result="source_error") == 1
