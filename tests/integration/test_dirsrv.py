"""The ``ldap`` target on 389 Directory Server and on slapd: the server's flavour read
from its root DSE, the defaults it brings (389-ds: ``nsAccountLock``, no native expiry,
``nsSshPublicKey``), an explicit setting winning over them, ``check-config --online``
checking the subschema, and real binds refused by ``nsAccountLock``.

The shared lifecycle scenarios run on 389-ds too (``tests.plugins.world``)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config import load_config
from syncd.core.model import Action, ActionKind, Outcome
from syncd.engine import open_target
from syncd.targets.directory.matched import MATCHED_VALUES
from syncd.targets.ldap import LdapDirectory
from syncd.targets.ldap.flavour import Flavour
from tests.labs.common import ANA, CARLA_ENDED, contract, day
from tests.labs.dirsrv import DirsrvLab
from tests.labs.ldap import GROUPS, Lab, dn_of

ANA_ENDED = {**ANA, "start": day(-20), "end": day(-1)}
DIRSRV_ABOUT = "— disable: nsaccountlock, native expiry: none, credentials: userPassword, "


def directory(lab: Lab) -> LdapDirectory:
    """The lab's target as syncd opens it (not connected yet)."""
    if not lab.config_path.exists():
        lab.write_config()
    target = open_target(load_config(lab.config_path), "corp")
    assert isinstance(target, LdapDirectory)
    return target


def revoke(username: str, dn: str) -> Action:
    person = f"{username}@vendor.example"
    return Action("corp", ActionKind.REVOKE_CREDENTIALS, person, username, dn, "test")


@pytest.fixture(name="either", params=["dirsrv", "slapd"])
def either_fixture(request: pytest.FixtureRequest) -> Lab:
    """The 389-ds lab, then the slapd one."""
    lab: Lab = request.getfixturevalue("dirsrv_lab" if request.param == "dirsrv" else "lab")
    return lab


# -- the flavour and its defaults -----------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "flavour", "label", "method", "expiry", "credentials"),
    [
        (
            "dirsrv_lab",
            Flavour.DIRSRV,
            "389 Directory Server 2.",
            "nsaccountlock",
            False,
            ("userPassword", "nsSshPublicKey"),
        ),
        ("lab", Flavour.OPENLDAP, "OpenLDAP", "ppolicy", True, ("userPassword", "sshPublicKey")),
    ],
    ids=["389-ds", "openldap"],
)
def test_the_flavour_comes_from_the_root_dse_and_brings_its_defaults(
    request: pytest.FixtureRequest,
    fixture: str,
    flavour: Flavour,
    label: str,
    method: str,
    expiry: bool,
    credentials: tuple[str, ...],
) -> None:
    target = directory(request.getfixturevalue(fixture))
    try:
        settings = target.settings()
    finally:
        target.close()
    assert settings.server.flavour is flavour
    assert settings.server.label.startswith(label)
    assert (settings.method, settings.native_expiry) == (method, expiry)
    assert settings.credential_attributes == credentials
    assert settings.configured == frozenset()


def test_on_389ds_the_defaults_create_lock_and_strip_without_pwdendtime(
    dirsrv_lab: DirsrvLab,
) -> None:
    lab = dirsrv_lab
    lab.contracts(ANA)

    plan = lab.syncd("plan")
    first = lab.syncd("sync")

    assert plan.code == 0, plan.out + plan.err
    assert "corp: 389 Directory Server 2." in plan.out
    assert DIRSRV_ABOUT + "nsSshPublicKey\n" in plan.out
    assert first.code == 0, first.out + first.err
    ana = lab.entry(dn_of("ana.lopez"))
    assert ana is not None
    assert "pwdendtime" not in ana
    assert "nsaccountlock" not in ana
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])
    assert "(no changes)" in lab.syncd("sync").out

    lab.set_password(dn_of("ana.lopez"))
    lab.contracts(ANA_ENDED)
    ended = lab.syncd("sync")

    assert ended.code == 0, ended.out + ended.err
    ana = lab.entry(dn_of("ana.lopez"))
    assert ana is not None
    assert ana["nsaccountlock"] == ["TRUE"]
    assert "userpassword" not in ana
    assert not any(dn_of("ana.lopez") in lab.members(g) for g in GROUPS.values())
    assert "(no changes)" in lab.syncd("sync").out


def test_nsaccountlock_refuses_an_ended_account_even_after_a_password_reset(
    dirsrv_lab: DirsrvLab,
) -> None:
    lab = dirsrv_lab
    dn = dn_of("ana.lopez")
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    lab.set_password(dn)
    assert lab.bind_result(dn) == (0, "")

    lab.contracts(ANA_ENDED)
    assert lab.syncd("sync").code == 0
    lab.set_password(dn)  # a helpdesk reset after offboarding

    code, message = lab.bind_result(dn)
    assert code == 53, message  # unwillingToPerform, before the password is looked at
    assert "inactivated" in message
    assert lab.bind_result(dn, "not-the-password")[0] == 53


def test_an_explicit_setting_wins_over_the_flavour_on_389ds(dirsrv_lab: DirsrvLab) -> None:
    lab = dirsrv_lab
    lab.write_config(
        disable={"method": "attribute", "attribute": "employeeType", "disabled_value": "gone"},
        credential_attributes=["userPassword"],
    )
    lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("wiki-editors",))
    lab.contracts(CARLA_ENDED)

    result = lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert (
        "disable: attribute employeeType (configured), native expiry: none, "
        "credentials: userPassword (configured)"
    ) in result.out
    carla = lab.entry(dn_of("carla.rossi"))
    assert carla is not None
    assert carla["employeetype"] == ["gone"]
    assert "nsaccountlock" not in carla
    assert "userpassword" not in carla


def test_an_explicit_setting_wins_over_the_flavour_on_slapd(lab: Lab) -> None:
    lab.write_config(native_expiry=False)
    lab.contracts(ANA)

    result = lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert "corp: OpenLDAP — disable: ppolicy, native expiry: none (configured)" in result.out
    ana = lab.entry(dn_of("ana.lopez"))
    assert ana is not None
    assert "pwdendtime" not in ana


# -- native_expiry: true on 389-ds -------------------------------------------------------

NO_NATIVE_EXPIRY = "native_expiry is true, but 389 Directory Server 2."


def test_native_expiry_true_on_389ds_is_one_clear_error_not_failed_creates(
    dirsrv_lab: DirsrvLab,
) -> None:
    lab = dirsrv_lab
    lab.write_config(native_expiry=True)
    lab.contracts(ANA)
    before = lab.snapshot()

    check = lab.syncd("check-config", "--online")
    sync = lab.syncd("sync")

    assert check.code == 2, check.out + check.err
    [problem] = [line for line in check.err.splitlines() if "corp:" in line]
    assert NO_NATIVE_EXPIRY in problem
    assert "has no native expiry" in problem
    assert "ends access on time while it runs" in problem
    assert "Fix: set native_expiry: false" in problem
    assert sync.code == 1, sync.out
    assert "corp: NOT PLANNED: " in sync.out
    assert NO_NATIVE_EXPIRY in sync.out
    assert lab.snapshot() == before
    assert not [r for r in lab.audit() if r["class_uid"] == 3001]


# -- check-config --online ---------------------------------------------------------------


def test_check_config_online_passes_the_stock_config_and_names_the_server(either: Lab) -> None:
    result = either.syncd("check-config", "--online")

    assert result.code == 0, result.out + result.err
    assert "corp: reachable, managed scope and groups present" in result.out
    about = "corp: 389 Directory Server 2." if isinstance(either, DirsrvLab) else "corp: OpenLDAP —"
    assert about in result.out


@pytest.mark.parametrize(
    ("fixture", "target", "expected"),
    [
        (
            "dirsrv_lab",
            {"disable": {"method": "ppolicy"}},
            [
                "attribute pwdAccountLockedTime (disable.method: ppolicy) is not defined in "
                "the schema of 389 Directory Server 2.",
                "fix: ppolicy is OpenLDAP's; remove disable.method to use nsaccountlock",
            ],
        ),
        (
            "dirsrv_lab",
            {"credential_attributes": ["userPassword", "sshPublicKey"]},
            [
                "attribute sshPublicKey (credential_attributes) is not defined in the schema "
                "of 389 Directory Server 2.",
                "(for this flavour: userPassword, nsSshPublicKey)",
            ],
        ),
        (
            "dirsrv_lab",
            {"object_classes": ["inetOrgPerson", "ldapPublicKey"]},
            ["objectClass ldapPublicKey (object_classes) is not defined in the schema of 389"],
        ),
        (
            "dirsrv_lab",
            {"attributes": {"cn": "{given_name}", "sn": "x", "nsSshPublicKey": "{person}"}},
            [
                "attribute nsSshPublicKey (attributes.nsSshPublicKey) is not allowed by "
                "object_classes [inetOrgPerson] in the schema of 389 Directory Server 2.",
                "fix: add an object class that allows it",
            ],
        ),
        (
            "lab",
            {"disable": {"method": "nsaccountlock"}},
            [
                "attribute nsAccountLock (disable.method: nsaccountlock) is not defined in "
                "the schema of OpenLDAP (cn=Subschema)",
                "fix: nsAccountLock is 389 Directory Server's; remove disable.method to use "
                "ppolicy, the default on OpenLDAP",
            ],
        ),
        (
            "lab",
            {"attributes": {"cn": "{given_name}", "sn": "x", "nsSshPublicKey": "{person}"}},
            [
                "attribute nsSshPublicKey (attributes.nsSshPublicKey) is not defined in the "
                "schema of OpenLDAP"
            ],
        ),
    ],
    ids=[
        "389-ppolicy",
        "389-sshPublicKey",
        "389-objectclass",
        "389-not-allowed",
        "slapd-nsaccountlock",
        "slapd-unknown",
    ],
)
def test_check_config_online_names_the_attribute_the_server_and_the_fix(
    request: pytest.FixtureRequest, fixture: str, target: dict[str, Any], expected: list[str]
) -> None:
    lab: Lab = request.getfixturevalue(fixture)
    lab.write_config(**target)

    result = lab.syncd("check-config", "--online")

    assert result.code == 2, result.out + result.err
    assert "corp: 1 problems" in result.out, result.err
    [problem] = [line.strip() for line in result.err.splitlines() if line.strip()]
    for text in expected:
        assert text in problem


# -- credentials the schema lacks ------------------------------------------------------


def test_a_credential_attribute_the_schema_lacks_never_fails_the_offboarding(
    either: Lab,
) -> None:
    lab = either
    other = "sshPublicKey" if isinstance(lab, DirsrvLab) else "nsSshPublicKey"
    lab.write_config(credential_attributes=["userPassword", other])
    dn = lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("ops",))
    lab.contracts(CARLA_ENDED)

    assert lab.syncd("sync").code == 0
    assert "userpassword" not in (lab.entry(dn) or {"userpassword": []})

    # A revoke the cycle's observation did not see (the target was not observed): the
    # entry is asked what it holds, and the attribute the server lacks is never named.
    lab.set_password(dn)
    action = revoke("carla.rossi", dn)
    results: list[Outcome] = []
    target = directory(lab)
    try:
        target.apply([action], results.append)
    finally:
        target.close()
    assert [(r.ok, r.detail) for r in results] == [(True, "")]
    assert "userpassword" not in (lab.entry(dn) or {"userpassword": []})


def test_a_revoke_with_nothing_left_changes_nothing(dirsrv_lab: DirsrvLab) -> None:
    dn = dirsrv_lab.add_account("old.hand", "old.hand@vendor.example", password=None)
    action = revoke("old.hand", dn)
    results: list[Outcome] = []
    target = directory(dirsrv_lab)
    try:
        target.apply([action], results.append)
    finally:
        target.close()
    assert [(r.ok, r.detail) for r in results] == [(True, "nothing to change")]


def test_a_targeted_observation_reads_what_the_whole_one_does(either: Lab) -> None:
    """Whether the server offers the matched values control (slapd) or not (389-ds,
    whose groups are then read whole), the people asked for get their groups."""
    lab = either
    lab.contracts(ANA, contract("C-9", "Bo", "Chen", ["developer"], day(-1), day(9)))
    assert lab.syncd("sync").code == 0
    target = directory(lab)
    try:
        everyone = target.observe()
        some = target.observe_people({"ana.lopez@vendor.example"})
        controls = target.reader.settings().server.controls
    finally:
        target.close()
    assert len(everyone.accounts) == 2
    assert some.accounts == {
        "ana.lopez@vendor.example": everyone.accounts["ana.lopez@vendor.example"]
    }
    assert some.accounts["ana.lopez@vendor.example"].groups
    # slapd offers the control, 389-ds 2.3 does not: each path runs on a real server
    assert (MATCHED_VALUES in controls) == (not isinstance(lab, DirsrvLab))
