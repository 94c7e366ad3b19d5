"""The trail's files and chain under its one writer: the head, the active file, rotation,
and what happens when the file system or someone else gets in the way.

``Trail`` is the base of ``syncd.audit.writer.AuditWriter``, which adds the kinds of
records; nothing else uses it. It opens the trail (lock, torn tail, head, the intents
left open), appends records whole (``_emit``), and keeps three promises between
batches (``_between_batches``, ``sync``): the open file is the trail's (a file deleted,
moved away or replaced under the writer is followed by a new one that names the
records lost with it, and the intents of the batch in flight are written again); a
write that failed was cut off whole and is acknowledged by the next record; rotation
happens only when no intent waits for its outcome, or at start, where the new header
counts the intents still open before it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.audit.active import ActiveFile, AppendFailed, Loss
from syncd.audit.chain import GENESIS, Sealer
from syncd.audit.files import (
    find_head,
    fsync_dir,
    lock_trail,
    make_folder,
    open_intents,
    recover_torn_tail,
    rotated_files,
    stamp,
    trail_error,
    unsettled_span,
)
from syncd.audit.records import (
    ActionBody,
    checkpoint_record,
    header_record,
    intent_record,
    iso,
    lost_file_record,
    metadata,
    recovery_record,
    seal_record,
    write_failure_record,
)
from syncd.core.model import Action


@dataclass(frozen=True)
class WriterOptions:
    fsync: str = "batch"  # batch | record
    rotate_bytes: int = 0  # 0: no size rotation
    rotate_age: timedelta | None = None
    checkpoint_records: int = 1000
    checkpoint_interval: timedelta = timedelta(minutes=15)
    sealer: Sealer = field(default_factory=Sealer)


@dataclass
class _Head:
    sequence: int = 0
    hash: str = GENESIS
    file: str | None = None  # the file holding the head record


@dataclass
class _Failure:
    """Writes that failed since the last record that could be written."""

    since: datetime
    error: str
    failures: int = 0
    cut: int = 0
    left_open: int = 0


@dataclass(frozen=True)
class _NewFile:
    """A new active file to open: what its header continues, how many intents of
    earlier files are open, and after a loss what was lost and where a file found in
    its place went. Kept until the file is open: a failed header is tried again."""

    previous: str | None
    carried: int = 0
    lost: dict[str, Any] | None = None
    foreign: str | None = None


class Trail:
    """The files and the chain of the trail whose active file is ``path``."""

    def __init__(
        self, path: Path, options: WriterOptions | None = None, correlation: str = ""
    ) -> None:
        self.path = path
        self.correlation = correlation  # for the records the writer makes on its own
        self.options = options or WriterOptions()
        # id(action) -> (action, body) of an intent awaiting its outcome
        self._bodies: dict[int, tuple[Action, ActionBody]] = {}
        self._open_intents: dict[int, dict[str, Any]] = {}  # id(action) -> its intent, written
        self._clock: tuple[int, str] = (0, "")
        self._file: ActiveFile | None = None  # None: the next record opens a new file
        self._new_file = _NewFile(None)
        self._failure: _Failure | None = None
        self._rotation_blocked = False  # a rename failed: no more tries in this process
        self._since_checkpoint = (0, time.monotonic())
        self._head = _Head()
        self.pending: list[dict[str, Any]] = []  # intents a crash or a failure left open
        self.interrupted: set[str] = set()  # uids of those a failed write left open
        try:
            make_folder(path.parent)
            self._lock_fd = lock_trail(path)
        except OSError as exc:
            raise trail_error(exc, "open it for writing", path) from exc
        try:
            self._start()
        except BaseException as exc:
            self._release()
            if isinstance(exc, OSError):
                raise trail_error(exc, "open it for writing", path) from exc
            raise

    # -- opening and recovery ----------------------------------------------------------
    def _start(self) -> None:
        torn = recover_torn_tail(self.path)
        head = find_head(self.path)
        self._head = _Head(*head) if head is not None else _Head()
        active = self.path.exists() and self.path.stat().st_size > 0
        files = [*rotated_files(self.path), *([self.path] if active else [])]
        self.pending = open_intents(unsettled_span(files)) if files else []
        if active:
            self._file = ActiveFile.existing(self.path)
        else:
            self._open_new(_NewFile(self._head.file, len(self.pending)))
        if torn is not None:
            record = recovery_record(*torn)
            self._emit(record, self.correlation)
            self._after(record)
            self.sync()
        if self._rotation_due():
            self._rotate()  # the new header counts the intents still open before it

    def _open_new(self, new: _NewFile) -> ActiveFile:
        """Start a new active file: its header, then after a loss the record saying what
        was lost. On failure the file is left empty and the next record tries again."""
        self._file, self._new_file = None, new
        before = (self._head.sequence, self._head.hash)
        file = ActiveFile.create(self.path, before[0] + 1, new.previous, before[1])
        self._file = file
        self._since_checkpoint = (0, time.monotonic())
        try:
            header = header_record(new.previous, before[0], before[1], new.carried)
            self._emit(header, self.correlation)
            if new.lost is not None:
                record = lost_file_record(new.lost, new.foreign, len(self._open_intents))
                self._emit(record, self.correlation)
            file.fsync()
        except BaseException:
            self._file = None
            self._head.sequence, self._head.hash = before
            file.size = 0
            try:
                file.restore()
            finally:
                file.close()
            raise
        return file

    def _replace_lost(self, lost_file: ActiveFile, loss: Loss) -> None:
        """The open file is no longer the trail's: open a new one that says which
        records were lost with it, and write the intents of the batch in flight again,
        so that no change is sent whose intent is not in the trail."""
        self._file = None
        lost_file.close()
        make_folder(self.path.parent)
        self._relock()
        foreign = None
        if loss.replaced:  # someone else's file: kept aside, never read or written
            foreign = f"{self.path.name}.foreign-{stamp()}"
            os.rename(self.path, self.path.parent / foreign)
        lost = {
            "lost_file": self.path.name,
            "lost_how": loss.how,
            "lost_first_sequence": lost_file.first_sequence,
            "lost_last_sequence": self._head.sequence,
            "lost_previous_file": lost_file.continues,
            "lost_previous_hash": lost_file.previous_hash,
        }
        self._head.file = self.path.name
        self._open_new(_NewFile(self.path.name, 0, lost, foreign))
        for key, old in list(self._open_intents.items()):
            action, body = self._bodies[key]
            record = intent_record(action, body)
            self._emit(record, old["metadata"]["correlation_uid"])
            self._open_intents[key] = record

    def _relock(self) -> None:
        """Hold the lock file the trail's path names (the folder may have been emptied
        with the active file): take it anew, or stop if another writer has it."""
        lock = self.path.with_name(self.path.name + ".lock")
        mine = os.fstat(self._lock_fd)
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return
        fd = lock_trail(self.path)
        os.close(self._lock_fd)
        self._lock_fd = fd

    def _check_trail(self) -> ActiveFile:
        """The open file, made sure to be the trail's (a new one when it is not)."""
        file = self._file
        if file is None:
            return self._open_new(self._new_file)
        loss = file.lost()
        if loss is None:
            return file
        self._replace_lost(file, loss)
        assert self._file is not None
        return self._file

    # -- rotation ----------------------------------------------------------------------
    def _rotation_due(self) -> bool:
        opts, file = self.options, self._file
        if file is None or self._rotation_blocked:
            return False
        if opts.rotate_bytes and file.size >= opts.rotate_bytes:
            return True
        if opts.rotate_age is not None:
            age_ms = time.time_ns() // 1_000_000 - file.started_ms
            return age_ms >= opts.rotate_age.total_seconds() * 1000
        return False

    def _rotate(self) -> None:
        with self._io("rotate it"):
            self._seal_and_rename()

    def _seal_and_rename(self) -> None:
        file = self._file
        assert file is not None
        seal_sequence = self._head.sequence + 1
        records = seal_sequence - file.first_sequence + 1  # the seal included
        self._emit(seal_record(file.first_sequence, records, self._head.hash), self.correlation)
        file.fsync()
        name = f"{self.path.stem}-{stamp()}-{file.first_sequence:012d}{self.path.suffix}"
        try:
            os.rename(self.path, self.path.parent / name)
        except OSError:
            # The file goes on after its seal (verify accepts that); rotating again
            # would only add seals, so the next process tries.
            self._rotation_blocked = True
            raise
        carried = len(self.pending) + len(self._open_intents)
        self._file, self._new_file, self._head.file = None, _NewFile(name, carried), name
        file.close()
        fsync_dir(self.path.parent)
        self._open_new(self._new_file)

    # -- writing -----------------------------------------------------------------------
    def _between_batches(self) -> None:
        """Before a record no open intent waits on: the open file must still be the
        trail's, and writes that failed since the last record are acknowledged."""
        if self._open_intents:
            return
        self._check_trail()
        failure = self._failure
        if failure is not None:
            record = write_failure_record(
                failure.since, failure.failures, failure.error, failure.cut, failure.left_open
            )
            self._emit(record, self.correlation)
            self._failure = None
            self._after(record)

    def _emit(self, record: dict[str, Any], correlation: str) -> str:
        """Write one record whole (or nothing: ``AuditError``); returns its uid."""
        file = self._file
        if file is None:
            with self._io("open a new file"):
                file = self._open_new(self._new_file)
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._clock[0]:
            self._clock = (now_ms, iso(datetime.fromtimestamp(now_ms / 1000, UTC), ms=True))
        uid = str(uuid.uuid4())
        self._head.sequence += 1
        record["time"] = now_ms
        record["time_dt"] = self._clock[1]
        record["metadata"] = metadata(uid, self._head.sequence, correlation)
        line, digest = self.options.sealer.seal(record, self._head.hash)
        try:
            file.append((line + "\n").encode("utf-8"))
        except AppendFailed as exc:
            self._head.sequence -= 1
            self._failed(exc.reason, exc.cut)
            raise
        self._head.hash = digest
        return uid

    def _after(self, record: dict[str, Any]) -> None:
        """What follows a record: its fsync (``fsync: record``), a checkpoint if due."""
        if self.options.fsync == "record":
            with self._io("make it durable (fsync)"):
                if self._file is not None:
                    self._file.fsync()
        self._maybe_checkpoint(record)

    def _maybe_checkpoint(self, record: dict[str, Any]) -> None:
        if record["unmapped"].get("phase") in ("checkpoint", "header", "seal"):
            return
        count, since = self._since_checkpoint
        count += 1
        opts = self.options
        due = count >= opts.checkpoint_records or (
            time.monotonic() - since >= opts.checkpoint_interval.total_seconds()
        )
        if not due:
            self._since_checkpoint = (count, since)
            return
        self._since_checkpoint = (0, time.monotonic())
        checkpoint = checkpoint_record(self._head.sequence, self._head.hash)
        self._emit(checkpoint, record["metadata"]["correlation_uid"])
        self._after(checkpoint)

    # -- failures ----------------------------------------------------------------------
    @contextmanager
    def _io(self, doing: str) -> Iterator[None]:
        """Turn an operating system error into an ``AuditError`` naming the fix."""
        try:
            yield
        except OSError as exc:
            self._failed(exc.strerror or str(exc), 0)
            raise trail_error(exc, doing, self.path) from exc

    def _failed(self, reason: str, cut: int) -> None:
        """A write or fsync failed: the caller gets an ``AuditError`` and sends nothing
        more; the intents of the batch in flight (their changes sent or not) wait for
        settling by observation, and the next record says what failed."""
        failure = self._failure or _Failure(datetime.now(UTC), reason)
        failure.failures += 1
        failure.cut += cut
        failure.error = reason
        failure.left_open += len(self._open_intents)
        self._failure = failure
        for key, intent in self._open_intents.items():
            self._bodies.pop(key, None)
            self.pending.append(intent)
            self.interrupted.add(intent["metadata"]["uid"])
        self._open_intents.clear()

    # -- durability --------------------------------------------------------------------
    def sync(self) -> None:
        """Make every record written so far durable, in a file that is the trail's
        (the batch's intents are written again if it is not); rotate if due and no
        intent is open."""
        if self._file is None:
            return  # nothing written since a new file failed to open
        with self._io("make it durable (fsync)"):
            self._check_trail().fsync()
            if not self._open_intents and not self.pending and self._rotation_due():
                self._rotate()

    def close(self) -> None:
        try:
            if self._file is not None:
                self.sync()
        finally:
            self._release()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
