"""The ``ad`` target: user objects in an Active Directory OU (SPEC §3).

Called by ``syncd.engine`` (observe, find_conflicts, check) and ``syncd.apply`` (apply).
The managed scope is ``base_dn`` (and ``disabled_ou``) plus the person key in
``key_attribute`` (``employeeNumber``): nothing else is changed, and of the groups only the
managed ones, only for managed accounts (the primary group is never touched).

* Reading (``targets.ad.reading``): observation costs one paged search per managed
  OU, one base read per managed group and one search per 100 managers; a read-back
  after writes one search per managed OU per 100 person keys and one base read per
  group asked for.
* Writes (``targets.ad.writes``): accounts are added disabled with a random password,
  then enabled by clearing only the ACCOUNTDISABLE bit; ``accountExpires`` carries the
  access end so AD refuses logons after it even when syncd is down.
* Credentials are revoked by a random password plus ``pwdLastSet = 0``; an account
  whose ``pwdLastSet`` is 0 holds no password anyone knows, which makes the revocation
  observable and idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from ldap3.utils.conv import escape_filter_chars

from syncd.config import AdTarget
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
from syncd.errors import PermanentError
from syncd.targets.ad import values as v
from syncd.targets.ad.connection import ALREADY_MEMBER, NOT_MEMBER, connect
from syncd.targets.ad.reading import AdReader
from syncd.targets.ad.writes import AccountWriter, Seen
from syncd.targets.base import BATCH_SIZE, WHOLE_SHARE, Report
from syncd.targets.directory.operations import (
    candidates,
    change_members,
    check_present,
    first_conflicts,
)
from syncd.targets.directory.values import any_of, lowered, normalize_dn

log = logging.getLogger(__name__)
_MEMBERS_PER_MODIFY = 500


def _already(exc: PermanentError) -> str | None:
    """The note for a membership refusal that means the change is in place, else None."""
    if exc.code in (20, 68) or exc.subcode == ALREADY_MEMBER:
        return "already a member"
    if exc.code == 16 or exc.subcode == NOT_MEMBER:
        return "already not a member"
    return None


class AdDirectory:
    """Observe and change the managed OU of one Active Directory domain."""

    batch_size = BATCH_SIZE
    whole_share = WHOLE_SHARE

    def __init__(self, name: str, config: AdTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.conn = connect(config, name)
        self.domain = config.domain_dn()
        self.groups = groups
        self.seen = Seen()
        self.writer = AccountWriter(name, config, self.conn, self.seen)
        self.reader = AdReader(name, config, self.conn, groups, self.seen)

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
        return self.reader.observe()

    def observe_people(self, keys: Collection[str]) -> Observed:
        return self.reader.observe_people(keys)

    def read_back(
        self,
        kind: ActionKind,
        accounts: Sequence[tuple[str, str | None]],
        groups: Sequence[str],
        members: Sequence[str] = (),  # read the groups whole all the same
    ) -> ReadBack:
        """The accounts (person key, DN) and groups asked for, as held now: a search per
        managed OU per 100 keys, one base read per group."""
        return self.reader.read_back(kind, accounts, groups)

    # -- conflicts ---------------------------------------------------------------------
    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """Per person about to be created: a username AD cannot take, a key that does not
        fit ``key_attribute``, or an unmanaged object holding the sAMAccountName, the
        userPrincipalName or the person key. Up to ``SCAN_ABOVE`` people are looked up
        with OR filters, more with one paged scan of the domain's accounts."""
        cfg = self.config
        conflicts: dict[str, Conflict] = {}
        lookup: list[tuple[str, str]] = []
        for person, name in wanted:
            problem = v.sam_problem(name) or v.key_problem(cfg.key_attribute, person)
            if problem:
                fix = "give {contract} a username AD accepts (username: field)"
                if not v.sam_problem(name):
                    fix = "give {contract} a shorter person: key, or set key_attribute"
                conflicts[person] = Conflict(self.name, person, name, "", problem, fix=fix)
            else:
                lookup.append((person, name))
        if not lookup:
            return conflicts
        key, upn = cfg.key_attribute, cfg.upn_domain()
        found = candidates(
            self.conn,
            cfg.conflict_base or self.domain,
            f"(|(sAMAccountName=*)({escape_filter_chars(key)}=*))",
            [
                any_of("sAMAccountName", [name])
                + any_of("userPrincipalName", [f"{name}@{upn}"])
                + any_of(key, [person])
                for person, name in lookup
            ],
            ["sAMAccountName", "userPrincipalName", key],
        )
        by_value: dict[str, list[tuple[str, dict[str, tuple[str, ...]]]]] = {}
        for dn, raw in found:
            entry = lowered(raw)
            values = entry.get("samaccountname", ()) + entry.get(key.lower(), ())
            values += tuple(u.split("@", 1)[0] for u in entry.get("userprincipalname", ()))
            for value in {x.lower() for x in values}:
                by_value.setdefault(value, []).append((dn, entry))
        conflicts.update(first_conflicts(self.name, lookup, by_value, self._conflict_reason))
        return conflicts

    def _conflict_reason(
        self, dn: str, entry: dict[str, tuple[str, ...]], person: str, name: str
    ) -> tuple[str, str]:
        key_attr = self.config.key_attribute
        keys = {k.lower() for k in entry.get(key_attr.lower(), ())}
        names = {n.lower() for n in entry.get("samaccountname", ())}
        upns = {u.lower() for u in entry.get("userprincipalname", ())}
        upn = f"{name}@{self.config.upn_domain()}".lower()
        if person in keys and not self.reader.managed(normalize_dn(dn)):
            why = f"an account outside {self.config.base_dn} carries this person's {key_attr}"
            return why, FOREIGN_KEY_FIX
        if (name.lower() in names or upn in upns) and person not in keys:
            owner = f"person {sorted(keys)[0]!r}" if keys else f"no {key_attr}"
            return f"username {name!r} is taken by an unmanaged account ({owner})", TAKEN_FIX
        return "", ""

    # -- changes -----------------------------------------------------------------------
    def apply(self, actions: Sequence[Action], report: Report) -> None:
        if not actions:
            return
        kind = actions[0].kind
        if kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
            self._members(actions, report)
            return
        if kind in (ActionKind.CREATE, ActionKind.UPDATE):
            self.writer.resolve_sponsors(actions)
        for action in actions:
            try:
                dn = self.writer.dn_for(action)
                dn, detail = self.writer.one(action, dn)
            except PermanentError as exc:
                report(Outcome(action, False, str(exc), action.ref))
            else:
                report(Outcome(action, True, detail, dn))

    def _members(self, actions: Sequence[Action], report: Report) -> None:
        """One modify of a group's ``member`` per 500 accounts; a refused batch is sent
        again one account at a time, "already a member" / "not a member" count as done."""
        change_members(
            self.conn, actions, self.writer.dn_for, "member", _already, report, _MEMBERS_PER_MODIFY
        )

    def check(self) -> list[str]:
        cfg = self.config
        wanted = [("base_dn", cfg.base_dn)]
        wanted += [("disabled_ou", cfg.disabled_ou)] if cfg.disabled_ou else []
        wanted += [("group", g) for g in sorted(self.groups)]
        return check_present(self.conn, self.name, wanted)

    def close(self) -> None:
        self.conn.close()
