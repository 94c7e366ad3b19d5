"""File helpers of the audit trail: the writer's lock, durable creation, and reads.

Called by ``syncd.audit.writer`` (everything here). The CLI takes ``rotated_files``
and ``AuditError`` through the writer and ``syncd.audit``: it lists a trail's sealed
files to verify the configured trail. Nothing here knows a record's shape beyond the
fields the writer needs to resume a trail (``metadata.sequence``, ``time``, the uids
that pair an intent with its outcome).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.errors import SyncdError


class AuditError(SyncdError):
    """The audit trail cannot be written safely; nothing may change without it."""


def rotated_files(path: Path) -> list[Path]:
    """The trail's sealed files, oldest first (their names sort by time)."""
    return sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))


def lock_trail(path: Path) -> int:
    """Take the trail's one-writer lock (``<file>.lock``); returns its descriptor.

    The lock file holds the writer's pid, so that the refusal names the process."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AuditError(
            f"{path} is being written by another syncd (pid {holder}); "
            "an audit trail has one writer"
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def stamp() -> str:
    """The UTC time for a file name: fixed width, so names sort in time order."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwrite) with ``data``, durably: file and directory."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a create or rename in ``folder`` durable (the entry lives in the directory)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def last_line(path: Path) -> bytes | None:
    """The last line of ``path`` (read from the last MiB only), or None if empty."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        back = min(size, 1 << 20)
        handle.seek(size - back)
        lines = handle.read().splitlines()
    return lines[-1] if lines else None


def first_record(path: Path) -> dict[str, Any]:
    """The first record of ``path``, checked to carry a sequence and a time."""
    with path.open("rb") as handle:
        line = handle.readline()
    try:
        record: dict[str, Any] = json.loads(line)
        int(record["metadata"]["sequence"]), int(record["time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(
            f"{path}: the first line is not a syncd audit record; run `syncd audit verify`"
        ) from exc
    return record


_INTENT_UID = re.compile(rb'"sequence":\d+,"uid":"([0-9a-f-]{36})"')
_CLOSES = re.compile(rb'"intent_uid":"([0-9a-f-]{36})"')


def open_intents(path: Path) -> list[dict[str, Any]]:
    """Intents in ``path`` that no outcome closes (the writer stopped between the two).

    Lines are canonical JSON, so the uids are found with two patterns and only the
    intents left open are parsed: a file of 100,000 records costs a scan, not 100,000
    JSON documents in memory."""
    intents: dict[bytes, int] = {}  # intent uid -> offset of its line
    closed: set[bytes] = set()
    offset = 0
    with path.open("rb") as handle:
        for line in handle:
            if b'"phase":"intent"' in line:
                match = _INTENT_UID.search(line)
                if match:
                    intents[match.group(1)] = offset
            elif b'"intent_uid"' in line:
                match = _CLOSES.search(line)
                if match:
                    closed.add(match.group(1))
            offset += len(line)
        pending = []
        for uid, start in intents.items():
            if uid not in closed:
                handle.seek(start)
                pending.append(json.loads(handle.readline()))
    return pending
