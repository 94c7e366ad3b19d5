"""The ``ldap`` target: OpenLDAP, 389-ds or any LDAPv3 directory (SPEC §3).

Called by ``syncd.engine`` (observe, find_conflicts, check) and ``syncd.apply`` (apply).
The managed scope is the base DN plus the person-key attribute: entries outside it, or
inside it without the key, are never changed. Every value placed in a DN or a filter is
escaped with ldap3's helpers, and every DN built is checked to sit under the base DN.
Reading (``targets.ldap.reading``) costs a fixed number of searches: for observation
one paged search of the managed entries, one per credential attribute, one base read
per managed group; for a read-back after writes, the same per 100 person keys.

Unmanaged entries that would collide with a new account are looked for under
``conflict_base``, by default the naming context that holds ``base_dn`` (read once from
the root DSE, else the ``dc=`` components of ``base_dn``), so that a contractor is
never created beside an employee of the same uid elsewhere in the tree.

How accounts are disabled, expired and stripped of credentials where the config does
not say depends on the server's flavour (``targets.ldap.flavour``, ``.settings``): the
root DSE is read once per target (the daemon keeps its targets between cycles), for
that and for the naming contexts, and a setting the server cannot honour
(``native_expiry: true`` on 389-ds) stops the target with one clear error instead of
failing every write. ``check`` also reads the subschema and verifies every attribute
the target will write (``.checks``).

Under ``disable.method: ppolicy`` a lock is put back after credentials are removed:
OpenLDAP's ppolicy drops ``pwdAccountLockedTime`` whenever a password administrator
(the rootdn, or an identity with ``manage`` access to the password) changes the
password, a delete included. The plan keeps disabling first, so the account is never
unlocked while it still holds a password.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ldap3 import MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from syncd.config import LdapTarget
from syncd.core.model import (
    FOREIGN_KEY_FIX,
    TAKEN_FIX,
    Action,
    ActionKind,
    Conflict,
    Observed,
    Outcome,
    ReadBack,
)
from syncd.errors import PermanentError, TargetError
from syncd.targets.base import WHOLE_SHARE, Report, gather
from syncd.targets.directory.connection import NO_SUCH_OBJECT, Endpoint, LdapConnection
from syncd.targets.directory.operations import (
    Why,
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
    under,
    values,
)
from syncd.targets.ldap.checks import check_schema
from syncd.targets.ldap.flavour import ROOT_DSE_ATTRIBUTES, RootDse, detect
from syncd.targets.ldap.reading import LdapReader
from syncd.targets.ldap.settings import PPOLICY_LOCK, Settings, resolve

log = logging.getLogger(__name__)
# result codes that mean the change is already in place
_MEMBER_ALREADY = {20: "already a member", 16: "already not a member"}
_ENTRY_GONE = {NO_SUCH_OBJECT: "already absent"}


def naming_context(base_dn: str, contexts: Sequence[str]) -> str:
    """The naming context that holds ``base_dn``: the longest of ``contexts`` (the root
    DSE's ``namingContexts``) at or above it, else its trailing ``dc=`` components,
    else ``base_dn`` itself."""
    base = normalize_dn(base_dn)
    holding = [c for c in contexts if normalize_dn(c) == base or under(base, normalize_dn(c))]
    if holding:
        return max(holding, key=len)
    components: list[str] = []
    for attribute, value, _sep in reversed(parse_dn(base_dn)):
        if attribute.lower() != "dc":
            break
        components.insert(0, f"{attribute}={value}")
    return ",".join(components) or base_dn


def _get(entry: Mapping[str, Any], name: str) -> Any:
    """An attribute of a decoded entry, whatever the case the server used."""
    if name in entry:
        return entry[name]
    low = name.lower()
    return next((v for k, v in entry.items() if k.lower() == low), None)


class LdapDirectory:
    """Observe and change the managed scope of one LDAP directory."""

    # Chunks of 1000: each is read back once after it is sent (an OR search per 100
    # accounts, or one base read per group touched), so fewer, fuller chunks keep the
    # verification of a first sync cheap; intents still reach the disk first.
    batch_size = 1000
    whole_share = WHOLE_SHARE

    def __init__(self, name: str, config: LdapTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.conn = LdapConnection(Endpoint.of(config, config.urls, config.bind_user), name)
        self.base = normalize_dn(config.base_dn)
        self.groups = groups  # managed group DNs as configured
        self.reader = LdapReader(name, config, self.conn, groups, self.settings)
        self.about = ""  # the server and what was chosen for it, once known
        self._dns: dict[str, str] = {}  # username -> DN of accounts created this cycle
        self._suffix: str | None = None  # the default conflict base, once read
        self._dse: RootDse | None = None  # the root DSE, once read
        self._settings: Settings | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._spare: queue.SimpleQueue[LdapConnection] = queue.SimpleQueue()

    # -- the server -----------------------------------------------------------------
    def settings(self) -> Settings:
        """The config's settings on this server, resolved once from its root DSE."""
        if self._settings is None:
            self._settings = resolve(self.config, detect(self._root_dse()))
            self.about = self._settings.about()
            log.info("%s: %s", self.name, self.about, extra={"target": self.name})
        return self._settings

    def _usable(self) -> Settings:
        """The settings, or the error that says why this server cannot work with them."""
        settings = self.settings()
        if settings.refusal:
            raise PermanentError(f"{self.name}: {settings.refusal}")
        return settings

    def _root_dse(self) -> RootDse:
        """The root DSE, read once; an empty one when the server refuses to show it
        (a temporary failure is raised: nothing is remembered from it)."""
        if self._dse is None:
            try:
                entry = self.conn.call(partial(read_entry, dn="", attributes=ROOT_DSE_ATTRIBUTES))
            except PermanentError as exc:
                log.warning(
                    "%s: root DSE not readable (%s); server flavour unknown, conflict base "
                    "from base_dn",
                    self.name,
                    exc,
                )
                entry = None
            self._dse = RootDse() if entry is None else RootDse.of(entry)
        return self._dse

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
        self._usable()
        return self.reader.observe()

    def observe_people(self, keys: Collection[str]) -> Observed:
        """The managed accounts of ``keys`` alone (see ``targets.ldap.reading``)."""
        self._usable()
        return self.reader.observe_people(keys)

    def read_back(self, kind: ActionKind, *asked: Sequence[Any]) -> ReadBack:
        """As ``LdapReader.read_back``: a search per 100 keys (and one per credential
        attribute for a revoke), a base read per group (for ``members`` alone where the
        server offers the matched values control)."""
        return self.reader.read_back(kind, *asked)

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """Entries under ``conflict_base`` that hold a wanted username or person key."""
        cfg = self.config
        uid, key = cfg.username_attribute, cfg.key_attribute
        euid, ekey = escape_filter_chars(uid), escape_filter_chars(key)
        found = candidates(
            self.conn,
            self.conflict_base(),
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

    def conflict_base(self) -> str:
        """``conflict_base`` as configured, or the naming context holding ``base_dn``."""
        if self.config.conflict_base:
            return self.config.conflict_base
        if self._suffix is None:
            self._suffix = naming_context(self.config.base_dn, self._naming_contexts())
        return self._suffix

    def _naming_contexts(self) -> list[str]:
        """The root DSE's ``namingContexts``; none when the server refuses to show them."""
        return list(self._root_dse().naming_contexts)

    def _conflict_reason(self, dn: str, entry: dict[str, Any], person: str, name: str) -> Why:
        attributes = lowered(entry)
        names = {v.lower() for v in attributes.get(self.config.username_attribute.lower(), ())}
        keys = {v.lower() for v in attributes.get(self.config.key_attribute.lower(), ())}
        inside = under(normalize_dn(dn), self.base)
        if person in keys and not inside:
            why = f"an entry outside {self.config.base_dn} carries this person's key"
            return why, FOREIGN_KEY_FIX
        if name.lower() in names and person not in keys:
            owner = f"person {sorted(keys)[0]!r}" if keys else f"no {self.config.key_attribute}"
            return f"username {name!r} is taken by an unmanaged entry ({owner})", TAKEN_FIX
        return "", ""

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
        self._usable()
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
            self._after(action, normalize_dn(dn))
            return ""
        if kind is ActionKind.DELETE:
            return tolerant(conn, lambda c: c.delete(dn), _ENTRY_GONE)
        changes = self._changes(action, dn, conn)
        if not changes:
            return "nothing to change"
        conn.call(lambda c: c.modify(dn, changes))
        self._after(action, normalize_dn(dn))
        if kind is ActionKind.REVOKE_CREDENTIALS:
            self._relock(dn, conn)
        return ""

    def _after(self, action: Action, ndn: str) -> None:
        """Remember what a write put in place, for the later writes and read-backs of
        the cycle: the managed DNs created, the locks set and cleared."""
        if action.kind is ActionKind.CREATE:
            self.reader.keys[ndn] = action.person
        elif action.kind is ActionKind.DISABLE:
            self.reader.locks[ndn] = self.settings().lock_value
        elif action.kind is ActionKind.ENABLE:
            self.reader.locks.pop(ndn, None)

    def _relock(self, dn: str, conn: LdapConnection) -> None:
        """Put back the ppolicy lock the removal of credentials may have dropped (see
        the module's docstring). Only a lock known to be there is put back: one
        observed, or set by this cycle's disable."""
        lock = self.reader.locks.get(normalize_dn(dn))
        if self.settings().method != "ppolicy" or lock is None:
            return
        relock = {PPOLICY_LOCK: [(MODIFY_REPLACE, [lock])]}
        try:
            conn.call(lambda c: c.modify(dn, relock))
        except PermanentError as exc:
            note = f"credentials removed, but the lock was not put back: {exc}"
            raise PermanentError(note) from exc

    def _new_entry(self, action: Action) -> dict[str, Any]:
        cfg, settings = self.config, self.settings()
        entry: dict[str, Any] = {name: list(values) for name, values in action.changes.items()}
        entry["objectClass"] = list(cfg.object_classes)
        entry[cfg.key_attribute] = [action.person]
        entry[cfg.username_attribute] = [action.username]
        if action.expiry is not None and settings.expiry_attribute:
            entry[settings.expiry_attribute] = [generalized_time(action.expiry)]
        if settings.method == "attribute" and settings.enabled_value is not None:
            entry[settings.attribute or ""] = [settings.enabled_value]
        return entry

    def _changes(
        self, action: Action, dn: str, conn: LdapConnection
    ) -> dict[str, list[tuple[str, list[str]]]]:
        kind, settings = action.kind, self.settings()
        lock_attr = settings.lock_attribute or ""
        if kind is ActionKind.UPDATE:
            return {
                name: [(MODIFY_REPLACE, list(values))] for name, values in action.changes.items()
            }
        if kind is ActionKind.SET_EXPIRY and settings.expiry_attribute:
            value = [generalized_time(action.expiry)] if action.expiry else []
            return {settings.expiry_attribute: [(MODIFY_REPLACE, value)]}
        if kind is ActionKind.DISABLE:
            return {lock_attr: [(MODIFY_REPLACE, [settings.lock_value])]}
        if kind is ActionKind.ENABLE:
            enabled = settings.enabled_value
            if settings.method == "attribute" and enabled is not None:
                return {lock_attr: [(MODIFY_REPLACE, [enabled])]}
            return {lock_attr: [(MODIFY_REPLACE, [])]}
        if kind is ActionKind.REVOKE_CREDENTIALS:
            # Not seen when observing (a revoke the plan did not base on this cycle's
            # reading): what the entry holds now, so an attribute the server's schema
            # lacks is never named in the modify (slapd refuses that, 17).
            present = self.reader.credentials.get(normalize_dn(dn)) or self.reader.held(dn, conn)
            return {name: [(MODIFY_REPLACE, [])] for name in sorted(present)}
        raise PermanentError(f"{self.name}: cannot apply {kind.value} to an account")

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
        """The base DN and groups exist; the settings suit the server; its subschema
        has every object class and attribute the target writes or removes."""
        wanted = [("base_dn", self.config.base_dn)] + [("group", g) for g in sorted(self.groups)]
        found = check_present(self.conn, self.name, wanted)
        try:
            settings = self.settings()
            if settings.refusal:
                return [*found, f"{self.name}: {settings.refusal}"]
            subschema = self._root_dse().subschema
            problems = check_schema(self.conn, self.name, self.config, settings, subschema)
        except TargetError as exc:
            return found if str(exc) in found else [*found, str(exc)]
        return found + problems

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        while not self._spare.empty():
            self._spare.get().close()
        self.conn.close()
