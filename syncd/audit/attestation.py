"""The audit record of an attestation (``syncd.core.attest``). Pure: no I/O, no clock.

Called by ``syncd.audit.writer`` (``AuditWriter.attestation``), which adds ``time``,
``time_dt``, ``metadata`` and the chain, as for every record.

The OCSF class is **Compliance Finding** (2003, category Findings), activity Create:
an attestation is the result of an evaluation of resources (a target's managed scope)
against a set of rules (the contracts: no enabled account after the access ends,
groups only from the person's roles, no credentials on an account without access, no
native expiry past the access end), which is what that class describes. Account Change
and Group Management record changes, not states; User Inventory Info (5003) could
carry the observed accounts but has no place for a verdict; Detection Finding is for
threats a detection engine found. The verdict goes to ``compliance.status``: ``Pass``
(nothing found), ``Warning`` (everything found was corrected by the same cycle's
changes, read back) or ``Fail`` (a violation stands). ``status`` is the finding's own
state, ``New``: every attestation is a finding of its own. What OCSF has no attribute
for (the counts, the digest, each violation) is under ``unmapped``, as syncd's other
fields are.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from syncd.audit.records import iso
from syncd.core.attest import Attestation, ViolationKind

COMPLIANCE_FINDING = 2003
CLASS_NAME, CATEGORY_UID, CATEGORY_NAME = "Compliance Finding", 2, "Findings"
CREATE = 1
STANDARD = "syncd: access follows contracts"
REQUIREMENTS = (
    "no enabled account for a person whose access has ended",
    "membership only of groups a role of the person grants",
    "no credentials on a disabled account of a person without access",
    "native expiry no later than the access end",
)
# compliance.status_id: 1 Pass, 2 Warning, 3 Fail
PASS, WARNING, FAIL = (1, "Pass"), (2, "Warning"), (3, "Fail")
# severity_id: 1 Informational, 2 Low, 3 Medium, 4 High
INFORMATIONAL, LOW, MEDIUM, HIGH = (1, "Informational"), (2, "Low"), (3, "Medium"), (4, "High")
# Violations listed in one record, outstanding ones first: a record stays well under the
# 1 MiB a shipper reads as one line even when a whole directory is out of line.
# ``by_kind`` always counts them all.
MAX_LISTED = 1000


def attestation_record(attestation: Attestation) -> dict[str, Any]:
    """A Compliance Finding for one target's attested managed scope."""
    outstanding = attestation.outstanding
    corrected = len(attestation.violations) - len(outstanding)
    verdict = FAIL if outstanding else WARNING if corrected else PASS
    severity = _severity(attestation)
    at_ms = int(attestation.at.timestamp() * 1000)
    summary = _summary(attestation)
    return {
        "class_uid": COMPLIANCE_FINDING,
        "class_name": CLASS_NAME,
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "activity_id": CREATE,
        "activity_name": "Create",
        "type_uid": COMPLIANCE_FINDING * 100 + CREATE,
        "type_name": f"{CLASS_NAME}: Create",
        "severity_id": severity[0],
        "severity": severity[1],
        "status_id": 1,
        "status": "New",
        "message": summary,
        "compliance": {
            "standards": [STANDARD],
            "control": "managed scope attestation",
            "requirements": list(REQUIREMENTS),
            "status_id": verdict[0],
            "status": verdict[1],
            "status_detail": f"{len(outstanding)} outstanding, {corrected} corrected",
        },
        "finding_info": {
            "uid": f"{attestation.target}:{iso(attestation.at, ms=True)}",
            "title": f"Managed scope of {attestation.target} attested",
            "desc": summary,
            "created_time": at_ms,
        },
        "resources": [{"name": attestation.target, "uid": attestation.target, "type": "scope"}],
        "unmapped": {
            "phase": "attestation",
            "target": attestation.target,
            "at": iso(attestation.at, ms=True),
            "counts": asdict(attestation.counts),
            "digest": attestation.digest,
            "outstanding": len(outstanding),
            "by_kind": dict(sorted(Counter(v.kind.value for v in attestation.violations).items())),
            **_listed(attestation),
        },
    }


def _listed(attestation: Attestation) -> dict[str, Any]:
    ordered = sorted(attestation.violations, key=lambda v: v.corrected)  # stable: by person
    listed: dict[str, Any] = {
        "violations": [
            {
                "kind": v.kind.value,
                "person": v.person,
                "username": v.username,
                **({"group": v.group} if v.group else {}),
                "detail": v.detail,
                "corrected": v.corrected,
            }
            for v in ordered[:MAX_LISTED]
        ]
    }
    if len(ordered) > MAX_LISTED:
        listed["truncated"] = True
    return listed


def _severity(attestation: Attestation) -> tuple[int, str]:
    """High while an ended person's account stands enabled, Medium for any other
    violation that stands, Low when every violation was corrected."""
    kinds = {v.kind for v in attestation.outstanding}
    if ViolationKind.ENDED_ENABLED in kinds:
        return HIGH
    if kinds:
        return MEDIUM
    return LOW if attestation.violations else INFORMATIONAL


def _summary(attestation: Attestation) -> str:
    c = attestation.counts
    found = len(attestation.violations)
    standing = len(attestation.outstanding)
    noun = "violation" if found == 1 else "violations"
    verdict = f"{found} {noun}, {standing} outstanding" if found else "no violations"
    return (
        f"{attestation.target}: {c.accounts} managed accounts ({c.enabled} enabled, "
        f"{c.disabled} disabled); people {c.active} active, {c.future} future, "
        f"{c.ended} ended; {verdict}"
    )
