"""Fixtures for end-to-end tests: a real slapd per test and a ``Lab`` that drives syncd
through its command line and inspects the directory with a separate admin connection."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from ldap3 import BASE, MODIFY_ADD, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException

from syncd.cli import main
from tests.servers.slapd import Slapd, start_slapd

SUFFIX = "dc=example,dc=test"
BASE_DN = f"ou=contractors,{SUFFIX}"
GROUPS = {
    name: f"cn={name},ou=groups,{SUFFIX}"
    for name in ("developers", "vpn-users", "wiki-editors", "ops")
}
PASSWORD = "Contractor-Secret-9"


def day(offset: int) -> str:
    """An ISO date ``offset`` days from today (UTC, the tests' policy timezone)."""
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def contract(
    cid: str, given: str, family: str, roles: list[str], start: str, end: str, **extra: Any
) -> dict[str, Any]:
    email = f"{given}.{family}@vendor.example".lower()
    return {
        "id": cid,
        "email": email,
        "given_name": given,
        "family_name": family,
        "roles": roles,
        "start": start,
        "end": end,
        **extra,
    }


@dataclass
class Result:
    code: int
    out: str
    err: str


class SyncdBench:
    """What every test lab shares: a work folder holding a syncd config, the contracts
    and the audit trail, with syncd driven through its command line. A lab provides
    ``work``, ``overrides``, ``roles()`` and ``target_config()``."""

    work: Path
    overrides: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.work / "syncd.yaml"

    @property
    def audit_path(self) -> Path:
        return self.work / "audit.jsonl"

    def roles(self) -> dict[str, dict[str, list[str]]]:
        raise NotImplementedError

    def target_config(self, **target: Any) -> dict[str, Any]:
        raise NotImplementedError

    def write_config(self, **target: Any) -> Path:
        config: dict[str, Any] = {
            "source": {"type": "file", "path": "contracts.yaml"},
            "policy": {"timezone": "UTC"},
            "safety": {"max_orphan_disables": 10, "max_deletes": 10},
            "roles": self.roles(),
            "targets": {"corp": self.target_config(**target)},
            "audit": {"path": "audit.jsonl"},
        }
        for key, value in self.overrides.items():
            config[key] = {**config.get(key, {}), **value}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return self.config_path

    def configure(self, **sections: dict[str, Any]) -> None:
        self.overrides.update(sections)
        self.write_config()

    def contracts(self, *records: dict[str, Any]) -> None:
        path = self.work / "contracts.yaml"
        path.write_text(yaml.safe_dump({"contracts": list(records)}, allow_unicode=True))

    def syncd(self, *args: str) -> Result:
        if not self.config_path.exists():
            self.write_config()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["-c", str(self.config_path), *args])
        return Result(code, out.getvalue(), err.getvalue())

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@dataclass
class Lab(SyncdBench):
    """One throwaway slapd plus a syncd config pointing at it."""

    server: Slapd
    work: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    def roles(self) -> dict[str, dict[str, list[str]]]:
        return {
            "developer": {"corp": [GROUPS["developers"], GROUPS["vpn-users"]]},
            "writer": {"corp": [GROUPS["wiki-editors"]]},
            "operator": {"corp": [GROUPS["ops"], GROUPS["vpn-users"]]},
        }

    def target_config(self, **target: Any) -> dict[str, Any]:
        secret = self.work / "bind-password"
        secret.write_text(self.server.service_password)
        secret.chmod(0o600)
        return {
            "type": "ldap",
            "url": self.server.ldaps_url,
            "ca_file": str(self.server.ca_file),
            "bind_dn": self.server.service_dn,
            "password_file": str(secret),
            "base_dn": BASE_DN,
            "conflict_base": SUFFIX,
            "retries": 1,
            **target,
        }

    # -- looking at the directory with our own eyes ------------------------------------
    def admin(self) -> Connection:
        tls = Tls(ca_certs_file=str(self.server.ca_file))
        server = Server(self.server.ldaps_url, use_ssl=True, tls=tls)
        return Connection(server, self.server.admin_dn, self.server.admin_password, auto_bind=True)

    def entry(self, dn: str) -> dict[str, list[str]] | None:
        conn = self.admin()
        try:
            conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "+"])
            response = list(conn.response or [])
        except LDAPException:
            return None
        finally:
            conn.unbind()
        if not response:
            return None
        return {
            k.lower(): [v.decode() for v in vs] for k, vs in response[0]["raw_attributes"].items()
        }

    def members(self, group: str) -> set[str]:
        entry = self.entry(group) or {}
        return {m.lower() for m in entry.get("member", [])}

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Every entry of the directory with every attribute, for "nothing changed"."""
        conn = self.admin()
        conn.search(
            SUFFIX,
            "(objectClass=*)",
            SUBTREE,
            attributes=["*", "pwdAccountLockedTime", "pwdEndTime"],
        )
        result = {
            e["dn"]: {
                k.lower(): sorted(v.decode() for v in vs) for k, vs in e["raw_attributes"].items()
            }
            for e in conn.response
            if e["type"] == "searchResEntry"
        }
        conn.unbind()
        return result

    def can_bind(self, dn: str, password: str = PASSWORD) -> bool:
        tls = Tls(ca_certs_file=str(self.server.ca_file))
        server = Server(self.server.ldaps_url, use_ssl=True, tls=tls)
        try:
            conn = Connection(server, dn, password, auto_bind=True)
        except LDAPBindError:
            return False
        conn.unbind()
        return True

    def set_password(self, dn: str, password: str = PASSWORD) -> None:
        conn = self.admin()
        conn.modify(dn, {"userPassword": [("MODIFY_REPLACE", [password])]})
        conn.unbind()

    def add_account(
        self,
        uid: str,
        key: str | None,
        *,
        parent: str = BASE_DN,
        groups: tuple[str, ...] = (),
        password: str | None = PASSWORD,
    ) -> str:
        """An entry as an earlier cycle (or someone else) left it."""
        dn = f"uid={uid},{parent}"
        attributes: dict[str, Any] = {
            "objectClass": ["inetOrgPerson"],
            "uid": uid,
            "cn": uid,
            "sn": uid,
        }
        if key:
            attributes["employeeNumber"] = key
        if password:
            attributes["userPassword"] = password
        conn = self.admin()
        assert conn.add(dn, attributes=attributes), conn.result
        for group in groups:
            conn.modify(GROUPS[group], {"member": [(MODIFY_ADD, [dn])]})
        conn.unbind()
        return dn


def dn_of(uid: str) -> str:
    return f"uid={uid},{BASE_DN}"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    server = start_slapd(tmp_path / "slapd")
    try:
        yield Lab(server, tmp_path)
    finally:
        server.stop()
