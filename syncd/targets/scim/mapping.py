"""SCIM payloads for plan actions and observed values from SCIM resources. Pure.

Used by ``targets.scim.target`` (observation), ``targets.scim.readback`` (verification)
and ``targets.scim.writes`` (changes).
Resources are the JSON objects of RFC 7643 as plain dicts. Template names
(``targets.*.attributes``) are attribute paths as RFC 7644 §3.5.2 writes them:
``displayName``, ``name.givenName``, ``urn:...:enterprise:2.0:User:organization``.
Two are special: ``emails`` is one primary work address, and the enterprise
``manager`` holds the sponsor's e-mail on our side and ``{"value": <the sponsor's
SCIM id>}`` on the wire.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from scim2_models import ScimFilter

from syncd.config import ENTERPRISE_USER
from syncd.core.model import Action, ObservedAccount

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
EMAILS = "emails"
MANAGER = f"{ENTERPRISE_USER}:manager"
_FILTER_CHARS = 4000  # about 5.5 kB once URL-encoded


def split(path: str) -> tuple[str, list[str]]:
    """The schema URN of a path ("" for the core schema) and its attribute names."""
    if path.startswith("urn:"):
        schema, attribute = path.rsplit(":", 1)
        return schema, attribute.split(".")
    return "", path.split(".")


def _get(node: Any, name: str) -> Any:
    """An attribute of a JSON object; names are case-insensitive (RFC 7643 §2.1)."""
    if not isinstance(node, dict):
        return None
    if name in node:
        return node[name]
    lowered = name.lower()
    return next((v for k, v in node.items() if k.lower() == lowered), None)


def read(resource: Mapping[str, Any], path: str) -> Any:
    schema, names = split(path)
    node: Any = _get(resource, schema) if schema else resource
    for name in names:
        node = _get(node, name)
    return node


def primary_email(value: Any) -> tuple[str, ...]:
    """The primary address of an ``emails`` value, else the work one, else the first."""
    emails = [e for e in value if _get(e, "value")] if isinstance(value, list) else []
    chosen = (
        next((e for e in emails if _get(e, "primary") is True), None)
        or next((e for e in emails if _get(e, "type") == "work"), None)
        or (emails[0] if emails else None)
    )
    return (str(_get(chosen, "value")),) if chosen else ()


def identity(resource: Mapping[str, Any]) -> str:
    """How a sponsor names a user: their primary e-mail, else their userName."""
    emails = primary_email(_get(resource, "emails"))
    return emails[0] if emails else str(_get(resource, "userName") or "")


def observed(
    resource: Mapping[str, Any], path: str, managers: Mapping[str, str]
) -> tuple[str, ...]:
    """A templated attribute as the planner compares it; ``managers`` maps user ids to
    their identity (an unknown id stays as it is, so that it differs and is fixed)."""
    value = read(resource, path)
    if path == EMAILS:
        return primary_email(value)
    if path == MANAGER:
        manager = _get(value, "value")
        return (managers.get(str(manager), str(manager)),) if manager else ()
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, str | int | float) and value != "":
        return (str(value),)
    return ()


def account(
    resource: Mapping[str, Any],
    prefix: str,
    paths: Iterable[str],
    members: Mapping[str, Collection[str]],
    managers: Mapping[str, str],
) -> ObservedAccount | None:
    """A user as the planner sees it, None when it is not managed (its ``externalId``
    lacks ``prefix``; checked here too, for servers whose ``sw`` ignores case).
    ``members``: user id -> the managed groups (configured names) that hold it."""
    external = str(resource.get("externalId") or "")
    if not external.startswith(prefix):
        return None
    ref = str(resource["id"])
    return ObservedAccount(
        key=external[len(prefix) :].lower(),
        ref=ref,
        username=str(resource.get("userName") or ""),
        enabled=resource.get("active") is not False,
        expiry=None,  # SCIM has no account end date
        # The password is write-only in SCIM (RFC 7643 §4.1.1): nothing to observe,
        # so nothing to revoke; active=false is what ends access.
        has_credentials=False,
        groups=frozenset(members.get(ref, ())),
        attributes={path: observed(resource, path, managers) for path in paths},
    )


def wire(path: str, values: tuple[str, ...], manager: str | None) -> Any:
    """The JSON value sent for a rendered template, None to remove the attribute."""
    if not values:
        return None
    if path == EMAILS:
        return [{"value": values[0], "type": "work", "primary": True}]
    if path == MANAGER:
        return {"value": manager} if manager else None
    return values[0]


def put(resource: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in a resource, declaring an extension's schema when it is used."""
    schema, names = split(path)
    node = resource
    if schema:
        schemas = resource.setdefault("schemas", [CORE_USER])
        if schema not in schemas:
            schemas.append(schema)
        node = resource.setdefault(schema, {})
    for name in names[:-1]:
        node = node.setdefault(name, {})
    if value is None:
        node.pop(names[-1], None)
    else:
        node[names[-1]] = value


def new_user(action: Action, prefix: str, manager: str | None) -> dict[str, Any]:
    """The resource POSTed for a create: ``externalId`` marks it as ours."""
    resource: dict[str, Any] = {
        "schemas": [CORE_USER],
        "userName": action.username,
        "externalId": prefix + action.person,
        "active": True,
    }
    for path, values in sorted(action.changes.items()):
        value = wire(path, values, manager)
        if value is not None:
            put(resource, path, value)
    return resource


def patch(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": operations}


def attribute_operations(
    changes: Mapping[str, tuple[str, ...]], manager: str | None, has_manager: bool
) -> list[dict[str, Any]]:
    """Replace or remove exactly the changed attributes. A sponsor who is no user of
    the service provider removes a manager that is set and leaves an unset one alone."""
    operations: list[dict[str, Any]] = []
    for path, values in sorted(changes.items()):
        value = wire(path, values, manager)
        if value is not None:
            operations.append({"op": "replace", "path": path, "value": value})
        elif path != MANAGER or has_manager:
            operations.append({"op": "remove", "path": path})
    return operations


def active_operations(active: bool) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "active", "value": active}]


def member_operations(add: bool, ids: list[str]) -> list[dict[str, Any]]:
    if add:
        return [{"op": "add", "path": "members", "value": [{"value": i} for i in ids]}]
    return [{"op": "remove", "path": f"members[{any_of('value', ids)}]"}]


def replaced(resource: Mapping[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The resource PUT in place of a PATCH, for service providers without PATCH.
    Only the operations built here occur: replace/remove of plain paths."""
    out = copy.deepcopy({k: v for k, v in resource.items() if k != "meta"})
    for operation in operations:
        put(out, operation["path"], operation.get("value"))
    return out


def any_of(attribute: str, values: Iterable[str]) -> str:
    """A filter matching any of ``values``, each quoted so it stays a value."""
    return " or ".join(f"{attribute} eq {ScimFilter.quote(v)}" for v in values)


def any_of_filters(attribute: str | tuple[str, ...], values: Iterable[str]) -> list[str]:
    """Filters matching any of ``values`` (in any of the attributes, when several are
    given) together, each short enough for a URL (servers commonly refuse request
    lines over 8 kB)."""
    attributes = (attribute,) if isinstance(attribute, str) else attribute
    filters: list[str] = []
    terms: list[str] = []
    size = 0
    for value in values:
        quoted = ScimFilter.quote(value)
        term = " or ".join(f"{name} eq {quoted}" for name in attributes)
        if terms and size + len(term) > _FILTER_CHARS:
            filters.append(" or ".join(terms))
            terms, size = [], 0
        terms.append(term)
        size += len(term) + len(" or ")
    return [*filters, " or ".join(terms)] if terms else filters


def id_from_location(location: str | None) -> str:
    """The id at the end of a resource's location URL."""
    return (location or "").rstrip("/").rsplit("/", 1)[-1]
