"""Validation of raw source records into contracts (``syncd.core.contracts``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.core.contracts import REQUIRED, RawRecord, default_username, validate
from syncd.core.model import Status
from syncd.core.policy import Policy

BERLIN = ZoneInfo("Europe/Berlin")
POLICY = Policy(
    timezone=BERLIN,
    max_duration=timedelta(days=400),
    roles=frozenset({"developer", "writer"}),
)
GOOD: dict[str, object] = {
    "id": "C-1",
    "email": "Ann.Lee@Vendor.example",
    "given_name": "Ann",
    "family_name": "Lee",
    "roles": ["developer"],
    "start": "2027-01-01",
    "end": "2027-06-30",
}


DROP = object()  # a field value meaning "leave the field out"


def record(origin: str = "contracts.yaml:3", **changes: object) -> RawRecord:
    fields = {**GOOD, **changes}
    return RawRecord(origin, {k: v for k, v in fields.items() if v is not DROP})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        *[pytest.param({name: DROP}, name, id=f"missing-{name}") for name in REQUIRED],
        *[pytest.param({name: None}, name, id=f"null-{name}") for name in REQUIRED],
        *[pytest.param({name: ""}, name, id=f"empty-{name}") for name in REQUIRED],
        pytest.param({"roles": []}, "roles", id="empty-role-list"),
        pytest.param({"roles": ";"}, "roles", id="role-string-without-roles"),
        pytest.param({"roles": ["astronaut"]}, "roles", id="unknown-role"),
        pytest.param({"roles": "developer;astronaut"}, "roles", id="unknown-role-in-string"),
        pytest.param({"roles": ["Developer"]}, "roles", id="role-names-are-case-sensitive"),
        pytest.param({"email": "not-an-email"}, "email", id="email-without-at"),
        pytest.param({"email": "ann@localhost"}, "email", id="email-without-domain-dot"),
        pytest.param({"email": "ann lee@vendor.example"}, "email", id="email-with-space"),
        pytest.param({"email": "ann@@vendor.example"}, "email", id="email-double-at"),
        pytest.param({"email": "a@b.c, d@e.f"}, "email", id="two-emails"),
        pytest.param({"start": "soon"}, "start", id="garbage-start"),
        pytest.param({"end": "2027-02-30"}, "end", id="impossible-end-date"),
        pytest.param({"start": "2027-01-01T09:00:00"}, "start", id="naive-start"),
        pytest.param({"end": "2027-06-30T18:00:00"}, "end", id="naive-end"),
        pytest.param({"start": datetime(2027, 1, 1, 9)}, "start", id="naive-start-object"),
        pytest.param({"start": 20270101}, "start", id="start-as-number"),
        pytest.param({"start": "2027-07-01"}, "end", id="end-before-start"),
        pytest.param({"start": "2027-07-01", "end": "2027-06-30"}, "end", id="end-day-before"),
        pytest.param(
            {"start": "2027-01-01T09:00:00+01:00", "end": "2027-01-01T09:00:00+01:00"},
            "end",
            id="end-equals-start",
        ),
        pytest.param(
            {"start": "2027-01-01T09:00:00+01:00", "end": "2027-01-01T08:00:00Z"},
            "end",
            id="end-equals-start-other-offset",
        ),
        pytest.param({"end": "2028-02-10"}, "end", id="over-max-duration"),
        pytest.param({"username": "Ann.Lee"}, "username", id="username-upper-case"),
        pytest.param({"username": "1ann"}, "username", id="username-starts-with-digit"),
        pytest.param({"username": "ann lee"}, "username", id="username-with-space"),
        pytest.param({"username": "a" * 65}, "username", id="username-too-long"),
        pytest.param(
            {"given_name": "李", "family_name": "王"}, "username", id="default-username-empty"
        ),
        pytest.param({"status": "paused"}, "status", id="unknown-status"),
        pytest.param({"status": "ended"}, "status", id="unknown-status-ended"),
        pytest.param(
            {"status": "terminated", "terminated_at": "yesterday"},
            "terminated_at",
            id="bad-terminated-at",
        ),
        pytest.param({"attributes": ["a", "b"]}, "attributes", id="attributes-not-a-mapping"),
        pytest.param({"id": "   "}, "id", id="blank-id"),
        pytest.param(
            {"given_name": "   ", "username": "ann.lee"}, "given_name", id="blank-given-name"
        ),
    ],
)
def test_invalid_record_is_rejected_with_its_field(changes: dict[str, object], field: str) -> None:
    contracts, invalid = validate([record(**changes)], POLICY)
    assert contracts == []
    assert len(invalid) == 1
    bad = invalid[0]
    assert bad.field == field
    assert bad.origin == "contracts.yaml:3"
    assert bad.reason
    assert bad.fix
    assert str(bad).startswith("contracts.yaml:3 ")
    assert f" {field}: " in str(bad)


@pytest.mark.parametrize(
    ("changes", "contract_id", "person"),
    [
        ({}, "C-1", "ann.lee@vendor.example"),
        ({"person": "EXT-4711"}, "C-1", "ext-4711"),
        ({"email": "not-an-email", "person": "ext-4711"}, "C-1", "ext-4711"),
        ({"email": DROP}, "C-1", ""),
        ({"id": DROP, "roles": ["astronaut"]}, "", "ann.lee@vendor.example"),
    ],
)
def test_invalid_record_names_contract_and_person(
    changes: dict[str, object], contract_id: str, person: str
) -> None:
    changes = {"roles": ["astronaut"], **changes}
    _, invalid = validate([record(**changes)], POLICY)
    assert [(r.contract_id, r.person) for r in invalid] == [(contract_id, person)]


def test_invalid_record_text_names_origin_contract_field_and_fix() -> None:
    _, [bad] = validate([record("hr.csv:7", roles=["astronaut"])], POLICY)
    assert bad.reason == "unknown role 'astronaut'"
    assert str(bad) == f"hr.csv:7 (contract C-1) roles: unknown role 'astronaut' (fix: {bad.fix})"
    assert "developer" in bad.fix
    assert "writer" in bad.fix


def test_duplicate_id_rejects_every_copy_and_keeps_the_rest() -> None:
    records = [
        record("c.yaml:1", id="C-1"),
        record("c.yaml:9", id="C-2", email="bob@vendor.example", given_name="Bob"),
        record("c.yaml:17", id="C-1", email="eve@vendor.example", given_name="Eve"),
    ]
    contracts, invalid = validate(records, POLICY)
    assert [c.id for c in contracts] == ["C-2"]
    assert [(r.origin, r.field, r.contract_id) for r in invalid] == [
        ("c.yaml:1", "id", "C-1"),
        ("c.yaml:17", "id", "C-1"),
    ]
    assert "2 times" in invalid[0].reason
    assert [r.person for r in invalid] == ["ann.lee@vendor.example", "eve@vendor.example"]


def test_duplicate_id_is_found_after_trimming() -> None:
    records = [record("a:1", id="C-1"), record("a:2", id=" C-1 ", email="bob@vendor.example")]
    contracts, invalid = validate(records, POLICY)
    assert contracts == []
    assert [r.field for r in invalid] == ["id", "id"]


def test_one_bad_record_leaves_the_others_valid_in_source_order() -> None:
    records = [
        record("c:1", id="C-1"),
        record("c:2", id="C-2", email="broken"),
        record("c:3", id="C-3", email="bob@vendor.example", given_name="Bob"),
        record("c:4", id="C-4", roles=["astronaut"], email="eve@vendor.example"),
        record("c:5", id="C-5", email="carl@vendor.example", given_name="Carl"),
    ]
    contracts, invalid = validate(records, POLICY)
    assert [c.id for c in contracts] == ["C-1", "C-3", "C-5"]
    assert [(r.contract_id, r.field) for r in invalid] == [("C-2", "email"), ("C-4", "roles")]


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["developer"], ("developer",)),
        (["writer", "developer"], ("developer", "writer")),
        (["developer", "developer"], ("developer",)),
        ([" writer ", ""], ("writer",)),
        ("developer", ("developer",)),
        ("developer;writer", ("developer", "writer")),
        ("writer; developer;", ("developer", "writer")),
        ("developer,writer", ("developer", "writer")),
        ("developer|writer", ("developer", "writer")),
    ],
)
def test_roles_as_list_or_separated_string(roles: object, expected: tuple[str, ...]) -> None:
    [contract], invalid = validate([record(roles=roles)], POLICY)
    assert invalid == []
    assert contract.roles == expected


@pytest.mark.parametrize(
    ("given", "family", "email", "template", "username"),
    [
        ("Ann", "Lee", "ann@v.example", "{given_name}.{family_name}", "ann.lee"),
        ("Zoë", "Ñúñez", "zoe@v.example", "{given_name}.{family_name}", "zoe.nunez"),
        (
            "Jürgen",
            "Groß-Öhrlein",
            "j@v.example",
            "{given_name}.{family_name}",
            "jurgen.gross-ohrlein",
        ),
        ("Søren", "Łukasz", "s@v.example", "{given_name}.{family_name}", "soren.lukasz"),
        pytest.param(
            "Ægir",
            "Þórsson",
            "a@v.example",
            "{given_name}.{family_name}",
            "aegir.thorsson",
            id="capital-thorn",
        ),
        pytest.param(
            "Ðura", "Lee", "d@v.example", "{given_name}.{family_name}", "dura.lee", id="capital-eth"
        ),
        ("þóra", "Lee", "t@v.example", "{given_name}.{family_name}", "thora.lee"),
        ("Mary Ann", "O'Brien", "m@v.example", "{given_name}.{family_name}", "maryann.obrien"),
        ("François", "Lefèvre", "f@v.example", "{given_name}_{family_name}", "francois_lefevre"),
        ("Ann", "Lee", "Ann.Lee+x@V.example", "{email_local}", "ann.leex"),
        ("Ann", "Lee", "ann@v.example", "ext-{given_name}", "ext-ann"),
    ],
)
def test_default_username_from_template(
    given: str, family: str, email: str, template: str, username: str
) -> None:
    policy = Policy(roles=POLICY.roles, username_template=template)
    [contract], invalid = validate(
        [record(given_name=given, family_name=family, email=email)], policy
    )
    assert invalid == []
    assert contract.username == username


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"given_name": "Zoë", "family_name": "Ñúñez"}, "zoe.nunez"),
        ({"given_name": "ANN", "family_name": "LEE"}, "ann.lee"),
        ({"given_name": "Ann"}, "ann."),
        ({}, "."),
    ],
)
def test_default_username_function(values: dict[str, str], expected: str) -> None:
    assert default_username("{given_name}.{family_name}", values) == expected


def test_username_pattern_comes_from_policy() -> None:
    policy = Policy(roles=POLICY.roles, username_pattern=re.compile(r"^x-[a-z]+$"))
    _, [bad] = validate([record()], policy)
    assert bad.field == "username"
    assert "^x-[a-z]+$" in bad.reason
    [contract], _ = validate([record(username="x-ann")], policy)
    assert contract.username == "x-ann"


def test_valid_record_fields() -> None:
    raw = record(
        "contracts.yaml:12",
        person="Ext-4711",
        username="alee",
        vendor=" Acme GmbH ",
        sponsor="boss@corp.example",
        approved_by="cfo@corp.example",
        status="Terminated",
        terminated_at="2027-03-15T12:00:00+01:00",
        attributes={"cost_center": 4711, "team": "core"},
        end=date(2027, 6, 30),
    )
    [contract], invalid = validate([raw], POLICY)
    assert invalid == []
    assert contract.id == "C-1"
    assert contract.person == "ext-4711"
    assert contract.email == "Ann.Lee@Vendor.example"
    assert contract.username == "alee"
    assert contract.vendor == "Acme GmbH"
    assert contract.sponsor == "boss@corp.example"
    assert contract.approved_by == "cfo@corp.example"
    assert contract.status is Status.TERMINATED
    assert contract.terminated_at == datetime(2027, 3, 15, 11, tzinfo=UTC)
    assert dict(contract.attributes) == {"cost_center": "4711", "team": "core"}
    assert contract.origin == "contracts.yaml:12"
    assert contract.start == datetime(2026, 12, 31, 23, tzinfo=UTC)
    assert contract.end == datetime(2027, 6, 30, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "person"),
    [
        ({}, "ann.lee@vendor.example"),
        ({"email": "  ANN@VENDOR.EXAMPLE "}, "ann@vendor.example"),
        ({"person": "ext-4711"}, "ext-4711"),
        ({"person": ""}, "ann.lee@vendor.example"),
    ],
)
def test_person_key(changes: dict[str, object], person: str) -> None:
    [contract], _ = validate([record(**changes)], POLICY)
    assert contract.person == person


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (DROP, Status.ACTIVE),
        (None, Status.ACTIVE),
        ("", Status.ACTIVE),
        ("active", Status.ACTIVE),
        ("CANCELLED", Status.CANCELLED),
        (" terminated ", Status.TERMINATED),
    ],
)
def test_status(status: object, expected: Status) -> None:
    [contract], _ = validate([record(status=status)], POLICY)
    assert contract.status is expected
    assert contract.terminated_at is None


@pytest.mark.parametrize(
    ("start", "end", "expected_start", "expected_end"),
    [
        pytest.param(
            "2027-01-01",
            "2027-01-01",
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2027, 1, 1, 23, tzinfo=UTC),
            id="one-day-contract",
        ),
        pytest.param(
            date(2027, 1, 1),
            datetime(2027, 1, 10, 17, 30, tzinfo=UTC),
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2027, 1, 10, 17, 30, tzinfo=UTC),
            id="date-and-datetime-objects",
        ),
        pytest.param(
            "2027-01-01T08:00:00Z",
            "2027-01-01T08:00:01Z",
            datetime(2027, 1, 1, 8, tzinfo=UTC),
            datetime(2027, 1, 1, 8, 0, 1, tzinfo=UTC),
            id="one-second",
        ),
        pytest.param(
            "2027-01-01",
            "2028-02-04",
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2028, 2, 4, 23, tzinfo=UTC),
            id="exactly-max-duration",
        ),
    ],
)
def test_dates(
    start: object, end: object, expected_start: datetime, expected_end: datetime
) -> None:
    [contract], invalid = validate([record(start=start, end=end)], POLICY)
    assert invalid == []
    assert contract.start == expected_start
    assert contract.end == expected_end


def test_no_max_duration_means_no_limit() -> None:
    policy = Policy(timezone=BERLIN, roles=POLICY.roles)
    [contract], invalid = validate([record(end="2037-01-01")], policy)
    assert invalid == []
    assert contract.end == datetime(2037, 1, 1, 23, tzinfo=UTC)


# -- hostile values: shape, length and characters of every text field -----------------

TEXT_CASES = [
    ("id", {"id": "{}"}),
    ("person", {"person": "{}"}),
    ("email", {"email": "{}@vendor.example"}),
    ("given_name", {"given_name": "{}", "username": "ann.lee"}),
    ("family_name", {"family_name": "{}", "username": "ann.lee"}),
    ("username", {"username": "{}"}),
    ("vendor", {"vendor": "{}"}),
    ("sponsor", {"sponsor": "{}"}),
    ("approved_by", {"approved_by": "{}"}),
    ("roles", {"roles": ["developer", "{}"]}),
    ("status", {"status": "{}"}),
    ("start", {"start": "{}"}),
    ("end", {"end": "{}"}),
    ("terminated_at", {"status": "terminated", "terminated_at": "{}"}),
    ("attributes.team", {"attributes": {"team": "{}"}}),
    ("attributes", {"attributes": {"{}": "core"}}),
]


def _filled(template: dict[str, object], text: str) -> dict[str, object]:
    def fill(value: object) -> object:
        if isinstance(value, str):
            return value.replace("{}", text)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {fill(k): fill(v) for k, v in value.items()}
        return value

    return {name: fill(value) for name, value in template.items()}


@pytest.mark.parametrize(
    ("char", "point"),
    [
        pytest.param("\n", "U+000A", id="LF"),
        pytest.param("\r", "U+000D", id="CR"),
        pytest.param("\x00", "U+0000", id="NUL"),
        pytest.param("\t", "U+0009", id="TAB"),
        pytest.param("\x1b", "U+001B", id="ESC"),
        pytest.param("\x7f", "U+007F", id="DEL"),
        pytest.param("\x85", "U+0085", id="NEL"),
        pytest.param("\x9b", "U+009B", id="CSI"),
        pytest.param("\u2028", "U+2028", id="line-separator"),
        pytest.param("\u2029", "U+2029", id="paragraph-separator"),
        pytest.param("\u202a", "U+202A", id="LRE"),
        pytest.param("\u202e", "U+202E", id="RLO"),
        pytest.param("\u2066", "U+2066", id="LRI"),
        pytest.param("\u2069", "U+2069", id="PDI"),
    ],
)
@pytest.mark.parametrize(("field", "template"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_forbidden_character_in_any_text_field_is_an_invalid_record(
    char: str, point: str, field: str, template: dict[str, object]
) -> None:
    contracts, [bad] = validate([record(**_filled(template, f"x{char}y"))], POLICY)
    assert contracts == []
    assert bad.field == field
    assert point in bad.reason
    assert "at character 2" in bad.reason
    assert bad.fix


@pytest.mark.parametrize(("field", "template"), TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_value_over_the_length_limit_is_an_invalid_record(
    field: str, template: dict[str, object]
) -> None:
    contracts, [bad] = validate([record(**_filled(template, "x" * 300))], POLICY)
    assert contracts == []
    assert bad.field == field
    assert "characters long, over the limit of 256 (policy.max_field_length)" in bad.reason
    assert bad.fix == "shorten it in the source, or raise policy.max_field_length"
    assert len(str(bad)) < 600  # the value itself is never quoted


def test_huge_value_names_its_length_and_limit_and_leaves_the_batch_alone() -> None:
    records = [
        record("c:1", id="C-1"),
        record("c:2", id="C-2", email="bob@vendor.example", given_name="B" * 5_000_000),
        record("c:3", id="C-3", email="eve@vendor.example", given_name="Eve"),
    ]
    contracts, [bad] = validate(records, POLICY)
    assert [c.id for c in contracts] == ["C-1", "C-3"]
    assert (bad.contract_id, bad.person, bad.field) == ("C-2", "bob@vendor.example", "given_name")
    assert bad.reason == (
        "the value is 5000000 characters long, over the limit of 256 (policy.max_field_length)"
    )


def test_huge_contract_id_is_clipped_in_the_invalid_record() -> None:
    _, [bad] = validate([record(id="C" * 1_000_000)], POLICY)
    assert bad.field == "id"
    assert bad.contract_id == "C" * 256 + "…"


@pytest.mark.parametrize(
    ("lengths", "changes", "field", "limit"),
    [
        ({"given_name": 3}, {"given_name": "Anna"}, "given_name", "given_name"),
        ({"attributes": 4}, {"attributes": {"team": "core1"}}, "attributes.team", "attributes"),
        ({"attributes": 3}, {"attributes": {"team": "x"}}, "attributes", "attributes"),
        ({"id": 2}, {"id": "C-1"}, "id", "id"),
    ],
)
def test_field_lengths_override_the_common_limit(
    lengths: dict[str, int], changes: dict[str, object], field: str, limit: str
) -> None:
    policy = Policy(roles=POLICY.roles, max_field_length=10_000, field_lengths=lengths)
    _, [bad] = validate([record(**changes)], policy)
    assert bad.field == field
    assert f"over the limit of {lengths[limit]} (policy.field_lengths.{limit})" in bad.reason
    assert bad.fix == f"shorten it in the source, or raise policy.field_lengths.{limit}"


def test_values_at_the_limits_are_valid() -> None:
    email = "Ann.Lee@Vendor.example"  # 22 characters, the longest value
    policy = Policy(roles=POLICY.roles, max_field_length=22, field_lengths={"given_name": 3})
    [contract], invalid = validate([record(email=email, given_name="Ann")], policy)
    assert invalid == []
    assert (contract.email, contract.given_name) == (email, "Ann")
    _, [bad] = validate([record(email="Ann.Lee@Vendor.example.x")], policy)
    assert bad.field == "email"


@pytest.mark.parametrize(
    ("changes", "field", "kind"),
    [
        pytest.param({"attributes": {"team": {"a": 1}}}, "attributes.team", "a mapping", id="map"),
        pytest.param({"attributes": {"team": ["a", "b"]}}, "attributes.team", "a list", id="list"),
        pytest.param({"given_name": {"first": "Ann"}}, "given_name", "a mapping", id="name-map"),
        pytest.param({"id": ["C-1"]}, "id", "a list", id="id-list"),
        pytest.param({"vendor": ["Acme"]}, "vendor", "a list", id="vendor-list"),
        pytest.param({"roles": [["developer"]]}, "roles", "a list", id="nested-role"),
        pytest.param({"roles": {"developer": 1}}, "roles", "a mapping", id="role-map"),
    ],
)
def test_nested_values_are_invalid_records_not_python_text(
    changes: dict[str, object], field: str, kind: str
) -> None:
    contracts, [bad] = validate([record(**changes)], POLICY)
    assert contracts == []
    assert bad.field == field
    assert f"is {kind}, not a single value" in bad.reason


@pytest.mark.parametrize(
    "value",
    ["Zoë Ñúñez", "李 王", "O'Brien-Smith", "עברית", "العربية", "Ann\u200dLee", "\u00a0Ann"],
)
def test_ordinary_unicode_names_stay_valid(value: str) -> None:
    [contract], invalid = validate([record(given_name=value, username="ann.lee")], POLICY)
    assert invalid == []
    assert contract.given_name == value.strip()
