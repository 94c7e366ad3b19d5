"""``syncd.metrics``: what one recorded cycle puts into the exported series.

The names and labels are a contract with ``config/alerts.yaml`` and the dashboards that
``docs/operations.md`` describes; these tests pin their values for a cycle built by hand.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from syncd.apply import ApplyReport
from syncd.core.attest import Attestation, attest
from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Collateral,
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
from syncd.core.policy import Policy, TargetPolicy
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


def attested(cycle: CyclePlan, *reports: ApplyReport) -> list[Attestation]:
    """The cycle's attestations, as the daemon makes them."""
    outcomes = [o for r in reports for o in (*r.done, *r.failed)]
    return [
        attest(TargetPolicy(name, native_expiry=False), cycle.people, observed, AT, outcomes)
        for name, observed in cycle.observed.items()
    ]


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
    planned = cycle(plan)

    metrics.record_cycle(
        planned,
        [report],
        policy=Policy(),
        result=CycleResult.FAILED,
        seconds=0.25,
        finished=finished,
        attestations=attested(planned, report),
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
    for kind in ("ended_enabled", "ungranted_group", "credentials_on_disabled"):
        assert sample(metrics, "syncd_attestation_violations", target="corp", kind=kind) == 0
    assert sample(metrics, "syncd_unverified_changes_total", target="corp", kind="disable") == 0
    assert sample(metrics, "syncd_collateral_changes_total", target="corp") == 0
    assert (
        sample(metrics, "syncd_next_expiry_timestamp_seconds")
        == (AT + timedelta(days=10)).timestamp()
    )


@pytest.mark.parametrize(
    ("done", "failed", "skipped", "still_enabled"),
    [
        pytest.param([(True, None)], [], [], 0, id="disabled"),
        pytest.param([(True, True)], [], [], 0, id="disabled-and-read-back"),
        pytest.param([], [(False, False)], [], 1, id="read-back-shows-it-enabled"),
        pytest.param([], [(False, None)], [], 1, id="refused"),
        pytest.param([], [(None, None)], [], 1, id="outcome-unknown"),
        pytest.param([], [], [ActionKind.DISABLE], 1, id="never-sent"),
        pytest.param([], [], [], 1, id="not-planned"),
    ],
)
def test_an_ended_account_observed_enabled_counts_until_a_disable_holds(
    done: list[tuple[bool, bool | None]],
    failed: list[tuple[bool | None, bool | None]],
    skipped: list[ActionKind],
    still_enabled: int,
) -> None:
    """From what observe() saw (BEN's access ended, his account is enabled), less what
    the cycle's own disable put right: whatever the reason it was not."""
    disable = action(ActionKind.DISABLE, BEN)
    report = ApplyReport(
        "corp",
        done=[Outcome(disable, ok, verified=verified) for ok, verified in done],
        failed=[Outcome(disable, ok, verified=verified) for ok, verified in failed],
        skipped=[action(kind, BEN) for kind in skipped],
    )
    planned = cycle(TargetPlan("corp", (disable,)))
    metrics = Metrics()

    metrics.record_cycle(
        planned,
        [report],
        policy=Policy(),
        result=CycleResult.OK,
        seconds=0.1,
        finished=AT.timestamp(),
        attestations=attested(planned, report),
    )

    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == still_enabled
    violations = {"target": "corp", "kind": "ended_enabled"}
    assert sample(metrics, "syncd_attestation_violations", **violations) == still_enabled


def test_an_orphan_disable_is_no_expiry() -> None:
    disable = action(ActionKind.DISABLE, BEN, Cause.ORPHAN)
    planned = cycle(TargetPlan("corp", (disable,)))
    del planned.people[BEN]  # absent from the source: an orphan, not an ended contract
    report = ApplyReport("corp", failed=[Outcome(disable, False)])
    metrics = Metrics()

    metrics.record_cycle(
        planned,
        [report],
        policy=Policy(),
        result=CycleResult.FAILED,
        seconds=0.1,
        finished=AT.timestamp(),
        attestations=attested(planned, report),
    )

    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == 0
    assert sample(metrics, "syncd_expiry_lag_seconds_count") == 0


def test_attestation_violations_by_kind() -> None:
    planned = cycle(TargetPlan("corp", ()))
    planned.observed["corp"] = Observed(
        {
            ANA: account(ANA, True),
            BEN: replace(account(BEN, False), groups=frozenset({"cn=ops"})),
        }
    )
    metrics = Metrics()

    metrics.record_cycle(
        planned,
        [ApplyReport("corp")],
        policy=Policy(),
        result=CycleResult.OK,
        seconds=0.1,
        finished=AT.timestamp(),
        attestations=attested(planned),
    )

    def violations(kind: str) -> float | None:
        return sample(metrics, "syncd_attestation_violations", target="corp", kind=kind)

    assert violations("ungranted_group") == 1
    assert violations("credentials_on_disabled") == 1  # BEN's account has credentials
    assert violations("ended_enabled") == 0
    assert violations("expiry_beyond_end") == 0  # the target keeps no native expiry
    assert sample(metrics, "syncd_expired_enabled_accounts", target="corp") == 0


def test_unverified_and_collateral_changes_are_counted() -> None:
    remove = action(ActionKind.REMOVE_MEMBER, BEN)
    disable = action(ActionKind.DISABLE, BEN)
    report = ApplyReport(
        "corp",
        done=[Outcome(remove, True, verified=True)],
        failed=[
            Outcome(disable, False, "pwdAccountLockedTime absent after disable", verified=False),
            Outcome(remove, False, "refused"),  # not read back: not an unverified change
        ],
        collateral=[
            Collateral("corp", "cn=ops", frozenset({"uid=x"}), frozenset()),
            Collateral("corp", "cn=devs", frozenset(), frozenset({"uid=y", "uid=z"})),
        ],
    )
    planned = cycle(TargetPlan("corp", (disable, remove)))
    metrics = Metrics()

    metrics.record_cycle(
        planned,
        [report],
        policy=Policy(),
        result=CycleResult.FAILED,
        seconds=0.1,
        finished=AT.timestamp(),
        attestations=attested(planned, report),
    )

    def unverified(kind: str) -> float | None:
        return sample(metrics, "syncd_unverified_changes_total", target="corp", kind=kind)

    assert unverified("disable") == 1
    assert unverified("remove_member") == 0
    assert sample(metrics, "syncd_collateral_changes_total", target="corp") == 2


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
        attestations=[],
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
