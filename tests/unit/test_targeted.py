"""Targeted boundary cycles (``syncd.core.boundaries``, ``syncd.engine.plan_targeted``,
``syncd.targeted``): the plan over the people changing at a boundary is the full plan
restricted to them, nobody whose state changes is left out, and the daemon runs one
when only a boundary is due. The worlds are those of ``tests.unit.test_properties``."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd import targeted
from syncd.core.boundaries import Timeline, changing, grace_ends, next_grace_end, vanguard
from syncd.core.desired import next_boundary, resolve
from syncd.core.model import ActionKind, Cause, Contract, Observed, TargetPlan
from syncd.core.plan import plan_with_waits
from syncd.core.policy import Policy
from syncd.engine import SourceRead
from syncd.errors import TargetError
from syncd.targeted import Basis
from syncd.targets import base
from syncd.watch import Schedule
from tests.unit.test_daemon import (
    ANA,
    BO,
    DEVS,
    Bench,
    bench,
    contract,
    disabled_at,
    in_days,
    seconds_ahead,
    wait_for,
)
from tests.unit.test_properties import NOW, SETTINGS, World, _six_hours, bits, simulate, worlds


def targeted_plan(world: World, keys: frozenset[str], **kwargs: object) -> TargetPlan:
    """What a targeted cycle plans: the contracts and accounts of ``keys`` alone, limits
    taken of every managed account (the last full observation's count)."""
    people = resolve([c for c in world.contracts if c.person in keys], world.policy, NOW)
    accounts = {k: a for k, a in world.accounts.items() if k in keys}
    return plan_with_waits(
        world.target,
        people,
        Observed(MappingProxyType(accounts)),
        NOW,
        delete_after=world.delete_after,
        managed=len(world.accounts),
        **kwargs,  # type: ignore[arg-type]
    ).plan


@SETTINGS
@given(
    worlds(limits=True, crowd=4),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=0, max_value=255),
    st.booleans(),
)
def test_a_targeted_plan_is_the_full_plan_restricted_to_its_people(
    world: World, steps: int, mask: int, expiries_only: bool
) -> None:
    after = NOW - _six_hours(steps)
    everyone = sorted({c.person for c in world.contracts} | set(world.accounts))
    keys = changing(world.contracts, world.policy, after, NOW, {}) | set(bits(mask, everyone))
    full = world.plan(expiries_only=expiries_only)
    targeted = targeted_plan(world, frozenset(keys), expiries_only=expiries_only)
    restricted = [a for a in full.actions if a.person in keys]
    assert [replace(a, held="") for a in targeted.actions] == [
        replace(a, held="") for a in restricted
    ]
    # The same verdicts, except that a limit the whole scope's orphans reach may not be
    # reached by the few a targeted cycle sees: it never does what a full cycle holds
    # not, and a contract's own end is never held.
    for mine, theirs in zip(targeted.actions, restricted, strict=True):
        assert not mine.held or theirs.held
        if not full.held:
            assert mine == theirs
        assert not (
            mine.held and mine.cause is Cause.CONTRACT and mine.kind is not ActionKind.DELETE
        )
    assert targeted.managed == full.managed
    assert {c.person for c in targeted.conflicts} <= {c.person for c in full.conflicts}


@SETTINGS
@given(worlds(), st.integers(min_value=1, max_value=12), st.booleans())
def test_nobody_whose_state_changes_is_left_out(world: World, steps: int, grace: bool) -> None:
    """Converge at ``after``; at ``NOW`` the full plan acts only on the people that
    ``changing`` names (deletes wait for the poll: ``delete_after`` is no boundary)."""
    after = NOW - _six_hours(steps)
    orphan_grace = _six_hours(steps) if grace else timedelta(0)
    absent = {k: after for k in world.accounts if k not in {c.person for c in world.contracts}}
    at_after = plan_with_waits(
        world.target,
        resolve(world.contracts, world.policy, after),
        world.observed(),
        after,
        allow_mass_change=True,
        absent_since=absent,
        orphan_grace=orphan_grace,
    )
    converged = simulate(world.accounts, at_after.plan.actions)
    now = plan_with_waits(
        world.target,
        world.people(),
        world.observed(converged),
        NOW,
        allow_mass_change=True,
        absent_since=absent,
        orphan_grace=orphan_grace,
    )
    graces = grace_ends(absent, orphan_grace)
    keys = changing(world.contracts, world.policy, after, NOW, graces)
    acted = {a.person for a in now.plan.actions if a.kind is not ActionKind.DELETE}
    assert acted <= keys


@SETTINGS
@given(
    worlds(limits=True, crowd=4),
    st.integers(min_value=-12, max_value=12),
    st.integers(min_value=0, max_value=12),
    st.integers(min_value=0, max_value=3),
    st.booleans(),
)
def test_the_timeline_answers_as_the_scans_of_the_contracts(
    world: World, back: int, width: int, size: int, grace: bool
) -> None:
    """What a boundary asks the timeline made at the full cycle (by bisection) is what
    scanning every contract says: who changes, the next boundary, a burst's vanguard."""
    after = NOW - _six_hours(back)
    upto = after + _six_hours(width)
    people = sorted({c.person for c in world.contracts})
    graces = {"gone@vendor.test": after + _six_hours(1)} if grace else {}
    if grace and people:
        graces[people[0]] = upto
    timeline = Timeline.of(world.contracts, world.policy)
    keys = changing(world.contracts, world.policy, after, upto, graces)
    assert timeline.changing(after, upto, graces) == keys
    for at in (after, upto, NOW):
        assert timeline.next(at) == next_boundary(world.contracts, world.policy, at)
    assert timeline.vanguard(keys, (after, upto), graces, size) == vanguard(
        world.contracts, world.policy, keys, after, graces, size
    )


@SETTINGS
@given(worlds(crowd=4), st.integers(min_value=0, max_value=255))
def test_the_basis_gives_a_person_s_contracts_as_a_scan_does(world: World, mask: int) -> None:
    everyone = sorted({c.person for c in world.contracts})
    keys = frozenset(bits(mask, everyone)) | {"nobody@vendor.test"}
    basis = Basis(SourceRead([], world.contracts, []), "", {}, world.policy)
    assert basis.contracts_of(keys) == [c for c in world.contracts if c.person in keys]


def test_grace_ends_and_the_next_one() -> None:
    since = {"a": NOW, "b": NOW - timedelta(days=2)}
    graces = grace_ends(since, timedelta(days=1))
    assert graces == {"a": NOW + timedelta(days=1), "b": NOW - timedelta(days=1)}
    assert next_grace_end(graces, NOW) == NOW + timedelta(days=1)
    assert grace_ends(since, timedelta(0)) == {}
    assert changing([], Policy(), NOW, NOW + timedelta(days=1), graces) == {"a"}


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def test_only_a_boundary_due_after_a_handled_cycle_is_targeted() -> None:
    schedule = Schedule(next_poll=at(300).timestamp(), boundary=at(10))
    assert not schedule.only_boundary(at(11).timestamp())  # no cycle handled anything yet
    schedule.finished(succeeded=True, planned_at=NOW)
    assert schedule.handled == NOW
    assert not schedule.only_boundary(at(9).timestamp())  # not yet
    assert schedule.only_boundary(at(11).timestamp())
    assert not schedule.only_boundary(at(301).timestamp())  # the poll is due too
    schedule.started(at(11).timestamp(), 300.0, targeted=True)
    assert schedule.next_poll == at(300).timestamp()  # a targeted cycle leaves the poll
    schedule.failed(at(12).timestamp(), 300.0, 1.0)
    assert not schedule.only_boundary(at(13).timestamp())  # a retry is a full cycle


def test_a_poll_gives_way_to_a_boundary_that_comes_before_a_full_cycle_would_end() -> None:
    """The last full cycle took 20 s; the poll is due at 300 s and an access ends at
    310 s: the poll waits until a second after it (its targeted cycle runs first), and
    again for the next boundary, but not for more than the cap in a row."""
    schedule = Schedule(next_poll=at(300).timestamp(), boundary=at(310), full_seconds=20.0)
    schedule.finished(succeeded=True, planned_at=NOW)
    assert not schedule.yield_poll(at(299).timestamp(), 300.0)  # the poll is not due yet
    assert schedule.yield_poll(at(300).timestamp(), 300.0)
    assert schedule.next_poll == at(311).timestamp()
    assert schedule.only_boundary(at(310).timestamp())  # a targeted cycle, not a full one
    schedule.boundary = at(320)  # the next end, planned by that targeted cycle
    assert schedule.yield_poll(at(311).timestamp(), 300.0)
    assert schedule.next_poll == at(321).timestamp()
    schedule.boundary = at(600)  # nothing for a while: the poll goes ahead
    assert not schedule.yield_poll(at(321).timestamp(), 300.0)
    assert schedule.due(at(321).timestamp())
    schedule.boundary = at(330)
    assert not schedule.yield_poll(at(321).timestamp(), 15.0)  # gave way 21 s in a row
    schedule.started(at(321).timestamp(), 300.0)  # the full cycle; the poll gives way afresh
    assert schedule.yielded_since == 0.0


def test_a_poll_does_not_give_way_after_a_failure_or_before_any_cycle() -> None:
    first = Schedule(next_poll=0.0, boundary=at(5), full_seconds=20.0)
    assert not first.yield_poll(at(0).timestamp(), 300.0)  # nothing handled yet
    failed = Schedule(next_poll=at(300).timestamp(), boundary=at(305), full_seconds=20.0)
    failed.finished(succeeded=True, planned_at=NOW)
    failed.failed(at(290).timestamp(), 300.0, 1.0)
    assert not failed.yield_poll(at(301).timestamp(), 300.0)  # the retry is a full cycle


__all__ = ["bench"]  # the fixture, shared with tests.unit.test_daemon


def test_a_boundary_alone_runs_a_targeted_cycle_over_the_people_it_concerns(
    bench: Bench,
) -> None:
    end = seconds_ahead(2)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()
    assert bench.corp.observations == [None]  # the first cycle is a full one

    wait_for(lambda: running.sample("syncd_targeted_cycles_total", result="ok") == 1, 5)

    assert bench.corp.observations == [None, frozenset({ANA})]
    assert 0 <= (disabled_at(bench, "ana") - end).total_seconds() <= 1.0
    assert not bench.corp.accounts[ANA].enabled
    assert bench.corp.accounts[BO].enabled
    assert running.sample("syncd_cycles_total", result="ok") == 2
    [record] = [r for r in bench.audit() if r.get("activity_name") == "Targeted Cycle"]
    assert record["unmapped"]["people"] == 1
    assert "1 people" in record["message"]
    assert running.daemon.schedule.next_poll > time.time() + 200  # the poll stays put
    assert "targeted, 1 people" in running.daemon.last_status
    running.stop()


def test_targeted_cycles_can_be_switched_off(bench: Bench) -> None:
    bench.write_config(targeted_cycles="false")
    end = seconds_ahead(2)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()

    wait_for(lambda: running.sample("syncd_expiry_lag_seconds_count") == 1, 5)

    assert bench.corp.observations == [None, None]
    assert running.sample("syncd_targeted_cycles_total", result="ok") is None
    running.stop()


def test_a_boundary_during_a_source_outage_plans_from_the_snapshot(bench: Bench) -> None:
    end = seconds_ahead(3)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    running = bench.started()
    bench.write_source("contracts: [unclosed")
    wait_for(lambda: running.sample("syncd_cycles_total", result="source_error") == 1, 5)

    wait_for(lambda: running.sample("syncd_targeted_cycles_total", result="source_error") == 1, 5)

    assert bench.corp.observations[-1] == frozenset({ANA})
    assert 0 <= (disabled_at(bench, "ana") - end).total_seconds() <= 1.0
    assert bench.corp.accounts[BO].enabled
    running.stop()


def test_a_boundary_that_passes_while_a_full_cycle_runs_is_not_lost(bench: Bench) -> None:
    end = seconds_ahead(3)
    bench.contracts(contract("C-1", "ana", end), contract("C-2", "bo", in_days(10)))
    slow: list[float] = []

    def slow_full_observation(keys: Collection[str] | None) -> TargetError | None:
        if keys is None and slow:
            time.sleep(slow.pop())
        return None

    bench.corp.observe_fault = slow_full_observation
    running = bench.started()
    wait_for(lambda: time.time() >= end.timestamp() - 1.0, 5)
    slow.append(2.0)  # planned before the end, finished after it
    running.controls.request_cycle()

    wait_for(lambda: not bench.corp.accounts[ANA].enabled, 5)

    assert bench.corp.observations == [None, None, frozenset({ANA})]
    assert (disabled_at(bench, "ana") - end).total_seconds() <= 2.0
    running.stop()


def test_a_burst_over_a_large_share_of_the_scope_is_observed_whole(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looking up most of the scope by key costs more than reading it whole: a burst over
    # more than a quarter of the managed accounts is observed in one pass, and planned
    # for its people alone (an account outside the burst is no orphan).
    monkeypatch.setattr(base, "WHOLE_LEAST", 2)
    end = seconds_ahead(2)
    later = in_days(10)
    bench.contracts(
        contract("C-1", "ana", end), contract("C-2", "bo", end), contract("C-3", "cy", later)
    )
    running = bench.started()

    wait_for(lambda: running.sample("syncd_targeted_cycles_total", result="ok") == 1, 5)

    assert bench.corp.observations == [None, None]  # the targeted one observed whole
    assert not bench.corp.accounts[ANA].enabled
    assert not bench.corp.accounts[BO].enabled
    assert bench.corp.accounts["cy@vendor.example"].enabled
    [record] = [r for r in bench.audit() if r.get("activity_name") == "Targeted Cycle"]
    assert record["unmapped"]["people"] == 2
    acted = {r["user"]["name"] for r in bench.audit() if r.get("activity_name") == "Disable"}
    assert acted == {"ana", "bo"}
    running.stop()


def test_a_burst_below_the_least_number_is_looked_up_by_key(bench: Bench) -> None:
    end = seconds_ahead(2)
    bench.contracts(
        contract("C-1", "ana", end), contract("C-2", "bo", end), contract("C-3", "cy", in_days(9))
    )
    running = bench.started()

    wait_for(lambda: running.sample("syncd_targeted_cycles_total", result="ok") == 1, 5)

    assert bench.corp.observations == [None, frozenset({ANA, BO})]
    running.stop()


def test_a_burst_is_split_into_its_earliest_deadlines_and_everyone() -> None:
    policy = Policy()
    ends = {"a": at(30), "b": at(10), "c": at(20), "d": at(10), "e": at(40)}
    contracts = [
        Contract(key, key, key, "A", "B", key, ("developer",), at(-3600), end)
        for key, end in sorted(ends.items())
    ]
    keys = frozenset(ends)

    assert vanguard(contracts, policy, keys, at(0), {}, 2) == [frozenset({"b", "d"}), keys]
    assert vanguard(contracts, policy, keys, at(0), {}, 3) == [keys]  # not over twice
    assert vanguard(contracts, policy, frozenset(), at(0), {}, 2) == []
    # an orphan's grace is its deadline too
    graces = {"z": at(5)}
    first, rest = vanguard(contracts, policy, keys | {"z"}, at(0), graces, 2)
    assert first == {"z", "b"}
    assert rest == keys | {"z"}


def test_a_burst_locks_its_vanguard_out_first_then_handles_everyone(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(targeted, "VANGUARD", 1)
    end = seconds_ahead(2)
    bench.contracts(
        contract("C-1", "ana", end), contract("C-2", "bo", end), contract("C-3", "cy", end)
    )
    running = bench.started()

    wait_for(lambda: running.sample("syncd_targeted_cycles_total", result="ok") == 2, 6)

    cy = "cy@vendor.example"
    assert bench.corp.observations == [None, frozenset({ANA}), frozenset({ANA, BO, cy})]
    assert not any(bench.corp.accounts[k].enabled for k in (ANA, BO, cy))
    assert bench.corp.groups[DEVS] == set()
    records = [r for r in bench.audit() if r.get("activity_name") == "Targeted Cycle"]
    assert [r["unmapped"]["people"] for r in records] == [1, 3]
    trail = bench.audit()
    first = trail.index(records[0])
    outcomes = [
        (r["activity_name"], r["user"]["name"])
        for r in trail[first:]
        if r.get("unmapped", {}).get("phase") == "outcome"
    ]
    # the vanguard is locked out alone; then every disable before any group removal
    assert outcomes[0] == ("Disable", "ana")
    kinds = [kind for kind, _ in outcomes]
    assert kinds == ["Disable"] * 3 + ["Remove User"] * 3
    running.stop()
