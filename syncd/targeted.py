"""Targeted boundary cycles: what the daemon does when only a boundary is due.

Called by ``syncd.daemon``. A full cycle reads the whole source and observes every
target's whole managed scope; at 100k accounts that takes long enough to make an access
end late. When only a boundary has come (not the poll, not a change of the source, not
a retry after a failure, not a reload), the daemon instead plans from the ``Basis`` its
last full cycle left: the contracts of the last accepted source (or of the snapshot,
when the source was down: then expiries only, as in a full cycle), and each target's
count of managed accounts, which percentage safety limits are taken of. Only the people
whose state changes since the last handled instant (``syncd.core.boundaries``) are
observed (``Target.observe_people``) and planned, with the same planner and verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from operator import itemgetter

from syncd.config import Config
from syncd.core.boundaries import Timeline, grace_ends, next_grace_end
from syncd.core.model import ActionKind, Contract
from syncd.core.policy import Policy
from syncd.engine import CyclePlan, SourceRead, plan_targeted
from syncd.targets.base import Target
from syncd.watch import Reading


@dataclass(frozen=True)
class Basis:
    """What targeted cycles plan from until the next full cycle: its reading (the
    raw records dropped: only the validated contracts are needed) and, per target, the
    managed accounts it observed."""

    source: SourceRead
    degraded: str  # why the contracts come from the snapshot ("" when they do not)
    managed: Mapping[str, int]
    policy: Policy

    @classmethod
    def of(cls, reading: Reading, cycle: CyclePlan, policy: Policy) -> Basis | None:
        """The basis a full cycle leaves; None when it had no contracts to plan with."""
        if reading.source is None:
            return None
        managed = {plan.target: plan.managed for plan in cycle.plans}
        return cls(replace(reading.source, records=[]), reading.degraded, managed, policy)

    @cached_property
    def timeline(self) -> Timeline:
        """When whose access changes, for the boundaries to ask by bisection (made once:
        0.2 s at 100,000 contracts, where scanning them at every boundary took 0.3 s)."""
        return Timeline.of(self.source.contracts, self.policy)

    @cached_property
    def _by_person(self) -> dict[str, list[tuple[int, Contract]]]:
        index: dict[str, list[tuple[int, Contract]]] = {}
        for position, contract in enumerate(self.source.contracts):
            index.setdefault(contract.person, []).append((position, contract))
        return index

    def prepare(self) -> None:
        """Make the timeline and the index of contracts by person (both made once)."""
        _ = self.timeline, self._by_person

    def contracts_of(self, keys: frozenset[str]) -> list[Contract]:
        """The contracts of the people ``keys``, in source order, by index (a scan of
        100,000 contracts took 30 ms a boundary)."""
        found = [held for key in keys for held in self._by_person.get(key, ())]
        return [contract for _, contract in sorted(found, key=itemgetter(0))]

    @property
    def reading(self) -> Reading:
        """As the daemon's reading of the source: what ``verdict`` judges a cycle by."""
        return Reading(self.source, self.degraded)

    def covers(self, targets: Mapping[str, Target]) -> bool:
        """The last full cycle observed every one of ``targets``."""
        return bool(targets) and all(name in self.managed for name in targets)


# A burst of more than twice this many people is handled in two targeted cycles: this
# many first (the earliest deadlines), observed by key and only locked out, within a
# second; then all of them, whose observation may take seconds.
VANGUARD = 100


def boundary_slices(
    config: Config,
    now: datetime,
    after: datetime,
    basis: Basis,
    absent_since: Mapping[str, datetime],
) -> list[frozenset[str]]:
    """The people whose state changes in ``(after, now]``, as the targeted cycles to
    run one after the other: one, or for a burst the vanguard (disables alone, see
    ``plan_boundary``) and then everyone (none when nobody changes)."""
    graces = grace_ends(absent_since, config.core_policy().orphan_grace)
    keys = basis.timeline.changing(after, now, graces)
    return basis.timeline.vanguard(keys, (after, now), graces, VANGUARD)


def plan_boundary(
    config: Config,
    now: datetime,
    after: datetime,
    basis: Basis,
    targets: dict[str, Target],
    absent_since: Mapping[str, datetime],
    keys: frozenset[str] | None = None,
    lock_only: bool = False,
) -> tuple[CyclePlan, datetime | None]:
    """Plan a targeted cycle over ``keys`` (by default, the people whose state changes
    in ``(after, now]``); also the next instant to wake at (a grant, an end, an
    orphan's grace). ``lock_only``: a burst's vanguard, whose plan keeps its disables
    alone (the cycle after it plans the rest for the same people)."""
    source = basis.source
    policy = config.core_policy()
    graces = grace_ends(absent_since, policy.orphan_grace)
    if keys is None:
        keys = basis.timeline.changing(after, now, graces)
    cycle = plan_targeted(
        config,
        now,
        targets,
        source,
        keys,
        basis.managed,
        expiries_only=bool(basis.degraded),
        absent_since=absent_since,
        contracts_of=basis.contracts_of,
    )
    if lock_only:
        disables = ActionKind.DISABLE
        cycle.plans[:] = [
            replace(plan, actions=tuple(a for a in plan.actions if a.kind is disables))
            for plan in cycle.plans
        ]
    moments = (
        basis.timeline.next(now),
        next_grace_end(graces, now),
        cycle.grace_end,
    )
    return cycle, min((t for t in moments if t is not None), default=None)
