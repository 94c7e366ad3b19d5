"""Validate raw source records into ``Contract`` values, one reason per rejected record.

Pure. Called by ``syncd.engine`` with the records a source read (already mapped onto the
canonical field names of SPEC §2) and the policy. A rejected record never stops the rest.
The rules are those of ``core.rules``, field by field.

A large source is validated a few thousand records at a time, column by column first
(``_Fast``): the values of one field in all of them measured against its limit, searched
for forbidden characters, stripped and checked in a few calls, each distinct roles, date
and status value parsed once. A record that does not pass that way untouched is checked
by ``core.rules`` field by field, which accepts it or names its first problem: the
quick way never accepts what the rules refuse, nor changes a message.
"""

from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from itertools import chain, compress, repeat
from operator import is_, not_
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from syncd.core.model import Contract, InvalidRecord
from syncd.core.policy import Policy
from syncd.core.rules import (
    EMAIL,
    REQUIRED,
    TEXT_FIELDS,
    Reject,
    as_text,
    check_values,
    contract,
    parse_roles,
    parse_status,
    person_hint,
)
from syncd.core.text import (
    clipped,
    default_username,
    folded_each,
    has_forbidden,
    username_format,
)
from syncd.core.timeutil import parse_instant

__all__ = ["REQUIRED", "TEXT_FIELDS", "RawRecord", "default_username", "validate"]

_EMAILS = re.compile(EMAIL.pattern, re.MULTILINE)  # one per line, and no more
# The fields of a single value, and those of them a contract holds stripped
_SINGLE = tuple(name for name in TEXT_FIELDS if name not in ("roles", "attributes"))
_STRIPPED: tuple[str, ...] = ("person", "email", "given_name", "family_name", "username")
_STRIPPED += ("vendor", "sponsor", "approved_by")
_PLAIN = frozenset({str, int, float, bool, date, datetime})  # their text is str() of them
_CHUNK = 4096  # records validated together: their columns stay small and in cache
_CACHED = 1 << 16  # distinct values a cache of one validation holds at most
_MISS = object()
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_NO_FIELDS: dict[str, object] = {}
Column = Sequence[Any]


@dataclass(slots=True)
class RawRecord:
    """A record as a source read it: canonical field names, values as parsed. Not frozen:
    a reader makes one per row, and a frozen dataclass costs three times as much to make
    (50,000 rows: 50 ms against 14 ms); nothing changes a record once it is made."""

    origin: str
    fields: Mapping[str, object]


def validate(
    records: Iterable[RawRecord], policy: Policy
) -> tuple[list[Contract], list[InvalidRecord]]:
    """Split records into valid contracts and invalid records (source order kept)."""
    records = records if isinstance(records, list) else list(records)
    cids = [as_text(r.fields.get("id")) for r in records]
    ids = Counter(cids)
    fast = _Fast(policy, ids)
    contracts: list[Contract] = []
    invalid: list[InvalidRecord] = []
    with _collector_paused():
        for start in range(0, len(records), _CHUNK):
            part, part_ids = records[start : start + _CHUNK], cids[start : start + _CHUNK]
            quick = fast.contracts(part, part_ids)
            for record, cid, made in zip(part, part_ids, quick, strict=True):
                checked = made or _checked(record, cid, ids[cid], policy)
                if isinstance(checked, Contract):
                    contracts.append(checked)
                else:
                    invalid.append(checked)
    return contracts, invalid


def _checked(record: RawRecord, cid: str, copies: int, policy: Policy) -> Contract | InvalidRecord:
    """The contract of one record by the rules of ``core.rules``, or why it is invalid."""
    try:
        check_values(record.fields, policy)
        if cid and copies > 1:
            raise Reject(
                "id",
                f"contract id {cid!r} appears {copies} times",
                "give every contract its own id; all copies are ignored until then",
            )
        return contract(record.fields, record.origin, policy)
    except Reject as rej:
        listed_id = clipped(cid, policy.max_length("id"))
        person = person_hint(record.fields)
        return InvalidRecord(record.origin, listed_id, person, rej.field, rej.reason, rej.fix)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Validation builds a few containers per record and no reference cycles: the cyclic
    collector would walk all records again and again for nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Fast:
    """Contracts of records whose every value passes its column's checks, and the
    caches of one validation."""

    def __init__(self, policy: Policy, ids: Counter[str]) -> None:
        self.policy = policy
        self.ids = ids
        self.username = username_format(policy.username_template)
        self.email_local = "{3}" in self.username
        self.roles = _Cache(partial(_or_none, parse_roles, policy=policy))
        self.statuses = _Cache(partial(_or_none, parse_status))
        zone = policy.timezone
        self.starts = _Cache(partial(_instant, tz=zone, end_of_day=False))
        self.ends = _Cache(partial(_instant, tz=zone, end_of_day=True))

    def contracts(self, records: list[RawRecord], cids: list[str]) -> list[Contract | None]:
        """Per record, its contract if it surely passes every check, else None."""
        unfit, text, roles, attributes = self.columns(records, cids)
        person, email, given, family, username, vendor, sponsor, approved = (
            _stripped(text[name]) for name in _STRIPPED
        )
        usernames = self.usernames(username, given, family, email)
        roles = self.roles.each(roles, [tuple(r) if type(r) is list else r for r in roles])
        status = self.statuses.each(text["status"])
        start, end, terminated, refused = self.periods(
            text["start"], text["end"], text["terminated_at"]
        )
        refusals = zip(
            *(unfit, refused, map(not_, given), map(not_, family)),
            *(map(is_, roles, repeat(None)), map(is_, status, repeat(None))),
            self.addresses_refused(email),
            map(not_, map(self.policy.username_pattern.fullmatch, usernames)),
            strict=True,
        )
        fit = list(map(not_, map(any, refusals)))
        keys = [p or e for p, e in zip(person, email, strict=True)]
        persons = [
            k if k == low else low for k, low in zip(keys, map(str.lower, keys), strict=True)
        ]  # one string, not two, when the key is lower-case
        origins = [r.origin for r in records]
        made = map(
            Contract,  # its fields in their order
            *(compress(values, fit) for values in (cids, persons, email, given, family)),
            *(compress(values, fit) for values in (usernames, roles, start, end, status)),
            *(compress(values, fit) for values in (terminated, vendor, sponsor, approved)),
            *(compress(values, fit) for values in (attributes, origins)),
        )
        return [next(made) if ok else None for ok in fit]

    def columns(
        self, records: list[RawRecord], cids: list[str]
    ) -> tuple[bytearray, dict[str, Column], Column, list[Mapping[str, str]]]:
        """Which records are unfit for the quick way (no id, a duplicate one, or a value
        that fails its check), and the values of their fields."""
        fields = [r.fields if type(r.fields) is dict else _NO_FIELDS for r in records]
        ids = self.ids
        unfit = bytearray(
            not cid or ids[cid] > 1 or type(r.fields) is not dict
            for r, cid in zip(records, cids, strict=True)
        )
        column = _columns(fields)
        text = {name: self.text_column(column(name, ""), name, unfit) for name in _SINGLE}
        roles = self.role_column(column("roles", None), unfit)
        return unfit, text, roles, self.attribute_column(column("attributes", None), unfit)

    def periods(
        self, start: Column, end: Column, terminated: Column
    ) -> tuple[list[Any], list[Any], list[Any], list[bool]]:
        """Start, end and termination time of each record, and whether the rules of
        ``core.rules`` refuse them."""
        starts, ends = self.starts.each(start), self.ends.each(end)
        most = self.policy.max_duration
        refused = [
            s is None or e is None or e <= s or (most is not None and e - s > most)
            for s, e in zip(starts, ends, strict=True)
        ]
        if terminated.count(None) + terminated.count("") == len(terminated):
            return starts, ends, [None] * len(starts), refused
        ats = [None if t in (None, "") else self.starts.one(t, t) for t in terminated]
        refused = [
            no or (at is None and t not in (None, ""))
            for no, at, t in zip(refused, ats, terminated, strict=True)
        ]
        return starts, ends, ats, refused

    def addresses_refused(self, emails: Column) -> Iterable[bool]:
        """Whether the rules refuse each e-mail address (all at once when none is)."""
        if _all_emails(emails):
            return [False] * len(emails)
        return map(not_, map(EMAIL.match, emails))

    def usernames(
        self, username: Column, given: Column, family: Column, email: Column
    ) -> list[str]:
        """Each record's username, or the policy's template rendered for it."""
        local = [e.partition("@")[0] for e in email] if self.email_local else repeat("")
        rendered = list(map(self.username.format, given, family, email, local))
        return [name or made for name, made in zip(username, folded_each(rendered), strict=True)]

    def text_column(self, column: Column, name: str, unfit: bytearray) -> Column:
        """Field ``name`` of the records ("" when absent); those whose value fails its
        check (``rules.check_values``) are marked ``unfit``."""
        limit = self.policy.max_length(name)
        if _texts_fit(column, limit):
            return column
        for index, value in enumerate(column):
            text = "" if value is None else str(value) if type(value) in _PLAIN else None
            if text is None or len(text) > limit or has_forbidden(text):
                unfit[index] = 1
        return column

    def role_column(self, column: Column, unfit: bytearray) -> Column:
        """The roles of the records: text or a list of texts each (else ``unfit``)."""
        limit = self.policy.max_length("roles")
        kinds = set(map(type, column)) - {type(None)}
        if kinds == {list} and _texts_fit(list(chain.from_iterable(filter(None, column))), limit):
            return column
        if kinds <= {str} and _texts_fit(list(filter(None, column)), limit):
            return column
        for index, value in enumerate(column):
            items = [value] if type(value) is str else value if type(value) is list else None
            if value is not None and (items is None or not _texts_fit(items, limit)):
                unfit[index] = 1
        return column

    def attribute_column(self, column: Column, unfit: bytearray) -> list[Mapping[str, str]]:
        """The attributes of the records as their contracts hold them, if they are None
        or a mapping of texts (else the record is ``unfit``)."""
        limit = self.policy.max_length("attributes")
        present: list[Any] = list(filter(None, column))
        if not (set(map(type, column)) <= {dict, type(None)} and _mappings_fit(present, limit)):
            column = list(column)
            for index, value in enumerate(column):
                if value is not None and (type(value) is not dict or not _fits(value, limit)):
                    unfit[index] = 1
                    column[index] = None
            present = list(filter(None, column))
        values = list(chain.from_iterable(map(dict.values, present)))
        if list(map(str.strip, values)) == values:  # nothing to strip: a view of the record's
            return [MappingProxyType(a) if a else _NO_ATTRIBUTES for a in column]
        return [MappingProxyType(_stripped_values(a)) if a else _NO_ATTRIBUTES for a in column]


class _Cache:
    """Values parsed once per validation: ``make`` gives None for one the rules refuse.
    Equal values parse alike (``1``, ``1.0`` and ``True`` are all refused)."""

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make
        self.found: dict[object, Any] = {}

    def each(self, values: Column, keys: Column | None = None) -> list[Any]:
        """What ``values`` parse to (by ``keys``, when they are not the values)."""
        keys = values if keys is None else keys
        try:
            found = list(map(self.found.get, keys, repeat(_MISS)))
        except TypeError:  # a list or mapping, in a record the rules will refuse
            found = [_MISS] * len(keys)
        if _MISS in found:
            for index, (key, value) in enumerate(zip(keys, values, strict=True)):
                if found[index] is _MISS:
                    found[index] = self.one(key, value)
        return found

    def one(self, key: object, value: object) -> Any:
        try:
            found = self.found.get(key, _MISS)
        except TypeError:
            return self.make(value)
        if found is _MISS:
            found = self.make(value)
            if len(self.found) < _CACHED:
                self.found[key] = found
        return found


def _or_none(rule: Callable[..., Any], value: object, **settings: Any) -> Any:
    try:
        return rule(value, **settings)
    except Reject:
        return None


def _instant(value: object, tz: ZoneInfo, end_of_day: bool) -> datetime | None:
    try:
        return parse_instant(value, tz, end_of_day=end_of_day)
    except (ValueError, OverflowError):
        return None


def _columns(fields: list[dict[str, Any]]) -> Callable[[str, object], Column]:
    """The values of one field in all of ``fields`` (``default`` where absent). Records
    of one layout (the same keys in the same order: a CSV file, most JSON and YAML
    ones) are turned into columns all at once."""
    layout = tuple(fields[0]) if fields else ()
    if all(map(layout.__eq__, map(tuple, fields))):
        table = dict(zip(layout, zip(*map(dict.values, fields), strict=True), strict=True))
        return lambda name, default: table.get(name) or (default,) * len(fields)
    return lambda name, default: list(map(dict.get, fields, repeat(name), repeat(default)))


def _texts_fit(texts: Column, limit: int) -> bool:
    """Whether all of ``texts`` are text of at most ``limit`` characters, none holding
    a forbidden character (all in a few calls)."""
    if not {str}.issuperset(map(type, texts)):
        return False
    return max(map(len, texts), default=0) <= limit and not has_forbidden("".join(texts))


def _fits(mapping: dict[Any, Any], limit: int) -> bool:
    return _mappings_fit([mapping], limit)


def _mappings_fit(mappings: list[dict[Any, Any]], limit: int) -> bool:
    """Whether the names and values of all ``mappings`` fit as in ``_texts_fit``."""
    names = list(chain.from_iterable(mappings))
    values = list(chain.from_iterable(map(dict.values, mappings)))
    return _texts_fit(names, limit) and _texts_fit(values, limit)


def _stripped(column: Column) -> Column:
    if {str}.issuperset(map(type, column)):
        return list(map(str.strip, column))
    return list(map(as_text, column))


def _stripped_values(attributes: dict[str, str]) -> dict[str, str]:
    return dict(zip(attributes, map(str.strip, attributes.values()), strict=True))


def _all_emails(emails: Column) -> bool:
    """Whether every one of ``emails`` is an e-mail address (one search of all)."""
    joined = "\n".join(emails)
    if joined.count("\n") != len(emails) - 1:  # one holds a line break
        return False
    return len(_EMAILS.findall(joined)) == len(emails)
