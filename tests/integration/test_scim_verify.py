"""Verified outcomes on a real scim2-server: ``ScimDirectory.read_back`` reports what the
server holds after syncd's writes, a server that answers success without applying a
write yields a Failure with ``verified: false``, a group PATCH that wipes other
members is recorded as a collateral change, and what a read-back costs. Also the
request hygiene that verification exposed: no query parameters on PATCH unless asked
for, a failed sponsor look-up said as such, and no update planned every cycle for a
sponsor who is no user of the application."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.audit import AuditWriter
from syncd.config import load_config
from syncd.core.model import Action, ActionKind, Outcome
from syncd.core.verify import collateral, verified
from syncd.engine import CyclePlan, open_target, open_targets, plan_cycle, run_cycle
from syncd.errors import TargetError
from syncd.targets.scim import ScimDirectory
from tests.labs.common import ANA, day, people
from tests.labs.scim import ScimLab
from tests.servers.scim import ENTERPRISE, FaultProxy

ANA_KEY = "ana.lopez@vendor.example"
LAB_GROUPS = ["developers", "vpn-users", "wiki-editors", "ops"]
ATTESTATION = 2003  # OCSF Compliance Finding
CREATE, DISABLE, DELETE = ActionKind.CREATE, ActionKind.DISABLE, ActionKind.DELETE
ADD, REMOVE = ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER


def config_of(lab: ScimLab) -> Path:
    """The lab's config as its last ``write_config`` left it."""
    return lab.config_path if lab.config_path.exists() else lab.write_config()


@contextmanager
def opened(lab: ScimLab) -> Iterator[ScimDirectory]:
    """The lab's target as syncd opens it, observed (a cycle has begun)."""
    target = open_target(load_config(config_of(lab)), "corp")
    assert isinstance(target, ScimDirectory)
    try:
        target.observe()
        yield target
    finally:
        target.close()


def user_id(lab: ScimLab, name: str) -> str:
    user = lab.directory.user(name)
    assert user is not None, name
    return str(user["id"])


def active(lab: ScimLab, name: str) -> Any:
    user = lab.directory.user(name)
    assert user is not None, name
    return user.get("active")


def outcomes(lab: ScimLab, activity: str) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.audit()
        if r.get("activity_name") == activity and r["unmapped"].get("phase") == "outcome"
    ]


def writes(proxy: FaultProxy) -> int:
    return sum(proxy.count(method) for method in ("POST", "PUT", "PATCH", "DELETE"))


# -- read_back ---------------------------------------------------------------------------
def test_read_back_of_a_created_user_is_what_the_observation_sees(scim_lab: ScimLab) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    ana, jdoe, asmith = (user_id(scim_lab, n) for n in ("ana.lopez", "jdoe", "asmith"))

    with opened(scim_lab) as target:
        observed = target.observe().accounts[ANA_KEY]
        read = target.read_back(CREATE, [(ANA_KEY, ana), ("nobody@vendor.example", None)], [])
        both = target.read_back(CREATE, [(ANA_KEY, ana)], LAB_GROUPS)
        groups = target.read_back(ADD, [], LAB_GROUPS)

    # read by id: as observed (the manager's e-mail included), groups asked for aside
    assert read.accounts[ANA_KEY] == replace(observed, groups=frozenset())
    assert both.accounts[ANA_KEY] == observed
    assert observed.attributes[f"{ENTERPRISE}:manager"] == ("jdoe@example.test",)
    assert observed.enabled
    assert observed.groups == {"developers", "vpn-users"}
    assert read.accounts["nobody@vendor.example"] is None
    assert read.evidence == {ANA_KEY: {"active": ("true",)}}
    assert both.evidence == {ANA_KEY: {"active": ("true",), "groups": ("developers", "vpn-users")}}
    # a membership read-back: the groups, by person key and by id outside the scope
    assert groups.accounts == {}
    assert groups.members == {
        "developers": {ANA_KEY},
        "vpn-users": {ANA_KEY},
        "wiki-editors": frozenset(),
        "ops": frozenset(),
    }
    assert (
        groups.others
        == both.others
        == {
            "developers": {jdoe},
            "vpn-users": {jdoe},
            "wiki-editors": {asmith},
            "ops": {asmith},
        }
    )


def test_read_back_finds_a_user_without_its_id_by_external_id(scim_lab: ScimLab) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0

    with opened(scim_lab) as target:
        read = target.read_back(DISABLE, [(ANA_KEY, None)], [])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert account.ref == user_id(scim_lab, "ana.lopez")
    assert read.evidence[ANA_KEY] == {"active": ("true",)}  # no groups asked for
    assert read.members == read.others == {}


def test_read_back_of_a_disabled_removed_and_deleted_user(scim_lab: ScimLab) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    ana = user_id(scim_lab, "ana.lopez")
    scim_lab.contracts({**ANA, "start": day(-40), "end": day(-2)})

    assert scim_lab.syncd("sync").code == 0
    with opened(scim_lab) as target:
        read = target.read_back(DISABLE, [(ANA_KEY, ana)], [])
        groups = target.read_back(REMOVE, [], ["developers", "vpn-users"])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert not account.enabled
    assert read.evidence[ANA_KEY] == {"active": ("false",)}
    assert groups.members == {"developers": frozenset(), "vpn-users": frozenset()}
    (disable,) = outcomes(scim_lab, "Disable")
    assert disable["unmapped"]["verified"] is True
    assert disable["unmapped"]["readback"] == {"active": ["false"]}
    removals = outcomes(scim_lab, "Remove User")
    assert [r["unmapped"]["verified"] for r in removals] == [True, True]
    assert [r["unmapped"]["readback"] for r in removals] == [{"member": ["false"]}] * 2

    scim_lab.configure(policy={"timezone": "UTC", "delete_after": "1d"})
    assert scim_lab.syncd("sync").code == 0
    with opened(scim_lab) as target:
        by_id = target.read_back(DELETE, [(ANA_KEY, ana)], [])
        by_key = target.read_back(DELETE, [(ANA_KEY, None)], [])

    assert by_id.accounts == by_key.accounts == {ANA_KEY: None}
    assert outcomes(scim_lab, "Delete")[-1]["unmapped"]["verified"] is True


def test_a_read_back_that_cannot_reach_the_server_raises(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    with opened(scim_lab) as target:
        proxy.inject(10, method="GET", status=503, retry_after="0")
        with pytest.raises(TargetError):
            target.read_back(DISABLE, [(ANA_KEY, None)], [])


def test_a_server_that_refuses_filters_on_id_is_read_back_by_external_id(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    ana = user_id(scim_lab, "ana.lopez")

    with opened(scim_lab) as target:
        proxy.reset()
        proxy.inject(1, method="GET", path="filter=id+eq", status=400)
        read = target.read_back(DISABLE, [(ANA_KEY, ana)], [])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert account.ref == ana
    assert proxy.count("GET") == 2  # refused, then by externalId


# -- writes the server did not keep ------------------------------------------------------
def test_a_patch_answered_but_not_applied_is_not_verified(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    ana = user_id(scim_lab, "ana.lopez")
    disable = Action("corp", ActionKind.DISABLE, ANA_KEY, "ana.lopez", ana, "test")
    answers: list[Outcome] = []

    with opened(scim_lab) as target:
        proxy.inject(1, method="PATCH", path="/Users/", swallow=204)
        target.apply([disable], answers.append)
        read = target.read_back(DISABLE, [(ANA_KEY, ana)], [])

    (answer,) = answers
    assert answer.ok is True  # what the server said
    checked = verified(answer, read)
    assert checked.ok is False
    assert checked.verified is False
    assert "still enabled after disable" in checked.detail
    assert checked.observed == {"active": ("true",)}


def test_a_group_patch_answered_but_not_applied_is_not_verified(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    ana = user_id(scim_lab, "ana.lopez")
    remove = Action(
        "corp", ActionKind.REMOVE_MEMBER, ANA_KEY, "ana.lopez", ana, "test", group="developers"
    )
    answers: list[Outcome] = []

    with opened(scim_lab) as target:
        proxy.inject(1, method="PATCH", path="/Groups/", swallow=204)
        target.apply([remove], answers.append)
        read = target.read_back(REMOVE, [], ["developers"])

    checked = verified(answers[0], read)
    assert (answers[0].ok, checked.ok, checked.verified) == (True, False, False)
    assert checked.detail == (
        "corp reports still a member of developers after remove (member: true)"
    )


def test_a_disable_the_server_drops_is_a_failure_in_the_trail_and_tried_again(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    scim_lab.contracts({**ANA, "start": day(-40), "end": day(-2)})
    proxy.inject(1, method="PATCH", path="/Users/", swallow=204)

    result = scim_lab.syncd("sync")

    assert result.code == 1, result.out
    (disable,) = outcomes(scim_lab, "Disable")
    assert disable["status"] == "Failure"
    assert disable["unmapped"]["verified"] is False
    assert disable["unmapped"]["readback"] == {"active": ["true"]}
    assert "still enabled after disable" in disable["status_detail"]
    assert active(scim_lab, "ana.lopez") is True

    again = scim_lab.syncd("sync")

    assert again.code == 0, again.out
    assert outcomes(scim_lab, "Disable")[-1]["unmapped"]["verified"] is True
    assert active(scim_lab, "ana.lopez") is False


def _replace_members(body: dict[str, Any]) -> dict[str, Any]:
    """An add of members applied as a replacement of the whole list."""
    return {**body, "Operations": [{**op, "op": "replace"} for op in body["Operations"]]}


def _remove_all_members(body: dict[str, Any]) -> dict[str, Any]:
    """A removal of some members applied to every member."""
    return {**body, "Operations": [{"op": "remove", "path": "members"}]}


def test_a_group_patch_that_wipes_other_members_shows_them_vanished(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts({**ANA, "roles": ["writer"]})
    assert scim_lab.syncd("sync").code == 0
    ana, jdoe = user_id(scim_lab, "ana.lopez"), user_id(scim_lab, "jdoe")
    add = Action(
        "corp", ActionKind.ADD_MEMBER, ANA_KEY, "ana.lopez", ana, "test", group="developers"
    )
    answers: list[Outcome] = []

    with opened(scim_lab) as target:
        before = target.read_back(ADD, [], ["developers"])
        proxy.inject(1, method="PATCH", path="/Groups/", rewrite=_replace_members)
        target.apply([add], answers.append)
        after = target.read_back(ADD, [], ["developers"])

    assert answers[0].ok is True
    assert verified(answers[0], after).verified is True  # ours is in: only others lost
    assert before.others == {"developers": {jdoe}}
    assert after.others == {"developers": frozenset()}
    assert after.members == {"developers": {ANA_KEY}}
    (change,) = collateral("corp", before.others, after.others, ["developers"])
    assert change.vanished == {jdoe}
    assert change.appeared == frozenset()


def test_collateral_changes_of_an_add_and_a_remove_are_in_the_trail(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    jdoe = user_id(scim_lab, "jdoe")
    scim_lab.contracts(ANA)
    proxy.inject(2, method="PATCH", path="/Groups/", rewrite=_replace_members)

    scim_lab.syncd("sync")

    trail = scim_lab.audit()
    wiped = {r["group"]["uid"]: r for r in trail if r["unmapped"].get("phase") == "collateral"}
    assert set(wiped) == {"developers", "vpn-users"}
    assert wiped["developers"]["unmapped"]["vanished"] == [jdoe]
    assert scim_lab.directory.member_names("developers") == {"ana.lopez"}  # not repaired

    scim_lab.directory.join("developers", jdoe)
    scim_lab.contracts({**ANA, "roles": ["writer"]})
    developers = scim_lab.directory.group("developers")["id"]
    proxy.inject(1, method="PATCH", path=f"/Groups/{developers}", rewrite=_remove_all_members)

    scim_lab.syncd("sync")

    emptied = [r for r in scim_lab.audit() if r["unmapped"].get("phase") == "collateral"][2:]
    assert [(r["group"]["uid"], r["unmapped"]["vanished"]) for r in emptied] == [
        ("developers", [jdoe])
    ]


# -- cost --------------------------------------------------------------------------------
@pytest.mark.parametrize(("page_size", "requests"), [(500, 2), (100, 4)])
def test_reading_back_250_users_costs_a_handful_of_requests(
    scim_lab: ScimLab, proxy: FaultProxy, page_size: int, requests: int
) -> None:
    scim_lab.write_config(page_size=page_size)
    scim_lab.contracts(*people(250, ["writer"]))
    assert scim_lab.syncd("sync").code == 0

    with opened(scim_lab) as target:
        observed = target.observe().accounts
        proxy.reset()
        read = target.read_back(CREATE, [(key, a.ref) for key, a in observed.items()], [])
        by_id = (proxy.count(), proxy.count("GET"))
        proxy.reset()
        by_key = target.read_back(CREATE, [(key, None) for key in observed], ["wiki-editors"])

    assert len(observed) == 250
    assert read.accounts == {k: replace(a, groups=frozenset()) for k, a in observed.items()}
    # a count of all users, then their list (pages) or OR filters, whichever is fewer
    assert by_id == (requests, requests)
    assert proxy.count() == proxy.count("GET") == requests + 1  # and the group
    assert {a.groups for a in by_key.accounts.values() if a} == {frozenset({"wiki-editors"})}
    assert by_key.others == {"wiki-editors": {user_id(scim_lab, "asmith")}}
    assert by_key.members == {"wiki-editors": set(observed)}


# -- request hygiene ---------------------------------------------------------------------
def test_patches_carry_no_query_parameters_unless_configured(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    scim_lab.contracts({**ANA, "roles": ["writer"], "vendor": "Globex"})

    assert scim_lab.syncd("sync").code == 0

    patches = [path for method, path, _ in proxy.sent if method == "PATCH"]
    assert any("/Users/" in p for p in patches)
    assert any("/Groups/" in p for p in patches)
    assert not [p for p in patches if "?" in p]

    proxy.reset()
    scim_lab.write_config(patch_excludes_members=True)
    scim_lab.contracts(ANA)
    assert scim_lab.syncd("sync").code == 0
    groups = [path for method, path, _ in proxy.sent if method == "PATCH" and "/Groups/" in path]
    assert groups
    assert all(p.endswith("?excludedAttributes=members") for p in groups)


UNEVALUATED = "sponsors cannot be looked up: the service provider could not evaluate the filter"


def test_a_failed_sponsor_look_up_is_said_and_leaves_the_manager(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    proxy.inject(1, method="GET", path="emails.value", status=400)

    assert scim_lab.syncd("sync").code == 0

    (create,) = outcomes(scim_lab, "Create")
    assert UNEVALUATED in create["status_detail"]
    assert "(400 Bad Request: injected by the test proxy)" in create["status_detail"]
    assert "manager left unchanged" in create["status_detail"]
    assert "is not a user" not in create["status_detail"]

    assert scim_lab.syncd("sync").code == 0  # the look-up works again: the manager is set
    jdoe = user_id(scim_lab, "jdoe")
    ana = scim_lab.directory.user("ana.lopez")
    assert ana is not None
    assert ana[ENTERPRISE]["manager"] == {"value": jdoe}

    scim_lab.contracts({**ANA, "sponsor": "asmith@ex.test"})
    proxy.inject(1, method="GET", path="emails.value", status=400)

    result = scim_lab.syncd("sync")

    assert result.code == 1, result.out
    update = outcomes(scim_lab, "Update")[-1]
    assert update["status"] == "Failure"
    assert UNEVALUATED in update["status_detail"]
    ana = scim_lab.directory.user("ana.lopez")
    assert ana is not None
    assert ana[ENTERPRISE]["manager"] == {"value": jdoe}  # unchanged, not removed


@contextmanager
def cycles(lab: ScimLab) -> Iterator[Callable[[], CyclePlan]]:
    """Cycles as the daemon runs them: the same targets from one cycle to the next."""
    config = load_config(config_of(lab))
    targets = open_targets(config)

    def cycle() -> CyclePlan:
        planned = plan_cycle(config, datetime.now(UTC), targets)
        correlation = str(uuid.uuid4())
        with AuditWriter.from_config(config.audit, correlation) as audit:
            run_cycle(planned, targets, audit, correlation)
        return planned

    try:
        yield cycle
    finally:
        for target in targets.values():
            target.close()


def test_a_sponsor_who_is_no_user_is_not_planned_again_every_cycle(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts({**ANA, "sponsor": "nobody@example.test"})
    with cycles(scim_lab) as cycle:
        first = cycle()
        assert [a.kind for a in first.plans[0].actions].count(ActionKind.CREATE) == 1
        records = len(scim_lab.audit())
        proxy.reset()

        converged = cycle()

        assert converged.plans[0].actions == ()
        assert writes(proxy) == 0
        # nothing about accounts or groups: only the cycle's attestation of the scope
        assert {r["class_uid"] for r in scim_lab.audit()[records:]} <= {ATTESTATION}
        # discovery (3), the managed users, the groups, the sponsor looked up again
        assert proxy.count() == proxy.count("GET") == 6

        nobody = scim_lab.directory.add_user("nobody", email="nobody@example.test")
        joined = cycle()

        (update,) = joined.plans[0].actions
        assert update.kind is ActionKind.UPDATE
        assert update.changes == {f"{ENTERPRISE}:manager": ("nobody@example.test",)}
        ana = scim_lab.directory.user("ana.lopez")
        assert ana is not None
        assert ana[ENTERPRISE]["manager"] == {"value": nobody}
        assert cycle().plans[0].actions == ()
