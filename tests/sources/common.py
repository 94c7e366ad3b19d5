"""What the source tests share: contracts in a source's own vocabulary, and validation."""

from __future__ import annotations

from pathlib import Path
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


ONE_TARGET = """\
roles:
  developer:
    corp-ldap: [cn=developers,ou=groups,dc=example,dc=test]
  ops:
    corp-ldap: [cn=ops,ou=groups,dc=example,dc=test]
targets:
  corp-ldap:
    type: ldap
    urls: ldaps://ldap.example.test:636
    bind_user: cn=syncd,ou=services,dc=example,dc=test
    base_dn: ou=contractors,dc=example,dc=test
    password_file: {password}
"""


def config_file(folder: Path, sources: str, more: str = "") -> Path:
    """``folder``/syncd.yaml: ``sources`` (YAML text, a ``source:`` or ``sources:``
    section) on its first lines, so that their line numbers are the file's, then one LDAP
    target with its roles, then ``more`` (e.g. audit: and daemon: sections)."""
    password = folder / "pw"
    password.write_text("x")
    path = folder / "syncd.yaml"
    path.write_text(sources.rstrip("\n") + "\n" + ONE_TARGET.format(password=password) + more)
    return path
