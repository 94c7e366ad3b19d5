"""The audit record of a notification (``syncd.notify``). Pure: no I/O, no clock.

Called by ``syncd.audit.writer`` (``AuditWriter.notification``), which adds ``time``,
``time_dt``, ``metadata`` and the chain, as for every record.

A notification is a message that left syncd, so the record is the OCSF class of that
traffic: **Email Activity** (4009, activity Send, direction Outbound) for mail, with
``email.from``, ``email.to`` and ``email.message_uid``; **HTTP Activity** (4002,
activity Post) for a webhook, with the request's URL without its query (a token may
hide there) and the receiver's answer (``http_response.code``, 0 when none came). Both
name the relay or receiver in ``dst_endpoint``. A message sent is ``Success``; one
given up on after its tries is ``Failure`` with the reason in ``status_detail``, and
is tried again the next cycle. What a SIEM needs to see that a sponsor was told goes
under ``unmapped``: the kind of notice, the contracts, the warning's threshold and
whether it was late. Addresses are the only personal data: no subject, no body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from syncd.audit.records import FAILURE, SUCCESS

EMAIL_ACTIVITY, HTTP_ACTIVITY = 4009, 4002
SEND, POST = 1, 6
OUTBOUND = 2


@dataclass(frozen=True)
class Delivery:
    """One notice through one channel: sent (``ok``) or given up (``detail`` says why)."""

    channel: str  # smtp or webhook
    kind: str  # warning, granted, revoked, ops, digest, test
    to: tuple[str, ...]
    contract_ids: tuple[str, ...]
    ok: bool
    detail: str = ""
    retry: bool = False  # not sent, and tried again at the next cycle
    threshold: str = ""
    late: bool = False
    endpoint: str = ""  # the relay's host:port, or the webhook's URL
    sender: str = ""  # the From address (mail)
    message_uid: str = ""  # the Message-ID (mail)
    http_code: int = 0  # the receiver's answer (webhook); 0: none


def _status(delivery: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status_id": SUCCESS if delivery.ok else FAILURE,
        "status": "Success" if delivery.ok else "Failure",
        "severity_id": 1 if delivery.ok else 3,
        "severity": "Informational" if delivery.ok else "Medium",
    }
    if delivery.detail:
        out["status_detail"] = delivery.detail
    return out


def _unmapped(delivery: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": "notification",
        "channel": delivery.channel,
        "kind": delivery.kind,
        "recipients": list(delivery.to),
        "contract_ids": list(delivery.contract_ids),
    }
    if delivery.threshold:
        out["threshold"] = delivery.threshold
        out["late"] = delivery.late
    if not delivery.ok:
        out["retry"] = delivery.retry
    return out


def _message(delivery: Delivery) -> str:
    verb = (
        "sent"
        if delivery.ok
        else "not sent, tried again next cycle"
        if delivery.retry
        else "given up"
    )
    about = f" {delivery.threshold}" if delivery.threshold else ""
    late = " (late)" if delivery.late else ""
    return f"{delivery.kind}{about}{late} notice {verb} by {delivery.channel}"


def notification_record(delivery: Delivery) -> dict[str, Any]:
    """Email Activity (mail) or HTTP Activity (webhook) for one delivery."""
    record = _mail(delivery) if delivery.channel == "smtp" else _webhook(delivery)
    return {
        **record,
        **_status(delivery),
        "message": _message(delivery),
        "unmapped": _unmapped(delivery),
    }


def _mail(delivery: Delivery) -> dict[str, Any]:
    host, _, port = delivery.endpoint.rpartition(":")
    email: dict[str, Any] = {"from": delivery.sender, "to": list(delivery.to)}
    if delivery.message_uid:
        email["message_uid"] = delivery.message_uid
    return {
        "class_uid": EMAIL_ACTIVITY,
        "class_name": "Email Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": SEND,
        "activity_name": "Send",
        "type_uid": EMAIL_ACTIVITY * 100 + SEND,
        "type_name": "Email Activity: Send",
        "direction_id": OUTBOUND,
        "direction": "Outbound",
        "email": email,
        "dst_endpoint": {"name": host, "hostname": host, "port": int(port)},
    }


def _webhook(delivery: Delivery) -> dict[str, Any]:
    url = urlsplit(delivery.endpoint)
    host = url.hostname or ""
    port = url.port or 443
    shown = f"{url.scheme}://{url.netloc.rpartition('@')[2]}{url.path}"
    return {
        "class_uid": HTTP_ACTIVITY,
        "class_name": "HTTP Activity",
        "category_uid": 4,
        "category_name": "Network Activity",
        "activity_id": POST,
        "activity_name": "Post",
        "type_uid": HTTP_ACTIVITY * 100 + POST,
        "type_name": "HTTP Activity: Post",
        "http_request": {
            "http_method": "POST",
            "url": {
                "url_string": shown,
                "scheme": url.scheme,
                "hostname": host,
                "port": port,
                "path": url.path or "/",
            },
        },
        "http_response": {"code": delivery.http_code},
        "dst_endpoint": {"name": host, "hostname": host, "port": port},
    }
