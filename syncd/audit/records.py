"""OCSF shapes of syncd's audit records (SPEC §6). Pure builders, used by the writer.

A builder returns the event-specific part of a record; the writer adds ``time``,
``time_dt``, ``metadata`` (uid, sequence, correlation, product) and the chain.
Secrets never reach a record: actions carry the attribute values syncd renders from
contracts, never credentials.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncd import __version__
from syncd.core.model import Action, ActionKind, Conflict

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "syncd", "vendor_name": "syncd", "version": __version__}
ACCOUNT_CHANGE, GROUP_MANAGEMENT, EVENT_LOG = 3001, 3006, 1008
CLASSES = {
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
# Event Log Activity (1008) activities syncd uses
ARCHIVE, ROTATE, START, STOP, OTHER_ACTIVITY = 4, 5, 6, 7, 99
# status_id: 1 Success, 2 Failure, 99 Other (status then names the phase)
SUCCESS, FAILURE, OTHER = 1, 2, 99


@dataclass(frozen=True)
class Outcome:
    """What happened to one action: ``ok`` None means unknown (connection lost mid-write)."""

    action: Action
    ok: bool | None
    detail: str = ""
    ref: str | None = None


@functools.cache
def fixed_fields(
    class_uid: int, activity_id: int, activity: str, status_id: int, status: str
) -> dict[str, Any]:
    """The fields that depend only on class, activity and status (computed once)."""
    class_name, category_uid, category_name = CLASSES[class_uid]
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


def action_body(action: Action) -> tuple[dict[str, str], dict[str, str] | None, dict[str, Any]]:
    """``user``, ``group`` and ``unmapped`` (without phase) for an action's records."""
    user = user_part(action.username, action.person, action.ref)
    group = {"uid": action.group, "name": group_name(action.group)} if action.group else None
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
        unmapped["expiry"] = iso(action.expiry)
    return user, group, unmapped


def conflict_record(conflict: Conflict) -> dict[str, Any]:
    record = dict(fixed_fields(ACCOUNT_CHANGE, 1, "Create", FAILURE, "Failure"))
    record["status_detail"] = f"conflict: {conflict.reason}"
    record["user"] = user_part(conflict.username, conflict.person, conflict.ref)
    record["unmapped"] = {"target": conflict.target, "phase": "conflict", "reason": conflict.reason}
    return record


def event_record(activity_id: int, activity: str, message: str, **unmapped: Any) -> dict[str, Any]:
    """A daemon-level event (class 1008): start, stop, rotation, checkpoints, overrides."""
    record = dict(fixed_fields(EVENT_LOG, activity_id, activity, SUCCESS, "Success"))
    record["message"] = message
    record["unmapped"] = dict(unmapped)
    return record


def user_part(name: str, uid: str, uid_alt: str | None) -> dict[str, str]:
    user = {"name": name, "uid": uid}
    if uid_alt:
        user["uid_alt"] = uid_alt
    return user


def group_name(group: str) -> str:
    first = group.split(",", 1)[0]
    return first.split("=", 1)[1] if "=" in first else group


def iso(moment: datetime, ms: bool = False) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds" if ms else "seconds")
    return text.replace("+00:00", "Z")
