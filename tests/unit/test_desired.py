"""Contracts resolved into one person per key at a fixed instant (``syncd.core.desired``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.core.contracts import RawRecord, validate
from syncd.core.desired import effective_end, in_effect, resolve
from syncd.core.model import Contract, PersonState, Status
from syncd.core.policy import Policy

NOW = datetime(2027, 6, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)
ROLES = frozenset({"developer", "writer", "operator"})
PERSON = "ann@vendor.example"


def at(days: float) -> datetime:
    return NOW + timedelta(days=days)


def contract(
    cid: str,
    start: float,
    end: float,
    *,
    roles: tuple[str, ...] = ("developer",),
    status: Status = Status.ACTIVE,
    terminated_at: float | None = None,
    approved_by: str = "",
    person: str = PERSON,
    username: str = "ann.lee",
) -> Contract:
    return Contract(
        id=cid,
        person=person,
        email=person,
        given_name="Ann",
        family_name="Lee",
        username=username,
        roles=roles,
        start=at(start),
        end=at(end),
        status=status,
        terminated_at=None if terminated_at is None else at(terminated_at),
        approved_by=approved_by,
    )


@dataclass(frozen=True)
class Expect:
    state: PersonState
    reason: str
    roles: frozenset[str] = frozenset()
    contract_ids: tuple[str, ...] = ("C-1",)
    access_end: datetime | None = None
    last_end: datetime | None = None
    next_start: datetime | None = None


DEV = frozenset({"developer"})
CASES = [
    pytest.param(
        [contract("C-1", 10, 40)],
        Policy(roles=ROLES),
        Expect(
            PersonState.FUTURE,
            next_start=at(10),
            reason="contract C-1 starts 2027-06-25T12:00:00Z",
        ),
        id="future",
    ),
    pytest.param(
        [contract("C-1", -10, 10)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(10),
            last_end=at(10),
            reason="contract C-1 in effect until 2027-06-25T12:00:00Z",
        ),
        id="active",
    ),
    pytest.param(
        [contract("C-1", 0, 10)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(10),
            last_end=at(10),
            reason="contract C-1 in effect until 2027-06-25T12:00:00Z",
        ),
        id="starts-exactly-now",
    ),
    pytest.param(
        [contract("C-1", -30, -10)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ENDED,
            last_end=at(-10),
            reason="contract C-1 ended 2027-06-05T12:00:00Z",
        ),
        id="ended",
    ),
    pytest.param(
        [contract("C-1", -30, 0)],
        Policy(roles=ROLES),
        Expect(PersonState.ENDED, last_end=NOW, reason="contract C-1 ended 2027-06-15T12:00:00Z"),
        id="end-is-exclusive",
    ),
    pytest.param(
        [contract("C-1", 1, 30)],
        Policy(roles=ROLES, lead_time=2 * DAY),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1 in effect until 2027-07-15T12:00:00Z",
        ),
        id="lead-time-active-before-start",
    ),
    pytest.param(
        [contract("C-1", 1, 30)],
        Policy(roles=ROLES, lead_time=DAY),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1 in effect until 2027-07-15T12:00:00Z",
        ),
        id="lead-time-exactly-one-day",
    ),
    pytest.param(
        [contract("C-1", 3, 30)],
        Policy(roles=ROLES, lead_time=DAY),
        Expect(
            PersonState.FUTURE,
            next_start=at(2),
            reason="contract C-1 starts 2027-06-17T12:00:00Z",
        ),
        id="lead-time-still-future",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.TERMINATED, terminated_at=-2)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ENDED,
            last_end=at(-2),
            reason="contract C-1 terminated 2027-06-13T12:00:00Z",
        ),
        id="terminated-at-past",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.TERMINATED, terminated_at=5)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(5),
            last_end=at(5),
            reason="contract C-1 in effect until 2027-06-20T12:00:00Z",
        ),
        id="terminated-at-future",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.TERMINATED, terminated_at=60)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1 in effect until 2027-07-15T12:00:00Z",
        ),
        id="terminated-after-end",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.TERMINATED)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ENDED,
            last_end=NOW,
            reason="contract C-1 terminated 2027-06-15T12:00:00Z",
        ),
        id="terminated-without-date-ends-now",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.CANCELLED)],
        Policy(roles=ROLES),
        Expect(PersonState.FUTURE, reason="contract C-1 cancelled"),
        id="cancelled",
    ),
    pytest.param(
        [contract("C-1", 10, 30, status=Status.CANCELLED)],
        Policy(roles=ROLES),
        Expect(PersonState.FUTURE, reason="contract C-1 cancelled"),
        id="cancelled-future",
    ),
    pytest.param(
        [contract("C-1", -30, 30)],
        Policy(roles=ROLES, require_approval=True),
        Expect(PersonState.FUTURE, reason="contract C-1 awaits approval"),
        id="approval-missing",
    ),
    pytest.param(
        [contract("C-1", -30, 30, approved_by="cfo@corp.example")],
        Policy(roles=ROLES, require_approval=True),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1 in effect until 2027-07-15T12:00:00Z",
        ),
        id="approval-present",
    ),
    pytest.param(
        [contract("C-1", -30, 30)],
        Policy(roles=ROLES, require_approval=False),
        Expect(
            PersonState.ACTIVE,
            roles=DEV,
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1 in effect until 2027-07-15T12:00:00Z",
        ),
        id="approval-not-required",
    ),
    pytest.param(
        [
            contract("C-2", -5, 30, roles=("writer",)),
            contract("C-1", -10, 10, roles=("developer", "operator")),
        ],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=ROLES,
            contract_ids=("C-1", "C-2"),
            access_end=at(30),
            last_end=at(30),
            reason="contract C-1, C-2 in effect until 2027-07-15T12:00:00Z",
        ),
        id="several-active-union-latest-end",
    ),
    pytest.param(
        [
            contract("C-1", -60, -30, roles=("operator",)),
            contract("C-2", -5, 30, roles=("writer",)),
            contract("C-3", 40, 90, roles=("developer",)),
        ],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=frozenset({"writer"}),
            contract_ids=("C-2",),
            access_end=at(30),
            last_end=at(30),
            next_start=at(40),
            reason="contract C-2 in effect until 2027-07-15T12:00:00Z",
        ),
        id="only-contracts-in-effect-grant",
    ),
    pytest.param(
        [contract("C-1", -60, -30), contract("C-2", 20, 90)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ENDED,
            last_end=at(-30),
            next_start=at(20),
            reason="contract C-1 ended 2027-05-16T12:00:00Z",
        ),
        id="ended-with-renewal-ahead",
    ),
    pytest.param(
        [contract("C-2", -60, -10), contract("C-1", -90, -30)],
        Policy(roles=ROLES),
        Expect(
            PersonState.ENDED,
            contract_ids=("C-1", "C-2"),
            last_end=at(-10),
            reason="contract C-2 ended 2027-06-05T12:00:00Z",
        ),
        id="several-ended-latest-end",
    ),
    pytest.param(
        [contract("C-1", -30, 30, status=Status.CANCELLED), contract("C-2", 5, 30)],
        Policy(roles=ROLES),
        Expect(
            PersonState.FUTURE,
            contract_ids=("C-1", "C-2"),
            next_start=at(5),
            reason="contract C-2 starts 2027-06-20T12:00:00Z",
        ),
        id="cancelled-and-future",
    ),
    pytest.param(
        [
            contract("C-1", -30, 30, status=Status.CANCELLED),
            contract("C-2", -10, 10, roles=("writer",)),
        ],
        Policy(roles=ROLES),
        Expect(
            PersonState.ACTIVE,
            roles=frozenset({"writer"}),
            contract_ids=("C-2",),
            access_end=at(10),
            last_end=at(10),
            reason="contract C-2 in effect until 2027-06-25T12:00:00Z",
        ),
        id="cancelled-contract-grants-nothing",
    ),
]


@pytest.mark.parametrize(("contracts", "policy", "expect"), CASES)
def test_resolve(contracts: list[Contract], policy: Policy, expect: Expect) -> None:
    people = resolve(contracts, policy, NOW)
    assert list(people) == [PERSON]
    person = people[PERSON]
    assert person.key == PERSON
    assert person.state is expect.state
    assert person.roles == expect.roles
    assert person.contract_ids == expect.contract_ids
    assert person.access_end == expect.access_end
    assert person.last_end == expect.last_end
    assert person.next_start == expect.next_start
    assert person.reason == expect.reason


@pytest.mark.parametrize(
    ("local_now", "state"),
    [
        (datetime(2027, 2, 28, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")), PersonState.ACTIVE),
        (datetime(2027, 2, 28, 23, 59, 59, tzinfo=ZoneInfo("Europe/Berlin")), PersonState.ACTIVE),
        (datetime(2027, 3, 1, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")), PersonState.ENDED),
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), PersonState.ENDED),
        (datetime(2027, 2, 28, 22, 59, 59, tzinfo=UTC), PersonState.ACTIVE),
        (datetime(2027, 1, 31, 23, 0, tzinfo=UTC), PersonState.ACTIVE),
        (datetime(2027, 1, 31, 22, 59, 59, tzinfo=UTC), PersonState.FUTURE),
    ],
)
def test_date_only_end_is_inclusive_in_the_policy_timezone(
    local_now: datetime, state: PersonState
) -> None:
    policy = Policy(timezone=ZoneInfo("Europe/Berlin"), roles=ROLES)
    raw = RawRecord(
        "c.yaml:1",
        {
            "id": "C-17",
            "email": PERSON,
            "given_name": "Ann",
            "family_name": "Lee",
            "roles": ["developer"],
            "start": "2027-02-01",
            "end": "2027-02-28",
        },
    )
    contracts, invalid = validate([raw], policy)
    assert invalid == []
    person = resolve(contracts, policy, local_now)[PERSON]
    assert person.state is state
    if state is PersonState.ENDED:
        assert person.reason == "contract C-17 ended 2027-02-28T23:00:00Z"
    if state is PersonState.ACTIVE:
        assert person.access_end == datetime(2027, 2, 28, 23, tzinfo=UTC)


def test_resolve_groups_contracts_by_person_and_sorts_keys() -> None:
    contracts = [
        contract("C-3", -10, 10, person="carl@v.example", username="carl"),
        contract("C-1", -10, 10, person="ann@v.example", username="ann"),
        contract("C-2", 10, 20, person="bob@v.example", username="bob"),
        contract("C-4", -20, -10, person="ann@v.example", username="ann"),
    ]
    people = resolve(contracts, Policy(roles=ROLES), NOW)
    assert list(people) == ["ann@v.example", "bob@v.example", "carl@v.example"]
    assert people["ann@v.example"].contract_ids == ("C-1",)
    assert people["bob@v.example"].state is PersonState.FUTURE
    assert people["carl@v.example"].state is PersonState.ACTIVE


def test_resolve_of_nothing_is_empty() -> None:
    assert resolve([], Policy(roles=ROLES), NOW) == {}


def test_person_details_come_from_the_latest_contract_in_effect() -> None:
    older = contract("C-1", -30, 10, username="ann.old")
    newer = replace(older, id="C-2", username="ann.new", vendor="New Co", end=at(60))
    ended = replace(older, id="C-0", username="ann.ended", start=at(-40), end=at(-20))
    person = resolve([newer, older, ended], Policy(roles=ROLES), NOW)[PERSON]
    assert person.username == "ann.new"
    assert person.vendor == "New Co"
    assert person.access_end == at(60)


@pytest.mark.parametrize(
    ("status", "terminated_at", "expected"),
    [
        (Status.ACTIVE, None, at(30)),
        (Status.CANCELLED, None, at(30)),
        (Status.TERMINATED, None, NOW),
        (Status.TERMINATED, -5, at(-5)),
        (Status.TERMINATED, 50, at(30)),
        (Status.ACTIVE, -5, at(30)),
    ],
)
def test_effective_end(status: Status, terminated_at: float | None, expected: datetime) -> None:
    c = contract("C-1", -30, 30, status=status, terminated_at=terminated_at)
    assert effective_end(c, NOW) == expected


@pytest.mark.parametrize(
    ("start", "end", "lead_days", "expected"),
    [
        (-1, 1, 0, True),
        (0, 1, 0, True),
        (-1, 0, 0, False),
        (1, 2, 0, False),
        (1, 2, 1, True),
        (2, 3, 1, False),
    ],
)
def test_in_effect_window(start: float, end: float, lead_days: int, expected: bool) -> None:
    policy = Policy(roles=ROLES, lead_time=timedelta(days=lead_days))
    assert in_effect(contract("C-1", start, end), policy, NOW) is expected


ORDER_CASES = [
    pytest.param(
        [contract("C-1", -30, 10), contract("C-2", -10, 10, roles=("writer",))],
        id="two-active-same-end",
    ),
    pytest.param([contract("C-1", -30, -20), contract("C-2", -30, -20)], id="two-ended-same-end"),
    pytest.param([contract("C-1", 10, 20), contract("C-2", 10, 20)], id="two-future-same-start"),
    pytest.param(
        [
            contract("C-1", -30, 30, status=Status.CANCELLED),
            contract("C-2", -30, 30, status=Status.CANCELLED),
        ],
        id="all-cancelled",
    ),
]


@pytest.mark.parametrize("contracts", ORDER_CASES)
def test_person_does_not_depend_on_source_order(contracts: list[Contract]) -> None:
    policy = Policy(roles=ROLES)
    assert resolve(contracts, policy, NOW) == resolve(list(reversed(contracts)), policy, NOW)
