"""The audit trail writer: one process appends hash-chained OCSF records to a JSONL file.

Opened with ``AuditWriter.from_config`` by ``syncd sync`` (``syncd.cli``) and by the
daemon (``syncd.daemon``, which writes its own start and stop events). Both hand it to
``syncd.engine.run_cycle``, which writes a ``sync`` run's start/stop and override
events and has ``syncd.audit.settle`` close the intents a crash left open
(``pending``); ``syncd.apply`` then writes an intent before each change, ``sync()``s
before sending a batch, and writes outcomes, held actions and conflicts. After each
cycle the daemon writes an attestation per target, as ``syncd attest`` (``syncd.commands``)
does on demand.

This module has the kinds of records; the files, the chain, rotation and recovery are
``syncd.audit.trail`` (its base class), the open file ``syncd.audit.active``, record
shapes ``syncd.audit.records`` (``syncd.audit.attestation`` for attestations), low-level
file helpers ``syncd.audit.files``. Guarantees:

* one writer per trail: an exclusive ``flock`` on ``<file>.lock``;
* append-only: ``O_APPEND``, one ``write`` per record, files created ``0640`` (the
  folder ``0750``) with a directory fsync;
* durability: with ``fsync: batch`` (default) ``sync()`` runs before a batch of target
  writes is sent, so every intent is on disk before its change; ``fsync: record``
  fsyncs after every record;
* crash safety: a torn last line found at start is moved aside to
  ``<file>.torn-<time>``, never dropped, and acknowledged by a recovery record; intents
  without an outcome are offered to the caller (``pending``) to settle, from every file
  back to the last one at whose start none was open (a header says how many were);
* a failed or short write (full disk) cuts the file back to its last complete record
  and raises ``AuditError``: the batch is not sent, the intents already written are
  settled by observation, and the first record written once space is back says what
  failed;
* the open file must still be the trail's: before each batch (and in ``sync()``,
  before the batch is sent) a file deleted, moved away or replaced under the writer is
  noticed; a new file opens with a recovery record naming the records lost with it,
  and the intents of the batch in flight are written again, so no change is sent whose
  intent is not in the trail;
* rotation by size and/or age, only between batches: a seal record closes the file, it
  is renamed ``<stem>-<UTC time>-<first sequence><suffix>`` (sortable), and the new file
  opens with a header record that carries the previous file's name, last sequence and
  hash. Never copytruncate: a copy taken while syncd appends loses or repeats records.

Every operating system error becomes an ``AuditError`` that names the file and the fix
(``syncd.audit.files.trail_error``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from syncd.audit.attestation import attestation_record
from syncd.audit.chain import Sealer
from syncd.audit.files import AuditError, rotated_files
from syncd.audit.notice import Delivery, notification_record
from syncd.audit.records import (
    ActionBody,
    action_body,
    collateral_record,
    conflict_cleared_record,
    conflict_record,
    event_record,
    held_record,
    intent_record,
    outcome_record,
    settle_record,
)
from syncd.audit.trail import Trail, WriterOptions
from syncd.config import AuditConfig
from syncd.core.attest import Attestation
from syncd.core.model import Action, Collateral, Conflict, Outcome

# AuditError, WriterOptions and rotated_files are part of this module's interface
# (callers import them from here); they live with the code that raises and uses them.
__all__ = ["AuditError", "AuditWriter", "WriterOptions", "rotated_files"]


class AuditWriter(Trail):
    """Appends hash-chained records to ``path`` (the active file of the trail)."""

    @classmethod
    def from_config(cls, config: AuditConfig, correlation: str = "") -> AuditWriter:
        sealer = Sealer()
        if config.hmac_key_file is not None:
            try:
                key = config.hmac_key_file.read_bytes().strip()
            except OSError as exc:
                raise AuditError(
                    f"audit.hmac_key_file {config.hmac_key_file}: cannot read it: {exc.strerror}"
                ) from exc
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

    def intent(self, action: Action, correlation: str) -> None:
        """Announce a change before it is sent; ``sync()`` makes it durable."""
        if not self._open_intents:
            with self._io("write to it"):
                self._between_batches()
                if not self.pending and self._rotation_due():
                    self._rotate()  # a batch's intents and outcomes share a file
        body = self._body(action)
        self._bodies[id(action)] = (action, body)
        record = intent_record(action, body)
        self._emit(record, correlation)
        self._open_intents[id(action)] = record
        self._after(record)

    def outcome(self, outcome: Outcome, correlation: str) -> None:
        """Record what the target answered, linked to the action's intent if any."""
        key = id(outcome.action)
        intent = self._open_intents.get(key)
        intent_uid = intent["metadata"]["uid"] if intent is not None else None
        record = outcome_record(outcome, self._body(outcome.action), intent_uid)
        self._emit(record, correlation)
        self._open_intents.pop(key, None)
        self._after(record)

    def held(self, action: Action, correlation: str) -> None:
        self._append(held_record(action, self._body(action)), correlation)

    def conflict(self, conflict: Conflict, correlation: str) -> None:
        self._append(conflict_record(conflict), correlation)

    def conflict_cleared(self, conflict: Conflict, since: datetime, correlation: str) -> None:
        """A conflict that stood since ``since`` is gone (the daemon's record of it)."""
        self._append(conflict_cleared_record(conflict, since), correlation)

    def collateral(self, collateral: Collateral, correlation: str) -> None:
        """Members outside the managed scope changed under a write to a managed group."""
        self._append(collateral_record(collateral), correlation)

    def event(
        self, activity_id: int, activity: str, message: str, correlation: str, **unmapped: Any
    ) -> None:
        """A daemon-level event (class 1008): run start (6), stop (7), overrides (99)."""
        self._append(event_record(activity_id, activity, message, **unmapped), correlation)

    def settle(
        self, intent: dict[str, Any], applied: bool | None, detail: str, correlation: str
    ) -> None:
        """Close an intent a crash left open, with what the target shows now."""
        self._append(settle_record(intent, applied, detail), correlation)

    def attestation(self, attestation: Attestation, correlation: str) -> None:
        """A target's managed scope, checked (Compliance Finding, 2003)."""
        self._append(attestation_record(attestation), correlation)

    def notification(self, delivery: Delivery, correlation: str) -> None:
        """A notice sent, or given up on after its tries (Email or HTTP Activity)."""
        self._append(notification_record(delivery), correlation)

    def _body(self, action: Action) -> ActionBody:
        """The account part of an action's records: built once for its intent and its
        outcome (the cost of a record is mostly this). Taken out of the cache on use,
        so the cache holds only intents still waiting; ``intent`` puts it back. The
        identity check guards against a new action reusing a freed action's id."""
        cached = self._bodies.pop(id(action), None)
        if cached is not None and cached[0] is action:
            return cached[1]
        return action_body(action)

    def _append(self, record: dict[str, Any], correlation: str) -> None:
        """Write a record outside a batch (or one no intent waits on)."""
        with self._io("write to it"):
            self._between_batches()
        self._emit(record, correlation)
        self._after(record)

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
