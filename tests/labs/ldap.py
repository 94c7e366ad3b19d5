"""The LDAP lab: one throwaway slapd (``tests.servers.slapd``) plus a syncd config
pointing at it, inspected with a separate admin connection. :class:`LdapWorld` is the
same lab seen through the shared scenarios' :class:`~tests.labs.common.World`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import BASE, MODIFY_ADD, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException

from tests.labs.common import GROUP_NAMES, Account, Result, SyncdBench
from tests.servers.slapd import Slapd

SUFFIX = "dc=example,dc=test"
BASE_DN = f"ou=contractors,{SUFFIX}"
GROUPS = {name: f"cn={name},ou=groups,{SUFFIX}" for name in GROUP_NAMES}
PASSWORD = "Contractor-Secret-9"


def dn_of(uid: str) -> str:
    return f"uid={uid},{BASE_DN}"


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
            "urls": self.server.ldaps_url,
            "ca_file": str(self.server.ca_file),
            "bind_user": self.server.service_dn,
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


class LdapWorld:
    """``Lab`` seen through the World interface."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def contracts(self, *records: dict[str, Any]) -> None:
        self.lab.contracts(*records)

    def configure(self, **sections: dict[str, Any]) -> None:
        self.lab.overrides.update(sections)
        self.lab.write_config()

    def syncd(self, *args: str) -> Result:
        return self.lab.syncd(*args)

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        # Unmanaged: outside the base DN, where employees live.
        parent = None if key else f"ou=people,{SUFFIX}"
        self.lab.add_account(username, key, groups=groups, **({"parent": parent} if parent else {}))

    def account(self, username: str) -> Account | None:
        entry = self.lab.entry(dn_of(username))
        if entry is None:
            return None
        dn = dn_of(username).lower()
        groups = frozenset(n for n in GROUP_NAMES if dn in self.lab.members(GROUPS[n]))
        return Account("pwdaccountlockedtime" not in entry, groups)

    def snapshot(self) -> Any:
        return self.lab.snapshot()

    def audit(self) -> list[dict[str, Any]]:
        return self.lab.audit()
