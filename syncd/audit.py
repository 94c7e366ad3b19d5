"""The audit trail writer: OCSF-shaped JSON lines, one per event (SPEC §6).

Called by ``syncd.apply`` (intent before each write, outcome after it, held actions,
conflicts) and by the CLI (run start/stop, safety overrides). This module is the only
place that writes audit records, so the hash chain and rotation can grow here.
Secrets never reach it: actions carry attribute names and values we render from
contracts, never credentials.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd import __version__
from syncd.core.model import Action, ActionKind, Conflict

OCSF_VERSION = "1.3.0"
ACCOUNT_CHANGE, GROUP_MANAGEMENT, EVENT_LOG = 3001, 3006, 1008
_CLASSES = {
    ACCOUNT_CHANGE: ("Account Change", 3, "Identity & Access Management"),
    GROUP_MANAGEMENT: ("Group Management", 3, "Identity & Access Management"),
    EVENT_LOG: ("Event Log Activity", 1, "System Activity"),
}
# action kind -> (class_uid, activity_id, activity_name)
ACTIVITIES: dict[ActionKind, tuple[int, int, str]] = {
    ActionKind.CREATE: (ACCOUNT_CHANGE, 1, "Create"),
    ActionKind.ENABLE: (ACCOUNT_CHANGE, 2, "Enable"),
    ActionKind.REVOKE_CREDENTIALS: (ACCOUNT_CHANGE, 4, "Password Reset"),
    ActionKind.DISABLE: (ACCOUNT_CHANGE, 5, "Disable"),
    ActionKind.DELETE: (ACCOUNT_CHANGE, 6, "Delete"),
    ActionKind.UPDATE: (ACCOUNT_CHANGE, 99, "Update"),
    ActionKind.SET_EXPIRY: (ACCOUNT_CHANGE, 99, "Set Expiry"),
    ActionKind.ADD_MEMBER: (GROUP_MANAGEMENT, 3, "Add User"),
    ActionKind.REMOVE_MEMBER: (GROUP_MANAGEMENT, 4, "Remove User"),
}
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_PRODUCT = {"name": "syncd", "vendor_name": "syncd", "version": __version__}
# status_id: 1 Success, 2 Failure, 99 Other (status names the phase)
SUCCESS, FAILURE, OTHER = 1, 2, 99


@dataclass(frozen=True)
class Outcome:
    """What happened to one action: ``ok`` None means unknown (connection lost mid-write)."""

    action: Action
    ok: bool | None
    detail: str = ""
    ref: str | None = None


class AuditWriter:
    """Appends records to one JSONL file (``O_APPEND``).

    Records are buffered in memory and written by ``sync``, which the caller invokes
    before sending any change whose intent it has recorded: one ``write`` and one
    ``fsync`` per batch of intents instead of per record, with the same guarantee that
    an intent is on disk before its change goes out.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sequence = _last_sequence(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._pending: list[str] = []
        self._bodies: dict[
            int, tuple[Action, dict[str, str], dict[str, str] | None, dict[str, Any]]
        ] = {}
        self._clock: tuple[int, str] = (0, "")

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self) -> None:
        """Write every buffered record and make it durable (before sending writes)."""
        if self._pending:
            data = "".join(self._pending).encode("utf-8")
            self._pending.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)

    def intent(self, action: Action, correlation: str) -> None:
        self._action(action, correlation, OTHER, "Intent", "intent", "")

    def outcome(self, outcome: Outcome, correlation: str) -> None:
        if outcome.ok is None:
            status_id, status = OTHER, "Unknown"
        else:
            status_id, status = (SUCCESS, "Success") if outcome.ok else (FAILURE, "Failure")
        self._action(
            outcome.action, correlation, status_id, status, "outcome", outcome.detail, outcome.ref
        )

    def held(self, action: Action, correlation: str) -> None:
        self._action(action, correlation, OTHER, "Held", "held", action.held)

    def conflict(self, conflict: Conflict, correlation: str) -> None:
        record = self._base(ACCOUNT_CHANGE, 1, "Create", correlation, FAILURE, "Failure")
        record["status_detail"] = f"conflict: {conflict.reason}"
        record["user"] = _user(conflict.username, conflict.person, conflict.ref)
        record["unmapped"] = {
            "target": conflict.target,
            "phase": "conflict",
            "reason": conflict.reason,
        }
        self._write(record)

    def event(
        self, activity_id: int, activity: str, message: str, correlation: str, **unmapped: Any
    ) -> None:
        """A daemon-level event (class 1008): run start (6), stop (7), overrides (99)."""
        record = self._base(EVENT_LOG, activity_id, activity, correlation, SUCCESS, "Success")
        record["message"] = message
        if unmapped:
            record["unmapped"] = unmapped
        self._write(record)

    def _action(
        self,
        action: Action,
        correlation: str,
        status_id: int,
        status: str,
        phase: str,
        detail: str,
        ref: str | None = None,
    ) -> None:
        class_uid, activity_id, activity = ACTIVITIES[action.kind]
        record = self._base(class_uid, activity_id, activity, correlation, status_id, status)
        if detail:
            record["status_detail"] = detail
        # The account part is the same for an action's intent and outcome: built once.
        cached = self._bodies.pop(id(action), None)
        if cached is None or cached[0] is not action:
            cached = (action, *_action_body(action))
            if phase == "intent":
                self._bodies[id(action)] = cached
        _, user, group, unmapped = cached
        if ref and ref != user.get("uid_alt"):
            user = {**user, "uid_alt": ref}
        record["user"] = user
        if group is not None:
            record["group"] = group
        record["unmapped"] = {**unmapped, "phase": phase}
        self._write(record)

    def _base(
        self,
        class_uid: int,
        activity_id: int,
        activity: str,
        correlation: str,
        status_id: int,
        status: str,
    ) -> dict[str, Any]:
        fixed = _fixed_fields(class_uid, activity_id, activity, status_id, status)
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._clock[0]:
            self._clock = (now_ms, _iso(datetime.fromtimestamp(now_ms / 1000, UTC), ms=True))
        self._sequence += 1
        return {
            **fixed,
            "time": now_ms,
            "time_dt": self._clock[1],
            "metadata": {
                "uid": str(uuid.uuid4()),
                "sequence": self._sequence,
                "correlation_uid": correlation,
                "version": OCSF_VERSION,
                "product": _PRODUCT,
            },
        }

    def _write(self, record: dict[str, Any]) -> None:
        self._pending.append(_ENCODER.encode(record) + "\n")


@functools.cache
def _fixed_fields(
    class_uid: int, activity_id: int, activity: str, status_id: int, status: str
) -> dict[str, Any]:
    """The fields that depend only on class, activity and status (computed once)."""
    class_name, category_uid, category_name = _CLASSES[class_uid]
    failed = status_id == FAILURE
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity}",
        "severity_id": 3 if failed else 1,
        "severity": "Medium" if failed else "Informational",
        "status_id": status_id,
        "status": status,
    }


def _action_body(
    action: Action,
) -> tuple[dict[str, str], dict[str, str] | None, dict[str, Any]]:
    """``user``, ``group`` and ``unmapped`` (without phase) for an action's records."""
    user = _user(action.username, action.person, action.ref)
    group = {"uid": action.group, "name": _group_name(action.group)} if action.group else None
    unmapped: dict[str, Any] = {
        "target": action.target,
        "action": action.kind.value,
        "cause": action.cause.value,
        "contract_ids": list(action.contract_ids),
        "reason": action.reason,
    }
    if action.changes:
        unmapped["changes"] = {k: list(v) for k, v in sorted(action.changes.items())}
    if action.expiry is not None:
        unmapped["expiry"] = _iso(action.expiry)
    return user, group, unmapped


def _user(name: str, uid: str, uid_alt: str | None) -> dict[str, str]:
    user = {"name": name, "uid": uid}
    if uid_alt:
        user["uid_alt"] = uid_alt
    return user


def _group_name(group: str) -> str:
    first = group.split(",", 1)[0]
    return first.split("=", 1)[1] if "=" in first else group


def _iso(moment: datetime, ms: bool = False) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds" if ms else "seconds")
    return text.replace("+00:00", "Z")


def _last_sequence(path: Path) -> int:
    """The sequence of the file's last complete record, so numbering continues."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read().splitlines()
    except FileNotFoundError:
        return 0
    for raw in reversed(tail):
        try:
            return int(json.loads(raw)["metadata"]["sequence"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0
