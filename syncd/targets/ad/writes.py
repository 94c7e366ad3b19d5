"""Account changes of the ``ad`` target: create, update, enable, disable (and park in
``disabled_ou``), expiry, credential revocation, delete.

Called by ``targets.ad.target``, which observes and hands over what it saw in ``Seen``.
Accounts are added disabled with a random password, then enabled by clearing only the
ACCOUNTDISABLE bit: ``userAccountControl`` is always changed bit-wise from the value
observed, so flags an admin set stay. A sponsor becomes ``manager`` once found by
e-mail or UPN; one who is not in the directory leaves ``manager`` unset, with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ldap3 import MODIFY_REPLACE
from ldap3.utils.dn import escape_rdn, to_dn

from syncd.config import AdTarget
from syncd.core.model import Action, ActionKind
from syncd.errors import PermanentError
from syncd.targets.ad import values as v
from syncd.targets.directory.connection import NO_SUCH_OBJECT, LdapConnection
from syncd.targets.directory.operations import read_entry, tolerant
from syncd.targets.directory.values import any_of, chunks, first_int, lowered, normalize_dn, under

MANAGER = "manager"
_USER = "(objectCategory=person)(objectClass=user)"


@dataclass
class Seen:
    """What one cycle learned of the domain, kept for its writes (DNs normalized)."""

    # DN -> userAccountControl last seen, for every managed account of the cycle
    # (observed, created, moved): the read-back takes its keys as the managed DNs
    uac: dict[str, int] = field(default_factory=dict)
    managers: dict[str, str] = field(default_factory=dict)  # DN -> manager DN set on it
    moved: dict[str, str] = field(default_factory=dict)  # DN at observation -> DN now
    dns: dict[str, str] = field(default_factory=dict)  # username -> DN created this cycle
    sponsors: dict[str, str | None] = field(default_factory=dict)  # sponsor -> their DN
    # DN -> person key of every managed account of the cycle (observed, created, moved)
    keys: dict[str, str] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget the last cycle: a new observation starts."""
        for known in (self.uac, self.managers, self.moved, self.dns, self.sponsors, self.keys):
            known.clear()


class AccountWriter:
    """Sends the account actions of one AD target."""

    def __init__(self, name: str, config: AdTarget, conn: LdapConnection, seen: Seen) -> None:
        self.name = name
        self.config = config
        self.conn = conn
        self.seen = seen
        self.parked = normalize_dn(config.disabled_ou) if config.disabled_ou else ""
        self.domain = config.domain_dn()

    def dn_for(self, action: Action) -> str:
        if action.ref:
            return self.seen.moved.get(normalize_dn(action.ref), action.ref)
        known = self.seen.dns.get(action.username)
        if known is not None:
            return known
        dn = f"CN={escape_rdn(action.username)},{self.config.base_dn}"
        self.seen.dns[action.username] = dn
        return dn

    def one(self, action: Action, dn: str) -> tuple[str, str]:
        """Carry out one account action; the account's DN afterwards, and a note."""
        kind = action.kind
        if kind is ActionKind.CREATE:
            return dn, self._create(action, dn)
        if kind is ActionKind.DELETE:
            return dn, tolerant(
                self.conn, lambda c: c.delete(dn), {NO_SUCH_OBJECT: "already absent"}
            )
        if kind is ActionKind.UPDATE:
            changes, note = self._updates(action, dn)
            if changes:
                self._modify(dn, changes)
            return dn, note
        if kind is ActionKind.SET_EXPIRY:
            value = v.to_filetime(action.expiry) if action.expiry else v.NEVER
            self._modify(dn, {"accountExpires": [(MODIFY_REPLACE, [str(value)])]})
            return dn, ""
        if kind is ActionKind.DISABLE:
            self._set_uac(dn, v.disabled)
            if self.parked and not under(normalize_dn(dn), self.parked):
                return self._move(action, dn, self.config.disabled_ou or ""), ""
            return dn, ""
        if kind is ActionKind.ENABLE:
            if self.parked and under(normalize_dn(dn), self.parked):
                dn = self._move(action, dn, self.config.base_dn)
            self._set_uac(dn, v.enabled)
            return dn, ""
        if kind is ActionKind.REVOKE_CREDENTIALS:
            self._modify(
                dn,
                {
                    "unicodePwd": [(MODIFY_REPLACE, [v.unicode_pwd(v.random_password())])],
                    "pwdLastSet": [(MODIFY_REPLACE, ["0"])],
                },
            )
            return dn, ""
        raise PermanentError(f"{self.name}: cannot apply {kind.value} to an account")

    def _create(self, action: Action, dn: str) -> str:
        cfg = self.config
        problem = v.sam_problem(action.username)
        if problem:
            raise PermanentError(f"{self.name}: {problem}")
        entry: dict[str, Any] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": action.username,
            "userPrincipalName": f"{action.username}@{cfg.upn_domain()}",
            cfg.key_attribute: action.person,
            "userAccountControl": str(v.NEW_ACCOUNT_UAC),
            "accountExpires": str(v.to_filetime(action.expiry) if action.expiry else v.NEVER),
            # Set in the add itself, so the account never exists without a password.
            "unicodePwd": v.unicode_pwd(v.random_password()),
        }
        note = ""
        for name, values in action.changes.items():
            if name == MANAGER:
                manager = self.seen.sponsors.get(values[0].lower()) if values else None
                if manager:
                    entry[name] = manager
                elif values:
                    note = f"sponsor {values[0]} is not in the directory; manager left unset"
                continue
            entry[name] = list(values)
        self.conn.call(lambda c: c.add(dn, attributes=entry))
        self.seen.uac[normalize_dn(dn)] = v.NEW_ACCOUNT_UAC
        self.seen.keys[normalize_dn(dn)] = action.person
        try:
            self._set_uac(dn, v.enabled)
        except PermanentError as exc:
            raise PermanentError(f"created disabled, but enabling failed: {exc}") from exc
        return note

    def _updates(self, action: Action, dn: str) -> tuple[dict[str, Any], str]:
        changes: dict[str, Any] = {}
        note = ""
        for name, values in action.changes.items():
            if name != MANAGER:
                changes[name] = [(MODIFY_REPLACE, list(values))]
                continue
            manager = self.seen.sponsors.get(values[0].lower()) if values else None
            if manager:
                changes[name] = [(MODIFY_REPLACE, [manager])]
            elif normalize_dn(action.ref or dn) in self.seen.managers:
                # The sponsor is no user here: a manager set for an old sponsor goes.
                changes[name] = [(MODIFY_REPLACE, [])]
            if values and not manager:
                note = f"sponsor {values[0]} is not in the directory; manager left unset"
        return changes, note

    def resolve_sponsors(self, actions: Sequence[Action]) -> None:
        """Look up the DNs of the sponsors named in these actions, by e-mail or UPN,
        one search per 100 sponsors not looked up yet this cycle."""
        wanted = sorted(
            {
                values[0].lower()
                for action in actions
                if (values := action.changes.get(MANAGER))
                and values[0].lower() not in self.seen.sponsors
            }
        )
        base = self.config.sponsor_base or self.domain
        for chunk in chunks(wanted):
            terms = any_of("mail", chunk)[2:-1] + any_of("userPrincipalName", chunk)[2:-1]
            for dn, raw in self.conn.paged(
                base, f"(&{_USER}(|{terms}))", ["mail", "userPrincipalName"]
            ):
                entry = lowered(raw)
                for name in entry.get("mail", ()) + entry.get("userprincipalname", ()):
                    self.seen.sponsors.setdefault(name.lower(), dn)
            for name in chunk:
                self.seen.sponsors.setdefault(name, None)

    def _set_uac(self, dn: str, change: Callable[[int], int]) -> None:
        """Flip ACCOUNTDISABLE only: the value read this cycle (or right now, for an
        account observed elsewhere) with every other bit kept."""
        ndn = normalize_dn(dn)
        current = self.seen.uac.get(ndn)
        if current is None:
            entry = self.conn.call(partial(read_entry, dn=dn, attributes=["userAccountControl"]))
            current = first_int(lowered(entry).get("useraccountcontrol", ()), v.NORMAL_ACCOUNT)
        wanted = change(current)
        if wanted != current:
            self._modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [str(wanted)])]})
        self.seen.uac[ndn] = wanted

    def _move(self, action: Action, dn: str, parent: str) -> str:
        """Move an account to ``parent`` keeping its RDN; later actions of this cycle
        that name the old DN are sent to the new one."""
        rdn = to_dn(dn)[0]
        self.conn.call(lambda c: c.modify_dn(dn, rdn, new_superior=parent))
        new = f"{rdn},{parent}"
        self.seen.moved[normalize_dn(action.ref or dn)] = new
        self.seen.uac[normalize_dn(new)] = self.seen.uac.pop(normalize_dn(dn), v.NORMAL_ACCOUNT)
        self.seen.keys[normalize_dn(new)] = action.person
        return new

    def _modify(self, dn: str, changes: dict[str, Any]) -> None:
        self.conn.call(lambda c: c.modify(dn, changes))
