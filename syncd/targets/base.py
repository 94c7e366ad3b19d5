"""The protocol every target implements, called by ``syncd.cycle`` and ``syncd.apply``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from syncd.audit import Outcome
from syncd.core.model import Action, Conflict, ObservedAccount

Report = Callable[[Outcome], None]


class Target(Protocol):
    """A directory or application holding managed accounts.

    A target may also set ``batch_size``: how many actions of one kind it is handed at
    once (default ``syncd.apply.CHUNK``), e.g. to fill a SCIM Bulk request."""

    name: str

    def observe(self) -> tuple[Mapping[str, ObservedAccount], frozenset[str]]:
        """Managed accounts by person key, and the configured groups that do not exist.

        A fixed number of requests per cycle, whatever the number of accounts."""

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """For (person key, username) pairs about to be created: unmanaged objects in the
        way, by person key."""

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        """Carry out actions of one kind in order, calling ``report`` once per action.

        Per-action failures are reported, not raised. Raises ``TemporaryError`` when the
        target stays unreachable after retries: the caller stops sending to it."""

    def check(self) -> list[str]:
        """Online checks (bind, base DN, mapped groups); one line per problem."""

    def close(self) -> None:
        """Release connections."""
