"""The conflicts that stand across the daemon's cycles, so that the audit trail records
each one once when it appears and once when it clears, not every cycle.

Called by ``syncd.daemon`` after each cycle is planned and before it is applied
(``StandingConflicts.record``); ``syncd sync`` is one cycle and records every conflict
it finds. The set is kept in the state directory (``conflicts.json``, replaced whole),
so a restart or a reload does not record the conflicts again. A file that is lost or
unreadable costs one more "appeared" record per standing conflict, nothing else.

A conflict is one (target, person, username, obstacle, reason): another obstacle is
another conflict. It clears only where a cycle could have seen it: a target that was
observed, a person a targeted cycle planned, and a source that was trusted (planning
from the snapshot onboards nobody, so it finds no conflicts and clears none). While a
conflict stands, ``syncd_conflicts`` counts it and ``/healthz`` stays ok: a conflict
waits for a person to decide, the daemon is not failing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from syncd.audit import AuditWriter
from syncd.core.model import Conflict
from syncd.engine import CyclePlan
from syncd.state import StateDir

log = logging.getLogger(__name__)
FILE = "conflicts.json"
Identity = tuple[str, str, str, str, str]


def identity(conflict: Conflict) -> Identity:
    return (conflict.target, conflict.person, conflict.username, conflict.ref, conflict.reason)


@dataclass(frozen=True)
class Standing:
    conflict: Conflict
    since: datetime


class StandingConflicts:
    """The conflicts standing as of the last cycle, kept in ``state``."""

    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.standing: dict[Identity, Standing] = self._load()

    def record(
        self, cycle: CyclePlan, audit: AuditWriter, correlation: str, *, trusted: bool = True
    ) -> tuple[list[Conflict], list[Standing]]:
        """Write a record for each conflict that appeared and each that cleared with
        this cycle; returns both. ``trusted``: the cycle planned from a fresh source."""
        found = {identity(c): c for plan in cycle.plans for c in plan.conflicts}
        appeared = [c for key, c in found.items() if key not in self.standing]
        cleared = [s for key, s in self.standing.items() if key not in found]
        if not trusted:
            cleared = []
        cleared = [s for s in cleared if _seen(cycle, s.conflict)]
        for conflict in appeared:
            audit.conflict(conflict, correlation)
            self.standing[identity(conflict)] = Standing(conflict, cycle.at)
        for gone in cleared:
            audit.conflict_cleared(gone.conflict, gone.since, correlation)
            del self.standing[identity(gone.conflict)]
        if appeared or cleared:
            self._save()
        return appeared, cleared

    def _load(self) -> dict[Identity, Standing]:
        path = self.state.path / FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            standing = [_standing(item) for item in data["conflicts"]]
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "%s: cannot read the standing conflicts (%s); each is recorded again", path, exc
            )
            return {}
        return {identity(s.conflict): s for s in standing}

    def _save(self) -> None:
        data = {
            "format": "syncd.conflicts/1",
            "conflicts": [
                {"conflict": asdict(s.conflict), "since": s.since.isoformat()}
                for _, s in sorted(self.standing.items())
            ],
        }
        try:
            self.state.write_json(FILE, data)
        except OSError as exc:
            log.error(
                "%s: cannot keep the standing conflicts (%s); after a restart they are "
                "recorded again",
                self.state.path / FILE,
                exc.strerror or exc,
            )


def _standing(item: dict[str, Any]) -> Standing:
    fields = {**item["conflict"], "contract_ids": tuple(item["conflict"]["contract_ids"])}
    return Standing(Conflict(**fields), datetime.fromisoformat(item["since"]))


def _seen(cycle: CyclePlan, conflict: Conflict) -> bool:
    """Whether ``cycle`` looked where ``conflict`` was: its target observed, and its
    person planned (every person, unless the cycle was a targeted one)."""
    if conflict.target not in cycle.observed:
        return False
    return cycle.targeted is None or conflict.person in cycle.targeted
