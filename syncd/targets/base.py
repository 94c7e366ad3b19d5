"""The protocol every target implements, and the few helpers every target shares.

Called by ``syncd.engine`` (observe, observe_people, find_conflicts, check, close, and
``observation``, what a cycle observes of a target) and ``syncd.apply`` (batch_size,
apply). Implemented by ``targets.ldap``, ``targets.ad``,
``targets.scim`` and ``targets.memory``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, MutableMapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Protocol, TypeVar

from syncd.core.model import (
    Action,
    ActionKind,
    Conflict,
    Observed,
    ObservedAccount,
    Outcome,
    Person,
    PersonState,
    ReadBack,
)
from syncd.errors import TemporaryError

log = logging.getLogger(__name__)
T = TypeVar("T")
Report = Callable[[Outcome], None]
BATCH_SIZE = 200  # actions of one kind handed to a target at once, unless it says otherwise
# The fewest people a targeted cycle observes by a whole observation (see whole_share).
WHOLE_LEAST = 200
# Target.whole_share for directories: on slapd at 10,000 accounts a person looked up by
# key cost about 2.5 times an account of a whole observation.
WHOLE_SHARE = 4


class Target(Protocol):
    """A directory or application holding managed accounts."""

    name: str
    batch_size: int  # how many actions of one kind ``apply`` is handed at once
    # A targeted cycle observes the whole scope when its people are more than
    # 1/whole_share of the managed accounts (and at least WHOLE_LEAST): what looking a
    # person up by key costs against an account of a whole observation.
    whole_share: int

    def observe(self) -> Observed:
        """Managed accounts by person key, and the configured groups that do not exist
        (``conflicts`` is left empty: see ``find_conflicts``).

        A fixed number of requests per cycle, whatever the number of accounts."""

    def observe_people(self, keys: Collection[str]) -> Observed:
        """What the target holds for just these person keys (a targeted cycle at a
        boundary): their managed accounts by key with their memberships in managed
        groups, as ``observe`` reads them; ``conflicts`` and ``missing_groups`` empty.

        A fixed small number of requests per batch of keys (an OR filter on the key
        per batch, or batched base reads), never a scan of the managed scope."""

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """For (person key, username) pairs about to be created: unmanaged objects in the
        way, by person key."""

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        """Carry out actions of one kind in order, calling ``report`` once per action.

        Per-action failures are reported, not raised. Raises ``TemporaryError`` when the
        target stays unreachable after retries: the caller stops sending to it."""

    def read_back(
        self,
        kind: ActionKind,
        accounts: Sequence[tuple[str, str | None]],
        groups: Sequence[str],
        members: Sequence[str] = (),
    ) -> ReadBack:
        """What the target holds now, to verify writes of ``kind``: the ``accounts``
        ((person key, reference) pairs; the reference is None when unknown), read for
        what ``kind`` changes (credentials only for a revoke, say), and the managed and
        other members of ``groups``. ``members``: the references of the accounts whose
        membership of ``groups`` was written; a target that can ask a group for just
        those may, and then leaves the group's other members out of the answer.

        A bounded number of requests: batched filters or base reads, never one round
        trip per account where a batch is possible. Raises ``TargetError`` when the
        target cannot be read (the outcomes then stay unverified)."""

    def check(self) -> list[str]:
        """Online checks (bind, base DN, mapped groups); one line per problem."""

    def close(self) -> None:
        """Release connections."""


def gather(futures: Iterable[Future[T]], handle: Callable[[T], None]) -> None:
    """Hand each future's result to ``handle``, in order. A ``TemporaryError`` (the
    target stayed unreachable) does not stop the others from being handled, since their
    writes were sent; the last one is raised once all are handled."""
    unavailable: TemporaryError | None = None
    for future in futures:
        try:
            handle(future.result())
        except TemporaryError as exc:
            unavailable = exc
    if unavailable is not None:
        raise unavailable


def keep_first(
    accounts: MutableMapping[str, ObservedAccount], account: ObservedAccount, target: str
) -> None:
    """Add ``account`` unless its person already has one: two managed accounts for one
    person are an error for an admin to resolve, and the second is left alone."""
    first = accounts.get(account.key)
    if first is None:
        accounts[account.key] = account
        return
    log.error(
        "%s: person %s has two managed accounts, %s and %s; the second is ignored until "
        "one is removed",
        target,
        account.key,
        first.ref,
        account.ref,
        extra={"target": target, "account": account.key},
    )


def observation(
    target: Target,
    people: dict[str, Person],
    keys: frozenset[str] | None = None,
    managed: int | None = None,
) -> Observed:
    """What ``target`` holds (for ``keys`` only, when given), with the conflicts in the
    way of the accounts to create. When ``keys`` are many and more than
    ``1/target.whole_share`` of the ``managed`` accounts (a midnight burst), one
    observation of the whole scope costs less than looking each up: it is made and cut
    down to ``keys``."""
    if keys is None:
        observed = target.observe()
    elif managed is not None and WHOLE_LEAST <= len(keys) > managed / target.whole_share:
        whole = target.observe()
        observed = replace(whole, accounts={k: a for k, a in whole.accounts.items() if k in keys})
    else:
        observed = target.observe_people(keys)
    for group in sorted(observed.missing_groups):
        log.error(
            "%s: managed group %s does not exist", target.name, group, extra={"target": target.name}
        )
    wanted = [
        (p.key, p.username)
        for p in people.values()
        if p.state is PersonState.ACTIVE and p.key not in observed.accounts
    ]
    if not wanted:
        return observed
    return replace(observed, conflicts=target.find_conflicts(wanted))
