"""One reconcile cycle: read the source, resolve people, observe and plan every target,
then (unless previewing) apply. Called by the CLI commands ``plan`` and ``sync``.

The source is read once and fully validated before any target is touched: a source
that cannot be read changes nothing anywhere.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from syncd.apply import ApplyReport, apply_plan
from syncd.audit import AuditWriter
from syncd.config import AdTarget, Config, ScimTarget
from syncd.core.contracts import RawRecord, validate
from syncd.core.desired import resolve
from syncd.core.model import Contract, InvalidRecord, Observed, Person, PersonState, TargetPlan
from syncd.core.plan import plan_target
from syncd.errors import TargetError
from syncd.sources import file as file_source
from syncd.targets.ad import AdDirectory
from syncd.targets.base import Target
from syncd.targets.ldap import LdapDirectory
from syncd.targets.scim import ScimDirectory

log = logging.getLogger(__name__)


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


Source = tuple[list[Contract], list[InvalidRecord]]


def read_records(config: Config) -> list[RawRecord]:
    """The source's records; ``SourceError`` when it is unusable as a whole."""
    return file_source.read(config.source)


def read_contracts(config: Config) -> Source:
    """Read and validate the source; ``SourceError`` when it is unusable as a whole."""
    return validate(read_records(config), config.core_policy())


def open_target(config: Config, name: str) -> Target:
    target = config.targets[name]
    groups = config.target_policy(name).managed_groups
    if isinstance(target, ScimTarget):
        return ScimDirectory(name, target, groups)
    if isinstance(target, AdTarget):
        return AdDirectory(name, target, groups)
    return LdapDirectory(name, target, groups)


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
    source: Source | None = None,
    expiries_only: bool = False,
) -> CyclePlan:
    """Observe and plan every target. ``source``: contracts already read (the daemon's,
    possibly from its last good snapshot); ``expiries_only``: see ``plan_target``."""
    contracts, invalid = source if source is not None else read_contracts(config)
    for record in invalid:
        log.warning("invalid contract record: %s", record)
    people = resolve(contracts, config.core_policy(), now)
    cycle = CyclePlan(now, contracts, invalid, people)
    protected = frozenset(r.person for r in invalid if r.person)
    for name, target in targets.items():
        try:
            accounts, missing = target.observe()
            wanted = [
                (p.key, p.username)
                for p in people.values()
                if p.state is PersonState.ACTIVE and p.key not in accounts
            ]
            conflicts = target.find_conflicts(wanted) if wanted else {}
        except TargetError as exc:
            cycle.errors[name] = str(exc)
            log.error("%s: cannot observe: %s", name, exc)
            continue
        for group in sorted(missing):
            log.error("%s: managed group %s does not exist", name, group)
        observed = Observed(accounts, conflicts, missing)
        cycle.observed[name] = observed
        cycle.plans.append(
            plan_target(
                config.target_policy(name),
                people,
                observed,
                now,
                protected=protected,
                delete_after=config.policy.delete_after,
                allow_mass_change=allow_mass_change,
                expiries_only=expiries_only,
            )
        )
    return cycle


def apply_cycle(
    cycle: CyclePlan,
    targets: dict[str, Target],
    audit: AuditWriter,
    correlation: str,
    stopping: Callable[[], bool] = lambda: False,
) -> list[ApplyReport]:
    return [
        apply_plan(plan, targets[plan.target], audit, correlation, stopping) for plan in cycle.plans
    ]


def selected_targets(config: Config, only: Sequence[str]) -> list[str]:
    return [name for name in config.targets if not only or name in only]
