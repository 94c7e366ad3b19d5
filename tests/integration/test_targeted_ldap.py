"""Targeted boundary cycles against a real slapd: ``observe_people`` reads what
``observe`` reads for the people asked for, and ``syncd run`` handles a boundary with a
targeted cycle while the source changes and for a burst of ends (while it is down:
``tests.integration.test_daemon``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from syncd.config import load_config
from syncd.core.model import ActionKind
from syncd.engine import open_target
from syncd.targets.directory.matched import MATCHED_VALUES
from syncd.targets.ldap.target import LdapDirectory
from tests.integration.test_daemon import (
    START_MARGIN,
    Running,
    daemon,
    disabled_at,
    wait_for,
)
from tests.labs.common import contract, day, moment
from tests.labs.ldap import GROUPS, SUFFIX, Lab, dn_of

__all__ = ["daemon"]  # the fixture, shared with tests.integration.test_daemon
LOCK = "pwdaccountlockedtime"
REMOVE = ActionKind.REMOVE_MEMBER


def targeted(lab: Lab) -> list[dict[str, object]]:
    return [r for r in lab.audit() if r.get("activity_name") == "Targeted Cycle"]


def test_observe_people_reads_what_observe_reads_for_those_people(lab: Lab) -> None:
    lab.contracts(
        *[contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9)) for i in range(5)],
        contract("C-9", "Ana", "Lopez", ["writer", "operator"], day(-1), day(9)),
    )
    assert lab.syncd("sync").code == 0
    lab.set_password(dn_of("ana.lopez"))
    target = open_target(load_config(lab.config_path), "corp")
    try:
        everyone = target.observe()
        keys = {"ana.lopez@vendor.example", "per.son3@vendor.example", "nobody@vendor.example"}
        some = target.observe_people(keys)
    finally:
        target.close()
    assert some.accounts == {k: a for k, a in everyone.accounts.items() if k in keys}
    assert some.accounts["ana.lopez@vendor.example"].has_credentials
    assert GROUPS["ops"] in some.accounts["ana.lopez@vendor.example"].groups
    assert some.native_expiry == everyone.native_expiry
    assert (some.conflicts, some.missing_groups) == ({}, frozenset())


def test_observe_people_asks_the_groups_only_for_those_people(lab: Lab) -> None:
    """slapd offers the matched values control: the groups answer with the members asked
    for (130 people: two filters, long BER lengths), and their other members stay
    unknown, so that a membership write reads them whole first. Without the control the
    groups are read whole and the answer is the same."""
    people = [
        contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9)) for i in range(130)
    ]
    lab.contracts(*people)
    assert lab.syncd("sync").code == 0
    outsider = lab.add_account("pat", None, parent=f"ou=people,{SUFFIX}", groups=("developers",))
    target = open_target(load_config(lab.config_path), "corp")
    assert isinstance(target, LdapDirectory)
    keys = {f"per.son{i}@vendor.example" for i in range(130) if i % 13}
    try:
        everyone = target.observe()
        some = target.observe_people(keys)
        settings = target.reader.settings()
        assert MATCHED_VALUES in settings.server.controls
        target._settings = replace(settings, server=replace(settings.server, controls=frozenset()))
        whole = target.observe_people(keys)
    finally:
        target.close()
    assert len(some.accounts) == len(keys) == 120
    assert some.accounts == {k: a for k, a in everyone.accounts.items() if k in keys}
    assert all(GROUPS["developers"] in a.groups for a in some.accounts.values())
    assert some.others == {}
    assert whole.accounts == some.accounts
    assert outsider.lower() in whole.others[GROUPS["developers"]]


def test_a_membership_write_is_read_back_for_its_members_alone(lab: Lab) -> None:
    """Where the control is offered, a read-back given the members written asks the
    groups for those alone: the managed members among them, and no others (a group of
    100,000 read whole twice per write made every boundary take seconds). Without
    ``members`` the groups are read whole, their other members with them."""
    lab.contracts(*[contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9))
                    for i in range(4)])  # fmt: skip
    assert lab.syncd("sync").code == 0
    outsider = lab.add_account("pat", None, parent=f"ou=people,{SUFFIX}", groups=("developers",))
    target = open_target(load_config(lab.config_path), "corp")
    assert isinstance(target, LdapDirectory)
    devs, ops = GROUPS["developers"], GROUPS["ops"]
    try:
        target.observe_people({"per.son1@vendor.example", "per.son2@vendor.example"})
        written = [dn_of("per.son1"), dn_of("per.son2").upper()]  # DN matching, not bytes
        read = target.read_back(REMOVE, [], [devs, ops], written)
        whole = target.read_back(REMOVE, [], [devs, ops])
    finally:
        target.close()
    assert read.members == {devs: {"per.son1@vendor.example", "per.son2@vendor.example"},
                            ops: frozenset()}  # fmt: skip
    assert read.others == {}
    assert whole.members == read.members
    assert outsider.lower() in whole.others[devs]
    assert dn_of("per.son0").lower() in whole.others[devs]  # not observed: not managed here


def test_a_boundary_while_another_contract_changes_in_the_source(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    end = moment(START_MARGIN)
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-1), end)
    bo = contract("C-2", "Bo", "Chen", ["writer"], day(-1), day(10))
    lab.contracts(ana, bo)
    running = daemon()
    assert lab.entry(dn_of("ana.lopez")) is not None, "the daemon took too long to start"
    lab.contracts(ana, {**bo, "roles": ["operator"]})  # a full cycle, before the end

    wait_for(lambda: LOCK in (lab.entry(dn_of("ana.lopez")) or {}), 12, running)
    wait_for(lambda: "bo.chen" in str(lab.members(GROUPS["ops"])), 5, running)

    assert (disabled_at(lab, "ana.lopez") - datetime.fromisoformat(end)).total_seconds() <= 1
    assert "ana.lopez" not in str(lab.members(GROUPS["developers"]))
    assert "bo.chen" not in str(lab.members(GROUPS["wiki-editors"]))
    [record] = targeted(lab)
    assert record["unmapped"]["people"] == 1  # type: ignore[index]
    assert running.stop() == 0


def test_a_burst_of_ends_at_one_second_disables_everyone_first(
    lab: Lab, daemon: Callable[..., Running]
) -> None:
    end = moment(START_MARGIN + 4)
    ending = [contract(f"C-{i}", "End", f"Ing{i}", ["developer"], day(-1), end) for i in range(40)]
    staying = [
        contract(f"C-S{i}", "Stay", f"Er{i}", ["writer"], day(-1), day(9)) for i in range(20)
    ]
    lab.contracts(*ending, *staying)
    running = daemon(interval="300s")
    for i in range(40):
        lab.set_password(dn_of(f"end.ing{i}"))

    wait_for(lambda: all(LOCK in (lab.entry(dn_of(f"end.ing{i}")) or {}) for i in range(40)), 15)
    wait_for(lambda: not any("end.ing" in m for m in lab.members(GROUPS["developers"])), 5)

    records = [r for r in lab.audit() if r["status"] == "Success"]
    disables = [r for r in records if r.get("activity_name") == "Disable"]
    removals = [r for r in records if r.get("activity_name") == "Remove User"]
    resets = [r for r in records if r.get("activity_name") == "Password Reset"]
    assert len(disables) == 40
    assert max(r["time"] for r in disables) <= min(r["time"] for r in removals + resets)
    last = datetime.fromisoformat(disables[-1]["time_dt"].replace("Z", "+00:00"))
    print(f"burst of 40: last disable {(last - datetime.fromisoformat(end)).total_seconds():.3f} s")
    assert (last - datetime.fromisoformat(end)).total_seconds() <= 2
    assert all("userpassword" not in (lab.entry(dn_of(f"end.ing{i}")) or {}) for i in range(40))
    [record] = targeted(lab)
    assert record["unmapped"]["people"] == 40  # type: ignore[index]
    assert running.stop() == 0
