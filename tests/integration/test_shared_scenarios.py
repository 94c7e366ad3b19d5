"""The core lifecycle scenarios, run against every target type on independent servers,
each real and on loopback: OpenLDAP's slapd (``tests.servers.slapd``), 389 Directory
Server (``tests.servers.dirsrv``), scim2-server (``tests.servers.scim``), SCIMMY
(``tests.servers.scimmy``) and a Samba AD DC (``tests.servers.samba``).

A scenario talks to a :class:`~tests.labs.common.World` (the ``world`` fixture of
``tests.plugins.world``): syncd's config and contracts file, its command line, and a
small view of the target (does the account exist, is it enabled, which of the four lab
groups is it in).
"""

from __future__ import annotations

import json

from tests.labs.common import ANA, BO_FUTURE, CARLA_ENDED, Account, World


def test_a_new_contractor_gets_an_account_with_the_groups_of_their_roles(world: World) -> None:
    world.contracts(ANA)

    result = world.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert world.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))


def test_a_future_contract_creates_nothing_yet(world: World) -> None:
    world.contracts(BO_FUTURE)

    result = world.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert world.account("bo.chen") is None
    assert "(no changes)" in result.out


def test_an_ended_contract_disables_the_account_and_empties_its_groups(world: World) -> None:
    world.seed("carla.rossi", "carla.rossi@vendor.example", ("wiki-editors", "ops"))
    world.contracts(CARLA_ENDED)

    result = world.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert world.account("carla.rossi") == Account(False, frozenset())


def test_an_orphan_is_disabled_and_held_over_the_safety_limit(world: World) -> None:
    world.configure(safety={"max_orphan_disables": 2})
    world.seed("gone1", "gone1@vendor.example", ("ops",))
    world.contracts(ANA)
    assert world.syncd("sync").code == 0
    assert world.account("gone1") == Account(False, frozenset())
    for name in ("gone2", "gone3", "gone4"):
        world.seed(name, f"{name}@vendor.example", ("ops",))

    held = world.syncd("sync")

    assert held.code == 3, held.out
    assert "3 orphan accounts exceed safety.max_orphan_disables 2" in held.out
    assert world.account("gone2") == Account(True, frozenset({"ops"}))
    assert sum(r["status"] == "Held" for r in world.audit()) >= 3

    allowed = world.syncd("sync", "--allow-mass-change")

    assert allowed.code == 0, allowed.out
    assert world.account("gone4") == Account(False, frozenset())


def test_an_unmanaged_account_with_the_same_username_is_a_conflict_never_adopted(
    world: World,
) -> None:
    world.seed("ana.lopez", None)
    world.contracts(ANA, CARLA_ENDED)
    before = world.snapshot()

    result = world.syncd("sync")

    assert result.code == 1, result.out
    assert "! conflict ana.lopez (contract C-1): " in result.out
    assert "'ana.lopez' is taken by" in result.out  # the username, as the target names it
    assert "unmanaged" in result.out
    assert world.account("ana.lopez") is None
    assert world.snapshot() == before
    conflicts = [r for r in world.audit() if r.get("unmapped", {}).get("phase") == "conflict"]
    assert [r["user"]["name"] for r in conflicts] == ["ana.lopez"]
    assert [r["unmapped"]["contract_ids"] for r in conflicts] == [["C-1"]]
    planned = world.syncd("plan", "--json")
    [conflict] = [c for t in json.loads(planned.out)["targets"] for c in t["conflicts"]]
    assert (conflict["username"], conflict["contract_ids"]) == ("ana.lopez", ["C-1"])
    assert planned.code == 1


def test_a_second_sync_changes_nothing(world: World) -> None:
    world.seed("carla.rossi", "carla.rossi@vendor.example", ("wiki-editors",))
    world.seed("old.hand", "old.hand@vendor.example", ("ops",))
    world.contracts(ANA, BO_FUTURE, CARLA_ENDED)
    assert world.syncd("sync").code == 0
    before = world.snapshot()

    second = world.syncd("sync")

    assert second.code == 0, second.out + second.err
    assert "(no changes)" in second.out
    assert world.snapshot() == before


def test_a_dry_run_writes_nothing(world: World) -> None:
    world.seed("old.hand", "old.hand@vendor.example", ("ops",))
    world.contracts(ANA, CARLA_ENDED)
    before = world.snapshot()

    result = world.syncd("sync", "--dry-run")

    assert result.code == 0, result.out
    assert "+ create   ana.lopez" in result.out
    assert "- disable  old.hand" in result.out
    assert "Dry run: nothing was changed." in result.out
    assert world.snapshot() == before
    assert not [r for r in world.audit() if r["class_uid"] != 1008]
