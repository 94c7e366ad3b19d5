"""The ``ldap`` target: OpenLDAP, 389-ds or any LDAPv3 directory (SPEC §3).

Called by ``syncd.engine`` (observe, find_conflicts, check) and ``syncd.apply`` (apply).
The managed scope is the base DN plus the person-key attribute: entries outside it, or
inside it without the key, are never changed. Every value placed in a DN or a filter is
escaped with ldap3's helpers, and every DN built is checked to sit under the base DN.
Observation costs a fixed number of searches: one paged search of the managed entries,
one per credential attribute, one base read per managed group.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ldap3 import MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from syncd.config import LdapTarget
from syncd.core.model import Action, ActionKind, Conflict, Observed, ObservedAccount, Outcome
from syncd.errors import PermanentError
from syncd.targets.base import BATCH_SIZE, Report, gather, keep_first
from syncd.targets.directory.connection import NO_SUCH_OBJECT, Endpoint, LdapConnection
from syncd.targets.directory.operations import (
    candidates,
    change_members,
    check_present,
    first_conflicts,
    read_entry,
    tolerant,
)
from syncd.targets.directory.values import (
    generalized_time,
    lowered,
    normalize_dn,
    parse_generalized_time,
    under,
    values,
)

log = logging.getLogger(__name__)
LOCKED_FOREVER = "000001010000Z"  # ppolicy: locked until an administrator unlocks
# result codes that mean the change is already in place
_MEMBER_ALREADY = {20: "already a member", 16: "already not a member"}
_ENTRY_GONE = {NO_SUCH_OBJECT: "already absent"}


def _get(entry: Mapping[str, Any], name: str) -> Any:
    """An attribute of a decoded entry, whatever the case the server used."""
    if name in entry:
        return entry[name]
    low = name.lower()
    return next((v for k, v in entry.items() if k.lower() == low), None)


class LdapDirectory:
    """Observe and change the managed scope of one LDAP directory."""

    batch_size = BATCH_SIZE

    def __init__(self, name: str, config: LdapTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.conn = LdapConnection(Endpoint.of(config, [config.url], config.bind_dn), name)
        self.base = normalize_dn(config.base_dn)
        self.groups = groups  # managed group DNs as configured
        self._credentials: dict[str, set[str]] = {}
        self._dns: dict[str, str] = {}  # username -> DN of accounts created this cycle
        self._executor: ThreadPoolExecutor | None = None
        self._spare: queue.SimpleQueue[LdapConnection] = queue.SimpleQueue()

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
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
            if account is not None:
                keep_first(accounts, account, self.name)
        return Observed(accounts, missing_groups=missing)

    def _memberships(self) -> tuple[dict[str, set[str]], frozenset[str]]:
        """Member DN (normalized) -> managed groups; and the groups that do not exist."""
        members: dict[str, set[str]] = {}
        missing = set()
        attr = self.config.member_attribute
        for group in sorted(self.groups):
            try:
                entries = self.conn.call(partial(read_entry, dn=group, attributes=[attr]))
            except PermanentError as exc:
                if exc.code != NO_SUCH_OBJECT:
                    raise
                missing.add(group)
                continue
            for value in values(entries.get(attr)):
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
        attributes = lowered(entry)
        keys = attributes.get(cfg.key_attribute.lower(), ())
        ndn = normalize_dn(dn)
        if not keys or not under(ndn, self.base):
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
        """Entries under ``conflict_base`` that hold a wanted username or person key."""
        cfg = self.config
        uid, key = cfg.username_attribute, cfg.key_attribute
        euid, ekey = escape_filter_chars(uid), escape_filter_chars(key)
        found = candidates(
            self.conn,
            cfg.conflict_base or cfg.base_dn,
            f"(|({euid}=*)({ekey}=*))",
            [
                f"({euid}={escape_filter_chars(name)})({ekey}={escape_filter_chars(person)})"
                for person, name in wanted
            ],
            [uid, key],
        )
        by_value: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for dn, entry in found:
            for attr in (uid, key):
                for value in values(_get(entry, attr)):
                    by_value.setdefault(value.lower(), []).append((dn, entry))
        return first_conflicts(self.name, wanted, by_value, self._conflict_reason)

    def _conflict_reason(self, dn: str, entry: dict[str, Any], person: str, name: str) -> str:
        attributes = lowered(entry)
        names = {v.lower() for v in attributes.get(self.config.username_attribute.lower(), ())}
        keys = {v.lower() for v in attributes.get(self.config.key_attribute.lower(), ())}
        inside = under(normalize_dn(dn), self.base)
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
        gather([pool.submit(self._run_pooled, action) for action in actions], report)

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
            return tolerant(conn, lambda c: c.delete(dn), _ENTRY_GONE)
        changes = self._changes(action, dn)
        if not changes:
            return "nothing to change"
        conn.call(lambda c: c.modify(dn, changes))
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
        """One modify per group; a refused batch is sent again one member at a time."""
        change_members(
            self.conn,
            actions,
            self.dn_for,
            self.config.member_attribute,
            lambda exc: _MEMBER_ALREADY.get(exc.code),
            report,
        )

    def check(self) -> list[str]:
        wanted = [("base_dn", self.config.base_dn)] + [("group", g) for g in sorted(self.groups)]
        return check_present(self.conn, self.name, wanted)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        while not self._spare.empty():
            self._spare.get().close()
        self.conn.close()
