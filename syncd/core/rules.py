"""The rules a contract record must pass, field by field, each failure a ``Reject``
with the field, the reason and the fix. Pure.

Called by ``core.contracts``: every record a quick check cannot vouch for is checked
here, which accepts it or names its first problem. First, every text field
(``TEXT_FIELDS``) must hold a single value (roles: a list of them; attributes: a mapping
of names to them), of at most its length in characters (``Policy.max_length``) and
without a character ``core.text`` forbids: one oversized or hostile value makes its own
record invalid, never the cycle of everyone else. Messages quote values only once they
passed these checks. Then the record must make a contract (``contract``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType

from syncd.core.model import Contract, Status
from syncd.core.policy import Policy
from syncd.core.text import default_username, first_forbidden
from syncd.core.timeutil import format_duration, parse_instant

EMAIL = re.compile(r"^[^@\s,;<>()\"]+@[^@\s,;<>()\"]+\.[^@\s,;<>()\"]+$")
_ROLE_SPLIT = re.compile(r"[;,|]")
REQUIRED = ("id", "email", "given_name", "family_name", "roles", "start", "end")
# The fields checked for shape, length and characters, in this order
TEXT_FIELDS = (
    "id",
    "person",
    "email",
    "given_name",
    "family_name",
    "username",
    "vendor",
    "sponsor",
    "approved_by",
    "roles",
    "status",
    "start",
    "end",
    "terminated_at",
    "attributes",
)
_SCALARS = (str, int, float, date)  # bool is an int, datetime a date


class Reject(Exception):
    """Why a record is invalid: the field, the reason and how to fix it."""

    def __init__(self, field: str, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.field, self.reason, self.fix = field, reason, fix


def check_values(fields: Mapping[str, object], policy: Policy) -> None:
    """``Reject`` for the first text field holding something else than a single value,
    a value over its length, or a forbidden character. Attributes are checked name by
    name when they are a mapping (``contract`` rejects anything else)."""
    for name in TEXT_FIELDS:
        value = fields.get(name)
        if name == "roles" and isinstance(value, list):
            for item in value:
                _check_value(name, item, policy)
        elif name == "attributes":
            if isinstance(value, Mapping):
                for key, item in value.items():
                    _check_value(name, key, policy, what="an attribute name")
                    _check_value(f"attributes.{key}", item, policy, limit="attributes")
        else:
            _check_value(name, value, policy)


def _check_value(
    field: str, value: object, policy: Policy, *, limit: str = "", what: str = "the value"
) -> None:
    if value is None:
        return
    if not isinstance(value, _SCALARS):
        kind = "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"
        raise Reject(
            field,
            f"{what} is {kind}, not a single value",
            "give a single text value (nested lists and mappings are not accepted)",
        )
    text = value if isinstance(value, str) else str(value)
    limit = limit or field
    most = policy.max_length(limit)
    if len(text) > most:
        setting = (
            f"policy.field_lengths.{limit}"
            if limit in policy.field_lengths
            else "policy.max_field_length"
        )
        raise Reject(
            field,
            f"{what} is {len(text)} characters long, over the limit of {most} ({setting})",
            f"shorten it in the source, or raise {setting}",
        )
    bad = first_forbidden(text)
    if bad is not None:
        position, point = bad
        raise Reject(
            field,
            f"{what} holds {_kind_of(point)} {point} at character {position + 1}",
            "remove it from the value in the source: control characters, line "
            "separators and bidirectional controls are never accepted",
        )


def _kind_of(point: str) -> str:
    number = int(point[2:], 16)
    if number in (0x2028, 0x2029):
        return "the separator"
    if number >= 0x202A:
        return "the bidirectional control"
    return "the control character"


def as_text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def person_hint(fields: Mapping[str, object]) -> str:
    """The person a record is about, even when the record is invalid (protects them)."""
    person = as_text(fields.get("person")) or as_text(fields.get("email"))
    return person.lower()


def contract(f: Mapping[str, object], origin: str, policy: Policy) -> Contract:
    """The contract a record's fields make (``check_values`` passed); ``Reject`` names the
    first problem, checked in the order of the fields (required fields, e-mail, roles,
    dates, status, attributes, username)."""
    for name in REQUIRED:
        value = f.get(name)
        empty = not value if isinstance(value, list) else not as_text(value)
        if empty:
            raise Reject(name, "required field is missing or empty", f"add {name}")
    email = as_text(f["email"])
    if not EMAIL.match(email):
        raise Reject("email", f"{email!r} is not an e-mail address", "use name@domain")
    given, family = as_text(f["given_name"]), as_text(f["family_name"])
    roles = parse_roles(f["roles"], policy)
    start, end = _period(f, policy)
    status = parse_status(f.get("status"))
    terminated_at = None
    if f.get("terminated_at") not in (None, ""):
        terminated_at = _instant(f, "terminated_at", policy, end_of_day=False)
    attributes = f.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise Reject("attributes", "must be a mapping of names to values", "use key: value")
    values = {
        "given_name": given,
        "family_name": family,
        "email": email,
        "email_local": email.split("@", 1)[0],
    }
    return Contract(
        id=as_text(f["id"]),
        person=person_hint(f),
        email=email,
        given_name=given,
        family_name=family,
        username=_username(f, policy, values),
        roles=roles,
        start=start,
        end=end,
        status=status,
        terminated_at=terminated_at,
        vendor=as_text(f.get("vendor")),
        sponsor=as_text(f.get("sponsor")),
        approved_by=as_text(f.get("approved_by")),
        attributes=MappingProxyType({str(k): as_text(v) for k, v in attributes.items()}),
        origin=origin,
    )


def _period(f: Mapping[str, object], policy: Policy) -> tuple[datetime, datetime]:
    """Start and (exclusive) end, checked against each other and policy.max_duration."""
    start = _instant(f, "start", policy, end_of_day=False)
    end = _instant(f, "end", policy, end_of_day=True)
    if end <= start:
        raise Reject("end", f"end {f['end']} is not after start {f['start']}", "fix the dates")
    if policy.max_duration is not None and end - start > policy.max_duration:
        raise Reject(
            "end",
            f"contract lasts {format_duration(end - start)}, over policy.max_duration "
            f"{format_duration(policy.max_duration)}",
            "split the contract or raise policy.max_duration",
        )
    return start, end


def parse_status(value: object) -> Status:
    status_text = as_text(value).lower() or Status.ACTIVE.value
    try:
        return Status(status_text)
    except ValueError as exc:
        raise Reject(
            "status", f"unknown status {status_text!r}", "use active, cancelled or terminated"
        ) from exc


def _username(f: Mapping[str, object], policy: Policy, values: Mapping[str, str]) -> str:
    """The record's username, or the policy's template rendered; checked by its pattern."""
    username = as_text(f.get("username")) or default_username(policy.username_template, values)
    if not policy.username_pattern.fullmatch(username):
        raise Reject(
            "username",
            f"{username!r} does not match policy.username.pattern "
            f"{policy.username_pattern.pattern!r}",
            "set an explicit username or adjust policy.username",
        )
    return username


def parse_roles(value: object, policy: Policy) -> tuple[str, ...]:
    items = value if isinstance(value, list) else _ROLE_SPLIT.split(as_text(value))
    roles = tuple(sorted({as_text(r) for r in items if as_text(r)}))
    if not roles:
        raise Reject("roles", "no role given", "list at least one role")
    unknown = [r for r in roles if r not in policy.roles]
    if unknown:
        known = ", ".join(sorted(policy.roles)) or "none defined"
        raise Reject(
            "roles", f"unknown role {unknown[0]!r}", f"use one of: {known}, or define it in roles:"
        )
    return roles


def _instant(f: Mapping[str, object], name: str, policy: Policy, *, end_of_day: bool) -> datetime:
    try:
        return parse_instant(f[name], policy.timezone, end_of_day=end_of_day)
    except (ValueError, OverflowError) as exc:  # 9999-12-31 ends after the last datetime
        raise Reject(name, str(exc), "use 2027-02-28 or 2027-02-28T18:00:00+01:00") from exc
