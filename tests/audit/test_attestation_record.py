"""The attestation record (``syncd.audit.attestation``): a valid OCSF 1.3.0 Compliance
Finding as the writer puts it in the trail, its verdict and severity, and the chain
still verifying around it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.audit import AuditWriter
from syncd.audit.attestation import MAX_LISTED, attestation_record
from syncd.audit.verify import verify
from syncd.core.attest import Attestation, Counts, Violation, ViolationKind
from tests.audit.ocsf import event_class, problems

AT = datetime(2027, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
DIGEST = "ab" * 32
ENDED = Violation(
    ViolationKind.ENDED_ENABLED,
    "carla@vendor.example",
    "carla",
    "contract C-3 ended 2027-02-28T23:00:00Z; the account is enabled",
)
GROUP = Violation(
    ViolationKind.UNGRANTED_GROUP,
    "ana@vendor.example",
    "ana",
    "member of cn=ops,dc=test: no role of developer grants it",
    group="cn=ops,dc=test",
)
CORRECTED = replace(ENDED, corrected=True)


def attestation(*violations: Violation) -> Attestation:
    counts = Counts(accounts=3, enabled=2, disabled=1, active=2, ended=1)
    return Attestation("corp-ldap", AT, counts, violations, DIGEST)


def written(tmp_path: Path, subject: Attestation) -> dict[str, Any]:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, correlation="run-1") as audit:
        audit.attestation(subject, "cycle-1")
    record: dict[str, Any] = json.loads(trail.read_text().splitlines()[-1])
    assert verify([trail]).ok
    return record


@pytest.mark.parametrize(
    "violations",
    [(), (ENDED,), (ENDED, GROUP), (CORRECTED,)],
    ids=["clean", "ended-enabled", "two", "corrected"],
)
def test_the_written_record_is_a_valid_compliance_finding(
    tmp_path: Path, violations: tuple[Violation, ...]
) -> None:
    record = written(tmp_path, attestation(*violations))

    assert problems(record) == []
    assert record["class_uid"] == 2003
    assert record["type_uid"] == 200301
    assert record["metadata"]["correlation_uid"] == "cycle-1"


def test_the_record_declares_the_profiles_it_uses(tmp_path: Path) -> None:
    assert problems(written(tmp_path, attestation())) == []


def test_every_top_level_field_is_known_to_the_class() -> None:
    record = attestation_record(attestation(ENDED, GROUP))
    known = event_class(2003)["attributes"]

    assert set(record) <= set(known)
    required = {n for n, a in known.items() if a["requirement"] == "required" and not a["profile"]}
    # the writer adds time and metadata
    assert required - set(record) == {"time", "metadata"}


@pytest.mark.parametrize(
    ("violations", "verdict", "severity"),
    [
        pytest.param((), (1, "Pass"), (1, "Informational"), id="clean"),
        pytest.param((ENDED,), (3, "Fail"), (4, "High"), id="ended-enabled-stands"),
        pytest.param((GROUP,), (3, "Fail"), (3, "Medium"), id="extra-group-stands"),
        pytest.param((CORRECTED,), (2, "Warning"), (2, "Low"), id="corrected-in-the-cycle"),
    ],
)
def test_verdict_and_severity(
    violations: tuple[Violation, ...], verdict: tuple[int, str], severity: tuple[int, str]
) -> None:
    record = attestation_record(attestation(*violations))

    compliance = record["compliance"]
    assert (compliance["status_id"], compliance["status"]) == verdict
    assert (record["severity_id"], record["severity"]) == severity
    assert (record["status_id"], record["status"]) == (1, "New")


def test_the_record_carries_counts_digest_and_each_violation() -> None:
    record = attestation_record(attestation(ENDED, GROUP))

    unmapped = record["unmapped"]
    assert unmapped["phase"] == "attestation"
    assert unmapped["target"] == "corp-ldap"
    assert unmapped["at"] == "2027-03-01T12:00:00.250Z"
    assert unmapped["digest"] == DIGEST
    assert unmapped["counts"] == {
        "accounts": 3,
        "enabled": 2,
        "disabled": 1,
        "orphans": 0,
        "active": 2,
        "future": 0,
        "ended": 1,
    }
    assert unmapped["outstanding"] == 2
    assert unmapped["by_kind"] == {"ended_enabled": 1, "ungranted_group": 1}
    assert "truncated" not in unmapped
    assert unmapped["violations"] == [
        {
            "kind": "ended_enabled",
            "person": "carla@vendor.example",
            "username": "carla",
            "detail": "contract C-3 ended 2027-02-28T23:00:00Z; the account is enabled",
            "corrected": False,
        },
        {
            "kind": "ungranted_group",
            "person": "ana@vendor.example",
            "username": "ana",
            "group": "cn=ops,dc=test",
            "detail": "member of cn=ops,dc=test: no role of developer grants it",
            "corrected": False,
        },
    ]
    assert record["finding_info"]["uid"] == "corp-ldap:2027-03-01T12:00:00.250Z"
    assert record["finding_info"]["created_time"] == int(AT.timestamp() * 1000)
    assert record["resources"] == [{"name": "corp-ldap", "uid": "corp-ldap", "type": "scope"}]


def test_a_directory_out_of_line_lists_the_outstanding_violations_first() -> None:
    many = [replace(GROUP, person=f"p{i:04}@vendor.example") for i in range(MAX_LISTED)]

    record = attestation_record(attestation(CORRECTED, *many))

    unmapped = record["unmapped"]
    assert len(unmapped["violations"]) == MAX_LISTED
    assert not any(v["corrected"] for v in unmapped["violations"])
    assert unmapped["truncated"] is True
    assert unmapped["by_kind"] == {"ended_enabled": 1, "ungranted_group": MAX_LISTED}
    assert len(json.dumps(record).encode()) < 512 * 1024


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"severity_id": 7}, "severity_id: 7 is not one of"),
        ({"severity": "Low"}, "severity_id: severity 'Low' is not 'Informational'"),
        ({"type_uid": 200302}, "type_uid"),
        ({"user": {"name": "x"}}, "user: not an attribute"),
        ({"finding_info": {"title": "t"}}, "finding_info.uid: required, missing"),
        ({"compliance": {"standards": "one"}}, "compliance.standards: expected an array"),
        ({"resources": [{"type": "scope"}]}, "resources.: needs at least one of"),
        ({"time": "now"}, "time: 'now' is not a timestamp_t"),
    ],
)
def test_the_validator_finds_what_is_wrong(change: dict[str, Any], expected: str) -> None:
    record = {**attestation_record(attestation()), "time": 1, "metadata": _metadata(), **change}

    assert any(expected in p for p in problems(record, profiles_declared=False)), problems(record)


def _metadata() -> dict[str, Any]:
    return {"version": "1.3.0", "product": {"name": "syncd", "vendor_name": "syncd"}}
