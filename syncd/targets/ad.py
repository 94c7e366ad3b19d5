"""The ``ad`` target: user objects in an Active Directory OU (SPEC §3).

Called by ``syncd.cycle`` (observe, find_conflicts, check) and ``syncd.apply`` (apply).
The managed scope is ``base_dn`` (and ``disabled_ou``) plus the person key in
``key_attribute`` (``employeeID``): nothing else is changed, and of the groups only the
managed ones, only for managed accounts (the primary group is never touched).

* Observation: one paged search per managed OU reading ``userAccountControl``,
  ``accountExpires``, ``pwdLastSet``, ``memberOf`` and the templated attributes; one
  base read per managed group (does it exist); the managers of managed accounts looked
  up with OR filters of 100 DNs each, so that ``manager`` compares as the sponsor's
  e-mail.
* Accounts are added disabled with a random password, then enabled by clearing only
  the ACCOUNTDISABLE bit; ``accountExpires`` carries the access end so AD refuses
  logons after it even when syncd is down.
* Credentials are revoked by a random password plus ``pwdLastSet = 0``; an account
  whose ``pwdLastSet`` is 0 holds no password anyone knows, which makes the revocation
  observable and idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, to_dn

from syncd.audit import Outcome
from syncd.config import AdTarget
from syncd.core.model import Action, ActionKind, Conflict, ObservedAccount
from syncd.errors import PermanentError, TargetError
from syncd.targets import advalues as v
from syncd.targets.adconn import AdConnection, diagnostic_code
from syncd.targets.base import Report
from syncd.targets.ldap import normalize_dn
from syncd.targets.ldapconn import Entry, entry_exists, read_entry, result_code

log = logging.getLogger(__name__)
_SCAN_ABOVE = 500  # wanted accounts above which conflicts are found by one scan
_CHUNK = 100  # values per OR filter
_MEMBERS_PER_MODIFY = 500
_USER = "(objectCategory=person)(objectClass=user)"
_MANAGER = "manager"


def _values(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list | tuple):
        return tuple(str(x) for x in raw)
    return (str(raw),)


def _lowered(entry: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {k.lower(): _values(x) for k, x in entry.items()}


def _int(values: tuple[str, ...], default: int) -> int:
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def _or(attribute: str, values: Iterable[str]) -> str:
    name = escape_filter_chars(attribute)
    return "(|" + "".join(f"({name}={escape_filter_chars(x)})" for x in values) + ")"


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class AdDirectory:
    """Observe and change the managed OU of one Active Directory domain."""

    def __init__(self, name: str, config: AdTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.conn = AdConnection(config, name)
        self.base = normalize_dn(config.base_dn)
        self.parked = normalize_dn(config.disabled_ou) if config.disabled_ou else ""
        self.domain = config.domain_dn()
        self.groups = groups
        self._uac: dict[str, int] = {}  # normalized DN -> userAccountControl last seen
        self._managers: dict[str, str] = {}  # normalized DN -> manager DN set on it
        self._moved: dict[str, str] = {}  # normalized DN at observation -> DN now
        self._dns: dict[str, str] = {}  # username -> DN of accounts created this cycle
        self._sponsors: dict[str, str | None] = {}  # sponsor (lower) -> their DN

    # -- observation -------------------------------------------------------------------
    def _managed(self, ndn: str) -> bool:
        parked = bool(self.parked) and ndn.endswith("," + self.parked)
        return parked or ndn.endswith("," + self.base)

    def observe(self) -> tuple[dict[str, ObservedAccount], frozenset[str]]:
        cfg = self.config
        self._uac, self._managers, self._moved, self._sponsors = {}, {}, {}, {}
        attrs = [cfg.key_attribute, "sAMAccountName", "userAccountControl", "accountExpires"]
        attrs += ["pwdLastSet", "memberOf", *cfg.attributes]
        key_filter = f"(&{_USER}({escape_filter_chars(cfg.key_attribute)}=*))"
        entries = self.conn.paged(cfg.base_dn, key_filter, attrs)
        if cfg.disabled_ou:
            entries += self.conn.paged(cfg.disabled_ou, key_filter, attrs)
        missing = frozenset(g for g in sorted(self.groups) if not self._exists(g))
        managed_groups = {normalize_dn(g): g for g in self.groups}
        decoded = [(dn, _lowered(entry)) for dn, entry in sorted(entries, key=lambda e: e[0])]
        identities = self._identities(decoded)
        accounts: dict[str, ObservedAccount] = {}
        for dn, entry in decoded:
            ndn = normalize_dn(dn)
            keys = entry.get(cfg.key_attribute.lower(), ())
            if not keys or not self._managed(ndn):
                continue
            key = keys[0].lower()
            if key in accounts:
                log.error(
                    "%s: person %s has two managed accounts, %s and %s; the second is "
                    "ignored until one is removed",
                    self.name,
                    key,
                    accounts[key].ref,
                    dn,
                )
                continue
            uac = _int(entry.get("useraccountcontrol", ()), v.NEW_ACCOUNT_UAC)
            self._uac[ndn] = uac
            groups = {managed_groups.get(normalize_dn(g)) for g in entry.get("memberof", ())}
            attributes = {name: entry.get(name.lower(), ()) for name in cfg.attributes}
            if attributes.get(_MANAGER):
                manager = attributes[_MANAGER][0]
                self._managers[ndn] = manager
                attributes[_MANAGER] = (identities.get(normalize_dn(manager), manager),)
            accounts[key] = ObservedAccount(
                key=key,
                ref=dn,
                username=(entry.get("samaccountname") or ("",))[0],
                enabled=not uac & v.ACCOUNTDISABLE,
                expiry=v.from_filetime(_int(entry.get("accountexpires", ()), 0)),
                has_credentials=_int(entry.get("pwdlastset", ()), 0) != 0,
                groups=frozenset(g for g in groups if g),
                attributes=attributes,
            )
        return accounts, missing

    def _identities(self, decoded: list[tuple[str, dict[str, tuple[str, ...]]]]) -> dict[str, str]:
        """Normalized manager DN -> the manager's e-mail (else UPN), as sponsors are
        written in contracts; one search per 100 distinct managers."""
        if _MANAGER not in self.config.attributes:
            return {}
        managers = sorted({e[_MANAGER][0] for _, e in decoded if e.get(_MANAGER)})
        found: dict[str, str] = {}
        for chunk in _chunks(managers):
            for dn, entry in self.conn.paged(
                self.domain, _or("distinguishedName", chunk), ["mail", "userPrincipalName"]
            ):
                attributes = _lowered(entry)
                name = (attributes.get("mail") or attributes.get("userprincipalname") or ("",))[0]
                if name:
                    found[normalize_dn(dn)] = name.lower()
                    self._sponsors[name.lower()] = dn
        return found

    def _exists(self, dn: str) -> bool:
        return self.conn.call(partial(entry_exists, dn=dn))

    # -- conflicts ---------------------------------------------------------------------
    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """Per person about to be created: a username AD cannot take, a key that does not
        fit ``key_attribute``, or an unmanaged object holding the sAMAccountName, the
        userPrincipalName or the person key. Up to ``_SCAN_ABOVE`` people are looked up
        with OR filters, more with one paged scan of the domain's accounts."""
        cfg = self.config
        conflicts: dict[str, Conflict] = {}
        lookup: list[tuple[str, str]] = []
        for person, name in wanted:
            problem = v.sam_problem(name) or v.key_problem(cfg.key_attribute, person)
            if problem:
                fix = "give the contract a username AD accepts (username: field)"
                if not v.sam_problem(name):
                    fix = "give the contracts a shorter person: key, or set key_attribute"
                reason = f"{problem} (fix: {fix})"
                conflicts[person] = Conflict(self.name, person, name, "", reason)
            else:
                lookup.append((person, name))
        if not lookup:
            return conflicts
        base = cfg.conflict_base or self.domain
        key, upn = cfg.key_attribute, cfg.upn_domain()
        attrs = ["sAMAccountName", "userPrincipalName", key]
        found: list[Entry] = []
        if len(lookup) > _SCAN_ABOVE:
            scan = f"(|(sAMAccountName=*)({escape_filter_chars(key)}=*))"
            found = self.conn.paged(base, scan, attrs)
        else:
            for start in range(0, len(lookup), _CHUNK):
                chunk = lookup[start : start + _CHUNK]
                terms = "".join(
                    _or("sAMAccountName", [name])
                    + _or("userPrincipalName", [f"{name}@{upn}"])
                    + _or(key, [person])
                    for person, name in chunk
                )
                found += self.conn.paged(base, f"(|{terms})", attrs)
        by_value: dict[str, list[tuple[str, dict[str, tuple[str, ...]]]]] = {}
        for dn, raw in found:
            entry = _lowered(raw)
            values = entry.get("samaccountname", ()) + entry.get(key.lower(), ())
            values += tuple(u.split("@", 1)[0] for u in entry.get("userprincipalname", ()))
            for value in {x.lower() for x in values}:
                by_value.setdefault(value, []).append((dn, entry))
        for person, name in lookup:
            for dn, entry in by_value.get(name.lower(), []) + by_value.get(person, []):
                reason = self._conflict_reason(dn, entry, person, name)
                if reason:
                    conflicts[person] = Conflict(self.name, person, name, dn, reason)
                    break
        return conflicts

    def _conflict_reason(
        self, dn: str, entry: dict[str, tuple[str, ...]], person: str, name: str
    ) -> str:
        key_attr = self.config.key_attribute
        keys = {k.lower() for k in entry.get(key_attr.lower(), ())}
        names = {n.lower() for n in entry.get("samaccountname", ())}
        upns = {u.lower() for u in entry.get("userprincipalname", ())}
        upn = f"{name}@{self.config.upn_domain()}".lower()
        if person in keys and not self._managed(normalize_dn(dn)):
            return f"an account outside {self.config.base_dn} carries this person's {key_attr}"
        if (name.lower() in names or upn in upns) and person not in keys:
            owner = f"person {sorted(keys)[0]!r}" if keys else f"no {key_attr}"
            return f"username {name!r} is taken by an unmanaged account ({owner})"
        return ""

    # -- changes -----------------------------------------------------------------------
    def dn_for(self, action: Action) -> str:
        if action.ref:
            return self._moved.get(normalize_dn(action.ref), action.ref)
        known = self._dns.get(action.username)
        if known is not None:
            return known
        dn = f"CN={escape_rdn(action.username)},{self.config.base_dn}"
        self._dns[action.username] = dn
        return dn

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        if not actions:
            return
        kind = actions[0].kind
        if kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
            self._members(actions, report)
            return
        if kind in (ActionKind.CREATE, ActionKind.UPDATE):
            self._resolve_sponsors(actions)
        for action in actions:
            try:
                dn = self.dn_for(action)
                dn, detail = self._one(action, dn)
            except PermanentError as exc:
                report(Outcome(action, False, str(exc), action.ref))
            else:
                report(Outcome(action, True, detail, dn))

    def _one(self, action: Action, dn: str) -> tuple[str, str]:
        """Carry out one account action; the account's DN afterwards, and a note."""
        kind = action.kind
        if kind is ActionKind.CREATE:
            return dn, self._create(action, dn)
        if kind is ActionKind.DELETE:
            return dn, self._tolerant(lambda c: c.delete(dn), {32}, "already absent")
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
            if self.parked and not normalize_dn(dn).endswith("," + self.parked):
                return self._move(action, dn, self.config.disabled_ou or ""), ""
            return dn, ""
        if kind is ActionKind.ENABLE:
            if self.parked and normalize_dn(dn).endswith("," + self.parked):
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
            if name == _MANAGER:
                manager = self._sponsors.get(values[0].lower()) if values else None
                if manager:
                    entry[name] = manager
                elif values:
                    note = f"sponsor {values[0]} is not in the directory; manager left unset"
                continue
            entry[name] = list(values)
        # types-ldap3 leaves Connection.add and modify unannotated
        self.conn.call(lambda c: c.add(dn, attributes=entry))  # type: ignore[no-untyped-call]
        self._uac[normalize_dn(dn)] = v.NEW_ACCOUNT_UAC
        try:
            self._set_uac(dn, v.enabled)
        except PermanentError as exc:
            raise PermanentError(f"created disabled, but enabling failed: {exc}") from exc
        return note

    def _updates(self, action: Action, dn: str) -> tuple[dict[str, Any], str]:
        changes: dict[str, Any] = {}
        note = ""
        for name, values in action.changes.items():
            if name != _MANAGER:
                changes[name] = [(MODIFY_REPLACE, list(values))]
                continue
            manager = self._sponsors.get(values[0].lower()) if values else None
            if manager:
                changes[name] = [(MODIFY_REPLACE, [manager])]
            elif normalize_dn(action.ref or dn) in self._managers:
                # The sponsor is no user here: a manager set for an old sponsor goes.
                changes[name] = [(MODIFY_REPLACE, [])]
            if values and not manager:
                note = f"sponsor {values[0]} is not in the directory; manager left unset"
        return changes, note

    def _resolve_sponsors(self, actions: Sequence[Action]) -> None:
        """Look up the DNs of the sponsors named in these actions, by e-mail or UPN,
        one search per 100 sponsors not looked up yet this cycle."""
        wanted = sorted(
            {
                values[0].lower()
                for action in actions
                if (values := action.changes.get(_MANAGER))
                and values[0].lower() not in self._sponsors
            }
        )
        base = self.config.sponsor_base or self.domain
        for chunk in _chunks(wanted):
            terms = _or("mail", chunk)[2:-1] + _or("userPrincipalName", chunk)[2:-1]
            for dn, raw in self.conn.paged(
                base, f"(&{_USER}(|{terms}))", ["mail", "userPrincipalName"]
            ):
                entry = _lowered(raw)
                for name in entry.get("mail", ()) + entry.get("userprincipalname", ()):
                    self._sponsors.setdefault(name.lower(), dn)
            for name in chunk:
                self._sponsors.setdefault(name, None)

    def _set_uac(self, dn: str, change: Callable[[int], int]) -> None:
        """Flip ACCOUNTDISABLE only: the value read this cycle (or right now, for an
        account observed elsewhere) with every other bit kept."""
        ndn = normalize_dn(dn)
        current = self._uac.get(ndn)
        if current is None:
            entry = self.conn.call(partial(read_entry, dn=dn, attributes=["userAccountControl"]))
            current = _int(_lowered(entry).get("useraccountcontrol", ()), v.NORMAL_ACCOUNT)
        wanted = change(current)
        if wanted != current:
            self._modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [str(wanted)])]})
        self._uac[ndn] = wanted

    def _move(self, action: Action, dn: str, parent: str) -> str:
        """Move an account to ``parent`` keeping its RDN; later actions of this cycle
        that name the old DN are sent to the new one."""
        rdn = to_dn(dn)[0]
        self.conn.call(lambda c: c.modify_dn(dn, rdn, new_superior=parent))
        new = f"{rdn},{parent}"
        self._moved[normalize_dn(action.ref or dn)] = new
        self._uac[normalize_dn(new)] = self._uac.pop(normalize_dn(dn), v.NORMAL_ACCOUNT)
        return new

    def _modify(self, dn: str, changes: dict[str, Any]) -> None:
        self.conn.call(lambda c: c.modify(dn, changes))  # type: ignore[no-untyped-call]

    def _tolerant(self, operation: Any, codes: set[int], note: str) -> str:
        """Run ``operation``; an answer saying the change is already in place is success."""
        try:
            self.conn.call(operation)
        except PermanentError as exc:
            if result_code(exc) not in codes:
                raise
            return note
        return ""

    def _members(self, actions: Sequence[Action], report: Report) -> None:
        """One modify of a group's ``member`` per 500 accounts; when AD refuses a batch
        (someone already in or out, one bad DN) each account is retried on its own and
        "already a member" / "not a member" count as done."""
        adding = actions[0].kind is ActionKind.ADD_MEMBER
        operation = MODIFY_ADD if adding else MODIFY_DELETE
        by_group: dict[str, list[tuple[Action, str]]] = {}
        for action in actions:
            by_group.setdefault(action.group, []).append((action, self.dn_for(action)))
        for group, pairs in by_group.items():
            for start in range(0, len(pairs), _MEMBERS_PER_MODIFY):
                batch = pairs[start : start + _MEMBERS_PER_MODIFY]
                try:
                    self._modify(group, {"member": [(operation, [dn for _, dn in batch])]})
                except PermanentError:
                    for action, dn in batch:
                        report(self._member_one(action, group, dn, operation))
                    continue
                for action, dn in batch:
                    report(Outcome(action, True, "", dn))

    def _member_one(self, action: Action, group: str, dn: str, operation: str) -> Outcome:
        try:
            self._modify(group, {"member": [(operation, [dn])]})
        except PermanentError as exc:
            text = str(getattr(exc.__cause__, "message", "") or "")
            code = result_code(exc)
            if code in (20, 68) or diagnostic_code(text) == "00000562":
                return Outcome(action, True, "already a member", dn)
            if code == 16 or diagnostic_code(text) == "00000561":
                return Outcome(action, True, "already not a member", dn)
            return Outcome(action, False, str(exc), dn)
        return Outcome(action, True, "", dn)

    def check(self) -> list[str]:
        cfg = self.config
        wanted = [("base_dn", cfg.base_dn)]
        wanted += [("disabled_ou", cfg.disabled_ou)] if cfg.disabled_ou else []
        wanted += [("group", g) for g in sorted(self.groups)]
        try:
            return [
                f"{self.name}: {what} {dn} does not exist"
                for what, dn in wanted
                if not self._exists(dn)
            ]
        except TargetError as exc:
            return [str(exc)]

    def close(self) -> None:
        self.conn.close()
