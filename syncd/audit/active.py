"""The trail's active file as the writer holds it open: whole records or nothing, and
whether its path still names it.

Used by ``syncd.audit.writer`` only. ``ActiveFile.append`` writes one record with one
``write``; when the write fails or comes back short (a full disk, a quota, a file size
limit) it cuts the file back to its last complete record before raising
``AppendFailed``, so the next record never lands after half a line and a trail that
was full once stays verifiable. ``ActiveFile.lost`` compares the open descriptor with
what the trail's path names now: a file deleted (link count 0), moved away or
replaced under the writer is noticed before the next batch, instead of records going
on into a file nobody will read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from syncd.audit.files import AuditError, first_record, fsync_dir, trail_error


class AppendFailed(AuditError):
    """A record could not be appended whole; the file was cut back to its last record
    (``cut`` bytes removed) unless ``damaged``: then the cut is tried again first."""

    def __init__(self, message: str, reason: str, cut: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.cut = cut


@dataclass(frozen=True)
class Loss:
    """How the open file stopped being the trail."""

    how: str  # "deleted" (no link left) or "moved away" (it has a name elsewhere)
    replaced: bool  # another file now has the trail's name


class ActiveFile:
    """An open active file: its descriptor, its complete size, and where it starts."""

    def __init__(
        self,
        path: Path,
        fd: int,
        first_sequence: int,
        started_ms: int,
        continues: str | None,
        previous_hash: str,
    ) -> None:
        self.path = path
        self.fd = fd
        self.size = os.fstat(fd).st_size  # bytes of complete records
        self.first_sequence = first_sequence
        self.started_ms = started_ms
        self.continues = continues  # the file its header continues (None: the first)
        self.previous_hash = previous_hash  # the hash its first record links to
        self.damaged = False  # a cut back to ``size`` is still owed

    @classmethod
    def existing(cls, path: Path) -> ActiveFile:
        """Open a non-empty active file to append to it."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            first = first_record(path)
            unmapped = first.get("unmapped") or {}
            chain = unmapped.get("chain") or {}
            continues = unmapped.get("previous_file")
            return cls(
                path,
                fd,
                int(first["metadata"]["sequence"]),
                int(first["time"]),
                continues if isinstance(continues, str) else None,
                str(chain.get("prev", "")),
            )
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def create(
        cls, path: Path, first_sequence: int, continues: str | None, previous_hash: str
    ) -> ActiveFile:
        """Create the active file (``0640``), or take over an empty one left behind
        (created and never written, or emptied behind syncd's back)."""
        empty = path.exists() and path.stat().st_size == 0
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if empty else os.O_EXCL)
        fd = os.open(path, flags, 0o640)
        try:
            fsync_dir(path.parent)
            return cls(
                path, fd, first_sequence, time.time_ns() // 1_000_000, continues, previous_hash
            )
        except BaseException:
            os.close(fd)
            raise

    def append(self, data: bytes) -> None:
        """Append one record whole, or leave the file as it was and raise."""
        if self.damaged:
            self.restore()
        written = 0
        try:
            # A regular file takes a write whole, unless space runs out in the middle:
            # then the rest is tried once more, to learn why (ENOSPC, EFBIG, EDQUOT).
            while written < len(data):
                count = os.write(self.fd, data[written:] if written else data)
                if count == 0:
                    reason = f"short write ({written} of {len(data)} bytes)"
                    self._failed(reason, AuditError(f"audit trail {self.path}: {reason}"))
                written += count
        except OSError as exc:
            after = f" (after {written} of {len(data)} bytes)" if written else ""
            reason = f"{exc.strerror or exc}{after}"
            self._failed(reason, trail_error(exc, "write to it", self.path, after))
        self.size += written

    def _failed(self, reason: str, error: AuditError) -> NoReturn:
        try:
            cut = self.restore()
        except OSError as exc:
            raise AppendFailed(
                f"{error}; cutting the partial record off failed too ({exc.strerror}): it is "
                "tried again before the next record",
                reason,
                0,
            ) from exc
        raise AppendFailed(
            f"{error}; the partial record was cut off ({cut} bytes), nothing more is sent "
            "to a target until the trail can be written",
            reason,
            cut,
        )

    def restore(self) -> int:
        """Cut the file back to its last complete record; returns the bytes cut."""
        self.damaged = True
        extra = os.fstat(self.fd).st_size - self.size
        if extra > 0:
            os.ftruncate(self.fd, self.size)
        self.damaged = False
        return max(extra, 0)

    def fsync(self) -> None:
        os.fsync(self.fd)

    def lost(self) -> Loss | None:
        """None while the trail's path names this file; else how it was lost."""
        mine = os.fstat(self.fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return None
        return Loss("deleted" if mine.st_nlink == 0 else "moved away", now is not None)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
