"""The ``ldap`` target: OpenLDAP, 389-ds or any LDAPv3 directory (SPEC §3).

Called by ``syncd.cycle`` (observe, find_conflicts, check) and ``syncd.apply`` (apply).
The managed scope is the base DN plus the person-key attribute: entries outside it, or
inside it without the key, are never changed. Every value placed in a DN or a filter is
escaped with ldap3's helpers, and every DN built is checked to sit under the base DN.
Observation costs a fixed number of searches: one paged search of the managed entries,
one per credential attribute, one base read per managed group.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from syncd.audit import Outcome
from syncd.config import LdapTarget
from syncd.core.model import Action, ActionKind, Conflict, ObservedAccount
from syncd.errors import PermanentError, TargetError, TemporaryError
from syncd.targets.base import Report
from syncd.targets.ldapconn import Endpoint, LdapConnection, entry_exists, read_entry, result_code

log = logging.getLogger(__name__)
_SPECIAL = ("\\", '"', "+", "#", ";", "<", ">")
_SCAN_ABOVE = 500  # wanted accounts above which conflicts are found by one scan
LOCKED_FOREVER = "000001010000Z"  # ppolicy: locked until an administrator unlocks
# result codes that mean the change is already in place
_MEMBER_ALREADY = {20: "already a member", 16: "already not a member"}
_ENTRY_GONE = {32: "already absent"}


def normalize_dn(dn: str) -> str:
    """A comparable form of a DN: attribute types and values lower-cased, no spacing."""
    if not any(c in dn for c in _SPECIAL):
        # Fast path (no escapes, quotes or multi-valued RDNs): split and trim is exact.
        return ",".join(
            "=".join(side.strip() for side in part.split("=", 1)) for part in dn.lower().split(",")
        )
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except (LDAPInvalidDnError, ValueError, IndexError):
        return dn.strip().lower()
    return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _sep in parts)


def generalized_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(value: str) -> datetime | None:
    """``YYYYmmddHHMMSS[.fff]Z`` as written by syncd (and by most servers)."""
    text = value.strip()
    if len(text) < 15 or not text[:14].isdigit() or not text.endswith("Z"):
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _get(entry: Mapping[str, Any], name: str) -> Any:
    """An attribute of a decoded entry, whatever the case the server used."""
    if name in entry:
        return entry[name]
    lowered = name.lower()
    return next((v for k, v in entry.items() if k.lower() == lowered), None)


def _values(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list | tuple):
        return tuple(str(v) for v in raw)
    return (str(raw),)


class LdapDirectory:
    """Observe and change the managed scope of one LDAP directory."""

    def __init__(self, name: str, config: LdapTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.conn = LdapConnection(Endpoint.for_ldap(config), name)
        self.base = normalize_dn(config.base_dn)
        self.groups = groups  # managed group DNs as configured
        self._credentials: dict[str, set[str]] = {}
        self._dns: dict[str, str] = {}  # username -> DN of accounts created this cycle
        self._executor: ThreadPoolExecutor | None = None
        self._spare: queue.SimpleQueue[LdapConnection] = queue.SimpleQueue()

    # -- observation -------------------------------------------------------------------
    def observe(self) -> tuple[dict[str, ObservedAccount], frozenset[str]]:
        cfg = self.config
        lock_attr = self._lock_attribute()
        attrs = [cfg.key_attribute, cfg.username_attribute, *cfg.attributes]
        attrs += [a for a in (lock_attr, "pwdEndTime" if cfg.native_expiry else None) if a]
        key_filter = f"({escape_filter_chars(cfg.key_attribute)}=*)"
        entries = self.conn.paged(cfg.base_dn, key_filter, attrs)
        self._credentials = {}
        for cred in cfg.credential_attributes:
            cred_filter = f"(&{key_filter}({escape_filter_chars(cred)}=*))"
            for dn, _ in self.conn.paged(cfg.base_dn, cred_filter, ["1.1"]):
                self._credentials.setdefault(normalize_dn(dn), set()).add(cred)
        members, missing = self._memberships()
        accounts: dict[str, ObservedAccount] = {}
        for dn, entry in sorted(entries, key=lambda e: e[0]):
            account = self._account(dn, entry, members, lock_attr)
            if account is None:
                continue
            if account.key in accounts:
                log.error(
                    "%s: person %s has two managed entries, %s and %s; the second is "
                    "ignored until one is removed",
                    self.name,
                    account.key,
                    accounts[account.key].ref,
                    account.ref,
                )
                continue
            accounts[account.key] = account
        return accounts, missing

    def _memberships(self) -> tuple[dict[str, set[str]], frozenset[str]]:
        """Member DN (normalized) -> managed groups; and the groups that do not exist."""
        members: dict[str, set[str]] = {}
        missing = set()
        attr = self.config.member_attribute
        for group in sorted(self.groups):
            try:
                entries = self.conn.call(partial(read_entry, dn=group, attributes=[attr]))
            except PermanentError as exc:
                if result_code(exc) != 32:
                    raise
                missing.add(group)
                continue
            for value in _values(entries.get(attr)):
                members.setdefault(normalize_dn(value), set()).add(group)
        return members, frozenset(missing)

    def _account(
        self,
        dn: str,
        entry: dict[str, Any],
        members: Mapping[str, set[str]],
        lock_attr: str | None,
    ) -> ObservedAccount | None:
        cfg = self.config
        attributes = {k.lower(): _values(v) for k, v in entry.items()}
        keys = attributes.get(cfg.key_attribute.lower(), ())
        ndn = normalize_dn(dn)
        if not keys or not ndn.endswith("," + self.base):
            return None
        expiry = None
        if cfg.native_expiry:
            end = attributes.get("pwdendtime", ())
            expiry = parse_generalized_time(end[0]) if end else None
        return ObservedAccount(
            key=keys[0].lower(),
            ref=dn,
            username=(attributes.get(cfg.username_attribute.lower()) or ("",))[0],
            enabled=self._enabled(attributes, lock_attr),
            expiry=expiry,
            has_credentials=bool(self._credentials.get(ndn)),
            groups=frozenset(members.get(ndn, ())),
            attributes={name: attributes.get(name.lower(), ()) for name in cfg.attributes},
        )

    def _lock_attribute(self) -> str | None:
        method = self.config.disable
        return {"ppolicy": "pwdAccountLockedTime", "nsaccountlock": "nsAccountLock"}.get(
            method.method, method.attribute
        )

    def _enabled(self, attributes: Mapping[str, tuple[str, ...]], lock_attr: str | None) -> bool:
        values = attributes.get((lock_attr or "").lower(), ())
        method = self.config.disable
        if method.method == "ppolicy":
            return not values
        if method.method == "nsaccountlock":
            return not values or values[0].upper() != "TRUE"
        return not values or values[0] != method.disabled_value

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """Entries under ``conflict_base`` that hold a wanted username or person key.

        A few wanted accounts are looked up with OR filters of 100 people each; past
        ``_SCAN_ABOVE`` (a first sync, a mass onboarding) one paged search of every entry
        with either attribute is cheaper than building that many filter terms."""
        cfg = self.config
        base = cfg.conflict_base or cfg.base_dn
        uid, key = cfg.username_attribute, cfg.key_attribute
        found: list[tuple[str, dict[str, Any]]] = []
        if len(wanted) > _SCAN_ABOVE:
            scan = f"(|({escape_filter_chars(uid)}=*)({escape_filter_chars(key)}=*))"
            found = self.conn.paged(base, scan, [uid, key])
        else:
            for start in range(0, len(wanted), 100):
                terms = "".join(
                    f"({escape_filter_chars(uid)}={escape_filter_chars(name)})"
                    f"({escape_filter_chars(key)}={escape_filter_chars(person)})"
                    for person, name in wanted[start : start + 100]
                )
                found += self.conn.paged(base, f"(|{terms})", [uid, key])
        by_value: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for dn, entry in found:
            for attr in (uid, key):
                for value in _values(_get(entry, attr)):
                    by_value.setdefault(value.lower(), []).append((dn, entry))
        conflicts: dict[str, Conflict] = {}
        for person, name in wanted:
            for dn, entry in by_value.get(name.lower(), []) + by_value.get(person, []):
                reason = self._conflict_reason(dn, entry, person, name)
                if reason:
                    conflicts[person] = Conflict(self.name, person, name, dn, reason)
                    break
        return conflicts

    def _conflict_reason(self, dn: str, entry: dict[str, Any], person: str, name: str) -> str:
        attributes = {k.lower(): _values(v) for k, v in entry.items()}
        names = {v.lower() for v in attributes.get(self.config.username_attribute.lower(), ())}
        keys = {v.lower() for v in attributes.get(self.config.key_attribute.lower(), ())}
        inside = normalize_dn(dn).endswith("," + self.base)
        if person in keys and not inside:
            return f"an entry outside {self.config.base_dn} carries this person's key"
        if name.lower() in names and person not in keys:
            owner = f"person {sorted(keys)[0]!r}" if keys else f"no {self.config.key_attribute}"
            return f"username {name!r} is taken by an unmanaged entry ({owner})"
        return ""

    # -- changes -----------------------------------------------------------------------
    def dn_for(self, action: Action) -> str:
        if action.ref:
            return action.ref
        known = self._dns.get(action.username)
        if known is not None:
            return known
        rdn_value = escape_rdn(action.username)
        dn = self.config.dn_template.replace("{base_dn}", self.config.base_dn).replace(
            "{username}", rdn_value
        )
        parts = parse_dn(dn)
        parent = ",".join(f"{a}={v}" for a, v, _ in parts[1:])
        if normalize_dn(parent) != self.base:
            raise PermanentError(f"{dn!r} would not be directly under {self.config.base_dn}")
        self._dns[action.username] = dn
        return dn

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        if not actions:
            return
        kind = actions[0].kind
        if kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
            self._members(actions, report)
            return
        if len(actions) == 1 or self.config.connections == 1:
            for action in actions:
                report(self._run(action, self.conn))
            return
        # Independent actions of one kind go out over several connections: while one
        # waits for the directory, another encodes its request.
        pool = self._pool()
        futures = [pool.submit(self._run_pooled, action) for action in actions]
        unavailable: TemporaryError | None = None
        for future in futures:
            try:
                report(future.result())
            except TemporaryError as exc:
                unavailable = exc
        if unavailable is not None:
            raise unavailable

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.config.connections, f"{self.name}-ldap")
            self._spare.put(self.conn)
            for _ in range(self.config.connections - 1):
                self._spare.put(LdapConnection(self.conn.endpoint, self.name))
        return self._executor

    def _run_pooled(self, action: Action) -> Outcome:
        conn = self._spare.get()
        try:
            return self._run(action, conn)
        finally:
            self._spare.put(conn)

    def _run(self, action: Action, conn: LdapConnection) -> Outcome:
        try:
            dn = self.dn_for(action)
            detail = self._one(action, dn, conn)
        except PermanentError as exc:
            return Outcome(action, False, str(exc), action.ref)
        return Outcome(action, True, detail, dn)

    def _one(self, action: Action, dn: str, conn: LdapConnection) -> str:
        kind = action.kind
        if kind is ActionKind.CREATE:
            conn.call(lambda c: c.add(dn, attributes=self._new_entry(action)))
            return ""
        if kind is ActionKind.DELETE:
            return self._tolerant(lambda c: c.delete(dn), _ENTRY_GONE, conn)
        changes = self._changes(action, dn)
        if not changes:
            return "nothing to change"
        conn.call(lambda c: c.modify(dn, changes))
        return ""

    def _tolerant(
        self,
        operation: Callable[[Connection], Any],
        already: dict[int, str],
        conn: LdapConnection | None = None,
    ) -> str:
        """Run ``operation``; an error saying the change is already in place is success."""
        try:
            (conn or self.conn).call(operation)
        except PermanentError as exc:
            code = result_code(exc)
            if code not in already:
                raise
            return already[code]
        return ""

    def _new_entry(self, action: Action) -> dict[str, Any]:
        cfg = self.config
        entry: dict[str, Any] = {name: list(values) for name, values in action.changes.items()}
        entry["objectClass"] = list(cfg.object_classes)
        entry[cfg.key_attribute] = [action.person]
        entry[cfg.username_attribute] = [action.username]
        if action.expiry is not None:
            entry["pwdEndTime"] = [generalized_time(action.expiry)]
        if cfg.disable.method == "attribute" and cfg.disable.enabled_value is not None:
            entry[cfg.disable.attribute or ""] = [cfg.disable.enabled_value]
        return entry

    def _changes(self, action: Action, dn: str) -> dict[str, list[tuple[str, list[str]]]]:
        kind = action.kind
        lock_attr = self._lock_attribute() or ""
        if kind is ActionKind.UPDATE:
            return {
                name: [(MODIFY_REPLACE, list(values))] for name, values in action.changes.items()
            }
        if kind is ActionKind.SET_EXPIRY:
            value = [generalized_time(action.expiry)] if action.expiry else []
            return {"pwdEndTime": [(MODIFY_REPLACE, value)]}
        if kind is ActionKind.DISABLE:
            return {lock_attr: [(MODIFY_REPLACE, [self._disabled_value()])]}
        if kind is ActionKind.ENABLE:
            enabled = self.config.disable.enabled_value
            if self.config.disable.method == "attribute" and enabled is not None:
                return {lock_attr: [(MODIFY_REPLACE, [enabled])]}
            return {lock_attr: [(MODIFY_REPLACE, [])]}
        if kind is ActionKind.REVOKE_CREDENTIALS:
            present = self._credentials.get(normalize_dn(dn)) or set(
                self.config.credential_attributes
            )
            return {name: [(MODIFY_REPLACE, [])] for name in sorted(present)}
        raise PermanentError(f"{self.name}: cannot apply {kind.value} to an account")

    def _disabled_value(self) -> str:
        method = self.config.disable
        if method.method == "ppolicy":
            return LOCKED_FOREVER
        if method.method == "nsaccountlock":
            return "TRUE"
        return method.disabled_value or ""

    def _members(self, actions: Sequence[Action], report: Report) -> None:
        """Membership changes batched into one modify per group; when a batch is refused
        (a member already there, or one bad value) each member is retried on its own."""
        operation = MODIFY_ADD if actions[0].kind is ActionKind.ADD_MEMBER else MODIFY_DELETE
        by_group: dict[str, list[tuple[Action, str]]] = {}
        for action in actions:
            try:
                by_group.setdefault(action.group, []).append((action, self.dn_for(action)))
            except PermanentError as exc:
                report(Outcome(action, False, str(exc), action.ref))
        for group, pairs in by_group.items():
            try:
                self._modify_members(group, operation, [dn for _, dn in pairs])
            except PermanentError:
                for action, dn in pairs:
                    try:
                        detail = self._tolerant(
                            self._member_change(group, operation, dn), _MEMBER_ALREADY
                        )
                    except PermanentError as exc:
                        report(Outcome(action, False, str(exc), dn))
                    else:
                        report(Outcome(action, True, detail, dn))
                continue
            for action, dn in pairs:
                report(Outcome(action, True, "", dn))

    def _modify_members(self, group: str, operation: str, dns: list[str]) -> None:
        changes = {self.config.member_attribute: [(operation, dns)]}
        self.conn.call(lambda c: c.modify(group, changes))

    def _member_change(self, group: str, operation: str, dn: str) -> Callable[[Connection], Any]:
        changes = {self.config.member_attribute: [(operation, [dn])]}
        return lambda c: c.modify(group, changes)

    def check(self) -> list[str]:
        try:
            problems = []
            for what, dn in [("base_dn", self.config.base_dn)] + [
                ("group", g) for g in sorted(self.groups)
            ]:
                if not self.conn.call(partial(entry_exists, dn=dn)):
                    problems.append(f"{self.name}: {what} {dn} does not exist")
        except TargetError as exc:
            return [str(exc)]
        return problems

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        while not self._spare.empty():
            self._spare.get().close()
        self.conn.close()
