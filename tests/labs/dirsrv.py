"""The 389-ds lab: the LDAP lab of :mod:`tests.labs.ldap` on a throwaway 389 Directory
Server (:mod:`tests.servers.dirsrv`) instead of slapd. Same tree, same groups, same
service account; what differs is how a disabled account looks (``nsAccountLock``
instead of ppolicy's ``pwdAccountLockedTime``). :class:`DirsrvLab` is at once the lab
and the :class:`~tests.labs.common.World` of the shared scenarios."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError, LDAPException

from tests.labs.common import Account
from tests.labs.ldap import PASSWORD, SUFFIX, Lab, LdapWorld, dn_of
from tests.servers.dirsrv import Dirsrv

LOCK = "nsaccountlock"


@dataclass
class DirsrvLab(Lab):
    """One 389-ds (shared by the session, reset for every test) plus a syncd config."""

    server: Dirsrv  # type: ignore[assignment]

    def admin(self) -> Connection:
        # No schema download at every look (389-ds defines a thousand attribute types).
        tls = Tls(ca_certs_file=str(self.server.ca_file))
        server = Server(self.server.ldaps_url, use_ssl=True, tls=tls, get_info=NONE)
        return Connection(server, self.server.root_dn, self.server.root_password, auto_bind=True)

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        """Every entry with every user attribute and the lock, for "nothing changed"."""
        conn = self.admin()
        conn.search(SUFFIX, "(objectClass=*)", SUBTREE, attributes=["*", "nsAccountLock"])
        result = {
            e["dn"]: {
                k.lower(): sorted(v.decode() for v in vs) for k, vs in e["raw_attributes"].items()
            }
            for e in conn.response
            if e["type"] == "searchResEntry"
        }
        conn.unbind()
        return result

    def bind_result(self, dn: str, password: str = PASSWORD) -> tuple[int, str]:
        """The result code and message of a simple bind as ``dn`` (0: it worked)."""
        tls = Tls(ca_certs_file=str(self.server.ca_file))
        server = Server(self.server.ldaps_url, use_ssl=True, tls=tls, get_info=NONE)
        conn = Connection(server, dn, password)
        try:
            conn.open()
            conn.bind()
            return int(conn.result["result"]), str(conn.result["message"])
        except (LDAPBindError, LDAPException) as exc:
            return -1, str(exc)
        finally:
            conn.unbind()

    def can_bind(self, dn: str, password: str = PASSWORD) -> bool:
        return self.bind_result(dn, password)[0] == 0

    def locked(self, entry: dict[str, list[str]]) -> bool:
        return any(v.lower() == "true" for v in entry.get(LOCK, []))

    # -- the World of the shared scenarios -----------------------------------------------
    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        LdapWorld(self).seed(username, key, groups)

    def account(self, username: str) -> Account | None:
        found = LdapWorld(self).account(username)  # groups as the slapd lab reads them
        if found is None:
            return None
        entry = self.entry(dn_of(username)) or {}
        return replace(found, enabled=not self.locked(entry))
