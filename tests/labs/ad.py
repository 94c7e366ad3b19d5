"""The AD lab: the seeded domain of the session's Samba AD DC (``tests.servers.samba``)
plus a syncd config pointing at it, inspected with the DC's administrator. It is also
the shared scenarios' AD :class:`~tests.labs.common.World`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_REPLACE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError

from tests.labs.common import ROLES, Account, SyncdBench
from tests.servers.samba import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DOMAIN_DN,
    GROUP_NAMES,
    SambaDC,
    group_dn,
    ou_dn,
)

PASSWORD = "Contractor-Secret-9"
CONTRACTORS = ou_dn("contractors")
DISABLED = ou_dn("disabled")


@dataclass
class AdLab(SyncdBench):
    """The seeded domain (reset before each test) plus a syncd config pointing at it.
    The shared scenarios key people by e-mail, longer than employeeID's 16 characters:
    the target's default key attribute, employeeNumber, takes them (a test that wants
    employeeID says so)."""

    dc: SambaDC
    work: Path
    target: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def roles(self) -> dict[str, dict[str, list[str]]]:
        return {role: {"corp": [group_dn(g) for g in groups]} for role, groups in ROLES.items()}

    def target_config(self, **target: Any) -> dict[str, Any]:
        (self.work / "bind-password").write_text(ADMIN_PASSWORD)
        return {
            "type": "ad",
            "urls": [self.dc.url],
            "ca_file": str(self.dc.ca_file),
            "bind_user": ADMIN_USER,
            "password_file": "bind-password",
            "base_dn": CONTRACTORS,
            "retries": 1,
            **self.target,
            **target,
        }

    # -- looking at the domain with our own eyes ---------------------------------------
    def find(self, username: str) -> tuple[str, dict[str, list[str]]] | None:
        conn = self.dc.admin()
        try:
            conn.search(DOMAIN_DN, f"(sAMAccountName={username})", SUBTREE, attributes=["*"])
            found = [e for e in conn.response if e["type"] == "searchResEntry"]
        finally:
            conn.unbind()
        if not found:
            return None
        raw = found[0]["raw_attributes"]
        return found[0]["dn"], {
            k.lower(): [x.decode(errors="replace") for x in vs] for k, vs in raw.items()
        }

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        """An account as an earlier cycle (or, without a key, someone else) left it."""
        parent = CONTRACTORS if key else ou_dn("people")
        dn = f"CN={username},{parent}"
        attributes: dict[str, Any] = {
            "sAMAccountName": username,
            "userPrincipalName": f"{username}@example.test",
            "userAccountControl": "512",
            "unicodePwd": f'"{PASSWORD}"'.encode("utf-16-le"),
        }
        if key:
            attributes[self.target.get("key_attribute", "employeeNumber")] = key
        conn = self.dc.admin()
        try:
            assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], attributes)
            for group in groups:
                conn.modify(group_dn(group), {"member": [(MODIFY_ADD, [dn])]})
        finally:
            conn.unbind()

    def account(self, username: str) -> Account | None:
        found = self.find(username)
        if found is None or not found[0].lower().endswith((CONTRACTORS.lower(), DISABLED.lower())):
            return None
        _, entry = found
        uac = int(entry["useraccountcontrol"][0])
        member_of = {g.lower() for g in entry.get("memberof", [])}
        groups = frozenset(n for n in GROUP_NAMES if group_dn(n).lower() in member_of)
        return Account(not uac & 2, groups)

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        conn = self.dc.admin()
        result = {}
        try:
            for ou in ("people", "contractors", "disabled", "groups"):
                conn.search(ou_dn(ou), "(objectClass=*)", SUBTREE, attributes=["*"])
                for e in conn.response:
                    if e["type"] == "searchResEntry":
                        result[e["dn"]] = {
                            k.lower(): sorted(map(repr, vs))
                            for k, vs in e["raw_attributes"].items()
                        }
        finally:
            conn.unbind()
        return result

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        conn = self.dc.admin()
        try:
            assert conn.modify(dn, changes), conn.result
        finally:
            conn.unbind()

    def set_password(self, dn: str, password: str = PASSWORD) -> None:
        self.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])]})

    def can_bind(self, user: str, password: str = PASSWORD) -> bool:
        tls = Tls(ca_certs_file=str(self.dc.ca_file))
        server = Server(self.dc.url, use_ssl=True, tls=tls)
        try:
            Connection(server, user, password, auto_bind=True).unbind()
        except LDAPBindError:
            return False
        return True
