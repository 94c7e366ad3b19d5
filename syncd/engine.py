"""One reconcile cycle, the same for the CLI (``plan``, ``sync``) and the daemon.

A cycle is a pipeline: ``read_source`` (records, validated into contracts) →
``plan_cycle`` (resolve people, observe and plan every target) → ``run_cycle`` (audit
start, settle intents a crash left open, apply, attest, audit stop). The source is read once
and fully validated before any target is touched: a source that cannot be read changes
nothing anywhere. ``open_target`` is the one place that knows which package serves
which ``type:`` of target. At a boundary the daemon plans with ``plan_targeted``
instead: only the people whose state changes then are observed and planned, and
``run_cycle`` records that the cycle was targeted in place of attesting.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from syncd.apply import ApplyReport, apply_plan
from syncd.audit import AuditWriter
from syncd.audit.records import OTHER_ACTIVITY, START, STOP
from syncd.audit.settle import settle_pending
from syncd.config import AdTarget, Config, LdapTarget, ScimTarget
from syncd.core.attest import Attestation, attest
from syncd.core.contracts import RawRecord, validate
from syncd.core.desired import resolve
from syncd.core.model import (
    ActionKind,
    Contract,
    InvalidRecord,
    Observed,
    Person,
    TargetPlan,
)
from syncd.core.plan import Wait, absences, plan_with_waits
from syncd.core.policy import TargetPolicy
from syncd.errors import SyncdError, TargetError
from syncd.sources.registry import Readers, named, read_all
from syncd.targets.ad import AdDirectory
from syncd.targets.base import Target, observation
from syncd.targets.ldap import LdapDirectory
from syncd.targets.scim import ScimDirectory

log = logging.getLogger(__name__)
# per target (its name, the actions it will run): a callback told of each chunk sent
Progress = Callable[[str, int], Callable[[int], None] | None]


@dataclass(frozen=True)
class SourceRead:
    """One read of the source: its raw records (what the daemon snapshots) and what
    validation made of them."""

    records: list[RawRecord]
    contracts: list[Contract]
    invalid: list[InvalidRecord]


@dataclass
class CyclePlan:
    """Everything one cycle decided, before anything is sent."""

    at: datetime
    contracts: list[Contract]
    invalid: list[InvalidRecord]
    people: dict[str, Person]
    plans: list[TargetPlan] = field(default_factory=list)
    observed: dict[str, Observed] = field(default_factory=dict)  # by target
    errors: dict[str, str] = field(default_factory=dict)  # target -> why it has no plan
    policies: dict[str, TargetPolicy] = field(default_factory=dict)  # of observed targets
    # by target: irreversible steps an orphan's absence calls for, due after the grace
    waits: dict[str, tuple[Wait, ...]] = field(default_factory=dict)
    # when each orphan was first seen absent, as of this cycle: for the next one
    absent_since: dict[str, datetime] = field(default_factory=dict)
    # a targeted cycle (``plan_targeted``): the people it observed and planned; None
    # for a full cycle, which observes every target's whole managed scope
    targeted: frozenset[str] | None = None

    @property
    def grace_end(self) -> datetime | None:
        """When the first step waiting for ``policy.orphan_grace`` comes due."""
        return min((w.until for waits in self.waits.values() for w in waits), default=None)


@dataclass(frozen=True)
class CycleRun:
    """What carrying out a cycle did: per target, its results and its attestation."""

    reports: list[ApplyReport]
    attestations: list[Attestation]


def read_source(config: Config, readers: Readers | None = None) -> SourceRead:
    """Read and validate the sources; ``SourceError`` when one is unusable as a whole."""
    read = read_all(config.all_sources, readers)
    return validated(config, read.records, read.clashes)


def validated(
    config: Config, records: list[RawRecord], clashes: Mapping[str, tuple[str, ...]] | None = None
) -> SourceRead:
    """Records (read now, or from the daemon's snapshot) validated under the policy;
    ``clashes``: the contract ids several sources hold."""
    contracts, invalid = validate(records, config.core_policy())
    named(invalid, clashes or {})
    return SourceRead(records, contracts, invalid)


def open_target(config: Config, name: str) -> Target:
    """The target named ``name`` in the config, not yet connected (targets connect on
    first use)."""
    target = config.targets[name]
    groups = config.target_policy(name).managed_groups
    if isinstance(target, ScimTarget):
        return ScimDirectory(name, target, groups)
    if isinstance(target, AdTarget):
        return AdDirectory(name, target, groups)
    if isinstance(target, LdapTarget):
        return LdapDirectory(name, target, groups)
    raise SyncdError(f"target {name}: no implementation for {type(target).__name__}")


def open_targets(config: Config, only: Sequence[str] = ()) -> dict[str, Target]:
    """The targets ``only`` names (all when empty); ``SyncdError`` for an unknown name."""
    unknown = [name for name in only if name not in config.targets]
    if unknown:
        raise SyncdError(
            f"--target {unknown[0]}: no such target (have: {', '.join(config.targets)})"
        )
    return {name: open_target(config, name) for name in config.targets if not only or name in only}


def close_all(targets: dict[str, Target]) -> None:
    for target in targets.values():
        target.close()


@contextmanager
def gc_relaxed() -> Iterator[None]:
    """Make the cyclic garbage collector run rarely during one cycle.

    A cycle allocates hundreds of thousands of objects (entries, people, actions) that
    reference counting frees; at the default thresholds the collector walks the live
    ones again and again for nothing (a tenth of a 10k-account cycle). Young
    collections still run, every 50,000 allocations instead of 700, so the cyclic
    garbage ldap3 makes per request does not pile up. One full collection at the end.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.collect()


def plan_cycle(
    config: Config,
    now: datetime,
    targets: dict[str, Target],
    *,
    allow_mass_change: bool = False,
    source: SourceRead | None = None,
    expiries_only: bool = False,
    absent_since: Mapping[str, datetime] | None = None,
) -> CyclePlan:
    """Observe and plan every target. ``source``: contracts already read (the daemon's,
    possibly from its last good snapshot); ``expiries_only``: see ``plan_with_waits``. A
    target that cannot be observed gets no plan and its error is kept in ``errors``.
    ``absent_since``: when each orphan was first seen absent (the state directory's
    record; None: nothing recorded, every orphan's grace starts ``now``); the cycle's
    ``absent_since`` is that record brought up to date (unchanged in ``expiries_only``)."""
    previous = absent_since or {}
    read = source if source is not None else read_source(config)
    for record in read.invalid:
        log.warning("invalid contract record: %s", record)
    people = resolve(read.contracts, config.core_policy(), now)
    cycle = CyclePlan(now, read.contracts, read.invalid, people)
    protected = frozenset(r.person for r in read.invalid if r.person)
    for name, target in targets.items():
        _plan_target(
            config,
            cycle,
            name,
            partial(observation, target, people),
            protected,
            allow_mass_change=allow_mass_change,
            expiries_only=expiries_only,
            absent_since=previous,
        )
    cycle.absent_since = dict(previous)
    if not expiries_only:
        # Accounts of a target not observed (down, or left out by --target) are unknown.
        complete = set(cycle.observed) == set(config.targets)
        seen = cycle.observed.values()
        cycle.absent_since = absences(
            previous, people, seen, now, protected=protected, complete=complete
        )
    return cycle


def plan_targeted(
    config: Config,
    now: datetime,
    targets: dict[str, Target],
    source: SourceRead,
    keys: frozenset[str],
    managed: Mapping[str, int],
    *,
    expiries_only: bool = False,
    absent_since: Mapping[str, datetime] | None = None,
    allow_mass_change: bool = False,
    contracts_of: Callable[[frozenset[str]], list[Contract]] | None = None,
) -> CyclePlan:
    """A targeted cycle at a boundary: observe (``Target.observe_people``) and plan
    only the people ``keys`` names, those whose state changes at this instant
    (``syncd.core.boundaries.changing``), with the same planner and safety verdicts
    as a full cycle. Percentage limits are taken of ``managed``, each target's count of
    managed accounts at the last full observation. The plan is the full plan
    restricted to ``keys`` (tests/unit/test_targeted.py checks it), except that
    usernames held by people outside ``keys`` are left to the target's conflict
    look-up (``find_conflicts``). The record of absences is kept as it is: only a full
    cycle sees who is absent. ``syncd explain`` plans one person so, with
    ``allow_mass_change``: safety limits are judged over a whole cycle, not one person.
    ``contracts_of``: the contracts of some people, in source order (by default, a scan
    of ``source.contracts``)."""
    previous = dict(absent_since or {})
    if contracts_of is not None:  # the caller's index, made once for many cycles
        mine = contracts_of(keys)
    else:
        mine = [c for c in source.contracts if c.person in keys]
    people = resolve(mine, config.core_policy(), now)
    cycle = CyclePlan(now, mine, [], people, targeted=keys, absent_since=previous)
    protected = frozenset(r.person for r in source.invalid if r.person in keys)
    for name, target in targets.items():
        _plan_target(
            config,
            cycle,
            name,
            partial(observation, target, people, keys, managed.get(name)),
            protected,
            allow_mass_change=allow_mass_change,
            expiries_only=expiries_only,
            absent_since=previous,
            managed=managed.get(name),
        )
    return cycle


def _plan_target(
    config: Config,
    cycle: CyclePlan,
    name: str,
    observe: Callable[[], Observed],
    protected: frozenset[str],
    *,
    allow_mass_change: bool = False,
    expiries_only: bool = False,
    absent_since: Mapping[str, datetime],
    managed: int | None = None,
) -> None:
    """Observe and plan one target into ``cycle``; a target that cannot be observed
    gets no plan and its error is kept in ``cycle.errors``."""
    try:
        observed = observe()
    except TargetError as exc:
        cycle.errors[name] = str(exc)
        log.error("%s: cannot observe: %s", name, exc, extra={"target": name})
        return
    cycle.observed[name] = observed
    cycle.policies[name] = config.target_policy(name, observed.native_expiry)
    planned = plan_with_waits(
        cycle.policies[name],
        cycle.people,
        observed,
        cycle.at,
        protected=protected,
        delete_after=config.core_policy().delete_after,
        allow_mass_change=allow_mass_change,
        expiries_only=expiries_only,
        absent_since=absent_since,
        orphan_grace=config.core_policy().orphan_grace,
        managed=managed,
    )
    cycle.plans.append(planned.plan)
    cycle.waits[name] = planned.waits


def run_cycle(
    cycle: CyclePlan,
    targets: dict[str, Target],
    audit: AuditWriter,
    correlation: str,
    *,
    session: str = "",
    mass_change: bool = False,
    stopping: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
    conflicts: bool = True,
) -> CycleRun:
    """Carry out a planned cycle: settle the intents a crash left open (against what
    the cycle observed), apply every target's plan, then attest each target's managed
    scope (one record per target). ``session`` names a run that is one cycle
    (``sync``): it is bracketed by start and stop records in the trail; the daemon
    writes those once for its whole run instead. ``mass_change``: the safety limits
    were lifted (``--allow-mass-change``), which the trail records. ``progress``: asked
    for a callback per target (its name, its runnable actions), told of each chunk.
    ``conflicts``: record each conflict of the plans (the daemon records them itself,
    once when one appears and once when it clears: ``syncd.standing``)."""
    if session:
        audit.event(START, "Start", f"{session} started", correlation, targets=sorted(targets))
    if cycle.targeted is None:
        settle_pending(audit, {n: o.accounts for n, o in cycle.observed.items()}, correlation)
    else:  # it observed a few people: intents left open wait for the next full cycle
        audit.event(
            OTHER_ACTIVITY,
            "Targeted Cycle",
            f"targeted cycle at a boundary: {len(cycle.targeted)} people whose access "
            "changes now, observed and planned alone",
            correlation,
            people=len(cycle.targeted),
            targets=sorted(cycle.observed),
        )
    if mass_change:
        audit.event(
            OTHER_ACTIVITY,
            "Safety Override",
            "--allow-mass-change: safety limits lifted for this run",
            correlation,
        )
    for conflict in (c for plan in cycle.plans for c in plan.conflicts) if conflicts else ():
        audit.conflict(conflict, correlation)
    reports = [
        apply_plan(
            plan,
            targets[plan.target],
            audit,
            correlation,
            stopping,
            cycle.observed.get(plan.target),
            progress(plan.target, len(plan.runnable)) if progress else None,
        )
        for plan in cycle.plans
    ]
    # A targeted cycle saw a few accounts, not the managed scope: the next full one attests.
    attestations = attest_cycle(cycle, reports) if cycle.targeted is None else []
    for attestation in attestations:
        audit.attestation(attestation, correlation)
    if session:
        audit.event(STOP, "Stop", f"{session} finished: {summary_line(cycle)}", correlation)
    audit.sync()
    return CycleRun(reports, attestations)


def attest_cycle(cycle: CyclePlan, reports: Sequence[ApplyReport] = ()) -> list[Attestation]:
    """One attestation per target the cycle observed, from what it observed, with the
    violations its own changes (``reports``) corrected marked so. ``syncd attest``
    calls it without changes."""
    outcomes = {report.target: [*report.done, *report.failed] for report in reports}
    return [
        attest(cycle.policies[name], cycle.people, observed, cycle.at, outcomes.get(name, ()))
        for name, observed in sorted(cycle.observed.items())
    ]


def counts(cycle: CyclePlan) -> dict[str, int]:
    """Planned actions by kind, held actions, conflicts, invalid records and targets
    that could not be observed, over every target (zeros included, in a fixed order)."""
    tally: Counter[str] = Counter()
    for plan in cycle.plans:
        for action in plan.actions:
            tally["held" if action.held else action.kind.value] += 1
        tally["conflicts"] += len(plan.conflicts)
    tally["invalid"] = len(cycle.invalid)
    tally["target_errors"] = len(cycle.errors)
    return {
        k: tally[k]
        for k in [*(k.value for k in ActionKind), "held", "conflicts", "invalid", "target_errors"]
    }


def summary_line(cycle: CyclePlan) -> str:
    """``Summary: 3 create, 1 disable`` (or ``nothing to do``): what a cycle plans."""
    c = counts(cycle)
    parts = [f"{n} {k.replace('_', ' ')}" for k, n in c.items() if n]
    return "Summary: " + (", ".join(parts) if parts else "nothing to do")
