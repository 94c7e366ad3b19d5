"""How the ``ldap`` target reads its managed scope: the observation of a cycle and the
read-back after writes share the attributes read, the presence searches for
credentials, the group base reads and the account an entry is.

Called by ``targets.ldap.target``. Credentials are found with presence filters that
return no attributes, since the service account may not be allowed to read password
values: evidence says "present", never a value.

* Observation: one paged search of the managed entries, one per credential attribute,
  one base read per managed group.
* Read-back: for account actions, per 100 person keys one search of the entries (OR
  filters on the key attribute under the base DN, reading only the lock and
  ``pwdEndTime``) and, for a revoke, one presence search per credential attribute.
  For membership actions one base read per group asked for.
* Observation of a few people (a targeted cycle at a boundary): per 100 person keys one
  search of their entries and one presence search per credential attribute (OR filters
  on the key attribute), and, when any was found, one base read per managed group and
  100 entries found, asking with the matched values control for just their DNs
  (``targets.directory.matched``): a boundary costs what it concerns, not what the
  groups hold. A server without the control has its groups read whole, as in a full
  observation. Memberships come from the groups, not ``memberOf``: the overlay tracks
  only some group classes.

Which lock, expiry and credential attributes those are depends on the server's flavour
(``targets.ldap.settings``): the reader asks its directory for the ``Settings`` when it
first needs them, and the root DSE is read then.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import partial

from ldap3 import BASE, Connection
from ldap3.utils.conv import escape_filter_chars

from syncd.config import LdapTarget
from syncd.core.model import ActionKind, Observed, ObservedAccount, ReadBack
from syncd.targets.base import keep_first
from syncd.targets.directory.connection import Entry, LdapConnection
from syncd.targets.directory.matched import MATCHED_VALUES, members_among
from syncd.targets.directory.readback import by_keys, holders, members_of, scopes, split
from syncd.targets.directory.values import (
    lowered,
    normalize_dn,
    parse_generalized_time,
    under,
)
from syncd.targets.ldap.settings import Settings

PRESENT = ("present",)  # a credential's evidence: never its value
Decoded = dict[str, tuple[str, ...]]
Found = tuple[ObservedAccount, str]  # a managed account and the lock value in place


class LdapReader:
    """Reads the managed entries of one LDAP directory, and remembers for the writes of
    the cycle what it saw: credentials present, locks in place, managed DNs."""

    def __init__(
        self,
        name: str,
        config: LdapTarget,
        conn: LdapConnection,
        groups: frozenset[str],
        settings: Callable[[], Settings],
    ) -> None:
        self.name = name
        self.config = config
        self.conn = conn
        self.groups = groups
        self.base = normalize_dn(config.base_dn)
        self.settings = settings  # this target's settings on its server, once resolved
        # normalized DN -> credential attributes present, as observed
        self.credentials: dict[str, set[str]] = {}
        # normalized DN -> lock value in place (observed, or set by a disable this cycle)
        self.locks: dict[str, str] = {}
        # normalized DN -> person key, for the managed accounts of this cycle: observed,
        # created or read back
        self.keys: dict[str, str] = {}

    def attributes(self, templated: bool = True) -> list[str]:
        """What observation reads of an entry; a read-back skips the templated
        attributes, which it does not judge."""
        cfg, settings = self.config, self.settings()
        attrs = [cfg.key_attribute, cfg.username_attribute]
        attrs += [*cfg.attributes] if templated else []
        extra = (settings.lock_attribute, settings.expiry_attribute)
        return attrs + [a for a in extra if a]

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
        cfg = self.config
        key_filter = f"({escape_filter_chars(cfg.key_attribute)}=*)"
        # Credentials and groups first: each entry then becomes its account as it
        # arrives, and ldap3's decoded entries never pile up (a third of the memory).
        credentials = self._holding(key_filter)
        members, missing = members_of(self.conn, self.groups, cfg.member_attribute)
        convert = partial(self._convert, member_of=holders(members), credentials=credentials)
        found = self.conn.paged_each(cfg.base_dn, key_filter, self.attributes(), convert)
        accounts = self._managed(found, credentials)
        settings = self.settings()
        return Observed(
            accounts,
            missing_groups=missing,
            native_expiry=settings.native_expiry,
            about=settings.about(),
            others=split(members, self.keys)[1],
        )

    def observe_people(self, keys: Collection[str]) -> Observed:
        """The managed accounts of ``keys`` alone, as ``observe`` reads them (a
        targeted cycle). The lock, expiry and credentials seen are remembered for the
        writes of the cycle as after ``observe``."""
        cfg = self.config
        wanted = sorted({key.lower() for key in keys})
        asked = set(wanted)
        entries = by_keys(self.conn, [cfg.base_dn], cfg.key_attribute, wanted, self.attributes())
        credentials: dict[str, set[str]] = {}
        for scope in scopes(cfg.key_attribute, wanted):
            for dn, held in self._holding(scope).items():
                credentials.setdefault(dn, set()).update(held)
        members, whole = self._groups_of([dn for dn, _ in entries])
        convert = partial(self._convert, member_of=holders(members), credentials=credentials)
        accounts = self._managed([a for a in map(convert, entries) if a], credentials)
        return Observed(
            {key: account for key, account in accounts.items() if key in asked},
            native_expiry=self.settings().native_expiry,
            about=self.settings().about(),
            others=split(members, self.keys)[1] if whole else {},
        )

    def _groups_of(self, dns: Sequence[str]) -> tuple[dict[str, frozenset[str]], bool]:
        """The members among ``dns`` of each managed group, and whether the groups were
        read whole (their other members are then known too): only the members asked for
        where the server offers the matched values control, every member otherwise."""
        attribute = self.config.member_attribute
        if not dns:
            return {}, False
        if MATCHED_VALUES in self.settings().server.controls:
            return members_among(self.conn, self.groups, attribute, dns), False
        return members_of(self.conn, self.groups, attribute)[0], True

    def _convert(
        self,
        entry: Entry,
        member_of: Mapping[str, Iterable[str]],
        credentials: Mapping[str, set[str]],
    ) -> Found | None:
        """The managed account an entry is, with its lock value (None: not managed)."""
        dn, raw = entry
        decoded = lowered(raw)
        account = self.account(dn, decoded, member_of, credentials)
        if account is None:
            return None
        lock = decoded.get((self.settings().lock_attribute or "").lower(), ())
        return account, lock[0] if lock and not account.enabled else ""

    def _managed(
        self, found: list[Found], credentials: dict[str, set[str]]
    ) -> dict[str, ObservedAccount]:
        """The managed accounts by person key (the first DN of a person wins); what the
        writes need remembered."""
        self.credentials, self.locks, self.keys = credentials, {}, {}
        accounts: dict[str, ObservedAccount] = {}
        for account, lock in sorted(found, key=lambda f: f[0].ref):
            ndn = normalize_dn(account.ref)
            self.keys[ndn] = account.key
            if lock:
                self.locks[ndn] = lock
            keep_first(accounts, account, self.name)
        return accounts

    def _holding(self, scope: str) -> dict[str, set[str]]:
        """Normalized DN -> the credential attributes present, for the entries matching
        ``scope``: one presence search per credential attribute, returning no values."""
        found: dict[str, set[str]] = {}
        for cred in self.settings().credential_attributes:
            cred_filter = f"(&{scope}({escape_filter_chars(cred)}=*))"
            for dn, _ in self.conn.paged(self.config.base_dn, cred_filter, ["1.1"]):
                found.setdefault(normalize_dn(dn), set()).add(cred)
        return found

    def held(self, dn: str, conn: LdapConnection) -> set[str]:
        """The credential attributes present on ``dn`` now, for a revoke the
        observation did not see: a base presence search per attribute over ``conn``
        (the writing thread's), and one the server's schema lacks matches nothing."""
        return {
            cred
            for cred in self.settings().credential_attributes
            if conn.call(partial(_holds, dn=dn, attribute=cred))
        }

    def account(
        self,
        dn: str,
        attributes: Decoded,
        member_of: Mapping[str, Iterable[str]],
        credentials: Mapping[str, set[str]],
    ) -> ObservedAccount | None:
        """The managed account a decoded entry is, or None when it is outside the scope."""
        cfg, settings = self.config, self.settings()
        keys = attributes.get(cfg.key_attribute.lower(), ())
        ndn = normalize_dn(dn)
        if not keys or not under(ndn, self.base):
            return None
        expiry = None
        if settings.expiry_attribute:
            end = attributes.get(settings.expiry_attribute.lower(), ())
            expiry = parse_generalized_time(end[0]) if end else None
        return ObservedAccount(
            key=keys[0].lower(),
            ref=dn,
            username=(attributes.get(cfg.username_attribute.lower()) or ("",))[0],
            enabled=self.enabled(attributes),
            expiry=expiry,
            has_credentials=bool(credentials.get(ndn)),
            groups=frozenset(member_of.get(ndn, ())),
            attributes={name: attributes.get(name.lower(), ()) for name in cfg.attributes},
        )

    def enabled(self, attributes: Mapping[str, tuple[str, ...]]) -> bool:
        settings = self.settings()
        return settings.enabled(attributes.get((settings.lock_attribute or "").lower(), ()))

    # -- read-back ---------------------------------------------------------------------
    def read_back(
        self,
        kind: ActionKind,
        accounts: Sequence[tuple[str, str | None]],
        groups: Sequence[str],
        members: Sequence[str] = (),
    ) -> ReadBack:
        """The accounts (person key, DN) and groups asked for, as the directory holds
        them now; see the module's docstring for the searches it costs. With
        ``members`` (DNs) and the matched values control, the groups answer with those
        members alone (a group of 100,000 read whole took 1.5 s, twice per write at a
        boundary), and their other members stay out of the answer: a value-level modify
        (RFC 4511, 4.6) cannot change them."""
        state: dict[str, ObservedAccount | None] = {}
        evidence: dict[str, dict[str, tuple[str, ...]]] = {}
        if accounts:
            state, evidence = self._accounts(kind, [key for key, _ in accounts])
        attribute = self.config.member_attribute
        if members and groups and MATCHED_VALUES in self.settings().server.controls:
            held = members_among(self.conn, groups, attribute, members)
            return ReadBack(state, evidence, split(held, self.keys)[0], {})
        found, _missing = members_of(self.conn, groups, attribute)
        managed, others = split(found, self.keys)
        return ReadBack(state, evidence, managed, others)

    def _accounts(
        self, kind: ActionKind, keys: list[str]
    ) -> tuple[dict[str, ObservedAccount | None], dict[str, dict[str, tuple[str, ...]]]]:
        cfg = self.config
        entries = by_keys(self.conn, [cfg.base_dn], cfg.key_attribute, keys, self.attributes(False))
        credentials: dict[str, set[str]] | None = None
        if kind is ActionKind.REVOKE_CREDENTIALS:
            credentials = {}
            for scope in scopes(cfg.key_attribute, keys):
                for dn, held in self._holding(scope).items():
                    credentials.setdefault(dn, set()).update(held)
        found: dict[str, tuple[ObservedAccount, Decoded]] = {}
        for dn, entry in sorted(entries, key=lambda e: e[0]):
            decoded = lowered(entry)
            account = self.account(dn, decoded, {}, credentials or {})
            if account is not None:
                found.setdefault(account.key, (account, decoded))
                self.keys[normalize_dn(dn)] = account.key
        state: dict[str, ObservedAccount | None] = {}
        evidence: dict[str, dict[str, tuple[str, ...]]] = {}
        for key in keys:
            account, decoded = found.get(key.lower(), (None, {}))
            state[key] = account
            if account is not None:
                evidence[key] = self.evidence(account, decoded, credentials)
        return state, evidence

    def evidence(
        self,
        account: ObservedAccount,
        attributes: Decoded,
        credentials: Mapping[str, set[str]] | None,
    ) -> dict[str, tuple[str, ...]]:
        """The raw values an account's verdicts rest on, in the directory's terms: the
        lock attribute, ``pwdEndTime`` and, when they were read, each credential
        attribute ("present" or absent)."""
        settings = self.settings()
        found: dict[str, tuple[str, ...]] = {}
        lock, expiry = settings.lock_attribute, settings.expiry_attribute
        if lock:
            found[lock] = attributes.get(lock.lower(), ())
        if credentials is not None:
            held = credentials.get(normalize_dn(account.ref), set())
            for cred in settings.credential_attributes:
                found[cred] = PRESENT if cred in held else ()
        if expiry:
            found[expiry] = attributes.get(expiry.lower(), ())
        return found


def _holds(conn: Connection, dn: str, attribute: str) -> bool:
    conn.search(dn, f"({escape_filter_chars(attribute)}=*)", search_scope=BASE, attributes=["1.1"])
    return bool(conn.response)
