"""The daemon's state directory: one instance per folder, and the last good source.

Called by ``syncd.daemon``, which holds the lock while it runs, and by
``syncd.watch.SourceWatch``, which saves and loads the snapshot. The snapshot is what
lets dated expiries happen on time while the source is down or suspicious (SPEC §4): it
holds the raw records of the last source read that was accepted, written atomically
(temporary file, fsync, rename, directory fsync) so a crash never leaves half of it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from syncd.core.contracts import RawRecord
from syncd.errors import SyncdError

SNAPSHOT = "source-snapshot.json"


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
        target = self.path / SNAPSHOT
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


def _plain(value: Any) -> Any:
    """Source values as JSON (YAML gives dates; the contract parser reads ISO strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
