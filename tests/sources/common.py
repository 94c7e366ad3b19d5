"""What the source tests share: contracts in a source's own vocabulary, and validation."""

from __future__ import annotations

from typing import Any

from syncd.core.contracts import RawRecord, validate
from syncd.core.model import Contract, InvalidRecord
from syncd.core.policy import Policy

POLICY = Policy(roles=frozenset({"developer", "ops"}))


def vms_item(n: int, **changes: Any) -> dict[str, Any]:
    """A VMS-style assignment: nested worker, its own status words, roles as objects."""
    item: dict[str, Any] = {
        "id": f"A-{n:05d}",
        "worker": {"mail": f"worker{n}@vendor.test", "first": "Ada", "last": f"Worker{n}"},
        "state": "Open",
        "skills": [{"code": "DEV"}, {"code": "OPS"}] if n % 2 else [{"code": "DEV"}],
        "period": {"from": "2026-01-01", "to": "2027-06-30"},
        "supplier": "Acme",
    }
    item.update(changes)
    return item


VMS_MAPPING: dict[str, Any] = {
    "fields": {
        "email": "worker.mail",
        "given_name": "worker.first",
        "family_name": "worker.last",
        "roles": "skills",
        "start": "period.from",
        "end": "period.to",
        "status": "state",
        "vendor": "supplier",
    },
    "status_map": {"Open": "active", "Closed": "terminated", "Withdrawn": "cancelled"},
    "roles_from": {"key": "code", "map": {"DEV": "developer", "OPS": "ops"}},
}


def checked(records: list[RawRecord]) -> tuple[list[Contract], list[InvalidRecord]]:
    return validate(records, POLICY)
