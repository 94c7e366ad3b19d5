"""The notification record (``syncd.audit.notice``): Email Activity for mail, HTTP
Activity for a webhook, valid OCSF 1.3.0 as the writer puts them in the trail, sent or
given up, with addresses as the only personal data and the chain intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.audit import AuditWriter
from syncd.audit.notice import Delivery
from syncd.audit.verify import verify
from tests.audit.ocsf import problems

MAIL = Delivery(
    "smtp",
    "warning",
    ("sam@corp.example", "copy@corp.example"),
    ("C-1", "C-2"),
    True,
    threshold="3d",
    late=True,
    endpoint="mail.corp.example:587",
    sender="syncd@corp.example",
    message_uid="<1.2@corp.example>",
)
HOOK = Delivery(
    "webhook",
    "revoked",
    ("sam@corp.example",),
    ("C-1",),
    False,
    "webhook hooks.example.com: ConnectTimeout",
    retry=True,
    endpoint="https://user:pw@hooks.example.com:8443/x/y?token=secret",
)


def written(tmp_path: Path, delivery: Delivery) -> dict[str, Any]:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, correlation="run-1") as audit:
        audit.notification(delivery, "run-1")
    record: dict[str, Any] = json.loads(trail.read_text().splitlines()[-1])
    assert verify([trail]).ok
    return record


@pytest.mark.parametrize("delivery", [MAIL, HOOK], ids=["mail", "webhook"])
def test_the_written_record_is_valid_ocsf(tmp_path: Path, delivery: Delivery) -> None:
    record = written(tmp_path, delivery)
    assert problems(record) == []
    assert record["unmapped"]["phase"] == "notification"
    assert record["unmapped"]["recipients"] == list(delivery.to)
    assert record["unmapped"]["contract_ids"] == list(delivery.contract_ids)


def test_mail_sent_is_an_outbound_email_send(tmp_path: Path) -> None:
    record = written(tmp_path, MAIL)
    assert (record["class_uid"], record["activity_name"], record["status"]) == (
        4009,
        "Send",
        "Success",
    )
    assert record["email"] == {
        "from": "syncd@corp.example",
        "to": ["sam@corp.example", "copy@corp.example"],
        "message_uid": "<1.2@corp.example>",
    }
    assert record["dst_endpoint"] == {
        "name": "mail.corp.example",
        "hostname": "mail.corp.example",
        "port": 587,
    }
    assert record["unmapped"]["threshold"] == "3d"
    assert record["unmapped"]["late"] is True
    assert "retry" not in record["unmapped"]


def test_a_webhook_given_up_is_a_failed_post_without_credentials(tmp_path: Path) -> None:
    record = written(tmp_path, HOOK)
    assert (record["class_uid"], record["activity_name"], record["status"]) == (
        4002,
        "Post",
        "Failure",
    )
    assert record["severity"] == "Medium"
    assert record["http_response"] == {"code": 0}  # no answer came
    assert record["http_request"]["url"]["url_string"] == "https://hooks.example.com:8443/x/y"
    assert record["unmapped"]["retry"] is True
    assert "secret" not in json.dumps(record)
    assert "pw@" not in json.dumps(record)
