"""The ``scim`` target: a SCIM 2.0 service provider (SPEC §3, RFC 7643/7644), such as
the user API of a SaaS application.

Called by ``syncd.engine`` (observe, find_conflicts, check) and ``syncd.apply`` (apply,
read_back).
The managed scope is the users whose ``externalId`` starts with the configured prefix
(``externalId`` = prefix + person key): nothing else is changed, and only those users
are added to or removed from the configured groups, found by ``displayName``.
Observation reads the discovery documents (three requests), the managed users (one
request per page), the configured groups and the managers that are not managed users
themselves (OR filters, about a hundred names a request), and the sponsors found to
be no users of the application in an earlier cycle (``targets.scim.sponsors``):
requests grow with pages, not users.
The server does not have to fill ``User.groups``: memberships come from the groups.

A targeted cycle (the daemon at a contract's start or end) observes only some people
(``observe_people``): their users by OR filters on ``externalId``, a page each at most
(``people_batches``), and the configured groups as above; the discovery of the last
cycle is reused. A server that cannot evaluate such a filter gets a full observation.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

from scim2_models import ScimFilter

from syncd.config import ScimTarget
from syncd.core.model import (
    TAKEN_FIX,
    Action,
    ActionKind,
    Conflict,
    Observed,
    ObservedAccount,
    Outcome,
    ReadBack,
)
from syncd.errors import PermanentError, TargetError
from syncd.targets.base import Report, keep_first
from syncd.targets.scim import mapping
from syncd.targets.scim.members import Memberships
from syncd.targets.scim.readback import Reader, others
from syncd.targets.scim.session import UNEVALUATED, Known, ScimSession
from syncd.targets.scim.sponsors import Sponsors
from syncd.targets.scim.writes import Writer

log = logging.getLogger(__name__)


class ScimDirectory:
    """Observe and change the managed users and groups of one SCIM service provider."""

    # Bulk requests and member PATCHes carry up to this many changes (split further by
    # the server's maxOperations / maxPayloadSize); intents are still on disk first.
    batch_size = 1000
    # An OR filter of ninety externalIds costs scim2-server about what listing five
    # hundred users does (it compares every user with every term).
    whole_share = 8

    def __init__(self, name: str, config: ScimTarget, groups: frozenset[str]) -> None:
        self.name = name
        self.config = config
        self.groups = groups  # managed groups' displayNames as configured
        self.session = ScimSession(config, name)
        self.known: Known | None = None  # what the current cycle learned
        self.sponsors = Sponsors(name, self.session)  # kept across cycles

    # -- observation -------------------------------------------------------------------
    def observe(self) -> Observed:
        """A new cycle: discovery again, then the managed users and groups."""
        prefix = self.config.external_id_prefix
        known = self.known = Known(self.session.discover(), prefix)
        users = self.session.search(known.caps.user, f"externalId sw {ScimFilter.quote(prefix)}")
        members, missing, held = self._groups(known)
        accounts = self._accounts(known, users, members)
        self.sponsors.recheck(known, accounts)
        accounts = {key: self.sponsors.settled(known, a) for key, a in accounts.items()}
        return Observed(accounts, missing_groups=missing, others=others(known, held))

    def observe_people(self, keys: Collection[str]) -> Observed:
        """The managed users of just these person keys, with their memberships in the
        configured groups, as ``observe`` builds them. A fixed number of requests per
        batch of keys (``people_batches``) plus the group look-ups of ``observe``,
        whatever the number of managed users; no discovery when a cycle already did
        it. Missing groups are left to full cycles, so ``missing_groups`` is empty."""
        prefix = self.config.external_id_prefix
        caps = self.known.caps if self.known is not None else self.session.discover()
        known = self.known = Known(caps, prefix)
        batches = people_batches(prefix, sorted(set(keys)), self.session.page_size)
        try:
            pages = self.session.pool().map(
                lambda query: self.session.search(caps.user, query), batches
            )
            users = [user for page in pages for user in page]
        except PermanentError as exc:
            if exc.status not in UNEVALUATED:
                raise
            log.warning(
                "%s: users cannot be looked up by externalId (%s); observing all managed "
                "users for %d people instead",
                self.name,
                str(exc).removeprefix(f"{self.name}: "),
                len(keys),
                extra={"target": self.name},
            )
            everyone = self.observe()
            wanted = set(keys)
            return Observed({k: a for k, a in everyone.accounts.items() if k in wanted})
        members, _, held = self._groups(known)
        accounts = self._accounts(known, users, members)
        wanted = set(keys)
        accounts = {k: a for k, a in accounts.items() if k in wanted}
        self.sponsors.recheck(known, accounts, within=wanted)
        settled = {k: self.sponsors.settled(known, a) for k, a in accounts.items()}
        return Observed(settled, others=others(known, held))

    def _accounts(
        self, known: Known, users: list[dict[str, Any]], members: dict[str, set[str]]
    ) -> dict[str, ObservedAccount]:
        """Managed accounts by person key from user resources, recorded in ``known``."""
        managers = self._managers(known, users)
        known.identities.update(managers)
        paths = list(self.config.attributes)
        accounts: dict[str, ObservedAccount] = {}
        for resource in users:
            account = mapping.account(resource, known.prefix, paths, members, managers)
            if account is None:
                continue  # a server whose "sw" ignores case
            keep_first(accounts, account, self.name)
            if accounts[account.key] is not account:
                continue  # a second user of one person: left alone
            known.users[account.ref] = resource
            version = (resource.get("meta") or {}).get("version")
            if version:
                known.versions[account.ref] = str(version)
        return accounts

    def _groups(
        self, known: Known
    ) -> tuple[dict[str, set[str]], frozenset[str], dict[str, frozenset[str]]]:
        """Member id -> managed groups (configured names); the missing groups; and each
        group found (configured name) -> its member ids."""
        caps = known.caps
        by_name: dict[str, list[dict[str, Any]]] = {}
        for group in self.session.find(caps.group, "displayName", self.groups):
            by_name.setdefault(str(group.get("displayName", "")).lower(), []).append(group)
        members: dict[str, set[str]] = {}
        held: dict[str, frozenset[str]] = {}
        missing = set()
        for name in sorted(self.groups):
            found = by_name.get(name.lower(), [])
            if len(found) != 1:
                if found:
                    log.error(
                        "%s: %d groups are named %r; none is managed", self.name, len(found), name
                    )
                missing.add(name)
                continue
            group = found[0]
            if "members" not in group:
                # Some servers leave members out of lists; the group itself has them.
                group = self.session.read(caps.group, str(group["id"]))
            known.groups[name] = str(group["id"])
            ids = [str(m.get("value")) for m in group.get("members") or [] if m.get("value")]
            held[name] = frozenset(ids)
            for member in ids:
                members.setdefault(member, set()).add(name)
        return members, frozenset(missing), held

    def _managers(self, known: Known, users: list[dict[str, Any]]) -> dict[str, str]:
        """Id -> identity of the managers set on managed users (see mapping.identity)."""
        if mapping.MANAGER not in self.config.attributes:
            return {}
        wanted = {
            str(manager["value"])
            for user in users
            if isinstance(manager := mapping.read(user, mapping.MANAGER), dict)
            and manager.get("value")
        }
        seen = [u for u in users if str(u["id"]) in wanted]
        outside = wanted - {str(u["id"]) for u in seen}
        try:
            seen += self.session.find(known.caps.user, "id", outside) if outside else []
        except PermanentError as exc:
            log.warning("%s: managers cannot be looked up by id: %s", self.name, exc)
        return {str(u["id"]): mapping.identity(u) for u in seen}

    def find_conflicts(self, wanted: Sequence[tuple[str, str]]) -> dict[str, Conflict]:
        """Unmanaged users holding a wanted userName (compared without case, as SCIM
        does), looked up with OR filters of many names (see ``ScimSession.find``)."""
        caps = self._known().caps
        prefix = self.config.external_id_prefix
        taken: dict[str, dict[str, Any]] = {}
        for user in self.session.find(caps.user, "userName", [name for _, name in wanted]):
            if not str(user.get("externalId") or "").startswith(prefix):
                taken[str(user.get("userName", "")).lower()] = user
        conflicts: dict[str, Conflict] = {}
        for person, name in wanted:
            holder = taken.get(name.lower())
            if holder is not None:
                owner = holder.get("externalId")
                reason = (
                    f"userName {name!r} is taken by an unmanaged user "
                    f"({f'externalId {owner!r}' if owner else 'no externalId'})"
                )
                conflicts[person] = Conflict(
                    self.name, person, name, str(holder["id"]), reason, fix=TAKEN_FIX
                )
        return conflicts

    # -- changes -----------------------------------------------------------------------
    def apply(self, actions: Sequence[Action], report: Report) -> None:
        if not actions:
            return
        try:
            known = self._known()
        except PermanentError as exc:
            for action in actions:
                report(Outcome(action, False, str(exc), action.ref))
            return
        if actions[0].kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
            Memberships(self.name, self.session, known).apply(actions, report)
        else:
            Writer(self.name, self.session, known, self.sponsors).users(actions, report)

    def read_back(
        self,
        kind: ActionKind,
        accounts: Sequence[tuple[str, str | None]],
        groups: Sequence[str],
        members: Sequence[str] = (),  # read the groups whole all the same
    ) -> ReadBack:
        """The users ((person key, SCIM id) pairs) and configured groups as the server
        holds them now (``targets.scim.readback``): OR filters of about ninety users a
        request and one read per group. Every ``kind`` is verified on the same values
        (``active``, existence, membership). ``members`` / ``others``: the managed
        users (observed this cycle, or created by it) in each group, and the rest."""
        reader = Reader(
            self.name, self.session, self._known(), self.sponsors, list(self.config.attributes)
        )
        return reader.read(accounts, groups)

    def _known(self) -> Known:
        if self.known is None:
            prefix = self.config.external_id_prefix
            self.known = Known(self.session.discover(), prefix)
        return self.known

    def check(self) -> list[str]:
        try:
            known = self.known = Known(self.session.discover(), self.config.external_id_prefix)
            missing = self._groups(known)[1]
        except TargetError as exc:
            return [str(exc)]
        problems = [f"{self.name}: group {g!r} does not exist" for g in sorted(missing)]
        for path in sorted(self.config.attributes):
            schema = mapping.split(path)[0]
            if schema and schema not in known.caps.extensions:
                problems.append(
                    f"{self.name}: attributes.{path}: the service provider declares no "
                    f"schema {schema} for users; remove the attribute"
                )
        return problems

    def close(self) -> None:
        self.session.close()


def people_batches(prefix: str, keys: Sequence[str], page_size: int) -> list[str]:
    """OR filters on ``externalId`` for ``keys``: at most a page of keys each, so that
    one request answers each (the server's ``filter.maxResults`` bounds the page), and
    short enough for a URL (``mapping.any_of_filters``). Pure."""
    size = max(1, page_size)
    return [
        query
        for start in range(0, len(keys), size)
        for query in mapping.any_of_filters(
            "externalId", [prefix + key for key in keys[start : start + size]]
        )
    ]
