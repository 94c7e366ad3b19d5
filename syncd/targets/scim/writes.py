"""User writes to a SCIM service provider: creates (POST), changes (PATCH, or PUT
when the server has no PATCH) and deletes, as ``/Bulk`` requests when it offers them.

Called by ``targets.scim.target.ScimDirectory.apply`` with actions of one kind. Every
operation's own answer is checked, in a bulk response too, where ``targets.scim.bulk``
says which result is about which operation. What a lost answer could have hidden is
settled on the next attempt: a create answered ``409`` is ours when the user in the
way carries this person's ``externalId`` (the first attempt went through), and only
then; a delete answered ``404`` is done. ``If-Match`` carries the ETag read this cycle
when the server supports ETags, so a change made meanwhile by someone else is not
overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import PatchOp, Resource

from syncd.core.model import Action, ActionKind, Outcome
from syncd.errors import PermanentError, TargetError, TemporaryError
from syncd.targets.base import Report, gather
from syncd.targets.scim import bulk, mapping
from syncd.targets.scim.session import TEMPORARY_STATUS, Known, ScimSession, retried
from syncd.targets.scim.sponsors import Sponsors, lookup_note, sponsor, without_manager

_ENVELOPE = 200  # bytes of a bulk request around its operations


@dataclass
class Request:
    """One user write, sent alone or as one operation of a bulk request."""

    action: Action
    method: str  # POST, PATCH, PUT, DELETE; "" when there is nothing to send
    path: str  # relative to the base URL
    data: dict[str, Any] | None = None
    version: str | None = None
    note: str = ""  # said in the outcome, e.g. why the manager was left alone
    notes: list[str] = field(default_factory=list)  # temporary failures retried


@dataclass(frozen=True)
class Reply:
    """What the service provider answered to one request (0: no answer to read)."""

    status: int
    id: str = ""
    version: str | None = None
    detail: str = ""


Verdict = tuple[bool | None, str, str | None]  # Outcome's ok, detail and ref


class Writer:
    """Carries out one kind of action at a time for ``ScimDirectory``."""

    def __init__(self, name: str, session: ScimSession, known: Known, sponsors: Sponsors) -> None:
        self.name = name
        self.session = session
        self.known = known
        self.sponsors = sponsors

    # -- users -------------------------------------------------------------------------
    def users(self, actions: Sequence[Action], report: Report) -> None:
        self.sponsors.resolve(self.known, filter(None, map(sponsor, actions)))
        self.sponsors.learn(self.known, actions)
        requests = []
        for action in actions:
            try:
                request = self._request(action)
            except PermanentError as exc:
                report(Outcome(action, False, str(exc), action.ref))
                continue
            if request.method:
                requests.append(request)
            else:
                report(Outcome(action, True, request.note, action.ref))
        if self.known.caps.bulk_operations and len(requests) > 1:
            replies, unavailable = self._bulk(requests)
        else:
            replies, unavailable = self._singly(requests)
        self._settle(replies, report)
        if unavailable is not None:
            raise unavailable

    def _request(self, action: Action) -> Request:
        """The HTTP request that carries ``action`` out; ``PermanentError`` when none can."""
        kind, known = action.kind, self.known
        self._check_schemas(action)
        name = sponsor(action)
        manager = known.managers.get(name or "")
        note = lookup_note(known, name, self.name)
        if kind is ActionKind.CREATE:
            data = mapping.new_user(action, known.prefix, manager)
            return Request(action, "POST", "/Users", data, note=note)
        user = known.user_id(action)
        if user is None:
            raise PermanentError(f"{self.name}: {action.username} has no SCIM id (not created)")
        if kind is ActionKind.DELETE:
            return Request(action, "DELETE", f"/Users/{user}", version=known.versions.get(user))
        return self._modify(action, user, manager, note)

    def _check_schemas(self, action: Action) -> None:
        """Refuse attributes of extensions the server does not declare for users."""
        undeclared = sorted(
            path
            for path in action.changes
            if (schema := mapping.split(path)[0]) and schema not in self.known.caps.extensions
        )
        if undeclared:
            raise PermanentError(
                f"{self.name}: the service provider declares no schema for "
                f"{', '.join(undeclared)}; remove them from targets.{action.target}.attributes"
            )

    def _modify(self, action: Action, user: str, manager: str | None, note: str) -> Request:
        """A PATCH (or, without PATCH, a PUT of the user as read) of an existing user."""
        kind, known, path = action.kind, self.known, f"/Users/{user}"
        unresolved = sponsor(action) in known.unresolved
        if kind is ActionKind.UPDATE:
            # A sponsor who could not be looked up leaves the manager as it is.
            changes = without_manager(action.changes) if unresolved else action.changes
            current = mapping.read(known.users.get(user, {}), mapping.MANAGER)
            operations = mapping.attribute_operations(changes, manager, bool(current))
        elif kind in (ActionKind.ENABLE, ActionKind.DISABLE):
            operations = mapping.active_operations(kind is ActionKind.ENABLE)
        else:
            raise PermanentError(f"{self.name}: SCIM has no equivalent of {kind.value}")
        if not operations and unresolved:
            raise PermanentError(f"{self.name}: {note}")
        if not operations:
            return Request(action, "", path, note=note or "nothing to change")
        if known.caps.patch:
            data = mapping.patch(operations)
            return Request(action, "PATCH", path, data, known.versions.get(user), note)
        if user not in known.users:
            raise PermanentError(f"{self.name}: no copy of {action.username} to PUT")
        data = mapping.replaced(known.users[user], operations)
        return Request(action, "PUT", path, data, known.versions.get(user), note)

    # -- sending -----------------------------------------------------------------------
    def _singly(
        self, requests: list[Request]
    ) -> tuple[list[tuple[Request, Reply]], TemporaryError | None]:
        """Each request on its own, ``concurrency`` at a time."""
        if len(requests) == 1:
            try:
                return [(requests[0], self._one(requests[0]))], None
            except TemporaryError as exc:
                return [], exc
        futures = [self.session.pool().submit(self._paired, r) for r in requests]
        replies: list[tuple[Request, Reply]] = []
        try:
            gather(futures, replies.append)
        except TemporaryError as exc:
            return replies, exc
        return replies, None

    def _paired(self, request: Request) -> tuple[Request, Reply]:
        return request, self._one(request)

    def _one(self, request: Request) -> Reply:
        caps = self.known.caps
        headers = {"If-Match": request.version} if request.version and caps.etag else {}
        send = partial(_send, request=request, model=caps.user, headers=headers)
        try:
            answer = self.session.call(send, request.notes)
        except PermanentError as exc:
            return Reply(exc.status, detail=str(exc))
        meta = getattr(answer, "meta", None)
        return Reply(
            201 if request.method == "POST" else 200,
            getattr(answer, "id", "") or "",
            getattr(meta, "version", None),
        )

    def _bulk(
        self, requests: list[Request]
    ) -> tuple[list[tuple[Request, Reply]], TemporaryError | None]:
        """Bulk requests within the server's limits, several in parallel."""
        batches = self._batches(requests)
        futures = [self.session.pool().submit(self._bulk_batch, b) for b in batches]
        replies: list[tuple[Request, Reply]] = []
        unavailable: TemporaryError | None = None
        for future in futures:
            done, error = future.result()
            replies += done
            unavailable = error or unavailable
        return replies, unavailable

    def _batches(self, requests: list[Request]) -> list[list[Request]]:
        """As few bulk requests as maxOperations and maxPayloadSize allow: splitting
        them further between workers was slower (a server works through its bulk
        requests on shared CPU; bench/scim_cycle.py), and costs more requests."""
        caps = self.known.caps
        limit = caps.bulk_payload * 9 // 10  # scim2-client re-encodes it, a little longer
        batches: list[list[Request]] = [[]]
        size = _ENVELOPE
        for request in requests:
            length = len(json.dumps(self._operation(request, 0))) + 2
            full = len(batches[-1]) >= caps.bulk_operations or size + length > limit
            if batches[-1] and full:
                batches.append([])
                size = _ENVELOPE
            batches[-1].append(request)
            size += length
        return batches

    def _operation(self, request: Request, index: int) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "bulkId": str(index),
        }
        if request.version and self.known.caps.etag:
            operation["version"] = request.version
        if request.data is not None:
            operation["data"] = request.data
        return operation

    def _bulk_batch(
        self, batch: list[Request]
    ) -> tuple[list[tuple[Request, Reply]], TemporaryError | None]:
        """One bulk request; operations answered 429/503 (or the whole request failing
        temporarily) are sent again, up to ``retries`` times."""
        done: list[tuple[Request, Reply]] = []
        pending = batch
        notes: list[str] = []

        def attempt(scim: SyncSCIMClient) -> None:
            nonlocal pending
            operations = [self._operation(r, i) for i, r in enumerate(pending)]
            body = {"schemas": [mapping.BULK_REQUEST], "Operations": operations}
            # Payloads built here from known shapes; scim2-client re-validating every
            # user costs more than the server's own work on them (0.5 ms a user).
            answer = scim.bulk(body, check_request_payload=False)
            answered = bulk.results(answer)
            sent = [bulk.Sent(o["method"], o["path"], o["bulkId"]) for o in operations]
            matched = bulk.match(sent, answered)
            again: list[tuple[Request, Reply]] = []
            for index, operation in matched.items():
                result = answered[index]
                detail = f"{self.name}: {result.status}: {result.detail}" if result.detail else ""
                reply = Reply(
                    result.status,
                    mapping.id_from_location(result.location),
                    result.version,
                    detail,
                )
                pair = (pending[operation], reply)
                (again if result.status in TEMPORARY_STATUS else done).append(pair)
            # An operation no result is about is sent again, like a 503.
            taken = set(matched.values())
            unanswered = [r for i, r in enumerate(pending) if i not in taken]
            pending = [r for r, _ in again] + unanswered
            if pending:
                raise TemporaryError(f"{self.name}: {len(pending)} bulk operations not done yet")

        try:
            self.session.call(attempt, notes)
        except TemporaryError as exc:
            return self._with_notes(done, notes), exc
        except PermanentError as exc:  # the bulk request as a whole was refused
            done += [(r, Reply(exc.status, detail=str(exc))) for r in pending]
        return self._with_notes(done, notes), None

    @staticmethod
    def _with_notes(
        replies: list[tuple[Request, Reply]], notes: list[str]
    ) -> list[tuple[Request, Reply]]:
        for request, _ in replies:
            request.notes += notes
        return replies

    # -- outcomes ----------------------------------------------------------------------
    def _settle(self, replies: list[tuple[Request, Reply]], report: Report) -> None:
        refused = [r for r, reply in replies if r.method == "POST" and reply.status == 409]
        claimed = self._claim(refused) if refused else {}
        for request, reply in replies:
            ok, detail, ref = claimed.get(id(request)) or self._verdict(request, reply)
            extra = [request.note, retried(request.notes)]
            report(Outcome(request.action, ok, "; ".join(filter(None, [detail, *extra])), ref))

    def _verdict(self, request: Request, reply: Reply) -> Verdict:
        user = reply.id or self.known.user_id(request.action)
        if 200 <= reply.status < 300:
            self._remember(request, reply)
            return True, "", user
        if request.method == "DELETE" and reply.status == 404:
            return True, "already absent", user
        return False, reply.detail or f"{self.name}: answered {reply.status}", user

    def _remember(self, request: Request, reply: Reply) -> None:
        known, action = self.known, request.action
        if request.method == "POST":
            known.ids[action.person] = reply.id
            known.users[reply.id] = dict(request.data or {}, id=reply.id)
        user = reply.id or known.user_id(action) or ""
        if reply.version:
            known.versions[user] = reply.version
        else:
            # Written by us without a new ETag: the old one would refuse our next write.
            known.versions.pop(user, None)
        if request.method == "PATCH" and user in known.users and request.data:
            operations = request.data["Operations"]
            known.users[user] = mapping.replaced(known.users[user], operations)
        elif request.method == "PUT" and request.data:
            known.users[user] = dict(request.data, id=user)

    def _claim(self, requests: list[Request]) -> dict[int, Verdict]:
        """Creates answered 409: ours when the user in the way carries this person's
        externalId (an earlier attempt went through), a conflict otherwise."""
        try:
            found = self.session.find(
                self.known.caps.user, "userName", [r.action.username for r in requests]
            )
        except TargetError as exc:
            why = f"answered 409, and the user in the way could not be read: {exc}"
            return {id(r): (None, why, None) for r in requests}
        by_name: dict[str, list[dict[str, Any]]] = {}
        for resource in found:
            by_name.setdefault(str(resource.get("userName", "")).lower(), []).append(resource)
        out: dict[int, Verdict] = {}
        for request in requests:
            action = request.action
            users = by_name.get(action.username.lower(), [])
            mine = [u for u in users if u.get("externalId") == self.known.prefix + action.person]
            if mine:
                user = str(mine[0]["id"])
                self.known.ids[action.person] = user
                self.known.users[user] = mine[0]
                out[id(request)] = (True, "already created by an earlier attempt", user)
                continue
            other = users[0] if users else {}
            out[id(request)] = (
                False,
                f"conflict: userName {action.username!r} is taken by {_holder(users)}; "
                "it is not adopted",
                str(other.get("id", "")) or None,
            )
        return out


def _holder(users: list[dict[str, Any]]) -> str:
    """Who holds a userName that a create was refused (409) for."""
    if not users:
        # SCIMMY compares userName with case: "Ana.Lopez" is not found as "ana.lopez".
        return "a user that a filter on userName does not find (in another case?)"
    owner = users[0].get("externalId")
    return f"an unmanaged user ({f'externalId {owner!r}' if owner else 'no externalId'})"


def _send(
    scim: SyncSCIMClient, request: Request, model: type[Resource[Any]], headers: dict[str, str]
) -> Any:
    """One request on its own, the payload checked against the server's schema."""
    if request.method == "POST":
        return scim.create(model, request.data)
    if request.method == "PATCH":
        patch = PatchOp[model].model_validate(request.data)  # type: ignore[valid-type]
        return scim.modify(model, _id(request), patch, headers=headers)
    if request.method == "PUT":
        return scim.replace(model, model.model_validate(request.data), headers=headers)
    return scim.delete(model, _id(request), headers=headers)


def _id(request: Request) -> str:
    return request.path.rsplit("/", 1)[-1]
