"""Group memberships in a SCIM service provider: one PATCH per group adds or removes
many members (``add`` of ``members`` values, ``remove`` with a ``value eq`` filter).

Called by ``targets.scim.target.ScimDirectory.apply`` with membership actions of one
kind, sorted by group. Groups are independent, so they go out ``concurrency`` at a
time. These PATCHes add or remove values and never rewrite the member list, so they
need no ``If-Match``: members that others add meanwhile are kept. A service provider
without PATCH gets the group read, edited and PUT back conditional on its ETag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import PatchOp, PreconditionFailedException, Resource

from syncd.core.model import Action, ActionKind, Outcome
from syncd.errors import PermanentError, TemporaryError
from syncd.targets.base import Report, gather
from syncd.targets.scim import mapping
from syncd.targets.scim.session import Known, ScimSession, retried

EXCLUDE_MEMBERS = {"excludedAttributes": "members"}  # with patch_excludes_members


class Memberships:
    """Carries out membership actions for ``ScimDirectory``."""

    def __init__(self, name: str, session: ScimSession, known: Known) -> None:
        self.name = name
        self.session = session
        self.known = known

    def apply(self, actions: Sequence[Action], report: Report) -> None:
        """When a group refuses a batch, each member is sent alone so that only the
        bad one fails. Raises ``TemporaryError`` when the target stays unreachable."""
        add = actions[0].kind is ActionKind.ADD_MEMBER
        by_group: dict[str, list[tuple[Action, str]]] = {}
        for action in actions:
            group, user = self.known.groups.get(action.group), self.known.user_id(action)
            if group is None:
                why = "does not exist; create it or correct roles in the config"
                report(Outcome(action, False, f"{self.name}: group {action.group!r} {why}"))
            elif user is None:
                report(Outcome(action, False, f"{self.name}: {action.username} has no SCIM id"))
            else:
                by_group.setdefault(group, []).append((action, user))
        pool = self.session.pool()
        futures = [pool.submit(self._group, g, add, pairs) for g, pairs in by_group.items()]

        def each(outcomes: list[Outcome]) -> None:
            for outcome in outcomes:
                report(outcome)

        gather(futures, each)

    def _group(self, group: str, add: bool, pairs: list[tuple[Action, str]]) -> list[Outcome]:
        notes: list[str] = []
        try:
            self._change(group, add, [user for _, user in pairs], notes)
        except PermanentError as exc:
            if len(pairs) == 1:
                return [_refused(exc, add, *pairs[0])]
            return [self._alone(group, add, action, user) for action, user in pairs]
        self._forget_versions(user for _, user in pairs)
        return [Outcome(action, True, retried(notes), user) for action, user in pairs]

    def _alone(self, group: str, add: bool, action: Action, user: str) -> Outcome:
        notes: list[str] = []
        try:
            self._change(group, add, [user], notes)
        except PermanentError as exc:
            return _refused(exc, add, action, user)
        self._forget_versions([user])
        return Outcome(action, True, retried(notes), user)

    def _forget_versions(self, users: Iterable[str]) -> None:
        # Servers that list a user's groups in the user change its version with them;
        # a later write to the user this cycle must not send the old ETag.
        for user in users:
            self.known.versions.pop(user, None)

    def _change(self, group: str, add: bool, users: list[str], notes: list[str]) -> None:
        model = self.known.caps.group
        if self.known.caps.patch:
            body = mapping.patch(mapping.member_operations(add, users))
            # No query parameters unless asked for: some servers apply a PATCH sent
            # with ``excludedAttributes=members`` to the whole member list.
            params = EXCLUDE_MEMBERS if self.session.config.patch_excludes_members else None
            self.session.call(
                lambda s: s.modify(
                    model,
                    group,
                    PatchOp[model].model_validate(body),  # type: ignore[valid-type]
                    # The answer (a large group's members, maybe) is not read.
                    check_response_payload=False,
                    expected_status_codes=[200, 204],
                    params=params,
                ),
                notes,
            )
            return
        self.session.call(lambda s: _put_members(s, model, group, add, users), notes)


def _refused(exc: PermanentError, add: bool, action: Action, user: str) -> Outcome:
    if not add and exc.subcode == "noTarget":
        return Outcome(action, True, "already not a member", user)
    return Outcome(action, False, str(exc), user)


def _put_members(
    scim: SyncSCIMClient, model: type[Resource[Any]], group: str, add: bool, users: list[str]
) -> None:
    """Read, edit and PUT a group's member list. scim2-client sends ``If-Match`` with
    the version just read: a group changed meanwhile answers 412, read again."""
    current = scim.query(model, group)
    if not isinstance(current, Resource):
        raise PermanentError(f"group {group} could not be read before a PUT")
    members = [
        {"value": m.value} for m in getattr(current, "members", None) or [] if m.value not in users
    ]
    if add:
        members += [{"value": u} for u in users]
    replacement = model.model_validate({**current.model_dump(), "members": members})
    try:
        scim.replace(replacement)
    except PreconditionFailedException as exc:
        raise TemporaryError(f"group {group} changed while being written; read again") from exc
