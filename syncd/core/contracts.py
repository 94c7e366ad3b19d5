"""Validate raw source records into ``Contract`` values, one reason per rejected record.

Pure. Called by ``syncd.engine`` with the records a source read (already mapped onto the
canonical field names of SPEC §2) and the policy. A rejected record never stops the rest.

Before anything else, every text field (``TEXT_FIELDS``) must hold a single value (roles:
a list of them; attributes: a mapping of names to them), of at most its length in
characters (``Policy.max_length``) and without a character ``core.text`` forbids: one
oversized or hostile value makes its own record invalid, never the cycle of everyone
else. Messages quote values only once they passed these checks.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from syncd.core.model import Contract, InvalidRecord, Status
from syncd.core.policy import Policy
from syncd.core.text import clipped, first_forbidden
from syncd.core.timeutil import format_duration, parse_instant

_EMAIL = re.compile(r"^[^@\s,;<>()\"]+@[^@\s,;<>()\"]+\.[^@\s,;<>()\"]+$")
_ROLE_SPLIT = re.compile(r"[;,|]")
_TEMPLATE_FIELD = re.compile(r"\{([a-z_]+)\}")
# Letters that Unicode decomposition does not reduce to ASCII, spelled as people do.
_LETTERS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "þ": "th",
        "Þ": "Th",
        "Ð": "D",
        "ı": "i",
    }
)
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


@dataclass(frozen=True)
class RawRecord:
    """A record as a source read it: canonical field names, values as parsed."""

    origin: str
    fields: Mapping[str, object]


class _Reject(Exception):
    def __init__(self, field: str, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.field, self.reason, self.fix = field, reason, fix


def validate(
    records: Iterable[RawRecord], policy: Policy
) -> tuple[list[Contract], list[InvalidRecord]]:
    """Split records into valid contracts and invalid records (source order kept)."""
    records = list(records)
    ids = Counter(_text(r.fields.get("id")) for r in records)
    contracts: list[Contract] = []
    invalid: list[InvalidRecord] = []
    for record in records:
        cid = _text(record.fields.get("id"))
        person = _person_hint(record.fields)
        try:
            _check_values(record.fields, policy)
            if cid and ids[cid] > 1:
                raise _Reject(
                    "id",
                    f"contract id {cid!r} appears {ids[cid]} times",
                    "give every contract its own id; all copies are ignored until then",
                )
            contracts.append(_contract(record, policy))
        except _Reject as rej:
            listed_id = clipped(cid, policy.max_length("id"))
            invalid.append(
                InvalidRecord(record.origin, listed_id, person, rej.field, rej.reason, rej.fix)
            )
    return contracts, invalid


def _check_values(fields: Mapping[str, object], policy: Policy) -> None:
    """``_Reject`` for the first text field holding something else than a single value,
    a value over its length, or a forbidden character. Attributes are checked name by
    name when they are a mapping (``_contract`` rejects anything else)."""
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
        raise _Reject(
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
        raise _Reject(
            field,
            f"{what} is {len(text)} characters long, over the limit of {most} ({setting})",
            f"shorten it in the source, or raise {setting}",
        )
    bad = first_forbidden(text)
    if bad is not None:
        position, point = bad
        raise _Reject(
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


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _person_hint(fields: Mapping[str, object]) -> str:
    """The person a record is about, even when the record is invalid (protects them)."""
    person = _text(fields.get("person")) or _text(fields.get("email"))
    return person.lower()


def _contract(record: RawRecord, policy: Policy) -> Contract:
    """The contract a record holds; ``_Reject`` names the first problem, checked in the
    order of the fields (required fields, e-mail, roles, dates, status, attributes,
    username)."""
    f = record.fields
    for name in REQUIRED:
        value = f.get(name)
        empty = not value if isinstance(value, list) else not _text(value)
        if empty:
            raise _Reject(name, "required field is missing or empty", f"add {name}")
    email = _text(f["email"])
    if not _EMAIL.match(email):
        raise _Reject("email", f"{email!r} is not an e-mail address", "use name@domain")
    given, family = _text(f["given_name"]), _text(f["family_name"])
    roles = _roles(f["roles"], policy)
    start, end = _period(f, policy)
    status = _status(f)
    terminated_at = None
    if f.get("terminated_at") not in (None, ""):
        terminated_at = _instant(f, "terminated_at", policy, end_of_day=False)
    attributes = f.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise _Reject("attributes", "must be a mapping of names to values", "use key: value")
    values = {
        "given_name": given,
        "family_name": family,
        "email": email,
        "email_local": email.split("@", 1)[0],
    }
    return Contract(
        id=_text(f["id"]),
        person=_person_hint(f),
        email=email,
        given_name=given,
        family_name=family,
        username=_username(f, policy, values),
        roles=roles,
        start=start,
        end=end,
        status=status,
        terminated_at=terminated_at,
        vendor=_text(f.get("vendor")),
        sponsor=_text(f.get("sponsor")),
        approved_by=_text(f.get("approved_by")),
        attributes=MappingProxyType({str(k): _text(v) for k, v in attributes.items()}),
        origin=record.origin,
    )


def _period(f: Mapping[str, object], policy: Policy) -> tuple[datetime, datetime]:
    """Start and (exclusive) end, checked against each other and policy.max_duration."""
    start = _instant(f, "start", policy, end_of_day=False)
    end = _instant(f, "end", policy, end_of_day=True)
    if end <= start:
        raise _Reject("end", f"end {f['end']} is not after start {f['start']}", "fix the dates")
    if policy.max_duration is not None and end - start > policy.max_duration:
        raise _Reject(
            "end",
            f"contract lasts {format_duration(end - start)}, over policy.max_duration "
            f"{format_duration(policy.max_duration)}",
            "split the contract or raise policy.max_duration",
        )
    return start, end


def _status(f: Mapping[str, object]) -> Status:
    status_text = _text(f.get("status")).lower() or Status.ACTIVE.value
    try:
        return Status(status_text)
    except ValueError as exc:
        raise _Reject(
            "status", f"unknown status {status_text!r}", "use active, cancelled or terminated"
        ) from exc


def _username(f: Mapping[str, object], policy: Policy, values: Mapping[str, str]) -> str:
    """The record's username, or the policy's template rendered; checked by its pattern."""
    username = _text(f.get("username")) or default_username(policy.username_template, values)
    if not policy.username_pattern.fullmatch(username):
        raise _Reject(
            "username",
            f"{username!r} does not match policy.username.pattern "
            f"{policy.username_pattern.pattern!r}",
            "set an explicit username or adjust policy.username",
        )
    return username


def _roles(value: object, policy: Policy) -> tuple[str, ...]:
    items = value if isinstance(value, list) else _ROLE_SPLIT.split(_text(value))
    roles = tuple(sorted({_text(r) for r in items if _text(r)}))
    if not roles:
        raise _Reject("roles", "no role given", "list at least one role")
    unknown = [r for r in roles if r not in policy.roles]
    if unknown:
        known = ", ".join(sorted(policy.roles)) or "none defined"
        raise _Reject(
            "roles", f"unknown role {unknown[0]!r}", f"use one of: {known}, or define it in roles:"
        )
    return roles


def _instant(f: Mapping[str, object], name: str, policy: Policy, *, end_of_day: bool) -> datetime:
    try:
        return parse_instant(f[name], policy.timezone, end_of_day=end_of_day)
    except ValueError as exc:
        raise _Reject(name, str(exc), "use 2027-02-28 or 2027-02-28T18:00:00+01:00") from exc


def default_username(template: str, values: Mapping[str, str]) -> str:
    """Render ``policy.username.template``: ASCII-folded, lower-case, no spaces."""

    def field(match: re.Match[str]) -> str:
        return values.get(match.group(1), "")

    rendered = _TEMPLATE_FIELD.sub(field, template).translate(_LETTERS)
    folded = unicodedata.normalize("NFKD", rendered).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9._-]", "", folded.lower())
