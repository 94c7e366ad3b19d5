"""What a SCIM service provider holds after syncd's writes, read again to verify them.

Called by ``targets.scim.target.ScimDirectory.read_back`` after each chunk of writes
(and before a chunk of membership changes, for the members outside the managed
scope). Users written are read with OR filters: by ``id`` when the write named one, by
``externalId`` (prefix + person key) otherwise (and for all, on a server that refuses
filters on ``id``), about ninety a request, or one listing of all users when that
takes fewer requests (``ScimSession.find``). Each group asked for is read once, by id,
in parallel: its members are the managed users' person keys (observed as managed
this cycle, or created by it) and the other ids, which is where memberships are judged
and collateral changes seen. Nothing is cached: every value comes from the server now.
Accounts are built as the observation builds them (``mapping.account``); their
``groups`` cover the groups read. Every action kind is verified on the same values
(``active``, existence, membership), so ``kind`` changes nothing of what is read.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from syncd.core.model import ObservedAccount, ReadBack
from syncd.errors import PermanentError
from syncd.targets.scim import mapping
from syncd.targets.scim.session import Known, ScimSession
from syncd.targets.scim.sponsors import Sponsors

log = logging.getLogger(__name__)
Evidence = dict[str, tuple[str, ...]]


class Reader:
    """One read-back for ``ScimDirectory``."""

    def __init__(
        self,
        name: str,
        session: ScimSession,
        known: Known,
        sponsors: Sponsors,
        paths: Sequence[str],
    ) -> None:
        self.name = name
        self.session = session
        self.known = known
        self.sponsors = sponsors
        self.paths = paths

    def read(self, accounts: Sequence[tuple[str, str | None]], groups: Sequence[str]) -> ReadBack:
        """``accounts``: (person key, SCIM id or None); ``groups``: configured names.
        Raises ``TargetError`` when the server cannot be read."""
        held = self._groups(groups)  # configured name -> (displayName, member ids)
        members: dict[str, set[str]] = {}
        for name, (_, ids) in held.items():
            for member in ids:
                members.setdefault(member, set()).add(name)
        users = self._users(accounts) if accounts else {}
        found: dict[str, ObservedAccount | None] = {}
        evidence: dict[str, Evidence] = {}
        for key, _ in accounts:
            resource = users.get(key)
            account = self._account(resource, members) if resource else None
            found[key] = account
            if resource is not None and account is not None:
                evidence[key] = _evidence(resource, members, held)
        managed = managed_ids(self.known)
        return ReadBack(
            found,
            evidence,
            {n: frozenset(managed[i] for i in ids if i in managed) for n, (_, ids) in held.items()},
            others(self.known, {n: ids for n, (_, ids) in held.items()}),
        )

    def _account(
        self, resource: Mapping[str, Any], members: Mapping[str, set[str]]
    ) -> ObservedAccount | None:
        known = self.known
        account = mapping.account(resource, known.prefix, self.paths, members, known.identities)
        return self.sponsors.settled(known, account) if account else None

    def _users(self, accounts: Sequence[tuple[str, str | None]]) -> dict[str, dict[str, Any]]:
        """Person key -> the managed user the server holds for it now."""
        prefix = self.known.prefix
        resources = self._fetch(accounts)
        by_id = {str(r.get("id")): r for r in resources}
        by_external: dict[str, dict[str, Any]] = {}
        for resource in sorted(resources, key=lambda r: str(r.get("id"))):
            by_external.setdefault(str(resource.get("externalId") or "").lower(), resource)
        out: dict[str, dict[str, Any]] = {}
        for key, ref in accounts:
            external_id = (prefix + key).lower()
            user = by_id.get(ref) if ref else by_external.get(external_id)
            # A user that no longer carries this person's externalId is not the account.
            if user and str(user.get("externalId") or "").lower() == external_id:
                out[key] = user
        return out

    def _fetch(self, accounts: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
        """The users by id where the write named one, else by externalId."""
        caps, prefix = self.known.caps, self.known.prefix
        refs = {ref for _, ref in accounts if ref}
        external = {prefix + key for key, ref in accounts if not ref}
        try:
            resources = self.session.find(caps.user, "id", refs) if refs else []
        except PermanentError as exc:
            # Not every server filters on id; each user carries its externalId too.
            log.info("%s: no read-back by id (%s); by externalId instead", self.name, exc)
            external |= {prefix + key for key, ref in accounts if ref}
            resources = []
        if external:
            resources += self.session.find(caps.user, "externalId", external)
        return resources

    def _groups(self, names: Sequence[str]) -> dict[str, tuple[str, set[str]]]:
        """Configured name -> (displayName, member ids) of the groups asked for that
        this cycle found; one read of each, in parallel."""
        wanted = sorted({n for n in names if n in self.known.groups})
        if not wanted:
            return {}
        reads = self.session.pool().map(self._group, [self.known.groups[n] for n in wanted])
        return dict(zip(wanted, reads, strict=True))

    def _group(self, group: str) -> tuple[str, set[str]]:
        try:
            resource = self.session.read(self.known.caps.group, group)
        except PermanentError as exc:
            if exc.status == 404:
                return "", set()  # deleted meanwhile: nobody is a member of it
            raise
        ids = {str(m.get("value")) for m in resource.get("members") or [] if m.get("value")}
        return str(resource.get("displayName") or ""), ids


def managed_ids(known: Known) -> dict[str, str]:
    """SCIM id -> person key of the managed users: observed this cycle as managed, or
    created by it."""
    prefix = known.prefix
    managed = {user: key for key, user in known.ids.items()}
    for user, resource in known.users.items():
        external = str(resource.get("externalId") or "")
        if external.startswith(prefix):
            managed[user] = external[len(prefix) :].lower()
    return managed


def others(known: Known, held: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
    """Per group (configured name) of ``held``, its member ids that are not managed
    users of this cycle."""
    managed = managed_ids(known)
    return {name: frozenset(i for i in ids if i not in managed) for name, ids in held.items()}


def _evidence(
    resource: Mapping[str, Any],
    members: Mapping[str, set[str]],
    held: Mapping[str, tuple[str, set[str]]],
) -> Evidence:
    """What a verdict on this user rests on, as the server states it: ``active`` and,
    when groups were read, the displayNames of those that list the user."""
    active = resource.get("active")
    out: Evidence = {"active": (str(active).lower(),) if isinstance(active, bool) else ()}
    if held:
        names = members.get(str(resource["id"]), set())
        out["groups"] = tuple(sorted(held[n][0] for n in names))
    return out
