"""Sponsors as SCIM managers: the user a sponsor (an e-mail, as contracts name them) is
in the service provider, and the people whose sponsor is no user of it.

Used by ``targets.scim.writes`` (which user to send as ``manager``), and by
``targets.scim.target`` and ``targets.scim.readback`` (what an unset manager means).
Sponsors are looked up by ``emails.value`` or ``userName``, one OR filter for about
fifty of them. A look-up that fails is kept apart from one that finds nobody: the
manager is then left as it is, and the outcome says the look-up failed.

A sponsor who is no user of the application cannot be the manager, so the manager
stays unset; yet the plan renders the sponsor's e-mail and would ask for the same
update every cycle. :class:`Sponsors` remembers, for the life of the target (the
daemon's run), whose sponsor was found to be no user, and reports their unset manager
as that sponsor, which is what the plan renders: the cycle is converged. Those
sponsors are looked up again at every observation (one request per fifty), so one
who becomes a user is set as manager in that cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace

from syncd.core.model import Action, ObservedAccount
from syncd.errors import TargetError
from syncd.targets.scim import mapping
from syncd.targets.scim.session import Known, ScimSession

log = logging.getLogger(__name__)
NAMES = ("emails.value", "userName")  # how a sponsor may name a user


def sponsor(action: Action) -> str | None:
    """The sponsor an action sets as manager; None when it sets none."""
    values = action.changes.get(mapping.MANAGER)
    return values[0] if values else None


class Sponsors:
    """Sponsors' user ids for one target, and whose sponsor is no user of it."""

    def __init__(self, name: str, session: ScimSession) -> None:
        self.name = name
        self.session = session
        self.absent: dict[str, str] = {}  # person key -> their sponsor, no user here

    def resolve(self, known: Known, sponsors: Iterable[str]) -> None:
        """Fill ``known.managers`` (sponsor -> user id, None: no such user) for the
        sponsors not looked up yet this cycle; ``known.unresolved`` when the look-up
        fails."""
        wanted = {s for s in sponsors if s not in known.managers and s not in known.unresolved}
        if not wanted:
            return
        try:
            users = self.session.find(known.caps.user, NAMES, wanted)
        except TargetError as exc:
            why = str(exc).removeprefix(f"{self.name}: ")
            log.warning("%s: sponsors cannot be looked up: %s", self.name, why)
            known.unresolved.update(dict.fromkeys(wanted, why))
            return
        by_name: dict[str, set[str]] = {}
        for user in users:
            names = {str(e.get("value", "")).lower() for e in user.get("emails") or []}
            names.add(str(user.get("userName", "")).lower())
            for name in wanted:
                if name.lower() in names:
                    by_name.setdefault(name, set()).add(str(user["id"]))
                    known.identities[str(user["id"])] = mapping.identity(user)
        for name in wanted:
            ids = by_name.get(name, set())
            if len(ids) > 1:
                log.warning(
                    "%s: sponsor %s names %d users; no manager set", self.name, name, len(ids)
                )
            known.managers[name] = next(iter(ids)) if len(ids) == 1 else None

    def learn(self, known: Known, actions: Sequence[Action]) -> None:
        """Remember, from this cycle's look-ups, whose sponsor is no user here."""
        for action in actions:
            if mapping.MANAGER not in action.changes:
                continue
            name = sponsor(action)
            if name and name in known.managers and known.managers[name] is None:
                self.absent[action.person] = name
            elif name not in known.unresolved:
                self.absent.pop(action.person, None)

    def recheck(
        self,
        known: Known,
        accounts: Mapping[str, ObservedAccount],
        within: Collection[str] | None = None,
    ) -> None:
        """Look the remembered sponsors up again, for the observation: those of people
        whose account still has no manager (the others are forgotten). ``within``: the
        people observed, when only some were (the others are kept as they are)."""
        kept = {k: n for k, n in self.absent.items() if within is not None and k not in within}
        self.absent = {
            key: name
            for key, name in self.absent.items()
            if key not in kept
            and key in accounts
            and not accounts[key].attributes.get(mapping.MANAGER, ("?",))
        }
        self.resolve(known, set(self.absent.values()))
        for key, name in list(self.absent.items()):
            if known.managers.get(name, "") is not None and name not in known.unresolved:
                del self.absent[key]  # a user now: the plan sets them as manager
        self.absent.update(kept)

    def settled(self, known: Known, account: ObservedAccount) -> ObservedAccount:
        """``account`` with its unset manager shown as its sponsor when that sponsor
        was found this cycle to be no user here: what the plan renders, so that no
        update is planned for a manager that cannot be set."""
        name = self.absent.get(account.key)
        if name is None or account.attributes.get(mapping.MANAGER, ("?",)):
            return account
        if name not in known.managers or known.managers[name] is not None:
            return account
        return replace(account, attributes={**account.attributes, mapping.MANAGER: (name,)})


def lookup_note(known: Known, name: str | None, target: str) -> str:
    """What an outcome says about the manager of sponsor ``name``; "" when it is set."""
    if not name:
        return ""
    if name in known.unresolved:
        return f"sponsors cannot be looked up: {known.unresolved[name]}; manager left unchanged"
    if known.managers.get(name) is None:
        return f"manager not set: sponsor {name} is not a user of {target}"
    return ""


def without_manager(changes: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {path: values for path, values in changes.items() if path != mapping.MANAGER}
