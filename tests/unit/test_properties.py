"""Properties of contracts → people → plan, checked against a model of a directory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.desired import resolve
from syncd.core.model import (
    Action,
    ActionKind,
    Cause,
    Contract,
    Observed,
    ObservedAccount,
    Person,
    PersonState,
    Status,
    TargetPlan,
)
from syncd.core.plan import desired_groups, execution_order, plan_with_waits, same_instant
from syncd.core.policy import Limit, Policy, Safety, TargetPolicy
from syncd.core.render import render_attributes

NOW = datetime(2027, 6, 15, 12, tzinfo=UTC)
ROLES = ("developer", "writer", "operator")
GROUPS = {
    "developer": ("cn=dev", "cn=vpn"),
    "writer": ("cn=wiki",),
    "operator": ("cn=ops", "cn=vpn"),
}
MANAGED = sorted({g for groups in GROUPS.values() for g in groups})
ATTRIBUTES = {
    "cn": "{given_name} {family_name}",
    "o": "{vendor}",
    "description": "contractor: {contract_ids}",
}
PEOPLE = ("p0", "p1", "p2", "p3", "p4")
ORPHANS = ("o0", "o1", "o2")
SETTINGS = settings(max_examples=200, deadline=None, database=None)


class DirectoryError(Exception):
    """The model directory refused an action, as a real one would."""


def simulate(
    accounts: Mapping[str, ObservedAccount], actions: Iterable[Action]
) -> dict[str, ObservedAccount]:
    """Apply runnable actions to accounts (by person key) the way a directory would."""
    out = dict(accounts)
    for action in actions:
        if action.held:
            continue
        key = action.person
        if action.kind is ActionKind.CREATE:
            if key in out:
                raise DirectoryError(f"create: {key} exists")
            out[key] = ObservedAccount(
                key=key,
                ref=f"uid={action.username}",
                username=action.username,
                enabled=True,
                expiry=action.expiry,
                has_credentials=False,
                attributes=MappingProxyType({k: v for k, v in action.changes.items() if v}),
            )
            continue
        if key not in out:
            raise DirectoryError(f"{action.kind}: no account for {key}")
        acc = out[key]
        if action.kind is ActionKind.DELETE:
            del out[key]
        elif action.kind is ActionKind.ADD_MEMBER:
            if action.group in acc.groups:
                raise DirectoryError(f"{key} already in {action.group}")
            out[key] = replace(acc, groups=acc.groups | {action.group})
        elif action.kind is ActionKind.REMOVE_MEMBER:
            if action.group not in acc.groups:
                raise DirectoryError(f"{key} not in {action.group}")
            out[key] = replace(acc, groups=acc.groups - {action.group})
        elif action.kind is ActionKind.DISABLE:
            out[key] = replace(acc, enabled=False)
        elif action.kind is ActionKind.ENABLE:
            out[key] = replace(acc, enabled=True)
        elif action.kind is ActionKind.REVOKE_CREDENTIALS:
            out[key] = replace(acc, has_credentials=False)
        elif action.kind is ActionKind.SET_EXPIRY:
            out[key] = replace(acc, expiry=action.expiry)
        elif action.kind is ActionKind.UPDATE:
            attrs = dict(acc.attributes)
            for name, values in action.changes.items():
                if values:
                    attrs[name] = values
                else:
                    attrs.pop(name, None)
            out[key] = replace(acc, attributes=MappingProxyType(attrs))
        else:
            raise AssertionError(f"unknown action kind {action.kind}")
    return out


def test_simulate_applies_each_kind() -> None:
    def act(kind: ActionKind, **kw: object) -> Action:
        return Action("t", kind, "p", "u", None, "why", **kw)  # type: ignore[arg-type]

    end = NOW + timedelta(days=3)
    steps = [
        act(ActionKind.CREATE, changes={"cn": ("A",), "o": ()}, expiry=end),
        act(ActionKind.ADD_MEMBER, group="g1"),
        act(ActionKind.ADD_MEMBER, group="g2"),
        act(ActionKind.REMOVE_MEMBER, group="g1"),
        act(ActionKind.UPDATE, changes={"cn": (), "o": ("X",)}),
        act(ActionKind.DISABLE),
        act(ActionKind.ADD_MEMBER, group="g3", held="limit"),
    ]
    [acc] = simulate({}, steps).values()
    assert (acc.username, acc.enabled, acc.has_credentials, acc.expiry) == ("u", False, False, end)
    assert acc.groups == {"g2"}
    assert dict(acc.attributes) == {"o": ("X",)}
    after = simulate(
        {"p": replace(acc, has_credentials=True)},
        [
            act(ActionKind.ENABLE),
            act(ActionKind.REVOKE_CREDENTIALS),
            act(ActionKind.SET_EXPIRY, expiry=None),
        ],
    )
    assert (after["p"].enabled, after["p"].has_credentials, after["p"].expiry) == (
        True,
        False,
        None,
    )
    assert simulate(after, [act(ActionKind.DELETE)]) == {}
    with pytest.raises(DirectoryError):
        simulate(after, [act(ActionKind.CREATE)])
    with pytest.raises(DirectoryError):
        simulate({}, [act(ActionKind.DISABLE)])
    with pytest.raises(DirectoryError):
        simulate(after, [act(ActionKind.REMOVE_MEMBER, group="g9")])


def key_of(name: str) -> str:
    return f"{name}@v.example"


def _six_hours(count: int) -> timedelta:
    return timedelta(hours=6 * count)


# Instants around NOW on a 6-hour grid, so that exact boundaries come up often.
MOMENTS = st.integers(min_value=-240, max_value=240).map(lambda n: NOW + _six_hours(n))
MAYBE_MOMENT = st.integers(min_value=-241, max_value=240).map(
    lambda n: None if n == -241 else NOW + _six_hours(n)
)
LENGTHS = st.integers(min_value=1, max_value=200).map(_six_hours)
ATTRIBUTE_VALUES: tuple[tuple[str, ...], ...] = ((), ("stale",), ("P0 Lee",), ("a", "b"))


def bits(mask: int, items: Iterable[str]) -> list[str]:
    """The items whose bit is set in ``mask`` (few draws keep generation fast)."""
    return [item for i, item in enumerate(items) if mask >> i & 1]


@st.composite
def contracts_of(draw: st.DrawFn, name: str, username: str) -> list[Contract]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=3))):
        start = draw(MOMENTS)
        status = draw(st.sampled_from(Status))
        flags = draw(st.integers(min_value=0, max_value=7))
        out.append(
            Contract(
                id=f"C-{name}-{i}",
                person=key_of(name),
                email=key_of(name),
                given_name=name.upper(),
                family_name="Ng" if flags & 1 else "Lee",
                username=username,
                roles=tuple(bits(draw(st.integers(min_value=1, max_value=7)), ROLES)),
                start=start,
                end=start + draw(LENGTHS),
                status=status,
                terminated_at=draw(MAYBE_MOMENT) if status is Status.TERMINATED else None,
                vendor="Acme" if flags & 2 else "",
                approved_by="cfo@corp.example" if flags & 4 else "",
            )
        )
    return out


@st.composite
def accounts_of(draw: st.DrawFn, name: str, username: str) -> ObservedAccount:
    flags = draw(st.integers(min_value=0, max_value=3))
    values = draw(st.integers(min_value=0, max_value=4 ** len(ATTRIBUTES) - 1))
    attributes = {
        attr: ATTRIBUTE_VALUES[values >> (2 * i) & 3] for i, attr in enumerate(ATTRIBUTES)
    }
    return ObservedAccount(
        key=key_of(name),
        ref=f"uid={username}",
        username=username,
        enabled=bool(flags & 1),
        expiry=draw(MAYBE_MOMENT),
        has_credentials=bool(flags & 2),
        groups=frozenset(bits(draw(st.integers(min_value=0, max_value=15)), MANAGED)),
        attributes=MappingProxyType({k: v for k, v in attributes.items() if v}),
    )


@dataclass(frozen=True)
class World:
    policy: Policy
    target: TargetPolicy
    contracts: tuple[Contract, ...]
    accounts: Mapping[str, ObservedAccount]
    delete_after: timedelta | None

    def people(self) -> dict[str, Person]:
        return resolve(self.contracts, self.policy, NOW)

    def observed(self, accounts: Mapping[str, ObservedAccount] | None = None) -> Observed:
        return Observed(MappingProxyType(dict(self.accounts if accounts is None else accounts)))

    def plan(
        self, accounts: Mapping[str, ObservedAccount] | None = None, **kwargs: object
    ) -> TargetPlan:
        return plan_with_waits(
            self.target,
            self.people(),
            self.observed(accounts),
            NOW,
            delete_after=self.delete_after,
            **kwargs,  # type: ignore[arg-type]
        ).plan


@st.composite
def worlds(
    draw: st.DrawFn, shared_usernames: bool = False, limits: bool = False, crowd: int = 0
) -> World:
    """Up to five people with 1-3 contracts each, some with accounts, and a few orphans;
    ``crowd`` adds up to that many more orphans so that safety limits are reached."""
    names = bits(draw(st.integers(min_value=0, max_value=2 ** len(PEOPLE) - 1)), PEOPLE)
    orphans = bits(draw(st.integers(min_value=0, max_value=2 ** len(ORPHANS) - 1)), ORPHANS)
    crowd_size = draw(st.integers(min_value=0, max_value=crowd)) if crowd else 0

    def username(name: str) -> str:
        return draw(st.sampled_from(["u1", "u2", name])) if shared_usernames else name

    contracts: list[Contract] = []
    accounts: dict[str, ObservedAccount] = {}
    for name in names:
        login = username(name)
        contracts += draw(contracts_of(name, login))
        if draw(st.booleans()):
            accounts[key_of(name)] = draw(accounts_of(name, login))
    for name in orphans:
        accounts[key_of(name)] = draw(accounts_of(name, username(name)))
    for i in range(crowd_size):
        name = f"x{i:02d}"
        accounts[key_of(name)] = ObservedAccount(
            key_of(name), f"uid={name}", name, True, None, True, frozenset(MANAGED[:1])
        )
    policy = Policy(
        lead_time=draw(st.sampled_from([timedelta(0), timedelta(days=1)])),
        require_approval=draw(st.booleans()),
        roles=frozenset(ROLES),
    )
    safety = Safety()
    if limits:
        safety = Safety(
            max_orphan_disables=draw(st.sampled_from([Limit(0), Limit(1), Limit(30, True)])),
            max_deletes=draw(st.sampled_from([Limit(0), Limit(1), Limit(30, True)])),
        )
    target = TargetPolicy(
        name="corp",
        groups_by_role=MappingProxyType(GROUPS),
        attributes=MappingProxyType(ATTRIBUTES),
        native_expiry=draw(st.booleans()),
        safety=safety,
    )
    delete_after = draw(st.sampled_from([None, timedelta(0), timedelta(days=10)]))
    return World(policy, target, tuple(contracts), accounts, delete_after)


@SETTINGS
@given(worlds())
def test_applied_plan_converges_in_one_step(world: World) -> None:
    first = world.plan(allow_mass_change=True)
    assert first.held == ()
    after = simulate(world.accounts, first.actions)
    second = world.plan(after, allow_mass_change=True)
    assert second.actions == ()
    assert second.conflicts == first.conflicts


@SETTINGS
@given(worlds(shared_usernames=True))
def test_shared_usernames_never_collide_and_settle_in_two_steps(world: World) -> None:
    accounts = dict(world.accounts)
    for _ in range(2):
        before = accounts
        accounts = simulate(before, world.plan(before, allow_mass_change=True).actions)
        created = [a.username.lower() for k, a in accounts.items() if k not in before]
        assert len(set(created)) == len(created)
        assert not set(created) & {a.username.lower() for a in before.values()}
    assert world.plan(accounts, allow_mass_change=True).actions == ()


@SETTINGS
@given(worlds())
def test_applied_plan_reaches_the_desired_state(world: World) -> None:
    people = world.people()
    first = world.plan(allow_mass_change=True)
    after = simulate(world.accounts, first.actions)
    assert first.conflicts == ()
    for key, acc in after.items():
        person = people.get(key)
        if person is not None and person.state is PersonState.ACTIVE:
            assert acc.enabled
            assert acc.groups == desired_groups(world.target, person)
            for name, values in render_attributes(world.target.attributes, person).items():
                assert sorted(acc.attributes.get(name, ())) == sorted(values)
            if world.target.native_expiry:
                assert same_instant(acc.expiry, person.access_end)
        else:
            assert not acc.enabled
            assert acc.groups == frozenset()
            assert not acc.has_credentials
            if world.target.native_expiry and person is not None and person.last_end:
                assert acc.expiry is not None
                assert acc.expiry <= person.last_end
            if world.target.native_expiry and person is None:
                assert acc.expiry is not None
                assert acc.expiry <= NOW
    for key, person in people.items():
        if person.state is PersonState.ACTIVE:
            assert key in after
        elif key not in world.accounts:
            assert key not in after


@SETTINGS
@given(worlds(limits=True, crowd=4), st.booleans())
def test_planning_is_deterministic_and_sorted(world: World, allow: bool) -> None:
    one = world.plan(allow_mass_change=allow)
    assert world.plan(allow_mass_change=allow) == one
    keys = [execution_order(world.people(), NOW)(a) for a in one.actions]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    reordered = dict(reversed(list(world.accounts.items())))
    two = replace(world, contracts=tuple(reversed(world.contracts))).plan(
        reordered, allow_mass_change=allow
    )
    assert [replace(a, reason="") for a in two.actions] == [
        replace(a, reason="") for a in one.actions
    ]
    assert (two.conflicts, two.holds, two.managed) == (one.conflicts, one.holds, one.managed)


@SETTINGS
@given(worlds(crowd=15))
def test_default_limits_never_hold_what_a_contract_calls_for(world: World) -> None:
    result = world.plan()
    held = [a for a in result.held if a.cause is Cause.CONTRACT]
    assert [a for a in held if a.kind is not ActionKind.DELETE] == []
    if held:
        assert any("max_deletes" in h for h in result.holds)


@SETTINGS
@given(worlds(limits=True, crowd=15))
def test_only_orphan_actions_and_deletes_are_ever_held(world: World) -> None:
    result = world.plan()
    deletes = [a for a in result.actions if a.kind is ActionKind.DELETE]
    for action in result.held:
        assert action.held in result.holds
        if "max_deletes" in action.held:
            assert action.kind is ActionKind.DELETE
            assert all(d.held == action.held for d in deletes)
        else:
            assert "max_orphan_disables" in action.held
            assert action.cause is Cause.ORPHAN
    lifted = world.plan(allow_mass_change=True)
    assert lifted.held == ()
    assert lifted.holds == ()
    assert [replace(a, held="") for a in result.actions] == list(lifted.actions)
