"""Which operation of a ``/Bulk`` request each result of its answer is about (RFC 7644
§3.7.3). Pure: no I/O.

Called by ``targets.scim.writes`` for every bulk answer. RFC 7644 makes ``bulkId``
required only for POST operations, in the request and in their results; for the other
methods servers differ (scim2-server echoes the ``bulkId`` sent, SCIMMY never returns
one), while every non-POST result is to carry the ``location`` of its resource. So a
result is matched to an operation sent, in this order:

1. by ``bulkId``, when it carries one that was sent: the only way for a POST, whose
   ``location`` names a resource the request could not name;
2. for another method, by method and resource: its ``location`` (absolute) or
   ``path`` names the same ``/Type/id`` as the operation's path; several operations on
   one resource are taken in the order sent;
3. for another method, when it names no resource at all, by position: the *n*-th
   result is about the *n*-th operation when that one has the same method and no
   result yet (results come in the order of the operations, and a request stopped by
   ``failOnErrors`` still answers its first operations in that order).

Anything else is matched to nothing. The caller sends an operation that no result is
about again, as if it had been answered 503: nothing it did is ever assumed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Sent:
    """One operation of a bulk request, as sent."""

    method: str  # POST, PATCH, PUT, DELETE
    path: str  # relative to the base URL: /Users or /Users/{id}
    bulk_id: str


@dataclass(frozen=True)
class Result:
    """One result of a bulk answer (``Operations`` of a BulkResponse)."""

    method: str  # "" when the server left it out
    status: int  # 0 when the server left it out
    bulk_id: str | None = None
    location: str | None = None  # the resource's URL (absolute, as the RFC says)
    path: str | None = None  # a path some servers echo instead of a location
    version: str | None = None
    detail: str = ""  # the error's detail, for a failed operation


def results(answer: Any) -> list[Result]:
    """The results of a scim2-client bulk answer (a ``BulkResponse``; anything else
    holds none)."""
    out = []
    for operation in getattr(answer, "operations", None) or []:
        method = operation.method
        error = operation.response
        out.append(
            Result(
                str(getattr(method, "value", method) or "").upper(),
                int(operation.status or 0),
                str(operation.bulk_id) if operation.bulk_id is not None else None,
                operation.location,
                operation.path,
                operation.version,
                str(getattr(error, "detail", "") or "") if error is not None else "",
            )
        )
    return out


def match(sent: Sequence[Sent], answered: Sequence[Result]) -> dict[int, int]:
    """Index of each result that is about an operation sent -> index of that operation."""
    matched: dict[int, int] = {}
    for step in (_by_bulk_id, _by_resource, _by_position):
        step(sent, answered, matched)
    return matched


def _by_bulk_id(sent: Sequence[Sent], answered: Sequence[Result], matched: dict[int, int]) -> None:
    by_bulk_id = {operation.bulk_id: number for number, operation in enumerate(sent)}
    taken = set(matched.values())
    for index, result in enumerate(answered):
        operation = by_bulk_id.get(result.bulk_id) if result.bulk_id is not None else None
        if operation is not None and operation not in taken:
            matched[index] = operation
            taken.add(operation)


def _by_resource(sent: Sequence[Sent], answered: Sequence[Result], matched: dict[int, int]) -> None:
    taken = set(matched.values())
    waiting: dict[tuple[str, tuple[str, str] | None], deque[int]] = {}
    for number, operation in enumerate(sent):
        if operation.method != "POST" and number not in taken:
            waiting.setdefault((operation.method, resource(operation.path)), deque()).append(number)
    for index, result in enumerate(answered):
        named = resource(result.location or result.path)
        if index in matched or result.method == "POST" or named is None:
            continue
        queue = waiting.get((result.method, named))
        if queue:
            matched[index] = queue.popleft()


def _by_position(sent: Sequence[Sent], answered: Sequence[Result], matched: dict[int, int]) -> None:
    taken = set(matched.values())
    for index, result in enumerate(answered):
        if index in matched or index in taken or index >= len(sent):
            continue
        unnamed = resource(result.location or result.path) is None
        if unnamed and result.method == sent[index].method != "POST":
            matched[index] = index
            taken.add(index)


def resource(where: str | None) -> tuple[str, str] | None:
    """The resource type and id a URL or path names (``…/Users/abc`` -> ("users",
    "abc")); None when it names none."""
    if not where:
        return None
    parts = [unquote(part) for part in urlsplit(where).path.split("/") if part]
    if len(parts) < 2:
        return None
    return parts[-2].lower(), parts[-1]
