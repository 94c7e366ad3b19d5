"""Prometheus metrics of ``syncd run``, served by ``syncd.listener``.

Called by ``syncd.daemon``: it records each finished cycle with ``Metrics.record_cycle``
(the cycle, its results and its attestations, ``syncd.core.attest``; ``cycle_failed``
when none could run), each source read with ``source_read``, and sets the health state
as things happen (``syncd.listener.Health``). Metric names and labels are referenced
by ``config/alerts.yaml`` and listed in ``docs/operations.md``; renaming one is a
breaking change.

This module sits below the engine: it reads a cycle through the ``CycleFacts`` and
``TargetResults`` shapes, which ``syncd.engine.CyclePlan`` and ``syncd.apply.ApplyReport``
have, rather than importing them.
"""

from __future__ import annotations

import enum
import time
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from syncd.core.attest import Attestation, ViolationKind
from syncd.core.desired import effective_end, in_effect
from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Collateral,
    Contract,
    InvalidRecord,
    Observed,
    Outcome,
    Person,
    TargetPlan,
)
from syncd.core.policy import Policy

LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300, 900)
PEOPLE_BUCKETS = (1, 10, 100, 1000, 10_000, 100_000)


class CycleResult(enum.StrEnum):
    """The ``result`` label of ``syncd_cycles_total``."""

    OK = "ok"  # every change made, nothing held
    HELD = "held"  # every change made but some held by a safety limit
    FAILED = "failed"  # some change failed, or a target could not be reached
    SOURCE_ERROR = "source_error"  # planned from the snapshot, or not at all

    @property
    def succeeded(self) -> bool:
        return self in (CycleResult.OK, CycleResult.HELD)


class CycleFacts(Protocol):
    """What ``record_cycle`` reads of a planned cycle (``syncd.engine.CyclePlan``)."""

    @property
    def at(self) -> datetime: ...
    @property
    def contracts(self) -> Sequence[Contract]: ...
    @property
    def invalid(self) -> Sequence[InvalidRecord]: ...
    @property
    def people(self) -> Mapping[str, Person]: ...
    @property
    def plans(self) -> Sequence[TargetPlan]: ...
    @property
    def observed(self) -> Mapping[str, Observed]: ...
    @property
    def targeted(self) -> frozenset[str] | None: ...


class TargetResults(Protocol):
    """What ``record_cycle`` reads of one target's results (``syncd.apply.ApplyReport``)."""

    @property
    def target(self) -> str: ...
    @property
    def done(self) -> Sequence[Outcome]: ...
    @property
    def failed(self) -> Sequence[Outcome]: ...
    @property
    def skipped(self) -> Sequence[Action]: ...
    @property
    def collateral(self) -> Sequence[Collateral]: ...


class Metrics:
    """Every metric syncd exports, on a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.cycle_duration = Histogram(
            "syncd_cycle_duration_seconds", "Duration of reconcile cycles", registry=r
        )
        self.cycles = Counter("syncd_cycles", "Reconcile cycles by result", ["result"], registry=r)
        self.targeted_cycles = Counter(
            "syncd_targeted_cycles",
            "Targeted cycles at a boundary (also counted in syncd_cycles) by result",
            ["result"],
            registry=r,
        )
        self.targeted_people = Histogram(
            "syncd_targeted_cycle_people",
            "People observed and planned by a targeted cycle",
            buckets=PEOPLE_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "Unix time of the last fully successful cycle",
            registry=r,
        )
        self.actions = Counter(
            "syncd_actions",
            "Target actions by kind and result",
            ["target", "kind", "result"],
            registry=r,
        )
        self.managed = Gauge(
            "syncd_managed_accounts", "Managed accounts by state", ["target", "state"], registry=r
        )
        self.contracts = Gauge("syncd_contracts", "Valid contracts by state", ["state"], registry=r)
        self.invalid = Gauge("syncd_invalid_records", "Invalid source records", registry=r)
        self.held = Gauge(
            "syncd_safety_held_actions",
            "Actions held by a safety limit in the last cycle",
            ["target"],
            registry=r,
        )
        self.conflicts = Gauge(
            "syncd_conflicts", "Conflicts found in the last cycle", ["target"], registry=r
        )
        self.source_failures = Counter(
            "syncd_source_failures", "Source reads that failed or looked suspicious", registry=r
        )
        self.source_ok_at = time.time()
        self.source_age = Gauge(
            "syncd_source_age_seconds", "Seconds since the last good source read", registry=r
        )
        self.source_age.set_function(lambda: time.time() - self.source_ok_at)
        self.next_expiry = Gauge(
            "syncd_next_expiry_timestamp_seconds", "Unix time of the next access end", registry=r
        )
        self.expiry_lag = Histogram(
            "syncd_expiry_lag_seconds",
            "From a contract's end to its account being disabled",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.expired_enabled = Gauge(
            "syncd_expired_enabled_accounts",
            "Accounts whose access ended that are still enabled, as observed",
            ["target"],
            registry=r,
        )
        self.violations = Gauge(
            "syncd_attestation_violations",
            "Violations of the last attestation that stand after the cycle",
            ["target", "kind"],
            registry=r,
        )
        self.unverified = Counter(
            "syncd_unverified_changes",
            "Changes the target did not hold when read back",
            ["target", "kind"],
            registry=r,
        )
        self.collateral = Counter(
            "syncd_collateral_changes",
            "Managed groups whose members outside the managed scope changed under a write",
            ["target"],
            registry=r,
        )
        self.interval = Gauge(
            "syncd_daemon_interval_seconds", "Configured poll interval", registry=r
        )
        self.notifications = Counter(
            "syncd_notifications",
            "Notices by channel, kind and result (sent, failed: tried again next cycle, "
            "given_up: not tried again, deferred: the delivery queue was full)",
            ["channel", "kind", "result"],
            registry=r,
        )

    def set_interval(self, seconds: float) -> None:
        """The configured poll interval, at start and after each reload."""
        self.interval.set(seconds)

    def source_read(self, *, ok: bool) -> None:
        """A source read was accepted, or it failed or looked suspicious."""
        if ok:
            self.source_ok_at = time.time()
        else:
            self.source_failures.inc()

    def cycle_failed(self, result: CycleResult) -> None:
        """A cycle that could not run (no contracts to plan with, or planning failed)."""
        self.cycles.labels(result.value).inc()

    def record_cycle(
        self,
        cycle: CycleFacts,
        results: Sequence[TargetResults],
        *,
        policy: Policy,
        result: CycleResult,
        seconds: float,
        finished: float,
        attestations: Sequence[Attestation],
    ) -> None:
        """Everything a finished cycle tells: its duration and result, the contracts and
        accounts it saw, what became of each action, and what its attestations found
        (one per target observed). ``finished`` is the Unix time the cycle ended; an
        expiry's lag is measured to it.

        A targeted cycle saw a few people, not the whole source and scope: it counts
        its actions and results, and leaves the gauges of contracts, accounts,
        conflicts and violations as the last full cycle set them."""
        self.cycle_duration.observe(seconds)
        if cycle.targeted is None:
            self._full(cycle, policy, attestations)
        else:
            self.targeted_cycles.labels(result.value).inc()
            self.targeted_people.observe(len(cycle.targeted))
            for plan in cycle.plans:
                for action in plan.held:
                    self.actions.labels(plan.target, action.kind.value, "held").inc()
        for target in results:
            self._results(target, cycle.people, finished)
        if result.succeeded:
            self.last_success.set(finished)
        self.cycles.labels(result.value).inc()

    def _full(self, cycle: CycleFacts, policy: Policy, attestations: Sequence[Attestation]) -> None:
        """The gauges only a full cycle can set: it saw every contract and account."""
        self.invalid.set(len(cycle.invalid))
        self._contract_states(cycle, policy)
        for plan in cycle.plans:
            self._plan(plan, cycle.observed[plan.target])
        for attestation in attestations:
            self._attestation(attestation)
        ends = [p.access_end for p in cycle.people.values() if p.access_end is not None]
        self.next_expiry.set(min(ends).timestamp() if ends else 0)

    def _contract_states(self, cycle: CycleFacts, policy: Policy) -> None:
        states: Tally[str] = Tally()
        for contract in cycle.contracts:
            if in_effect(contract, policy, cycle.at):
                states["active"] += 1
            elif effective_end(contract, cycle.at) <= cycle.at:
                states["ended"] += 1
            else:
                states["future"] += 1
        for state in ("active", "ended", "future"):
            self.contracts.labels(state).set(states[state])

    def _plan(self, plan: TargetPlan, observed: Observed) -> None:
        """What one target held and was planned: accounts, held actions, conflicts."""
        self.held.labels(plan.target).set(len(plan.held))
        self.conflicts.labels(plan.target).set(len(plan.conflicts))
        states = Tally("enabled" if a.enabled else "disabled" for a in observed.accounts.values())
        for state in ("enabled", "disabled"):
            self.managed.labels(plan.target, state).set(states[state])
        for action in plan.held:
            self.actions.labels(plan.target, action.kind.value, "held").inc()

    def _results(
        self, target: TargetResults, people: Mapping[str, Person], finished: float
    ) -> None:
        """Each action's result, changes the read-back did not confirm, collateral
        changes, and how late contract ends were carried out."""
        name = target.target
        self.collateral.labels(name).inc(len(target.collateral))
        for kind in ActionKind:  # every series from 0 on, so that increase() sees the first
            self.unverified.labels(name, kind.value)
        for outcome in (*target.done, *target.failed):
            action = outcome.action
            result = {True: "success", False: "failure", None: "unknown"}[outcome.ok]
            self.actions.labels(name, action.kind.value, result).inc()
            if outcome.verified is False:
                self.unverified.labels(name, action.kind.value).inc()
            if action.kind is not ActionKind.DISABLE or action.cause is not Cause.CONTRACT:
                continue
            person = people.get(action.person)
            if outcome.ok and person is not None and person.last_end is not None:
                self.expiry_lag.observe(max(0.0, finished - person.last_end.timestamp()))

    def _attestation(self, attestation: Attestation) -> None:
        """What observe() saw, less what the cycle's own changes corrected: an account
        whose access ended and that is still enabled shows whatever the reason (a failed
        or unverified disable, a disable never sent, a hand-made change)."""
        standing = Tally(v.kind for v in attestation.outstanding)
        name = attestation.target
        self.expired_enabled.labels(name).set(standing[ViolationKind.ENDED_ENABLED])
        for kind in ViolationKind:
            self.violations.labels(name, kind.value).set(standing[kind])
