"""Desired people + observed accounts → ordered plans with safety holds (``syncd.core.plan``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Conflict,
    Observed,
    ObservedAccount,
    Person,
    PersonState,
    TargetPlan,
)
from syncd.core.plan import (
    ORPHAN_REASON,
    Planned,
    absences,
    desired_groups,
    execution_order,
    plan_with_waits,
    same_instant,
)
from syncd.core.policy import Limit, Safety, TargetPolicy

NOW = datetime(2027, 6, 15, 12, tzinfo=UTC)
DAY = timedelta(days=1)
G_DEV = "cn=developers,ou=groups,dc=example,dc=test"
G_VPN = "cn=vpn,ou=groups,dc=example,dc=test"
G_WIKI = "cn=wiki,ou=groups,dc=example,dc=test"
G_OPS = "cn=ops,ou=groups,dc=example,dc=test"
TARGET = TargetPolicy(
    name="corp",
    groups_by_role=MappingProxyType(
        {"developer": (G_DEV, G_VPN), "writer": (G_WIKI,), "operator": (G_OPS, G_VPN)}
    ),
    attributes=MappingProxyType(
        {"cn": "{given_name} {family_name}", "mail": "{email}", "o": "{vendor}"}
    ),
)

ACTIVE, ENDED, FUTURE = PersonState.ACTIVE, PersonState.ENDED, PersonState.FUTURE
DISABLE, REMOVE, REVOKE = (
    ActionKind.DISABLE,
    ActionKind.REMOVE_MEMBER,
    ActionKind.REVOKE_CREDENTIALS,
)
CREATE, UPDATE, EXPIRY = ActionKind.CREATE, ActionKind.UPDATE, ActionKind.SET_EXPIRY
ENABLE, ADD, DELETE = ActionKind.ENABLE, ActionKind.ADD_MEMBER, ActionKind.DELETE


def at(days: float) -> datetime:
    return NOW + timedelta(days=days)


def person(
    name: str,
    state: PersonState = ACTIVE,
    roles: tuple[str, ...] = ("developer",),
    *,
    access_end: datetime | None = None,
    last_end: datetime | None = None,
    username: str = "",
    vendor: str = "",
) -> Person:
    """``name`` "ann" → key ann@v.example, username ann, given name Ann, family name Lee."""
    if state is ACTIVE:
        access_end = access_end or at(30)
        last_end = last_end or access_end
    elif state is ENDED:
        last_end = last_end or at(-10)
    return Person(
        key=f"{name}@v.example",
        state=state,
        username=username or name,
        email=f"{name}@v.example",
        given_name=name.capitalize(),
        family_name="Lee",
        vendor=vendor,
        sponsor="boss@corp.example",
        roles=frozenset(roles) if state is ACTIVE else frozenset(),
        contract_ids=(f"C-{name}",),
        access_end=access_end,
        last_end=last_end,
        next_start=None,
        reason=f"contract C-{name} says so",
    )


def account(
    name: str,
    *,
    enabled: bool = True,
    groups: tuple[str, ...] = (G_DEV, G_VPN),
    expiry: datetime | None = None,
    creds: bool = True,
    attributes: Mapping[str, tuple[str, ...]] | None = None,
    username: str = "",
) -> ObservedAccount:
    """An account that matches ``person(name)`` as ACTIVE developer, unless told otherwise."""
    if attributes is None:
        attributes = {"cn": (f"{name.capitalize()} Lee",), "mail": (f"{name}@v.example",)}
    return ObservedAccount(
        key=f"{name}@v.example",
        ref=f"uid={username or name},ou=contractors,dc=example,dc=test",
        username=username or name,
        enabled=enabled,
        expiry=expiry,
        has_credentials=creds,
        groups=frozenset(groups),
        attributes=MappingProxyType(dict(attributes)),
    )


def people(*items: Person) -> dict[str, Person]:
    return {p.key: p for p in items}


def observed(*items: ObservedAccount, conflicts: Mapping[str, Conflict] | None = None) -> Observed:
    return Observed(
        accounts=MappingProxyType({a.key: a for a in items}),
        conflicts=MappingProxyType(dict(conflicts or {})),
    )


def row(action: Action) -> tuple[ActionKind, str, str]:
    return (action.kind, action.person.split("@")[0], action.group)


def rows(plan: TargetPlan) -> list[tuple[ActionKind, str, str]]:
    return [row(a) for a in plan.actions]


def plan(
    wanted: dict[str, Person],
    seen: Observed,
    target: TargetPolicy = TARGET,
    **kwargs: object,
) -> TargetPlan:
    return plan_with_waits(target, wanted, seen, NOW, **kwargs).plan  # type: ignore[arg-type]


OFFBOARD_ANN = [
    (DISABLE, "ann", ""),
    (REMOVE, "ann", G_DEV),
    (REMOVE, "ann", G_VPN),
    (REVOKE, "ann", ""),
    (EXPIRY, "ann", ""),
]

CASES = [
    pytest.param(
        people(person("ann")),
        observed(),
        [(CREATE, "ann", ""), (ADD, "ann", G_DEV), (ADD, "ann", G_VPN)],
        id="new-active-person",
    ),
    pytest.param(
        people(person("ann", roles=("developer", "operator", "writer"))),
        observed(),
        [
            (CREATE, "ann", ""),
            (ADD, "ann", G_DEV),
            (ADD, "ann", G_OPS),
            (ADD, "ann", G_VPN),
            (ADD, "ann", G_WIKI),
        ],
        id="new-person-union-of-role-groups",
    ),
    pytest.param(
        people(person("ann", roles=("auditor",))),
        observed(),
        [(CREATE, "ann", "")],
        id="role-without-groups-on-this-target",
    ),
    pytest.param(people(person("ann", FUTURE)), observed(), [], id="future-nothing-exists"),
    pytest.param(people(person("ann", ENDED)), observed(), [], id="ended-without-account"),
    pytest.param(
        people(person("ann")), observed(account("ann", expiry=at(30))), [], id="converged-active"
    ),
    pytest.param(
        people(person("ann", ENDED)),
        observed(account("ann")),
        OFFBOARD_ANN,
        id="ended-offboard",
    ),
    pytest.param(
        people(person("ann", ENDED)),
        observed(account("ann", expiry=at(-10), enabled=False, groups=(), creds=False)),
        [],
        id="converged-ended",
    ),
    pytest.param(
        people(person("ann", ENDED)),
        observed(account("ann", expiry=at(-20), enabled=False, groups=(), creds=False)),
        [],
        id="ended-expiry-already-earlier",
    ),
    pytest.param(
        people(person("ann", ENDED)),
        observed(account("ann", expiry=at(5), enabled=False, groups=(G_WIKI,), creds=False)),
        [(REMOVE, "ann", G_WIKI), (EXPIRY, "ann", "")],
        id="ended-partly-offboarded",
    ),
    pytest.param(
        people(person("ann", ENDED)),
        observed(account("ann", expiry=at(-10), enabled=False, groups=(), creds=True)),
        [(REVOKE, "ann", "")],
        id="ended-disabled-but-credentials-left",
    ),
    pytest.param(
        people(person("ann", FUTURE)),
        observed(account("ann", expiry=at(40))),
        [(DISABLE, "ann", ""), (REMOVE, "ann", G_DEV), (REMOVE, "ann", G_VPN), (REVOKE, "ann", "")],
        id="future-person-with-account-disabled-no-expiry",
    ),
    pytest.param(
        {},
        observed(account("ann")),
        OFFBOARD_ANN,
        id="orphan-offboard",
    ),
    pytest.param(
        {},
        observed(account("ann", enabled=False, groups=(), creds=False, expiry=at(-1))),
        [],
        id="converged-orphan",
    ),
    pytest.param(
        people(person("ann")),
        observed(account("ann", expiry=at(30), enabled=False)),
        [(ENABLE, "ann", "")],
        id="disabled-active-account-enabled",
    ),
    pytest.param(
        people(person("ann")),
        observed(account("ann", expiry=at(10))),
        [(EXPIRY, "ann", "")],
        id="expiry-drift",
    ),
    pytest.param(
        people(person("ann")),
        observed(account("ann", expiry=None)),
        [(EXPIRY, "ann", "")],
        id="expiry-missing",
    ),
    pytest.param(
        people(person("ann")),
        observed(account("ann", expiry=at(30) + timedelta(microseconds=300))),
        [],
        id="expiry-equal-to-the-second",
    ),
    pytest.param(
        people(person("ann", roles=("developer", "writer"))),
        observed(account("ann", expiry=at(30), groups=(G_DEV, G_OPS))),
        [(REMOVE, "ann", G_OPS), (ADD, "ann", G_VPN), (ADD, "ann", G_WIKI)],
        id="group-drift",
    ),
    pytest.param(
        people(person("ann")),
        observed(account("ann", expiry=at(30), creds=False)),
        [],
        id="active-without-credentials-is-fine",
    ),
    pytest.param(
        people(person("ann", vendor="Acme")),
        observed(account("ann", expiry=at(30))),
        [(UPDATE, "ann", "")],
        id="attribute-added",
    ),
    pytest.param(
        people(person("ann"), person("bob", ENDED), person("cy", FUTURE)),
        observed(account("bob"), account("dan", enabled=False, creds=False, groups=(G_WIKI,))),
        [
            (DISABLE, "bob", ""),
            (REMOVE, "bob", G_DEV),
            (REMOVE, "bob", G_VPN),
            (REMOVE, "dan", G_WIKI),
            (REVOKE, "bob", ""),
            (CREATE, "ann", ""),
            (EXPIRY, "bob", ""),
            (EXPIRY, "dan", ""),
            (ADD, "ann", G_DEV),
            (ADD, "ann", G_VPN),
        ],
        id="kind-then-person-then-group-order",
    ),
]


@pytest.mark.parametrize(("wanted", "seen", "expected"), CASES)
def test_plan_actions(
    wanted: dict[str, Person], seen: Observed, expected: list[tuple[ActionKind, str, str]]
) -> None:
    result = plan(wanted, seen)
    assert rows(result) == expected
    assert result.target == "corp"
    assert result.managed == len(seen.accounts)
    assert result.holds == ()
    assert result.conflicts == ()
    assert all(not a.held for a in result.actions)
    assert all(a.target == "corp" for a in result.actions)


def test_create_carries_rendered_attributes_expiry_and_contract() -> None:
    ann = person("ann", roles=("developer", "writer"), access_end=at(45))
    result = plan(people(ann), observed())
    create, *adds = result.actions
    assert create.kind is CREATE
    assert create.ref is None
    assert create.username == "ann"
    assert create.expiry == at(45)
    assert dict(create.changes) == {"cn": ("Ann Lee",), "mail": ("ann@v.example",)}
    assert create.contract_ids == ("C-ann",)
    assert create.reason == ann.reason
    assert create.cause is Cause.CONTRACT
    assert {a.group for a in adds} == {G_DEV, G_VPN, G_WIKI}
    vpn = next(a for a in adds if a.group == G_VPN)
    assert vpn.reason == "role developer (C-ann)"
    wiki = next(a for a in adds if a.group == G_WIKI)
    assert wiki.reason == "role writer (C-ann)"


def test_no_native_expiry_means_no_expiry_actions() -> None:
    target = replace(TARGET, native_expiry=False)
    created = plan(people(person("ann")), observed(), target)
    assert created.actions[0].kind is CREATE
    assert created.actions[0].expiry is None
    drift = plan(people(person("ann")), observed(account("ann", expiry=at(3))), target)
    assert drift.actions == ()
    offboard = plan(people(person("ann", ENDED)), observed(account("ann")), target)
    assert EXPIRY not in {a.kind for a in offboard.actions}
    assert {a.kind for a in offboard.actions} == {DISABLE, REMOVE, REVOKE}


@pytest.mark.parametrize(
    ("wanted", "cause", "expiry", "reason", "ids"),
    [
        (
            people(person("ann", ENDED)),
            Cause.CONTRACT,
            at(-10),
            "contract C-ann says so",
            ("C-ann",),
        ),
        ({}, Cause.ORPHAN, NOW, ORPHAN_REASON, ()),
    ],
)
def test_offboard_details(
    wanted: dict[str, Person], cause: Cause, expiry: datetime, reason: str, ids: tuple[str, ...]
) -> None:
    result = plan(wanted, observed(account("ann", expiry=at(90))))
    assert rows(result) == OFFBOARD_ANN
    assert {a.cause for a in result.actions} == {cause}
    assert {a.reason for a in result.actions} == {reason}
    assert {a.contract_ids for a in result.actions} == {ids}
    assert {a.ref for a in result.actions} == {"uid=ann,ou=contractors,dc=example,dc=test"}
    assert result.actions[-1].expiry == expiry


@pytest.mark.parametrize(
    ("attributes", "changes"),
    [
        pytest.param(
            {"cn": ("Ann Leigh",), "mail": ("ann@v.example",)},
            {"cn": ("Ann Lee",)},
            id="one-attribute-changed",
        ),
        pytest.param(
            {"cn": ("Ann Lee",), "mail": ("ann@v.example",), "o": ("Old Co",)},
            {"o": ()},
            id="attribute-now-empty-is-removed",
        ),
        pytest.param(
            {"cn": ("Ann Lee",)},
            {"mail": ("ann@v.example",)},
            id="attribute-missing",
        ),
        pytest.param(
            {"cn": ("Ann Lee", "A. Lee"), "mail": ("ann@v.example",)},
            {"cn": ("Ann Lee",)},
            id="extra-value",
        ),
        pytest.param(
            {"mail": ("old@v.example",), "o": ("X",)},
            {"cn": ("Ann Lee",), "mail": ("ann@v.example",), "o": ()},
            id="everything-changed",
        ),
        pytest.param(
            {"cn": ("Ann Lee",), "mail": ("ann@v.example",), "title": ("boss",)},
            None,
            id="unmanaged-attributes-are-left-alone",
        ),
    ],
)
def test_attribute_drift_is_one_update_with_only_changed_attributes(
    attributes: dict[str, tuple[str, ...]], changes: dict[str, tuple[str, ...]] | None
) -> None:
    result = plan(
        people(person("ann")), observed(account("ann", expiry=at(30), attributes=attributes))
    )
    if changes is None:
        assert result.actions == ()
        return
    [update] = result.actions
    assert update.kind is UPDATE
    assert dict(update.changes) == changes
    assert update.ref == "uid=ann,ou=contractors,dc=example,dc=test"


def test_expiry_drift_sets_access_end() -> None:
    result = plan(people(person("ann", access_end=at(12))), observed(account("ann", expiry=at(30))))
    [action] = result.actions
    assert action.kind is EXPIRY
    assert action.expiry == at(12)
    assert action.cause is Cause.CONTRACT


def orphans(count: int, prefix: str = "o") -> list[ObservedAccount]:
    return [account(f"{prefix}{i:02d}") for i in range(count)]


def converged(count: int) -> list[ObservedAccount]:
    return [account(f"k{i:02d}", expiry=at(30)) for i in range(count)]


def kept(count: int) -> list[Person]:
    return [person(f"k{i:02d}") for i in range(count)]


def safety(orphan: Limit | None = None, deletes: Limit | None = None) -> TargetPolicy:
    """TARGET with the given limits; the defaults of ``Safety`` for those not given."""
    limits = Safety()
    return replace(
        TARGET,
        safety=Safety(
            max_orphan_disables=orphan or limits.max_orphan_disables,
            max_deletes=deletes or limits.max_deletes,
        ),
    )


@pytest.mark.parametrize(
    ("limit", "n_orphans", "n_kept", "held"),
    [
        pytest.param(Limit(2), 2, 0, False, id="count-at-limit"),
        pytest.param(Limit(2), 3, 0, True, id="count-over-limit"),
        pytest.param(Limit(0), 1, 5, True, id="zero-allows-none"),
        pytest.param(Limit(10), 10, 0, False, id="default-count-at-limit"),
        pytest.param(Limit(10), 11, 0, True, id="default-count-over-limit"),
        pytest.param(Limit(10, percent=True), 2, 18, False, id="percent-at-limit"),
        pytest.param(Limit(10, percent=True), 3, 17, True, id="percent-over-limit"),
        pytest.param(Limit(50, percent=True), 3, 3, False, id="percent-half"),
        pytest.param(Limit(50, percent=True), 4, 3, True, id="percent-over-half"),
    ],
)
def test_orphan_limit(limit: Limit, n_orphans: int, n_kept: int, held: bool) -> None:
    seen = observed(*orphans(n_orphans), *converged(n_kept))
    result = plan(people(*kept(n_kept)), seen, safety(orphan=limit))
    assert {a.cause for a in result.actions} == {Cause.ORPHAN}
    assert len({a.person for a in result.actions}) == n_orphans
    if held:
        assert result.runnable == ()
        assert len(result.held) == len(result.actions)
        managed = n_orphans + n_kept
        text = (
            f"{n_orphans} orphan accounts exceed safety.max_orphan_disables {limit} "
            f"of {managed} managed"
        )
        assert result.holds == (text,)
        assert {a.held for a in result.actions} == {text}
    else:
        assert result.holds == ()
        assert result.held == ()
    lifted = plan(people(*kept(n_kept)), seen, safety(orphan=limit), allow_mass_change=True)
    assert lifted.holds == ()
    assert lifted.held == ()
    assert [row(a) for a in lifted.actions] == rows(result)


def test_orphan_limit_counts_people_not_actions() -> None:
    result = plan({}, observed(*orphans(2)), safety(orphan=Limit(2)))
    assert len(result.actions) == 10
    assert result.held == ()


def test_contract_dated_offboarding_is_never_held_by_the_orphan_limit() -> None:
    wanted = people(person("ann", ENDED), person("bob"))
    seen = observed(account("ann"), *orphans(3))
    result = plan(wanted, seen, safety(orphan=Limit(1)))
    [hold] = result.holds
    assert "max_orphan_disables" in hold
    assert [row(a) for a in result.runnable] == [
        *OFFBOARD_ANN[:4],
        (CREATE, "bob", ""),
        OFFBOARD_ANN[4],
        (ADD, "bob", G_DEV),
        (ADD, "bob", G_VPN),
    ]
    assert {a.cause for a in result.held} == {Cause.ORPHAN}
    assert {a.person for a in result.held} == {"o00@v.example", "o01@v.example", "o02@v.example"}


def stale(name: str, days_ago: float) -> tuple[Person, ObservedAccount]:
    """An ENDED person whose account is already offboarded, access ended ``days_ago``."""
    return (
        person(name, ENDED, last_end=at(-days_ago)),
        account(name, enabled=False, groups=(), creds=False, expiry=at(-days_ago)),
    )


@pytest.mark.parametrize(
    ("days_ago", "delete_after", "deleted"),
    [
        (31, 30 * DAY, True),
        (30, 30 * DAY, True),
        (29, 30 * DAY, False),
        (400, None, False),
        (0, timedelta(0), True),
    ],
)
def test_delete_after(days_ago: float, delete_after: timedelta | None, deleted: bool) -> None:
    p, a = stale("ann", days_ago)
    result = plan(people(p), observed(a), delete_after=delete_after)
    if not deleted:
        assert result.actions == ()
        return
    [action] = result.actions
    assert action.kind is DELETE
    assert action.cause is Cause.CONTRACT
    assert action.ref == a.ref
    assert action.reason.startswith(f"access ended {at(-days_ago):%Y-%m-%dT%H:%M:%SZ}")
    assert "delete_after" in action.reason


def test_delete_comes_last_after_offboarding() -> None:
    result = plan(
        people(person("ann", ENDED, last_end=at(-40))),
        observed(account("ann")),
        delete_after=30 * DAY,
    )
    assert rows(result) == [*OFFBOARD_ANN, (DELETE, "ann", "")]


def test_future_person_with_account_is_never_deleted() -> None:
    result = plan(
        people(person("ann", FUTURE)),
        observed(account("ann", enabled=False, groups=(), creds=False, expiry=at(-400))),
        delete_after=DAY,
    )
    assert result.actions == ()


@pytest.mark.parametrize(
    ("expiry", "deleted"),
    [(at(-40), True), (at(-20), False), (None, False)],
)
def test_orphan_delete_uses_the_expiry_it_was_given(expiry: datetime | None, deleted: bool) -> None:
    a = account("ann", enabled=False, groups=(), creds=False, expiry=expiry)
    result = plan({}, observed(a), delete_after=30 * DAY)
    kinds = [x.kind for x in result.actions]
    assert (DELETE in kinds) is deleted
    assert {x.cause for x in result.actions} <= {Cause.ORPHAN}


@pytest.mark.parametrize(
    ("limit", "n_stale", "n_kept", "held"),
    [
        pytest.param(Limit(2), 2, 0, False, id="count-at-limit"),
        pytest.param(Limit(2), 3, 0, True, id="count-over-limit"),
        pytest.param(Limit(10, percent=True), 1, 9, False, id="percent-at-limit"),
        pytest.param(Limit(10, percent=True), 2, 9, True, id="percent-over-limit"),
    ],
)
def test_delete_limit(limit: Limit, n_stale: int, n_kept: int, held: bool) -> None:
    pairs = [stale(f"s{i}", 90) for i in range(n_stale)]
    wanted = people(*(p for p, _ in pairs), *kept(n_kept), person("new"))
    seen = observed(*(a for _, a in pairs), *converged(n_kept))
    result = plan(wanted, seen, safety(deletes=limit), delete_after=30 * DAY)
    deletes = [a for a in result.actions if a.kind is DELETE]
    assert len(deletes) == n_stale
    assert [row(a) for a in result.runnable][:1] == [(CREATE, "new", "")]
    if held:
        text = f"{n_stale} deletes exceed safety.max_deletes {limit} of {n_stale + n_kept} managed"
        assert result.holds == (text,)
        assert list(result.held) == deletes
        assert {a.held for a in deletes} == {text}
    else:
        assert result.holds == ()
        assert result.held == ()
    lifted = plan(
        wanted, seen, safety(deletes=limit), delete_after=30 * DAY, allow_mass_change=True
    )
    assert lifted.held == ()
    assert len(lifted.runnable) == len(result.actions)


def test_both_limits_hit_reports_both_holds() -> None:
    pairs = [stale(f"s{i}", 90) for i in range(2)]
    seen = observed(*(a for _, a in pairs), *orphans(2))
    result = plan(
        people(*(p for p, _ in pairs)),
        seen,
        safety(orphan=Limit(1), deletes=Limit(1)),
        delete_after=30 * DAY,
    )
    assert len(result.holds) == 2
    assert "max_orphan_disables" in result.holds[0]
    assert "max_deletes" in result.holds[1]
    assert result.runnable == ()


@pytest.mark.parametrize(
    ("wanted", "seen", "expected"),
    [
        pytest.param({}, observed(account("ann")), [], id="no-orphan-handling"),
        pytest.param(
            people(person("ann", roles=("writer",))),
            observed(account("ann", expiry=at(30))),
            [(ADD, "ann", G_WIKI)],
            id="no-group-removal",
        ),
        pytest.param(
            people(person("ann", roles=("writer",))),
            observed(account("ann", expiry=at(30), enabled=False)),
            [(ENABLE, "ann", ""), (ADD, "ann", G_WIKI)],
            id="grants-still-happen",
        ),
        pytest.param(
            people(person("ann", ENDED)),
            observed(account("ann")),
            OFFBOARD_ANN,
            id="a-valid-contract-end-still-offboards",
        ),
        pytest.param(
            people(person("ann", FUTURE)),
            observed(account("ann")),
            [],
            id="future-contract-takes-nothing-away",
        ),
    ],
)
def test_protected_person(
    wanted: dict[str, Person], seen: Observed, expected: list[tuple[ActionKind, str, str]]
) -> None:
    result = plan(wanted, seen, protected=frozenset({"ann@v.example"}))
    assert rows(result) == expected
    assert result.holds == ()


def test_protection_is_per_person() -> None:
    seen = observed(account("ann"), account("bob"))
    result = plan({}, seen, protected=frozenset({"ann@v.example"}))
    assert {a.person for a in result.actions} == {"bob@v.example"}


def test_observed_conflict_blocks_the_create_and_is_reported() -> None:
    conflict = Conflict("corp", "ann@v.example", "ann", "uid=ann,ou=people,dc=example,dc=test", "x")
    result = plan(
        people(person("ann"), person("bob")),
        observed(conflicts={"ann@v.example": conflict}),
    )
    assert result.conflicts == (replace(conflict, contract_ids=("C-ann",)),)
    assert {a.person for a in result.actions} == {"bob@v.example"}


@pytest.mark.parametrize("taken", ["ann", "ANN", "Ann"])
def test_username_of_another_managed_person_is_a_conflict(taken: str) -> None:
    result = plan(
        people(person("ann")),
        observed(account("zed", username=taken, expiry=at(-1))),
        allow_mass_change=True,
    )
    [conflict] = result.conflicts
    assert conflict.target == "corp"
    assert conflict.person == "ann@v.example"
    assert conflict.username == "ann"
    assert conflict.contract_ids == ("C-ann",)
    assert conflict.detail == (
        "username 'ann' is already used by person 'zed@v.example' "
        "(fix: give contract C-ann another username (username: field))"
    )
    assert "ann@v.example" not in {a.person for a in result.actions}
    assert {a.person for a in result.actions} == {"zed@v.example"}


def test_two_new_people_wanting_one_username() -> None:
    result = plan(people(person("ann", username="lee"), person("bob", username="lee")), observed())
    assert {a.person for a in result.actions} == {"ann@v.example"}
    [conflict] = result.conflicts
    assert conflict.person == "bob@v.example"
    assert conflict.contract_ids == ("C-bob",)
    assert "ann@v.example" in conflict.reason


@pytest.mark.parametrize(
    ("ids", "fix"),
    [
        ((), "give the contract a username AD accepts"),
        (("C-1",), "give contract C-1 a username AD accepts"),
        (("C-1", "C-2"), "give contracts C-1, C-2 a username AD accepts"),
    ],
)
def test_a_conflicts_fix_names_its_contracts(ids: tuple[str, ...], fix: str) -> None:
    conflict = Conflict(
        "corp", "ann@v.example", "ann", "", "too long", ids, "give {contract} a username AD accepts"
    )
    assert conflict.detail == f"too long (fix: {fix})"


def test_conflict_does_not_affect_an_existing_account() -> None:
    conflict = Conflict("corp", "ann@v.example", "ann", "uid=ann,dc=other", "x")
    result = plan(
        people(person("ann")),
        observed(account("ann", expiry=at(30)), conflicts={"ann@v.example": conflict}),
    )
    assert result.actions == ()
    assert result.conflicts == ()


def test_plan_is_independent_of_input_order_and_sorted() -> None:
    wanted = [person("ann"), person("bob", ENDED), person("cy", roles=("operator", "writer"))]
    accounts = [account("bob"), account("dan"), account("eve", groups=(G_OPS,), expiry=at(30))]
    wanted.append(person("eve", roles=("writer",)))
    one = plan(people(*wanted), observed(*accounts))
    two = plan(people(*reversed(wanted)), observed(*reversed(accounts)))
    assert one == two
    keys = [execution_order(people(*wanted), NOW)(a) for a in one.actions]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    kinds = [a.kind for a in one.actions]
    assert kinds.index(DISABLE) < kinds.index(CREATE) < kinds.index(ADD)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (None, None, True),
        (NOW, None, False),
        (None, NOW, False),
        (NOW, NOW + timedelta(milliseconds=999), True),
        (NOW, NOW + timedelta(seconds=1), False),
        (NOW, NOW.astimezone(ZoneInfo("Asia/Tokyo")), True),
    ],
)
def test_same_instant(a: datetime | None, b: datetime | None, same: bool) -> None:
    assert same_instant(a, b) is same


def test_desired_groups_is_union_over_roles() -> None:
    p = person("ann", roles=("developer", "operator", "unknown"))
    assert desired_groups(TARGET, p) == frozenset({G_DEV, G_VPN, G_OPS})
    assert desired_groups(TARGET, person("ann", ENDED)) == frozenset()


# -- the orphan grace: absence alone waits before anything irreversible ----------------

HOUR = timedelta(hours=1)
ANN = "ann@v.example"
DISABLED_ANN = account("ann", enabled=False, groups=(), expiry=NOW)  # credentials kept


def graced(
    wanted: dict[str, Person],
    seen: Observed,
    since: Mapping[str, datetime] | None = None,
    grace: timedelta = HOUR,
    **kwargs: object,
) -> Planned:
    return plan_with_waits(
        TARGET,
        wanted,
        seen,
        NOW,
        absent_since=since or {},
        orphan_grace=grace,
        **kwargs,  # type: ignore[arg-type]
    )


def waits(planned: Planned) -> list[tuple[ActionKind, str, datetime]]:
    return [(w.action.kind, w.action.person.split("@")[0], w.until) for w in planned.waits]


OFFBOARD_ANN_NOW = [row for row in OFFBOARD_ANN if row[0] is not REVOKE]


@pytest.mark.parametrize(
    ("wanted", "seen", "since", "extra", "now", "later"),
    [
        pytest.param(
            {},
            observed(account("ann")),
            {},
            {},
            OFFBOARD_ANN_NOW,
            [(REVOKE, "ann", at(1 / 24))],
            id="orphan-first-seen-now-disabled-revoke-waits",
        ),
        pytest.param(
            {},
            observed(account("ann")),
            {ANN: NOW - 20 * timedelta(minutes=1)},
            {},
            OFFBOARD_ANN_NOW,
            [(REVOKE, "ann", NOW + 40 * timedelta(minutes=1))],
            id="orphan-within-grace-waits-for-the-rest",
        ),
        pytest.param(
            {},
            observed(DISABLED_ANN),
            {ANN: NOW - 59 * timedelta(minutes=1)},
            {},
            [],
            [(REVOKE, "ann", NOW + timedelta(minutes=1))],
            id="offboarded-orphan-keeps-credentials-within-grace",
        ),
        pytest.param(
            {},
            observed(DISABLED_ANN),
            {ANN: NOW - HOUR},
            {},
            [(REVOKE, "ann", "")],
            [],
            id="grace-over-exactly-revoke",
        ),
        pytest.param(
            {},
            observed(account("ann")),
            {ANN: NOW - 3 * HOUR},
            {},
            OFFBOARD_ANN,
            [],
            id="absent-long-ago-everything-at-once",
        ),
        pytest.param(
            {},
            observed(replace(DISABLED_ANN, has_credentials=False)),
            {ANN: NOW - 3 * HOUR},
            {"delete_after": timedelta(0)},
            [(DELETE, "ann", "")],
            [],
            id="orphan-deleted-after-grace",
        ),
        pytest.param(
            {},
            observed(DISABLED_ANN),
            {ANN: NOW - 30 * timedelta(minutes=1)},
            {"delete_after": timedelta(0)},
            [],
            [(REVOKE, "ann", at(1 / 48)), (DELETE, "ann", at(1 / 48))],
            id="orphan-delete-waits-with-the-revoke",
        ),
        pytest.param(
            {},
            observed(DISABLED_ANN),
            {},
            {"delete_after": 30 * DAY},
            [],
            [(REVOKE, "ann", at(1 / 24))],
            id="delete-not-due-is-no-wait",
        ),
        pytest.param(
            people(person("ann", ENDED)),
            observed(account("ann")),
            {},
            {},
            OFFBOARD_ANN,
            [],
            id="contract-end-never-delayed",
        ),
        pytest.param(
            people(person("ann", ENDED)),
            observed(account("ann")),
            {ANN: NOW},
            {},
            OFFBOARD_ANN,
            [],
            id="contract-end-never-delayed-even-once-recorded-absent",
        ),
        pytest.param(
            people(person("ann", FUTURE)),
            observed(account("ann", expiry=at(40))),
            {},
            {},
            [
                (DISABLE, "ann", ""),
                (REMOVE, "ann", G_DEV),
                (REMOVE, "ann", G_VPN),
                (REVOKE, "ann", ""),
            ],
            [],
            id="cancelled-or-not-started-never-delayed",
        ),
        pytest.param(
            people(person("ann", ENDED, last_end=at(-40))),
            observed(account("ann", enabled=False, groups=(), expiry=at(-40))),
            {},
            {"delete_after": 30 * DAY},
            [(REVOKE, "ann", ""), (DELETE, "ann", "")],
            [],
            id="contract-delete-never-delayed",
        ),
        pytest.param(
            {},
            observed(account("ann")),
            {},
            {"protected": frozenset({ANN})},
            [],
            [],
            id="invalid-record-is-no-absence",
        ),
        pytest.param(
            {},
            observed(account("ann")),
            {},
            {"expiries_only": True},
            [],
            [],
            id="untrusted-source-no-orphan-handling-no-waits",
        ),
        pytest.param(
            people(person("ann")),
            observed(account("ann", expiry=at(30))),
            {ANN: at(-1)},
            {},
            [],
            [],
            id="a-person-present-never-waits",
        ),
    ],
)
def test_orphan_grace(
    wanted: dict[str, Person],
    seen: Observed,
    since: dict[str, datetime],
    extra: dict[str, object],
    now: list[tuple[ActionKind, str, str]],
    later: list[tuple[ActionKind, str, datetime]],
) -> None:
    planned = graced(wanted, seen, since, **extra)
    assert rows(planned.plan) == now
    assert waits(planned) == later
    assert planned.plan.holds == ()
    assert all(not a.held for a in planned.plan.actions)
    assert all(w.action.cause is Cause.ORPHAN for w in planned.waits)
    assert all(w.action.kind in (REVOKE, DELETE) for w in planned.waits)


def test_a_wait_says_what_it_waits_for_and_until_when() -> None:
    [wait] = graced({}, observed(account("ann"))).waits
    assert str(wait) == "waits for policy.orphan_grace until 2027-06-15T13:00:00Z"
    assert wait.action.reason == ORPHAN_REASON
    assert wait.action.ref == "uid=ann,ou=contractors,dc=example,dc=test"
    assert not wait.action.held
    [revoke] = graced({}, observed(DISABLED_ANN), {ANN: NOW - 2 * HOUR}).plan.actions
    assert revoke.reason == (
        f"{ORPHAN_REASON}; absent since 2027-06-15T10:00:00Z, over policy.orphan_grace 1h"
    )


def test_no_grace_is_the_old_rule_and_the_plan_leaves_the_waits_out() -> None:
    assert rows(graced({}, observed(account("ann")), grace=timedelta(0)).plan) == OFFBOARD_ANN
    assert rows(plan_with_waits(TARGET, {}, observed(account("ann")), NOW).plan) == OFFBOARD_ANN
    kept_back = plan_with_waits(TARGET, {}, observed(account("ann")), NOW, orphan_grace=HOUR).plan
    assert rows(kept_back) == OFFBOARD_ANN_NOW


def test_waits_count_against_no_safety_limit_and_mass_change_does_not_lift_them() -> None:
    offboarded = [replace(DISABLED_ANN, key=f"o{i}@v.example") for i in range(12)]
    planned = graced({}, observed(*offboarded))
    assert planned.plan.actions == ()
    assert planned.plan.holds == ()
    assert len(planned.waits) == 12
    lifted = graced({}, observed(*offboarded), allow_mass_change=True)
    assert lifted == planned
    due = graced({}, observed(*offboarded), {a.key: NOW - 2 * HOUR for a in offboarded})
    assert due.waits == ()
    assert len(due.plan.held) == 12  # twelve revocations at once: over the orphan limit
    assert "max_orphan_disables" in due.plan.holds[0]


def offboard_runnable(account_: ObservedAccount, plan_: TargetPlan) -> ObservedAccount:
    """What the target holds after the plan's runnable actions for this account."""
    for action in plan_.runnable:
        if action.kind is DISABLE:
            account_ = replace(account_, enabled=False)
        elif action.kind is REMOVE:
            account_ = replace(account_, groups=account_.groups - {action.group})
        elif action.kind is EXPIRY:
            account_ = replace(account_, expiry=action.expiry)
        elif action.kind is REVOKE:
            account_ = replace(account_, has_credentials=False)
        elif action.kind is ENABLE:
            account_ = replace(account_, enabled=True)
        elif action.kind is ADD:
            account_ = replace(account_, groups=account_.groups | {action.group})
    return account_


def test_a_person_back_within_the_grace_lost_nothing_irreversible() -> None:
    ann = account("ann", expiry=at(30))
    vanished = graced({}, observed(ann))  # a source read half-written: ann is missing
    ann = offboard_runnable(ann, vanished.plan)
    assert (ann.enabled, ann.groups, ann.has_credentials) == (False, frozenset(), True)

    back = graced(people(person("ann")), observed(ann), {ANN: NOW})  # the full file again

    assert rows(back.plan) == [
        (EXPIRY, "ann", ""),
        (ENABLE, "ann", ""),
        (ADD, "ann", G_DEV),
        (ADD, "ann", G_VPN),
    ]
    assert back.waits == ()
    ann = offboard_runnable(ann, back.plan)
    assert (ann.enabled, ann.groups, ann.has_credentials) == (True, frozenset({G_DEV, G_VPN}), True)
    assert ann.expiry == at(30)


A, B, C = "a@v.example", "b@v.example", "c@v.example"
EARLIER = NOW - 2 * HOUR


@pytest.mark.parametrize(
    ("previous", "present", "accounts", "protected", "complete", "expected"),
    [
        pytest.param({}, (), (A,), (), True, {A: NOW}, id="newly-absent-gets-now"),
        pytest.param({A: EARLIER}, (), (A,), (), True, {A: EARLIER}, id="still-absent-keeps"),
        pytest.param({A: EARLIER}, (A,), (A,), (), True, {}, id="back-in-the-source-dropped"),
        pytest.param({A: EARLIER}, (), (A,), (A,), True, {}, id="invalid-record-is-presence"),
        pytest.param({A: EARLIER}, (), (), (), True, {}, id="account-gone-dropped"),
        pytest.param({A: EARLIER}, (), (), (), False, {A: EARLIER}, id="target-unseen-keeps-clock"),
        pytest.param(
            {A: EARLIER, B: EARLIER},
            (B,),
            (C,),
            (),
            False,
            {A: EARLIER, C: NOW},
            id="unseen-target-still-drops-people-back",
        ),
        pytest.param({}, (B,), (B,), (), True, {}, id="a-person-with-a-contract-is-not-absent"),
    ],
)
def test_absences_carry_first_seen_from_cycle_to_cycle(
    previous: dict[str, datetime],
    present: tuple[str, ...],
    accounts: tuple[str, ...],
    protected: tuple[str, ...],
    complete: bool,
    expected: dict[str, datetime],
) -> None:
    wanted = {key: person(key.split("@")[0]) for key in present}
    seen = [observed(*(replace(account(k.split("@")[0]), key=k) for k in accounts)), observed()]
    result = absences(
        previous, wanted, seen, NOW, protected=frozenset(protected), complete=complete
    )
    assert result == expected


def test_a_burst_of_ends_is_disabled_for_everyone_first_then_in_deadline_order() -> None:
    early = person("zed", ENDED, last_end=at(-2))
    late = person("amy", ENDED, last_end=at(-1))
    result = plan(
        people(early, late),
        observed(account("zed", groups=(G_DEV,)), account("amy", groups=(G_DEV,))),
    )
    steps = [(a.kind, a.person) for a in result.actions if a.kind in (DISABLE, REMOVE)]
    assert steps == [
        (DISABLE, "zed@v.example"),
        (DISABLE, "amy@v.example"),
        (REMOVE, "zed@v.example"),
        (REMOVE, "amy@v.example"),
    ]
