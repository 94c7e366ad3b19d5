"""File helpers of the audit trail: the writer's lock, durable creation, and reads.

Called by ``syncd.audit.trail`` (the writer's files and chain), ``syncd.audit.active``
and ``syncd.audit.writer``. The CLI takes ``rotated_files`` and ``AuditError`` through
the writer and ``syncd.audit``: it lists a trail's sealed files to verify the
configured trail. Nothing here knows a
record's shape beyond the fields the writer needs to resume a trail
(``metadata.sequence``, ``time``, the uids that pair an intent with its outcome, and a
header's ``open_intents``). ``trail_error`` turns an operating system error into an
``AuditError`` that names the file and says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.errors import SyncdError


class AuditError(SyncdError):
    """The audit trail cannot be written safely; nothing may change without it."""


# errno -> what the person running syncd can do about it
_FIXES = {
    errno.EACCES: "the user syncd runs as may not write there: give it the folder (0750) "
    "and the trail's files (0640)",
    errno.EPERM: "an immutable or append-only attribute forbids it (see `lsattr`): remove "
    "it with `chattr -i` or `chattr -a` (syncd appends, and renames files to rotate them)",
    errno.EROFS: "the file system is mounted read-only: remount it read-write, or set "
    "audit.path to a writable place",
    errno.ENOSPC: "the file system is full: free space; syncd writes again by itself",
    errno.EDQUOT: "the disk quota is used up: free space or raise the quota; syncd writes "
    "again by itself",
    errno.EFBIG: "the file size limit is reached (ulimit -f, LimitFSIZE=): raise it, or "
    "lower audit.rotate_size",
    errno.ENOENT: "a folder on the way is missing: create it, or fix audit.path",
    errno.ENOTDIR: "a part of the path is not a folder: fix audit.path",
}


def trail_error(exc: OSError, doing: str, path: Path, note: str = "") -> AuditError:
    """``exc`` as an ``AuditError`` naming the file, what syncd was doing and the fix."""
    where = exc.filename if isinstance(exc.filename, str) else str(path)
    fix = _FIXES.get(exc.errno or 0, "check the folder and the file")
    return AuditError(f"audit trail {where}: cannot {doing}: {exc.strerror or exc}{note}; {fix}")


def make_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parent as ``0750`` (the files are ``0640``)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    for part in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by someone else
            os.mkdir(part, 0o750)


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


def recover_torn_tail(path: Path) -> tuple[str, int, str] | None:
    """Move bytes after the last newline of ``path`` (a record cut short by a crash)
    aside to ``<file>.torn-<time>``; returns that name, the bytes and their SHA-256."""
    if not path.exists():
        return None
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        back = min(size, 1 << 20)
        handle.seek(size - back)
        tail = handle.read()
    cut = tail.rfind(b"\n") + 1
    if cut == len(tail):
        return None
    if cut == 0 and back < size:
        raise AuditError(
            f"{path}: last record longer than 1 MiB without newline; "
            "run `syncd audit verify` and repair by hand"
        )
    torn = tail[cut:]
    name = f"{path.name}.torn-{stamp()}"
    write_new_file(path.parent / name, torn)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size - len(torn))
        os.fsync(fd)
    finally:
        os.close(fd)
    return name, len(torn), hashlib.sha256(torn).hexdigest()


def find_head(path: Path) -> tuple[int, str, str] | None:
    """The last record of the trail (in the active file, else the newest sealed one):
    its sequence, its hash and the name of its file; None for a new trail."""
    candidates = [path] if path.exists() else []
    candidates += sorted(rotated_files(path), reverse=True)
    for file in candidates:
        last = last_line(file)
        if last is None:
            continue
        try:
            record = json.loads(last)
            return (
                int(record["metadata"]["sequence"]),
                str(record["unmapped"]["chain"]["hash"]),
                file.name,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"{file}: the last record is not a syncd audit record; run "
                "`syncd audit verify` before writing to this trail"
            ) from exc
    return None


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


def carried_intents(path: Path) -> int:
    """How many intents were open when ``path`` was started: its header's
    ``open_intents`` (0 for a file whose first record has none, as older headers)."""
    unmapped = first_record(path).get("unmapped")
    count = unmapped.get("open_intents", 0) if isinstance(unmapped, dict) else 0
    return count if isinstance(count, int) else 0


def unsettled_span(files: Sequence[Path]) -> list[Path]:
    """The newest of ``files`` (oldest first) back to the last one at whose start no
    intent was open: every intent still open is in one of them."""
    start = len(files) - 1
    while start > 0 and carried_intents(files[start]) > 0:
        start -= 1
    return list(files[max(start, 0) :])


def open_intents(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Intents in ``paths`` (oldest first) that no outcome in them closes (the writer
    stopped between the two).

    Lines are canonical JSON, so the uids are found with two patterns and only the
    intents left open are parsed: a file of 100,000 records costs a scan, not 100,000
    JSON documents in memory."""
    intents: dict[bytes, tuple[Path, int]] = {}  # intent uid -> file and offset of its line
    closed: set[bytes] = set()
    for path in paths:
        offset = 0
        with path.open("rb") as handle:
            for line in handle:
                if b'"phase":"intent"' in line:
                    match = _INTENT_UID.search(line)
                    if match:
                        intents[match.group(1)] = (path, offset)
                elif b'"intent_uid"' in line:
                    match = _CLOSES.search(line)
                    if match:
                        closed.add(match.group(1))
                offset += len(line)
    pending = []
    for path in paths:
        starts = [at for uid, (where, at) in intents.items() if where == path and uid not in closed]
        if starts:
            with path.open("rb") as handle:
                for start in starts:
                    handle.seek(start)
                    pending.append(json.loads(handle.readline()))
    return pending
