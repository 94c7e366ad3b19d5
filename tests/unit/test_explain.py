"""What syncd wants for one person, and why (``syncd.core.explain``): pure tables."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from syncd.core.desired import resolve
from syncd.core.explain import Grant, contract_state, find, next_change, wants
from syncd.core.model import Contract, PersonState, Status
from syncd.core.policy import Policy, TargetPolicy
from tests.unit.test_desired import NOW, PERSON, ROLES, at, contract

DEV, VPN, OPS, WIKI = "cn=dev", "cn=vpn", "cn=ops", "cn=wiki"
TARGET = TargetPolicy(
    "corp",
    groups_by_role={"developer": (DEV, VPN), "operator": (OPS, VPN), "writer": (WIKI,)},
)
POLICY = Policy(roles=ROLES)


def wanted(*contracts: Contract, policy: Policy = POLICY, target: TargetPolicy = TARGET) -> Any:
    [person] = resolve(contracts, policy, NOW).values()
    return wants(person, contracts, target, policy, NOW)


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("ann@vendor.example", [PERSON]),
        ("ANN@Vendor.Example", [PERSON]),
        ("ann.lee", [PERSON]),
        (" Ann.Lee ", [PERSON]),
        ("c-2", [PERSON]),
        ("bo.chen", ["bo@vendor.example"]),
        ("lee", []),
        ("", []),
    ],
)
def test_a_person_is_found_by_email_key_username_or_contract_id(
    query: str, found: list[str]
) -> None:
    contracts = [
        contract("C-1", -5, 5),
        contract("C-2", 10, 20),
        contract("C-3", -5, 5, person="bo@vendor.example", username="bo.chen"),
    ]
    assert find(query, contracts) == found


@pytest.mark.parametrize(
    ("item", "policy", "state", "why"),
    [
        (contract("C-1", -5, 5), POLICY, "in_effect", "in effect until 2027-06-20T12:00:00Z"),
        (contract("C-1", -5, -1), POLICY, "ended", "ended 2027-06-14T12:00:00Z"),
        (contract("C-1", 2, 5), POLICY, "future", "starts 2027-06-17T12:00:00Z"),
        (
            contract("C-1", -5, 5, status=Status.CANCELLED),
            POLICY,
            "cancelled",
            "cancelled: grants nothing",
        ),
        (
            contract("C-1", -5, 5, status=Status.TERMINATED, terminated_at=-1),
            POLICY,
            "terminated",
            "terminated 2027-06-14T12:00:00Z",
        ),
        (
            contract("C-1", -5, 5),
            Policy(roles=ROLES, require_approval=True),
            "awaiting_approval",
            "not approved (policy.require_approval)",
        ),
    ],
)
def test_the_state_of_a_contract(item: Contract, policy: Policy, state: str, why: str) -> None:
    found = contract_state(item, policy, NOW)
    assert (found.state, found.why) == (state, why)


def test_each_group_is_traced_to_the_roles_and_contracts_that_grant_it() -> None:
    result = wanted(
        contract("C-1", -5, 5),
        contract("C-2", -5, 9, roles=("operator",)),
        contract("C-3", 3, 9, roles=("writer",)),
    )
    assert result.account is True
    assert result.groups == (DEV, OPS, VPN)
    assert result.grants == (
        Grant(DEV, "developer", "C-1"),
        Grant(OPS, "operator", "C-2"),
        Grant(VPN, "developer", "C-1"),
        Grant(VPN, "operator", "C-2"),
    )
    assert result.withheld == (Grant(WIKI, "writer", "C-3", "starts 2027-06-18T12:00:00Z"),)
    assert result.expiry == at(9)
    assert (
        result.note == "an enabled account: contract C-1, C-2 in effect until 2027-06-24T12:00:00Z"
    )


def test_a_group_granted_by_one_contract_is_not_withheld_by_another() -> None:
    result = wanted(contract("C-1", -5, 5), contract("C-2", -9, -6))
    assert result.withheld == ()
    assert result.groups == (DEV, VPN)


@pytest.mark.parametrize(
    ("item", "policy", "note"),
    [
        (
            contract("C-1", -9, -2),
            POLICY,
            "an existing account disabled, without groups or credentials (none is created): "
            "contract C-1 ended 2027-06-13T12:00:00Z",
        ),
        (
            contract("C-1", -9, -2),
            Policy(roles=ROLES, delete_after=timedelta(days=30)),
            "an existing account disabled, without groups or credentials (none is created): "
            "contract C-1 ended 2027-06-13T12:00:00Z; deleted 2027-07-13T12:00:00Z",
        ),
        (
            contract("C-1", -9, -2),
            Policy(roles=ROLES, delete_after=timedelta(days=1)),
            "no account (deleted after policy.delete_after): contract C-1 ended "
            "2027-06-13T12:00:00Z",
        ),
        (contract("C-1", 2, 9), POLICY, "no account yet: contract C-1 starts 2027-06-17T12:00:00Z"),
    ],
)
def test_what_is_wanted_without_access(item: Contract, policy: Policy, note: str) -> None:
    result = wanted(item, policy=policy)
    assert (result.account, result.grants, result.note) == (False, (), note)


def test_no_expiry_is_wanted_where_the_target_keeps_none() -> None:
    target = TargetPolicy("scim", groups_by_role=TARGET.groups_by_role, native_expiry=False)
    assert wanted(contract("C-1", -5, 5), target=target).expiry is None


def test_the_next_boundary_says_what_changes_then() -> None:
    contracts = [contract("C-1", -5, 5), contract("C-2", 2, 9, roles=("operator",))]
    change = next_change(contracts, POLICY, NOW)
    assert change is not None
    assert change.at == at(2)
    assert change.state is PersonState.ACTIVE
    assert (change.gained, change.lost) == (frozenset({"operator"}), frozenset())
    one_ends = next_change(contracts, POLICY, at(4))
    assert one_ends is not None
    assert (one_ends.at, one_ends.state) == (at(5), PersonState.ACTIVE)
    assert (one_ends.gained, one_ends.lost) == (frozenset(), frozenset({"developer"}))
    end = next_change(contracts, POLICY, at(6))
    assert end is not None
    assert (end.at, end.state, end.lost) == (at(9), PersonState.ENDED, frozenset({"operator"}))
    assert end.reason == "contract C-2 ended 2027-06-24T12:00:00Z"
    assert next_change(contracts, POLICY, at(10)) is None
