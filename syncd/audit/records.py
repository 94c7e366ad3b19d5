"""OCSF shapes of syncd's audit records (SPEC §6). Pure: no I/O, no clock.

Called by ``syncd.audit.writer``, which turns each call it receives (intent, outcome,
held, conflict, settle, event) and each record it makes on its own (header, seal,
checkpoint, recovery) into a record built here. ``syncd.engine`` and
``syncd.daemon`` take the activity numbers (``START``, ``STOP``, ``OTHER_ACTIVITY``)
from here for ``AuditWriter.event``.

A builder returns the event-specific part of a record; the writer adds ``time``,
``time_dt``, ``metadata`` (built by ``metadata``: uid, sequence, correlation, product)
and the chain. Secrets never reach a record: actions carry the attribute values syncd
renders from contracts, never credentials.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from syncd import __version__
from syncd.core.model import Action, ActionKind, Collateral, Conflict, Outcome

OCSF_VERSION = "1.3.0"
PROFILES = ["datetime"]
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

# ``user``, ``group`` (None for account actions) and ``unmapped`` (without phase): the
# part of a record that an action's intent and outcome share
ActionBody = tuple[dict[str, str], dict[str, str] | None, dict[str, Any]]


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
        # OCSF names the type by the activity's caption; 99 is "Other" whatever
        # ``activity_name`` says (Update, Set Expiry, Checkpoint...)
        "type_name": f"{class_name}: {activity if activity_id != 99 else 'Other'}",
        "severity_id": 3 if failed else 1,
        "severity": "Medium" if failed else "Informational",
        "status_id": status_id,
        "status": status,
    }


def metadata(uid: str, sequence: int, correlation: str) -> dict[str, Any]:
    """A record's ``metadata``: its uid, its place in the chain, and who wrote it.
    Every record carries ``time_dt``, an attribute of OCSF's datetime profile, so it
    declares that profile."""
    return {
        "uid": uid,
        "sequence": sequence,
        "correlation_uid": correlation,
        "version": OCSF_VERSION,
        "product": PRODUCT,
        "profiles": PROFILES,
    }


def status_of(ok: bool | None) -> tuple[int, str]:
    """``status_id`` and ``status`` for a change that succeeded, failed, or is unknown."""
    if ok is None:
        return OTHER, "Unknown"
    return (SUCCESS, "Success") if ok else (FAILURE, "Failure")


def action_body(action: Action) -> ActionBody:
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


def intent_record(action: Action, body: ActionBody) -> dict[str, Any]:
    """Written before a change is sent: what syncd is about to do, and why."""
    return _action_record(action, body, OTHER, "Intent", "intent")


def outcome_record(
    outcome: Outcome, body: ActionBody, intent_uid: str | None = None
) -> dict[str, Any]:
    """Written after a change: what the target holds, read back (``verified`` and the
    ``observed`` values), or what it answered when there is nothing to read back;
    linked to its intent."""
    status_id, status = status_of(outcome.ok)
    record = _action_record(
        outcome.action,
        body,
        status_id,
        status,
        "outcome",
        outcome.detail,
        outcome.ref,
        intent_uid,
    )
    if outcome.verified is not None:
        record["unmapped"]["verified"] = outcome.verified
        record["unmapped"]["readback"] = {k: list(v) for k, v in sorted(outcome.observed.items())}
    return record


def collateral_record(collateral: Collateral) -> dict[str, Any]:
    """Members outside the managed scope that changed under a write of syncd's to a
    managed group (Group Management, activity Other): evidence for an admin, never
    repaired."""
    record = dict(fixed_fields(GROUP_MANAGEMENT, 99, "Other", OTHER, "Other"))
    record["severity_id"], record["severity"] = 3, "Medium"  # someone else's access changed
    appeared, vanished = sorted(collateral.appeared), sorted(collateral.vanished)
    record["status_detail"] = (
        f"collateral change: {len(vanished)} members outside the managed scope vanished "
        f"and {len(appeared)} appeared while syncd changed this group"
    )
    record["group"] = {"uid": collateral.group, "name": group_name(collateral.group)}
    record["unmapped"] = {
        "target": collateral.target,
        "phase": "collateral",
        "appeared": appeared,
        "vanished": vanished,
    }
    return record


def held_record(action: Action, body: ActionBody) -> dict[str, Any]:
    """An action a safety limit held back, with the limit's reason."""
    return _action_record(action, body, OTHER, "Held", "held", action.held)


def _action_record(
    action: Action,
    body: ActionBody,
    status_id: int,
    status: str,
    phase: str,
    detail: str = "",
    ref: str | None = None,
    intent_uid: str | None = None,
) -> dict[str, Any]:
    class_uid, activity_id, activity = ACTIVITIES[action.kind]
    record = dict(fixed_fields(class_uid, activity_id, activity, status_id, status))
    if detail:
        record["status_detail"] = detail
    user, group, unmapped = body
    # A create learns the account's reference from the target: the outcome carries it.
    if ref and ref != user.get("uid_alt"):
        user = {**user, "uid_alt": ref}
    record["user"] = user
    if group is not None:
        record["group"] = group
    record["unmapped"] = {**unmapped, "phase": phase}
    if intent_uid:
        record["unmapped"]["intent_uid"] = intent_uid
    return record


def settle_record(intent: dict[str, Any], applied: bool | None, detail: str) -> dict[str, Any]:
    """The outcome of an intent a crash left open, from what the target shows now.

    ``intent`` is the record as read back from the trail; the outcome repeats its
    class, activity, user, group and unmapped fields (not its chain)."""
    status_id, status = status_of(applied)
    record = dict(
        fixed_fields(
            intent["class_uid"], intent["activity_id"], intent["activity_name"], status_id, status
        )
    )
    record["status_detail"] = detail
    for key in ("user", "group"):
        if key in intent:
            record[key] = intent[key]
    unmapped = {k: v for k, v in intent["unmapped"].items() if k != "chain"}
    unmapped.update(phase="outcome", observed=True, intent_uid=intent["metadata"]["uid"])
    record["unmapped"] = unmapped
    return record


def conflict_record(conflict: Conflict) -> dict[str, Any]:
    """An unmanaged object where a person's account would go: reported, never adopted."""
    record = dict(fixed_fields(ACCOUNT_CHANGE, 1, "Create", FAILURE, "Failure"))
    record["status_detail"] = f"conflict: {conflict.detail}"
    record["user"] = user_part(conflict.username, conflict.person, conflict.ref)
    record["unmapped"] = {
        "target": conflict.target,
        "phase": "conflict",
        "contract_ids": list(conflict.contract_ids),
        "reason": conflict.detail,
    }
    return record


def conflict_cleared_record(conflict: Conflict, since: datetime) -> dict[str, Any]:
    """A conflict recorded as standing since ``since`` is gone: the create it blocked
    may go ahead (or is no longer wanted). Written by the daemon, once per conflict."""
    record = dict(fixed_fields(ACCOUNT_CHANGE, 99, "Conflict Cleared", SUCCESS, "Success"))
    record["status_detail"] = f"conflict cleared: {conflict.reason}"
    record["user"] = user_part(conflict.username, conflict.person, conflict.ref)
    record["unmapped"] = {
        "target": conflict.target,
        "phase": "conflict_cleared",
        "contract_ids": list(conflict.contract_ids),
        "reason": conflict.detail,
        "since": iso(since),
    }
    return record


def event_record(activity_id: int, activity: str, message: str, **unmapped: Any) -> dict[str, Any]:
    """A daemon-level event (class 1008): start, stop, rotation, checkpoints, overrides."""
    record = dict(fixed_fields(EVENT_LOG, activity_id, activity, SUCCESS, "Success"))
    record["message"] = message
    record["unmapped"] = dict(unmapped)
    return record


def header_record(
    previous_file: str | None, previous_sequence: int, previous_hash: str, open_intents: int = 0
) -> dict[str, Any]:
    """The first record of every file: where the chain comes from (``previous_file``
    is None for a trail's first file) and, when intents of earlier files were still
    waiting for their outcome, how many (``open_intents``): settling looks back that far."""
    record = event_record(
        ROTATE,
        "Rotate",
        "audit file opened",
        phase="header",
        previous_file=previous_file,
        previous_sequence=previous_sequence,
        previous_hash=previous_hash,
    )
    if open_intents:
        record["unmapped"]["open_intents"] = open_intents
    return record


def seal_record(first_sequence: int, records: int, last_hash: str) -> dict[str, Any]:
    """The last record of a file before rotation; ``records`` counts the seal itself."""
    return event_record(
        ARCHIVE,
        "Archive",
        "audit file sealed",
        phase="seal",
        first_sequence=first_sequence,
        records=records,
        last_hash=last_hash,
    )


def checkpoint_record(head_sequence: int, head_hash: str) -> dict[str, Any]:
    """The chain head, repeated now and then for a SIEM to keep as an anchor."""
    return event_record(
        OTHER_ACTIVITY,
        "Checkpoint",
        "chain head",
        phase="checkpoint",
        head_sequence=head_sequence,
        head_hash=head_hash,
    )


def recovery_record(torn_file: str, torn_bytes: int, torn_sha256: str) -> dict[str, Any]:
    """Acknowledges a torn last record moved aside at start, so nothing vanishes silently."""
    return event_record(
        OTHER_ACTIVITY,
        "Recovery",
        f"a torn last record was moved aside to {torn_file}",
        phase="recovery",
        torn_file=torn_file,
        torn_bytes=torn_bytes,
        torn_sha256=torn_sha256,
    )


def lost_file_record(
    lost: dict[str, Any], foreign_file: str | None, reopened_intents: int
) -> dict[str, Any]:
    """Opens the file that replaces an active file lost under the writer (deleted,
    moved away or replaced). ``lost``: ``lost_file``, ``lost_how``,
    ``lost_first_sequence``, ``lost_last_sequence``, ``lost_previous_file`` and
    ``lost_previous_hash`` (what the lost file continued). The records in between are
    gone from the trail; this record says which, so that ``syncd audit verify`` can
    name the gap and check the chain on both sides of it."""
    first, last = lost["lost_first_sequence"], lost["lost_last_sequence"]
    message = (
        f"the active file {lost['lost_file']} was {lost['lost_how']} while syncd wrote it: "
        f"the records of sequence {first} to {last} ({last - first + 1}) are gone from the trail"
    )
    if foreign_file:
        message += f"; the file found in its place was moved aside to {foreign_file}"
    if reopened_intents:
        message += f"; the intents of the batch in flight are written again ({reopened_intents})"
    unmapped: dict[str, Any] = {
        "phase": "recovery",
        **lost,
        "lost_records": last - first + 1,
        "reopened_intents": reopened_intents,
    }
    if foreign_file:
        unmapped["foreign_file"] = foreign_file
    record = event_record(OTHER_ACTIVITY, "Recovery", message, **unmapped)
    record["severity_id"], record["severity"] = 4, "High"  # records are gone
    return record


def write_failure_record(
    since: datetime, failures: int, error: str, cut_bytes: int, left_open: int
) -> dict[str, Any]:
    """Written once the trail can be written again after writes failed (a full disk):
    the failed records were cut off whole, and intents whose outcome could not be
    written are settled by observation."""
    message = (
        f"writes to the trail failed from {iso(since, ms=True)} on ({failures}, the last: "
        f"{error}); each partial record was cut off ({cut_bytes} bytes in all)"
    )
    if left_open:
        message += f"; intents left without an outcome, settled by observation: {left_open}"
    record = event_record(
        OTHER_ACTIVITY,
        "Recovery",
        message,
        phase="recovery",
        failed_since=iso(since, ms=True),
        failures=failures,
        error=error,
        cut_bytes=cut_bytes,
        left_open=left_open,
    )
    record["severity_id"], record["severity"] = 3, "Medium"
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
