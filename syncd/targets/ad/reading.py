"""How the ``ad`` target reads its managed OU: the observation of a cycle and the
read-back after writes share the attributes read and the account an entry is.

Called by ``targets.ad.target``; what it learns for the writes of the cycle
(userAccountControl, managers, sponsors) goes into the shared ``Seen``.

* Observation: one paged search per managed OU reading ``userAccountControl``,
  ``accountExpires``, ``pwdLastSet``, ``memberOf`` and the templated attributes; one
  base read per managed group (does it exist); the managers of managed accounts looked
  up with OR filters of 100 DNs each, so that ``manager`` compares as the sponsor's
  e-mail.
* Read-back: for account actions, per 100 person keys one search per managed OU (OR
  filters on the key attribute, reading only the state attributes); for membership
  actions one base read of ``member`` per group asked for.
* Observation of a few people (a targeted cycle): per ``FILTER_TERMS`` person keys one
  search per managed OU reading what observation reads, groups from ``memberOf``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from ldap3.utils.conv import escape_filter_chars

from syncd.config import AdTarget
from syncd.core.model import ActionKind, Observed, ObservedAccount, ReadBack
from syncd.targets.ad import values as v
from syncd.targets.ad.writes import MANAGER, Seen
from syncd.targets.base import keep_first
from syncd.targets.directory.connection import Entry, LdapConnection
from syncd.targets.directory.operations import exists
from syncd.targets.directory.readback import by_keys, members_of, split
from syncd.targets.directory.values import any_of, chunks, first_int, lowered, normalize_dn, under

USER = "(objectCategory=person)(objectClass=user)"
Decoded = dict[str, tuple[str, ...]]
# what the verdicts on an AD account rest on, besides its groups
EVIDENCE = ("userAccountControl", "pwdLastSet", "accountExpires")


class AdReader:
    """Reads the managed accounts of one AD domain."""

    def __init__(
        self,
        name: str,
        config: AdTarget,
        conn: LdapConnection,
        groups: frozenset[str],
        seen: Seen,
    ) -> None:
        self.name = name
        self.config = config
        self.conn = conn
        self.groups = groups
        self.seen = seen
        self.base = normalize_dn(config.base_dn)
        self.parked = normalize_dn(config.disabled_ou) if config.disabled_ou else ""
        self.domain = config.domain_dn()
        self.managed_groups = {normalize_dn(g): g for g in groups}
        self.identities: dict[str, str] = {}  # normalized manager DN -> e-mail (else UPN)

    def managed(self, ndn: str) -> bool:
        """Whether a normalized DN lies in the managed OUs."""
        return (bool(self.parked) and under(ndn, self.parked)) or under(ndn, self.base)

    def attributes(self) -> list[str]:
        cfg = self.config
        attrs = [cfg.key_attribute, "sAMAccountName", "userAccountControl", "accountExpires"]
        return [*attrs, "pwdLastSet", "memberOf", *cfg.attributes]

    def bases(self) -> list[str]:
        cfg = self.config
        return [cfg.base_dn] + ([cfg.disabled_ou] if cfg.disabled_ou else [])

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
        self.seen.clear()
        key_filter = f"(&{USER}({escape_filter_chars(self.config.key_attribute)}=*))"
        entries = []
        for base in self.bases():
            entries += self.conn.paged(base, key_filter, self.attributes())
        missing = frozenset(g for g in sorted(self.groups) if not exists(self.conn, g))
        return Observed(self._accounts(entries), missing_groups=missing)

    def observe_people(self, keys: Collection[str]) -> Observed:
        """The managed accounts of ``keys`` alone, as ``observe`` reads them (groups
        from ``memberOf``): per 100 keys one search per managed OU."""
        self.seen.clear()
        entries = (
            by_keys(
                self.conn, self.bases(), self.config.key_attribute, keys, self.attributes(), USER
            )
            if keys
            else []
        )
        wanted = {key.lower() for key in keys}
        accounts = self._accounts(entries)
        return Observed({k: a for k, a in accounts.items() if k in wanted})

    def _accounts(self, entries: list[Entry]) -> dict[str, ObservedAccount]:
        decoded = [(dn, lowered(entry)) for dn, entry in sorted(entries, key=lambda e: e[0])]
        self.identities = self._identities(decoded)
        accounts: dict[str, ObservedAccount] = {}
        for dn, entry in decoded:
            account = self.account(dn, entry, self.identities)
            if account is not None:
                keep_first(accounts, account, self.name)
        return accounts

    def account(
        self, dn: str, entry: Decoded, identities: Mapping[str, str]
    ) -> ObservedAccount | None:
        """The managed account an entry is, or None when it is outside the scope; notes
        its userAccountControl and manager for the writes of this cycle."""
        cfg = self.config
        ndn = normalize_dn(dn)
        keys = entry.get(cfg.key_attribute.lower(), ())
        if not keys or not self.managed(ndn):
            return None
        uac = first_int(entry.get("useraccountcontrol", ()), v.NEW_ACCOUNT_UAC)
        self.seen.uac[ndn] = uac
        self.seen.keys[ndn] = keys[0].lower()
        groups = {self.managed_groups.get(normalize_dn(g)) for g in entry.get("memberof", ())}
        attributes = {name: entry.get(name.lower(), ()) for name in cfg.attributes}
        if attributes.get(MANAGER):
            manager = attributes[MANAGER][0]
            self.seen.managers[ndn] = manager
            attributes[MANAGER] = (identities.get(normalize_dn(manager), manager),)
        return ObservedAccount(
            key=keys[0].lower(),
            ref=dn,
            username=(entry.get("samaccountname") or ("",))[0],
            enabled=not uac & v.ACCOUNTDISABLE,
            expiry=v.from_filetime(first_int(entry.get("accountexpires", ()), 0)),
            has_credentials=first_int(entry.get("pwdlastset", ()), 0) != 0,
            groups=frozenset(g for g in groups if g),
            attributes=attributes,
        )

    def _identities(self, decoded: list[tuple[str, Decoded]]) -> dict[str, str]:
        """Normalized manager DN -> the manager's e-mail (else UPN), as sponsors are
        written in contracts; one search per 100 distinct managers."""
        if MANAGER not in self.config.attributes:
            return {}
        managers = sorted({e[MANAGER][0] for _, e in decoded if e.get(MANAGER)})
        found: dict[str, str] = {}
        for chunk in chunks(managers):
            for dn, entry in self.conn.paged(
                self.domain, any_of("distinguishedName", chunk), ["mail", "userPrincipalName"]
            ):
                attributes = lowered(entry)
                name = (attributes.get("mail") or attributes.get("userprincipalname") or ("",))[0]
                if name:
                    found[normalize_dn(dn)] = name.lower()
                    self.seen.sponsors[name.lower()] = dn
        return found

    # -- read-back ---------------------------------------------------------------------
    def read_back(
        self, kind: ActionKind, accounts: Sequence[tuple[str, str | None]], groups: Sequence[str]
    ) -> ReadBack:
        """The accounts (person key, DN) and groups asked for, as the DC holds them now;
        see the module's docstring for the searches it costs."""
        del kind  # every account action is judged on the same few attributes
        keys = [key for key, _ in accounts]
        attributes = [self.config.key_attribute, "sAMAccountName", *EVIDENCE]
        entries = (
            by_keys(self.conn, self.bases(), self.config.key_attribute, keys, attributes, USER)
            if keys
            else []
        )
        found: dict[str, tuple[ObservedAccount, Decoded]] = {}
        for dn, raw in sorted(entries, key=lambda e: e[0]):
            entry = lowered(raw)
            account = self.account(dn, entry, {})
            if account is not None:
                found.setdefault(account.key, (account, entry))
        state: dict[str, ObservedAccount | None] = {}
        evidence: dict[str, dict[str, tuple[str, ...]]] = {}
        for key in keys:
            account, entry = found.get(key.lower(), (None, {}))
            state[key] = account
            if account is not None:
                evidence[key] = {name: entry.get(name.lower(), ()) for name in EVIDENCE}
        members, _missing = members_of(self.conn, groups, "member")
        managed, others = split(members, self.seen.keys)
        return ReadBack(state, evidence, managed, others)
