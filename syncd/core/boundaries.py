"""Who changes when: the person keys whose state changes in an interval of time. Pure.

Called by ``syncd.daemon`` for targeted boundary cycles: at a boundary the daemon acts
only on the people whose access changes at that instant, known from the contracts of
the last accepted source (or its snapshot) and from when each orphan was first seen
absent. A person changes at a grant time (start minus lead time) or an effective end
of one of their contracts; an orphan changes when ``policy.orphan_grace`` runs out for
it. Every other person's plan is the same as at the previous cycle (only deletes,
which wait for ``delete_after``, come due at other times: the poll handles them).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter

from syncd.core.desired import effective_end, grant_time, may_grant
from syncd.core.model import Contract, Status
from syncd.core.policy import Policy


def grace_ends(absent_since: Mapping[str, datetime], grace: timedelta) -> dict[str, datetime]:
    """When each orphan's grace runs out: first seen absent plus ``orphan_grace``;
    none when there is no grace (an orphan is handled whole at once)."""
    if not grace:
        return {}
    return {key: since + grace for key, since in absent_since.items()}


def changing(
    contracts: Iterable[Contract],
    policy: Policy,
    after: datetime,
    upto: datetime,
    graces: Mapping[str, datetime],
) -> frozenset[str]:
    """The person keys whose state changes in ``(after, upto]``: a contract of theirs
    is granted or ends then, or their orphan grace (``graces``, see ``grace_ends``)
    runs out then. A termination without a date ended when it was read: the cycle that
    read it handled it."""
    keys = {key for key, end in graces.items() if after < end <= upto}
    for contract in contracts:
        if contract.person in keys or not may_grant(contract, policy):
            continue
        for moment in (grant_time(contract, policy), effective_end(contract, after)):
            if after < moment <= upto:
                keys.add(contract.person)
                break
    return frozenset(keys)


@dataclass(frozen=True)
class Timeline:
    """Every instant at which some person's access changes (a grant time, an effective
    end), in order, with whose: what ``changing`` and ``next_boundary`` scan the
    contracts for, made once (by the daemon, for each full cycle's contracts) and then
    asked at each boundary by bisection. At 100,000 contracts the two scans took
    0.3 s a boundary. A termination without a date has no end here: it ended when it
    was read (``effective_end`` puts it at the moment asked, never after it)."""

    times: tuple[datetime, ...]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, contracts: Iterable[Contract], policy: Policy) -> Timeline:
        moments: list[tuple[datetime, str]] = []
        for contract in contracts:
            if not may_grant(contract, policy):
                continue
            moments.append((grant_time(contract, policy), contract.person))
            if contract.status is not Status.TERMINATED:
                moments.append((contract.end, contract.person))
            elif contract.terminated_at is not None:
                moments.append((min(contract.end, contract.terminated_at), contract.person))
        moments.sort(key=itemgetter(0))
        return cls(tuple(m[0] for m in moments), tuple(m[1] for m in moments))

    def changing(
        self, after: datetime, upto: datetime, graces: Mapping[str, datetime]
    ) -> frozenset[str]:
        """As ``changing`` of the contracts this was made of."""
        keys = {key for key, end in graces.items() if after < end <= upto}
        first, last = bisect_right(self.times, after), bisect_right(self.times, upto)
        keys.update(self.keys[first:last])
        return frozenset(keys)

    def next(self, now: datetime) -> datetime | None:
        """As ``next_boundary`` of the contracts this was made of."""
        index = bisect_right(self.times, now)
        return self.times[index] if index < len(self.times) else None

    def vanguard(
        self,
        keys: frozenset[str],
        span: tuple[datetime, datetime],
        graces: Mapping[str, datetime],
        size: int,
    ) -> list[frozenset[str]]:
        """As ``vanguard`` of the contracts this was made of, for ``keys`` from
        ``changing`` over ``span`` (after, upto]."""
        if len(keys) <= 2 * size:
            return [keys] if keys else []
        after, upto = span
        due = {key: end for key, end in graces.items() if key in keys}
        first, last = bisect_right(self.times, after), bisect_right(self.times, upto)
        for moment, key in zip(self.times[first:last], self.keys[first:last], strict=True):
            if key in keys and (key not in due or moment < due[key]):
                due[key] = moment
        return _split(keys, due, after, size)


def vanguard(
    contracts: Iterable[Contract],
    policy: Policy,
    keys: frozenset[str],
    after: datetime,
    graces: Mapping[str, datetime],
    size: int,
) -> list[frozenset[str]]:
    """The cycles a burst of ``keys`` (from ``changing``) is handled in: the ``size``
    people whose change came first (the vanguard), then all of them; all in one when
    they are not more than twice ``size``. The vanguard's cycle only locks its people
    out, before the rest is even observed; the second does everything else, disables
    first for everyone. Pure."""
    if len(keys) <= 2 * size:
        return [keys] if keys else []
    due = {key: end for key, end in graces.items() if key in keys}
    for contract in contracts:
        if contract.person not in keys or not may_grant(contract, policy):
            continue
        for moment in (grant_time(contract, policy), effective_end(contract, after)):
            if after < moment:
                due[contract.person] = min(due.get(contract.person, moment), moment)
    return _split(keys, due, after, size)


def _split(
    keys: frozenset[str], due: Mapping[str, datetime], after: datetime, size: int
) -> list[frozenset[str]]:
    """The ``size`` keys due first (by key when due alike), then all of them."""
    ordered = sorted(keys, key=lambda key: (due.get(key, after), key))
    return [frozenset(ordered[:size]), keys]


def next_grace_end(graces: Mapping[str, datetime], now: datetime) -> datetime | None:
    """The first orphan grace that runs out after ``now``."""
    return min((end for end in graces.values() if end > now), default=None)
