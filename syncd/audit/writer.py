"""The audit trail writer: one process appends hash-chained OCSF records to a JSONL file.

Called by ``syncd.apply`` (intent before each write, outcome after it, held actions,
conflicts) and the CLI (run start/stop, overrides, settling intents left open by a
crash). Guarantees:

* one writer per trail: an exclusive ``flock`` on ``<file>.lock``;
* append-only: ``O_APPEND``, one ``write`` per record, files created ``0640`` with a
  directory fsync;
* durability: with ``fsync: batch`` (default) ``sync()`` runs before a batch of target
  writes is sent, so every intent is on disk before its change; ``fsync: record``
  fsyncs after every record;
* crash safety: a torn last line found at start is moved aside to
  ``<file>.torn-<time>``, never dropped, and acknowledged by a recovery record; intents
  without an outcome are offered to the caller (``pending``) to settle;
* rotation by size and/or age, only between batches: a seal record closes the file, it
  is renamed ``<stem>-<UTC time>-<first sequence><suffix>`` (sortable), and the new file
  opens with a header record that carries the previous file's name, last sequence and
  hash. Never copytruncate: a copy taken while syncd appends loses or repeats records.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.audit.chain import GENESIS, Sealer
from syncd.audit.records import (
    ACTIVITIES,
    ARCHIVE,
    FAILURE,
    OCSF_VERSION,
    OTHER,
    OTHER_ACTIVITY,
    PRODUCT,
    ROTATE,
    SUCCESS,
    Outcome,
    action_body,
    conflict_record,
    event_record,
    fixed_fields,
    iso,
)
from syncd.config import AuditConfig
from syncd.core.model import Action, Conflict
from syncd.errors import SyncdError


class AuditError(SyncdError):
    """The audit trail cannot be written safely; nothing may change without it."""


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


class AuditWriter:
    """Appends hash-chained records to ``path`` (the active file of the trail)."""

    def __init__(
        self, path: Path, options: WriterOptions | None = None, correlation: str = ""
    ) -> None:
        self.path = path
        self.correlation = correlation  # for the records the writer makes on its own
        self.options = options or WriterOptions()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(path)
        self._fd = -1
        self._bodies: dict[
            int, tuple[Action, dict[str, str], dict[str, str] | None, dict[str, Any]]
        ] = {}
        self._open_intents: dict[int, str] = {}  # id(action) -> intent uid
        self._clock: tuple[int, str] = (0, "")
        self.pending: list[dict[str, Any]] = []  # intents a crash left without outcome
        try:
            self._start()
        except BaseException:
            os.close(self._lock_fd)
            raise

    @classmethod
    def from_config(cls, config: AuditConfig, correlation: str = "") -> AuditWriter:
        sealer = Sealer()
        if config.hmac_key_file is not None:
            key = config.hmac_key_file.read_bytes().strip()
            sealer = Sealer(key, config.key_id)
        return cls(
            config.path,
            WriterOptions(
                fsync=config.fsync,
                rotate_bytes=config.rotate_size,
                rotate_age=config.rotate_age,
                checkpoint_records=config.checkpoint_records,
                checkpoint_interval=config.checkpoint_interval,
                sealer=sealer,
            ),
            correlation,
        )

    # -- opening and recovery ----------------------------------------------------------
    def _start(self) -> None:
        torn = self._recover_torn_tail()
        self._head = self._find_head()
        if self.path.exists() and self.path.stat().st_size > 0:
            self._open_existing()
        else:
            self._open_new(previous=self._head.file)
        if torn is not None:
            self._emit(
                event_record(
                    OTHER_ACTIVITY,
                    "Recovery",
                    f"a torn last record was moved aside to {torn[0]}",
                    phase="recovery",
                    torn_file=torn[0],
                    torn_bytes=torn[1],
                    torn_sha256=torn[2],
                ),
                self.correlation,
            )
            self.sync()
        if self._rotation_due():
            self._rotate()

    def _recover_torn_tail(self) -> tuple[str, int, str] | None:
        """Move bytes after the last newline (a record cut short by a crash) aside."""
        if not self.path.exists():
            return None
        with self.path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            back = min(size, 1 << 20)
            handle.seek(size - back)
            tail = handle.read()
            cut = tail.rfind(b"\n") + 1
            if cut == len(tail):
                return None
            if cut == 0 and back < size:
                raise AuditError(
                    f"{self.path}: last record longer than 1 MiB without newline; "
                    "run `syncd audit verify` and repair by hand"
                )
            torn = tail[cut:]
            name = f"{self.path.name}.torn-{_stamp()}"
            _write_new_file(self.path.parent / name, torn)
            handle.truncate(size - len(torn))
            handle.flush()
            os.fsync(handle.fileno())
        return name, len(torn), hashlib.sha256(torn).hexdigest()

    def _find_head(self) -> _Head:
        """The last record of the trail: in the active file, else the newest rotated one."""
        candidates = [self.path] if self.path.exists() else []
        candidates += sorted(rotated_files(self.path), reverse=True)
        for file in candidates:
            last = _last_line(file)
            if last is None:
                continue
            try:
                record = json.loads(last)
                chain = record["unmapped"]["chain"]
                return _Head(int(record["metadata"]["sequence"]), str(chain["hash"]), file.name)
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditError(
                    f"{file}: the last record is not a syncd audit record; run "
                    "`syncd audit verify` before writing to this trail"
                ) from exc
        return _Head()

    def _open_existing(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = self.path.stat().st_size
        first = _first_record(self.path)
        self._file_first_sequence = int(first["metadata"]["sequence"])
        self._file_started = int(first["time"])
        self._file_records = 0
        self._since_checkpoint = (0, time.monotonic())
        self.pending = _open_intents(self.path)

    def _open_new(self, previous: str | None) -> None:
        # O_EXCL unless an empty file is already there (created, never written, or
        # emptied behind syncd's back, e.g. by logrotate's copytruncate)
        empty = self.path.exists() and self.path.stat().st_size == 0
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if empty else os.O_EXCL)
        fd = os.open(self.path, flags, 0o640)
        _fsync_dir(self.path.parent)
        self._fd = fd
        self._size = 0
        self._file_first_sequence = self._head.sequence + 1
        self._file_started = time.time_ns() // 1_000_000
        self._file_records = 0
        self._since_checkpoint = (0, time.monotonic())
        self._emit(
            event_record(
                ROTATE,
                "Rotate",
                "audit file opened",
                phase="header",
                previous_file=previous,
                previous_sequence=self._head.sequence,
                previous_hash=self._head.hash,
            ),
            self.correlation,
        )
        os.fsync(self._fd)

    # -- rotation ----------------------------------------------------------------------
    def _rotation_due(self) -> bool:
        opts = self.options
        if opts.rotate_bytes and self._size >= opts.rotate_bytes:
            return True
        if opts.rotate_age is not None:
            age_ms = time.time_ns() // 1_000_000 - self._file_started
            return age_ms >= opts.rotate_age.total_seconds() * 1000
        return False

    def _rotate(self) -> None:
        seal_sequence = self._head.sequence + 1
        self._emit(
            event_record(
                ARCHIVE,
                "Archive",
                "audit file sealed",
                phase="seal",
                first_sequence=self._file_first_sequence,
                records=seal_sequence - self._file_first_sequence + 1,
                last_hash=self._head.hash,
            ),
            self.correlation,
        )
        os.fsync(self._fd)
        os.close(self._fd)
        name = f"{self.path.stem}-{_stamp()}-{self._file_first_sequence:012d}{self.path.suffix}"
        os.rename(self.path, self.path.parent / name)
        _fsync_dir(self.path.parent)
        self._head.file = name
        self._open_new(previous=name)

    # -- records -----------------------------------------------------------------------
    def intent(self, action: Action, correlation: str) -> None:
        if not self._open_intents and not self.pending and self._rotation_due():
            self._rotate()  # between batches: a batch's intents and outcomes share a file
        uid = self._action(action, correlation, OTHER, "Intent", "intent", "")
        self._open_intents[id(action)] = uid

    def outcome(self, outcome: Outcome, correlation: str) -> None:
        if outcome.ok is None:
            status_id, status = OTHER, "Unknown"
        else:
            status_id, status = (SUCCESS, "Success") if outcome.ok else (FAILURE, "Failure")
        intent_uid = self._open_intents.pop(id(outcome.action), None)
        self._action(
            outcome.action,
            correlation,
            status_id,
            status,
            "outcome",
            outcome.detail,
            outcome.ref,
            intent_uid,
        )

    def held(self, action: Action, correlation: str) -> None:
        self._action(action, correlation, OTHER, "Held", "held", action.held)

    def conflict(self, conflict: Conflict, correlation: str) -> None:
        self._emit(conflict_record(conflict), correlation)

    def event(
        self, activity_id: int, activity: str, message: str, correlation: str, **unmapped: Any
    ) -> None:
        """A daemon-level event (class 1008): run start (6), stop (7), overrides (99)."""
        self._emit(event_record(activity_id, activity, message, **unmapped), correlation)

    def settle(
        self, intent: dict[str, Any], applied: bool | None, detail: str, correlation: str
    ) -> None:
        """Close an intent a crash left open, with what the target shows now."""
        status_id, status = {
            True: (SUCCESS, "Success"),
            False: (FAILURE, "Failure"),
            None: (OTHER, "Unknown"),
        }[applied]
        record = dict(
            fixed_fields(
                intent["class_uid"],
                intent["activity_id"],
                intent["activity_name"],
                status_id,
                status,
            )
        )
        record["status_detail"] = detail
        for key in ("user", "group"):
            if key in intent:
                record[key] = intent[key]
        unmapped = {k: v for k, v in intent["unmapped"].items() if k != "chain"}
        unmapped.update(phase="outcome", observed=True, intent_uid=intent["metadata"]["uid"])
        record["unmapped"] = unmapped
        self._emit(record, correlation)

    def _action(
        self,
        action: Action,
        correlation: str,
        status_id: int,
        status: str,
        phase: str,
        detail: str,
        ref: str | None = None,
        intent_uid: str | None = None,
    ) -> str:
        class_uid, activity_id, activity = ACTIVITIES[action.kind]
        record = dict(fixed_fields(class_uid, activity_id, activity, status_id, status))
        if detail:
            record["status_detail"] = detail
        # The account part is the same for an action's intent and outcome: built once.
        cached = self._bodies.pop(id(action), None)
        if cached is None or cached[0] is not action:
            cached = (action, *action_body(action))
            if phase == "intent":
                self._bodies[id(action)] = cached
        _, user, group, unmapped = cached
        if ref and ref != user.get("uid_alt"):
            user = {**user, "uid_alt": ref}
        record["user"] = user
        if group is not None:
            record["group"] = group
        record["unmapped"] = {**unmapped, "phase": phase}
        if intent_uid:
            record["unmapped"]["intent_uid"] = intent_uid
        return self._emit(record, correlation)

    def _emit(self, record: dict[str, Any], correlation: str) -> str:
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._clock[0]:
            self._clock = (now_ms, iso(datetime.fromtimestamp(now_ms / 1000, UTC), ms=True))
        uid = str(uuid.uuid4())
        self._head.sequence += 1
        record["time"] = now_ms
        record["time_dt"] = self._clock[1]
        record["metadata"] = {
            "uid": uid,
            "sequence": self._head.sequence,
            "correlation_uid": correlation,
            "version": OCSF_VERSION,
            "product": PRODUCT,
        }
        line, digest = self.options.sealer.seal(record, self._head.hash)
        data = (line + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file takes it whole unless the disk is full
            raise AuditError(
                f"{self.path}: short write ({written} of {len(data)} bytes); is the disk full?"
            )
        self._head.hash = digest
        self._size += len(data)
        self._file_records += 1
        if self.options.fsync == "record":
            os.fsync(self._fd)
        self._maybe_checkpoint(record)
        return uid

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
        self._emit(
            event_record(
                OTHER_ACTIVITY,
                "Checkpoint",
                "chain head",
                phase="checkpoint",
                head_sequence=self._head.sequence,
                head_hash=self._head.hash,
            ),
            record["metadata"]["correlation_uid"],
        )

    # -- durability --------------------------------------------------------------------
    def sync(self) -> None:
        """Make every record written so far durable; rotate if due and no intent is open."""
        os.fsync(self._fd)
        if not self._open_intents and not self.pending and self._rotation_due():
            self._rotate()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rotated_files(path: Path) -> list[Path]:
    """The trail's sealed files, oldest first (their names sort by time)."""
    return sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))


def _lock(path: Path) -> int:
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


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _write_new_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line(path: Path) -> bytes | None:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        back = min(size, 1 << 20)
        handle.seek(size - back)
        lines = handle.read().splitlines()
    return lines[-1] if lines else None


def _first_record(path: Path) -> dict[str, Any]:
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


def _open_intents(path: Path) -> list[dict[str, Any]]:
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
