"""The daemon's state directory: one instance per folder, the last good source, and
when each orphan was first seen absent.

Called by ``syncd.daemon``, which holds the lock while it runs, by
``syncd.watch.SourceWatch``, which saves and loads the snapshot, and by the CLI
(``Absences``: ``syncd sync`` records absences when no daemon holds the folder, ``plan``
only reads them). The snapshot is what lets dated expiries happen on time while the
source is down or suspicious (SPEC §4): it holds the raw records of the last source read
that was accepted. The absences (``absent-since.json``, beside it) are what lets an
orphan's credentials wait for ``policy.orphan_grace`` across cycles and restarts. Both
are written atomically (temporary file, fsync, rename, directory fsync) so a crash never
leaves half of one. A record that is lost or unreadable only starts the grace again:
credentials are revoked later than they would have been, never earlier.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from syncd.core.contracts import RawRecord
from syncd.core.plan import Wait
from syncd.errors import SyncdError

log = logging.getLogger(__name__)
SNAPSHOT = "source-snapshot.json"
ABSENCES = "absent-since.json"


class StateLocked(SyncdError):
    """Another syncd runs with the same state directory."""


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._lock = os.open(path / "syncd.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(self._lock, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._lock)
            raise StateLocked(
                f"another syncd (pid {holder}) runs with state_dir {path}; "
                "one instance per state directory"
            ) from exc
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, f"{os.getpid()}\n".encode(), 0)
        self._absences: dict[str, datetime] | None = None  # as last written

    def close(self) -> None:
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def save_snapshot(self, records: list[RawRecord], valid: int, taken: datetime) -> None:
        data = {
            "format": "syncd.snapshot/1",
            "taken": taken.isoformat(),
            "valid": valid,
            "records": [{"origin": r.origin, "fields": _plain(r.fields)} for r in records],
        }
        self._replace(SNAPSHOT, data)

    def load_absences(self) -> dict[str, datetime]:
        return read_absences(self.path)

    def save_absences(self, since: Mapping[str, datetime]) -> None:
        """Record when each orphan was first seen absent (a cycle's ``absent_since``).

        A failed write is logged, not raised: the cycle goes on (dated expiries must not
        wait for a disk), and the orphans it did not record start their grace again."""
        if self._absences == since:
            return
        data = {
            "format": "syncd.absent-since/1",
            "absent_since": {key: when.isoformat() for key, when in sorted(since.items())},
        }
        try:
            self._replace(ABSENCES, data)
        except OSError as exc:
            log.error(
                "%s: cannot record when orphans were first seen absent (%s); their "
                "policy.orphan_grace starts again at the next cycle",
                self.path / ABSENCES,
                exc.strerror or exc,
            )
            return
        self._absences = dict(since)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace file ``name`` in the folder with ``data``, atomically; ``OSError``."""
        self._replace(name, data)

    def _replace(self, name: str, data: dict[str, Any]) -> None:
        target = self.path / name
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, json.dumps(data, ensure_ascii=False).encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
        folder = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def load_snapshot(self) -> Snapshot | None:
        try:
            data = json.loads((self.path / SNAPSHOT).read_text(encoding="utf-8"))
            records = [RawRecord(r["origin"], r["fields"]) for r in data["records"]]
            return Snapshot(records, int(data["valid"]), datetime.fromisoformat(data["taken"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise SyncdError(
                f"{self.path / SNAPSHOT}: unreadable snapshot ({exc}); remove it "
                "to start from the current source"
            ) from exc


@dataclass(frozen=True)
class Snapshot:
    records: list[RawRecord]
    valid: int
    taken: datetime


def read_absences(folder: Path) -> dict[str, datetime]:
    """When each orphan was first seen absent, as recorded in state directory ``folder``
    (read without its lock: the file is replaced whole). Empty when nothing is recorded
    there; a record that cannot be read is logged and counts as empty."""
    path = folder / ABSENCES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        since = {str(k): datetime.fromisoformat(v) for k, v in data["absent_since"].items()}
        if any(when.utcoffset() is None for when in since.values()):
            raise ValueError("a time without an offset")
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "%s: cannot read when orphans were first seen absent (%s); their "
            "policy.orphan_grace starts again now",
            path,
            exc.strerror if isinstance(exc, OSError) else exc,
        )
        return {}
    return since


@dataclass
class Absences:
    """The absences as a one-shot command sees them. ``since``: what is recorded;
    ``state``: the state directory, when this run holds its lock and so records the
    absences it finds; ``why``: otherwise, why it cannot (and what that means)."""

    since: dict[str, datetime] = field(default_factory=dict)
    state: StateDir | None = None
    why: str = ""

    @classmethod
    def open(cls, folder: Path, *, record: bool) -> Absences:
        """Read what ``folder`` holds; with ``record``, also take its lock when it is free.
        The folder is never made here: the daemon (or the package) makes it, with its
        owner and mode."""
        if not record:
            return cls(read_absences(folder))
        if not folder.is_dir():
            return cls(
                why=f"daemon.state_dir {folder} does not exist, so absences are not "
                "remembered and no sync revokes their credentials (fix: create it, run "
                "syncd run, or set policy.orphan_grace: 0s)"
            )
        try:
            state = StateDir(folder)
        except StateLocked:
            return cls(
                read_absences(folder),
                why=f"the running daemon holds daemon.state_dir {folder} and records them "
                "at its next cycle",
            )
        except OSError as exc:
            return cls(read_absences(folder), why=f"daemon.state_dir {folder}: {exc.strerror}")
        return cls(state.load_absences(), state)

    def record(self, since: Mapping[str, datetime]) -> None:
        """Keep ``since`` (a cycle's ``absent_since``) when this run holds the lock."""
        if self.state is not None:
            self.state.save_absences(since)

    def note(self, waits: Mapping[str, tuple[Wait, ...]]) -> str:
        """What to tell the operator about orphans whose steps wait (a cycle's ``waits``)
        although their absence is not recorded: "" when there are none, or it is."""
        fresh = {w.action.person for ws in waits.values() for w in ws} - set(self.since)
        if not self.why or not fresh:
            return ""
        return (
            f"{len(fresh)} orphan(s) not recorded as absent count as absent since now: "
            f"policy.orphan_grace starts for them at this run; {self.why}"
        )

    def close(self) -> None:
        if self.state is not None:
            self.state.close()

    def __enter__(self) -> Absences:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """Source values as JSON (YAML gives dates; the contract parser reads ISO strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
