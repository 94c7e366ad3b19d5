"""The quick way of ``core.contracts`` (a few thousand records at once, column by column)
against the rules of ``core.rules`` applied record by record: the same contracts, the
same invalid records with the same messages, whatever the records hold. Also the pieces
it rests on: texts searched all at once, usernames folded all at once, the JSON depth
check of all records at once, and CSV rows that share their keys."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import contracts as contracts_module
from syncd.core.contracts import RawRecord, validate
from syncd.core.model import Contract, InvalidRecord
from syncd.core.policy import Policy
from syncd.core.rules import Reject, as_text, check_values, contract, person_hint
from syncd.core.text import (
    FORBIDDEN,
    clipped,
    default_username,
    folded,
    folded_each,
    has_forbidden,
    username_format,
)
from syncd.sources import formats

ROLES = frozenset({"developer", "writer"})
POLICIES = [
    Policy(timezone=ZoneInfo("Europe/Berlin"), roles=ROLES, max_duration=timedelta(days=400)),
    Policy(
        roles=ROLES,
        max_field_length=12,
        field_lengths={"email": 30, "attributes": 6, "roles": 16},
        username_template="x{email_local}-{given_name}",
        username_pattern=re.compile(r"^[a-z][a-z0-9._-]{0,20}$"),
        lead_time=timedelta(days=3),
    ),
]


def reference(
    records: list[RawRecord], policy: Policy
) -> tuple[list[Contract], list[InvalidRecord]]:
    """What the rules make of the records, one record at a time (the specification)."""
    cids = [as_text(r.fields.get("id")) for r in records]
    ids = Counter(cids)
    made: list[Contract] = []
    invalid: list[InvalidRecord] = []
    for record, cid in zip(records, cids, strict=True):
        try:
            check_values(record.fields, policy)
            if cid and ids[cid] > 1:
                raise Reject(
                    "id",
                    f"contract id {cid!r} appears {ids[cid]} times",
                    "give every contract its own id; all copies are ignored until then",
                )
            made.append(contract(record.fields, record.origin, policy))
        except Reject as rej:
            invalid.append(
                InvalidRecord(
                    record.origin,
                    clipped(cid, policy.max_length("id")),
                    person_hint(record.fields),
                    rej.field,
                    rej.reason,
                    rej.fix,
                )
            )
    return made, invalid


def good(index: int) -> dict[str, Any]:
    return {
        "id": f"C-{index}",
        "email": f"ann.lee.{index}@vendor.example",
        "given_name": ("Ann", "Zoë", "Søren", "Þóra")[index % 4],
        "family_name": f"Lee-{index}",
        "vendor": "Acme GmbH",
        "roles": ["developer"] if index % 2 else "developer;writer",
        "start": "2027-01-01" if index % 3 else date(2027, 1, 1),
        "end": "2027-06-30",
        "status": "active",
        "attributes": {"team": "core", "room": f"{index}"},
    }


TEXTS = st.one_of(
    st.sampled_from(["", " ", "Ann", " Lee ", "ann@v.example", "developer", "writer", "ß"]),
    st.sampled_from(["2027-01-01", "2027-13-01", "2026-12-31", "9999-12-31", "0001-01-01"]),
    st.sampled_from(["active", "Cancelled", "terminated", "paused", "a\nb", "x\u202ey"]),
    st.sampled_from(["2027-03-01T12:00:00+01:00", "2027-03-01T12:00:00", "a" * 40]),
    st.sampled_from(["x" * 6, "x" * 7, "y" * 12, "y" * 13, "developer;writer;"]),
    st.text(max_size=8),
)
VALUES = st.one_of(
    TEXTS,
    st.none(),
    st.integers(-3, 20270101),
    st.booleans(),
    st.floats(allow_nan=False),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([UTC, ZoneInfo("Europe/Berlin")])),
    st.lists(TEXTS, max_size=3),
    st.dictionaries(TEXTS, TEXTS, max_size=2),
)
FIELDS = ["id", "person", "email", "given_name", "family_name", "username", "vendor"]
FIELDS += ["sponsor", "approved_by", "roles", "status", "start", "end", "terminated_at"]
FIELDS += ["attributes", "notes"]


@st.composite
def records(draw: st.DrawFn) -> list[RawRecord]:
    """Mostly good records, each with a few fields changed, dropped or reordered."""
    out = []
    for index in range(draw(st.integers(1, 12))):
        fields = good(draw(st.integers(0, 5)))  # ids repeat now and then
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
            if draw(st.booleans()):
                fields.pop(name, None)
            else:
                fields[name] = draw(VALUES)
        if draw(st.booleans()):
            fields = dict(reversed(fields.items()))
        out.append(RawRecord(f"c.yaml:{index}", fields))
    return out


@settings(max_examples=400, deadline=None)
@given(records(), st.sampled_from(POLICIES))
def test_quick_way_makes_what_the_rules_make(batch: list[RawRecord], policy: Policy) -> None:
    assert validate(batch, policy) == reference(batch, policy)


@pytest.mark.parametrize("policy", POLICIES, ids=["berlin", "tight"])
def test_quick_way_across_chunks_and_layouts(policy: Policy) -> None:
    """More records than one chunk, some of another layout, a few invalid among them."""
    batch = []
    for index in range(2 * contracts_module._CHUNK + 100):
        fields = good(index)
        if index % 997 == 0:
            fields["email"] = "not-an-email"
        if index % 1499 == 0:
            fields["vendor"] = "Acme\nGmbH"
        if index % 3001 == 0:
            fields = dict(reversed(fields.items()))
        batch.append(RawRecord(f"c.json#{index + 1}", fields))
    batch.append(RawRecord("c.json#0", {**good(7), "given_name": "Eve"}))  # a duplicate id
    made, invalid = validate(batch, policy)
    assert (made, invalid) == reference(batch, policy)
    assert len(invalid) >= 10


EDGES: list[dict[str, Any]] = [
    {"start": "2027-03-01T12:00:00+01:00", "end": "2027-03-01T12:00:00+01:00"},
    {"start": "2027-03-01T12:00:00+01:00", "end": "2027-03-01T11:00:00Z"},
    {"start": "2027-03-01T12:00:00Z", "end": "2027-03-01T12:00:01Z"},
    {"start": "2027-01-01", "end": "2028-02-04"},  # exactly the longest contract
    {"start": "2027-01-01", "end": "2028-02-05"},
    {"start": date(2027, 1, 1), "end": datetime(2027, 1, 1, tzinfo=UTC)},
    {"terminated_at": ""},
    {"terminated_at": None},
    {"terminated_at": 0},
    {"terminated_at": False},
    {"terminated_at": "2027-02-01", "status": "terminated"},
    {"status": None},
    {"status": ""},
    {"status": 1},
    {"status": True},
    {"roles": []},
    {"roles": [None, "developer"]},
    {"roles": [" writer ", ""]},
    {"roles": 7},
    {"roles": None},
    {"attributes": None},
    {"attributes": {}},
    {"attributes": []},
    {"attributes": ""},
    {"attributes": {"team": 4711}},
    {"attributes": {1: "x"}},
    {"email": " ANN@V.EXAMPLE "},
    {"email": "ann@v.example\nx@y.z"},
    {"person": " Ext-1 "},
    {"person": 4711},
    {"username": " a.b "},
    {"given_name": "\u00a0Ann"},
    {"vendor": True},
    {"vendor": 0.5},
]
for name, most in {"email": 30, "attributes": 6, "roles": 16, "vendor": 12}.items():
    for size in (most, most + 1):
        value = "a" * (size - len("@v.example")) + "@v.example" if name == "email" else "r" * size
        if name == "attributes":
            EDGES += [{"attributes": {"team": value}}, {"attributes": {value: "x"}}]
        elif name == "roles":
            EDGES += [{"roles": [value]}, {"roles": value}]
        else:
            EDGES.append({name: value})


@pytest.mark.parametrize("policy", POLICIES, ids=["berlin", "tight"])
def test_quick_way_at_the_edges_of_the_rules(policy: Policy) -> None:
    batch = [RawRecord(f"c:{i}", {**good(i + 10), **edge}) for i, edge in enumerate(EDGES)]
    for record in batch:  # alone, and all together
        assert validate([record], policy) == reference([record], policy), record
    assert validate(batch, policy) == reference(batch, policy)


def test_quick_contracts_match_the_rules_field_by_field() -> None:
    """Every field of a contract, so that the quick way's order of fields holds."""
    raw = RawRecord(
        "c.csv:2",
        {
            **good(1),
            "person": "EXT-1",
            "username": "alee",
            "sponsor": " boss@corp.example ",
            "approved_by": "cfo@corp.example",
            "status": "Terminated",
            "terminated_at": "2027-03-15T12:00:00+01:00",
            "attributes": {"team": " core "},
        },
    )
    [quick], [] = validate([raw], POLICIES[0])
    slow = contract(raw.fields, raw.origin, POLICIES[0])
    assert quick == slow
    assert quick.attributes == {"team": "core"}


def test_end_past_the_last_date_is_an_invalid_record_not_a_crash() -> None:
    made, [bad] = validate([RawRecord("c:1", {**good(1), "end": "9999-12-31"})], POLICIES[0])
    assert made == []
    assert (bad.field, bad.reason) == ("end", "date value out of range")


@given(st.lists(st.text(max_size=6), max_size=6))
def test_forbidden_characters_are_found_in_any_text(texts: list[str]) -> None:
    joined = "".join(texts)
    assert has_forbidden(joined) == (FORBIDDEN.search(joined) is not None)


NAMES = st.text(alphabet="aZ .-'ßæÆœŒþÞøØłŁđĐðÐıéÉüñ李\u0301\n", max_size=10)


@given(st.lists(NAMES, max_size=6))
def test_usernames_fold_all_at_once_as_one_at_a_time(texts: list[str]) -> None:
    assert folded_each(texts) == [folded(text) for text in texts]


@given(
    st.sampled_from(["{given_name}.{family_name}", "x{email_local}", "{Given}-{nope}{{x}}", ""]),
    NAMES,
    NAMES,
)
def test_username_format_renders_as_the_template(template: str, given: str, family: str) -> None:
    email = "Ann.Lee@v.example"
    values = {"given_name": given, "family_name": family, "email": email, "email_local": "Ann.Lee"}
    rendered = username_format(template).format(given, family, email, "Ann.Lee")
    assert folded(rendered) == default_username(template, values)


JSON_VALUES = st.recursive(
    st.none() | st.integers() | st.text(max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=12,
)


@given(st.lists(JSON_VALUES, max_size=5), st.integers(0, 4))
def test_depth_of_all_records_at_once_as_of_each(items: list[Any], limit: int) -> None:
    expected = any(formats._deeper(item, limit) for item in items)
    assert formats._too_deep(items, limit) == expected


def test_csv_rows_are_plain_dictionaries_sharing_keys_and_values() -> None:
    many = formats.SHARED + 10
    rows = "".join(f"C-{i}, a{i}@v.example ,Acme,x{i % 3}\n" for i in range(many))
    data = ("id,email,vendor,attributes.team\n" + rows + "C-x,short\n").encode()
    records = formats.csv_records(data, "c.csv", ",")
    assert len(records) == many + 1
    first, last = records[5].fields, records[-2].fields
    assert first == {
        "id": "C-5",
        "email": "a5@v.example",
        "vendor": "Acme",
        "attributes": {"team": "x2"},
    }
    assert type(first) is dict
    assert type(first["attributes"]) is dict
    assert last["email"] == f"a{many - 1}@v.example"
    assert first["vendor"] is last["vendor"]  # one object for a repeated value
    assert records[-1].fields == {
        "id": "C-x",
        "email": "short",
        "vendor": "",
        "attributes": {"team": ""},
    }
    assert records[-1].origin == f"c.csv:{many + 2}"


def test_attributes_without_spaces_are_shown_not_copied() -> None:
    raw = RawRecord("c:1", good(1))
    [made], _ = validate([raw], POLICIES[0])
    assert made.attributes == raw.fields["attributes"]
    with pytest.raises(TypeError):
        made.attributes["team"] = "other"  # type: ignore[index]


def test_validation_leaves_the_collector_as_it_was() -> None:
    import gc

    assert gc.isenabled()
    validate([RawRecord("c:1", good(1))], POLICIES[0])
    assert gc.isenabled()
    gc.disable()
    try:
        validate([RawRecord("c:1", good(1))], POLICIES[0])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_dates_parse_to_the_same_instants_as_strings() -> None:
    batch = [
        RawRecord("c:1", {**good(1), "start": date(2027, 1, 1), "end": "2027-06-30"}),
        RawRecord("c:2", {**good(2), "start": "2027-01-01", "end": date(2027, 6, 30)}),
    ]
    [one, two], [] = validate(batch, POLICIES[0])
    assert (one.start, one.end) == (two.start, two.end)
    assert one.start == datetime(2026, 12, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize("policy", POLICIES, ids=["berlin", "tight"])
def test_ordinary_records_go_the_quick_way(policy: Policy) -> None:
    """No field-by-field checks for records that pass: that is what makes it quick."""
    batch = [RawRecord(f"c:{i}", good(i)) for i in range(1, 60, 2)]  # roles as a list
    batch += [RawRecord(f"d:{i}", {**good(i), "vendor": None}) for i in range(2, 60, 2)]
    cids = [as_text(r.fields.get("id")) for r in batch]
    quick = contracts_module._Fast(policy, Counter(cids)).contracts(batch, cids)
    assert None not in quick
    assert quick == reference(batch, policy)[0]
