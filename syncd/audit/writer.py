"""The audit trail writer: one process appends hash-chained OCSF records to a JSONL file.

Opened with ``AuditWriter.from_config`` by ``syncd sync`` (``syncd.cli``) and by the
daemon (``syncd.daemon``, which writes its own start and stop events). Both hand it to
``syncd.engine.run_cycle``, which writes a ``sync`` run's start/stop and override
events and has ``syncd.audit.settle`` close the intents a crash left open
(``pending``); ``syncd.apply`` then writes an intent before each change, ``sync()``s
before sending a batch, and writes outcomes, held actions and conflicts. After each
cycle the daemon writes an attestation per target, as ``syncd attest`` (``syncd.commands``)
does on demand.

This module keeps the file mechanics and the chain; record shapes come from
``syncd.audit.records`` (``syncd.audit.attestation`` for attestations), low-level file
helpers from ``syncd.audit.files``. Guarantees:

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

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.audit.attestation import attestation_record
from syncd.audit.chain import GENESIS, Sealer
from syncd.audit.files import (
    AuditError,
    first_record,
    fsync_dir,
    last_line,
    lock_trail,
    open_intents,
    rotated_files,
    stamp,
    write_new_file,
)
from syncd.audit.records import (
    ActionBody,
    action_body,
    checkpoint_record,
    collateral_record,
    conflict_record,
    event_record,
    header_record,
    held_record,
    intent_record,
    iso,
    metadata,
    outcome_record,
    recovery_record,
    seal_record,
    settle_record,
)
from syncd.config import AuditConfig
from syncd.core.attest import Attestation
from syncd.core.model import Action, Collateral, Conflict, Outcome

# AuditError and rotated_files are part of this module's interface (callers import them
# from here); they live with the file helpers that raise and compute them.
__all__ = ["AuditError", "AuditWriter", "WriterOptions", "rotated_files"]


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
        self._lock_fd = lock_trail(path)
        self._fd = -1
        # id(action) -> (action, body) of an intent awaiting its outcome (see _body)
        self._bodies: dict[int, tuple[Action, ActionBody]] = {}
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
            self._emit(recovery_record(*torn), self.correlation)
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
            name = f"{self.path.name}.torn-{stamp()}"
            write_new_file(self.path.parent / name, torn)
            handle.truncate(size - len(torn))
            handle.flush()
            os.fsync(handle.fileno())
        return name, len(torn), hashlib.sha256(torn).hexdigest()

    def _find_head(self) -> _Head:
        """The last record of the trail: in the active file, else the newest rotated one."""
        candidates = [self.path] if self.path.exists() else []
        candidates += sorted(rotated_files(self.path), reverse=True)
        for file in candidates:
            last = last_line(file)
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
        first = first_record(self.path)
        self._file_first_sequence = int(first["metadata"]["sequence"])
        self._file_started = int(first["time"])
        self._since_checkpoint = (0, time.monotonic())
        self.pending = open_intents(self.path)

    def _open_new(self, previous: str | None) -> None:
        # O_EXCL unless an empty file is already there (created, never written, or
        # emptied behind syncd's back, e.g. by logrotate's copytruncate)
        empty = self.path.exists() and self.path.stat().st_size == 0
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (0 if empty else os.O_EXCL)
        fd = os.open(self.path, flags, 0o640)
        fsync_dir(self.path.parent)
        self._fd = fd
        self._size = 0
        self._file_first_sequence = self._head.sequence + 1
        self._file_started = time.time_ns() // 1_000_000
        self._since_checkpoint = (0, time.monotonic())
        self._emit(header_record(previous, self._head.sequence, self._head.hash), self.correlation)
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
        records = seal_sequence - self._file_first_sequence + 1  # the seal included
        self._emit(
            seal_record(self._file_first_sequence, records, self._head.hash), self.correlation
        )
        os.fsync(self._fd)
        os.close(self._fd)
        name = f"{self.path.stem}-{stamp()}-{self._file_first_sequence:012d}{self.path.suffix}"
        os.rename(self.path, self.path.parent / name)
        fsync_dir(self.path.parent)
        self._head.file = name
        self._open_new(previous=name)

    # -- records -----------------------------------------------------------------------
    def intent(self, action: Action, correlation: str) -> None:
        """Announce a change before it is sent; ``sync()`` makes it durable."""
        if not self._open_intents and not self.pending and self._rotation_due():
            self._rotate()  # between batches: a batch's intents and outcomes share a file
        body = self._body(action)
        self._bodies[id(action)] = (action, body)
        self._open_intents[id(action)] = self._emit(intent_record(action, body), correlation)

    def outcome(self, outcome: Outcome, correlation: str) -> None:
        """Record what the target answered, linked to the action's intent if any."""
        intent_uid = self._open_intents.pop(id(outcome.action), None)
        body = self._body(outcome.action)
        self._emit(outcome_record(outcome, body, intent_uid), correlation)

    def held(self, action: Action, correlation: str) -> None:
        self._emit(held_record(action, self._body(action)), correlation)

    def conflict(self, conflict: Conflict, correlation: str) -> None:
        self._emit(conflict_record(conflict), correlation)

    def collateral(self, collateral: Collateral, correlation: str) -> None:
        """Members outside the managed scope changed under a write to a managed group."""
        self._emit(collateral_record(collateral), correlation)

    def event(
        self, activity_id: int, activity: str, message: str, correlation: str, **unmapped: Any
    ) -> None:
        """A daemon-level event (class 1008): run start (6), stop (7), overrides (99)."""
        self._emit(event_record(activity_id, activity, message, **unmapped), correlation)

    def settle(
        self, intent: dict[str, Any], applied: bool | None, detail: str, correlation: str
    ) -> None:
        """Close an intent a crash left open, with what the target shows now."""
        self._emit(settle_record(intent, applied, detail), correlation)

    def attestation(self, attestation: Attestation, correlation: str) -> None:
        """A target's managed scope, checked (Compliance Finding, 2003)."""
        self._emit(attestation_record(attestation), correlation)

    def _body(self, action: Action) -> ActionBody:
        """The account part of an action's records: built once for its intent and its
        outcome (the cost of a record is mostly this). Taken out of the cache on use,
        so the cache holds only intents still waiting; ``intent`` puts it back. The
        identity check guards against a new action reusing a freed action's id."""
        cached = self._bodies.pop(id(action), None)
        if cached is not None and cached[0] is action:
            return cached[1]
        return action_body(action)

    def _emit(self, record: dict[str, Any], correlation: str) -> str:
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._clock[0]:
            self._clock = (now_ms, iso(datetime.fromtimestamp(now_ms / 1000, UTC), ms=True))
        uid = str(uuid.uuid4())
        self._head.sequence += 1
        record["time"] = now_ms
        record["time_dt"] = self._clock[1]
        record["metadata"] = metadata(uid, self._head.sequence, correlation)
        line, digest = self.options.sealer.seal(record, self._head.hash)
        data = (line + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file takes it whole unless the disk is full
            raise AuditError(
                f"{self.path}: short write ({written} of {len(data)} bytes); is the disk full?"
            )
        self._head.hash = digest
        self._size += len(data)
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
            checkpoint_record(self._head.sequence, self._head.hash),
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
