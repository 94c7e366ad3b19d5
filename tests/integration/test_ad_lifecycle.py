"""The ``ad`` target end to end on a real Samba AD DC: contracts file → ``syncd`` CLI →
the DC, checked with real binds as the contractor. What the shared scenarios cannot say:
userAccountControl bits, accountExpires enforced by AD itself, the password, the
manager, sAMAccountName rules, the disabled OU, a DC list with one DC down."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ldap3 import MODIFY_ADD, MODIFY_REPLACE

from syncd.targets.ad.values import to_filetime
from tests.labs.ad import CONTRACTORS, DISABLED, AdLab
from tests.labs.common import Account, contract, day
from tests.servers.samba import ou_dn


def _entry(lab: AdLab, username: str) -> tuple[str, dict[str, list[str]]]:
    found = lab.find(username)
    assert found is not None, f"{username} does not exist"
    return found


def test_an_active_contractor_gets_an_enabled_account_that_can_bind(ad_lab: AdLab) -> None:
    ad_lab.target["key_attribute"] = "employeeID"
    end = day(30)
    ad_lab.contracts(
        contract(
            "C-1", "Ana", "Lopez", ["developer"], day(-1), end,
            person="e-1001", vendor="Acme", sponsor="jdoe@example.test",
        )
    )  # fmt: skip

    result = ad_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    dn, entry = _entry(ad_lab, "ana.lopez")
    assert dn.lower() == f"cn=ana.lopez,{CONTRACTORS}".lower()
    assert entry["useraccountcontrol"] == ["512"]  # enabled, no PASSWD_NOTREQD
    assert entry["employeeid"] == ["e-1001"]
    assert entry["userprincipalname"] == ["ana.lopez@example.test"]
    assert entry["company"] == ["Acme"]
    assert entry["description"] == ["contractor: C-1"]
    assert entry["manager"][0].lower() == f"cn=jdoe,{ou_dn('people')}".lower()
    assert entry["primarygroupid"] == ["513"]
    end_of_day = datetime.fromisoformat(end).replace(tzinfo=UTC) + timedelta(days=1)
    assert entry["accountexpires"] == [str(to_filetime(end_of_day))]
    assert not ad_lab.can_bind("ana.lopez@example.test")  # nobody knows the password
    ad_lab.set_password(dn)
    assert ad_lab.can_bind("ana.lopez@example.test")
    assert ad_lab.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))
    assert "(no changes)" in ad_lab.syncd("sync").out


def test_the_end_disables_keeping_other_bits_and_bind_is_refused(ad_lab: AdLab) -> None:
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-10), day(30))
    ad_lab.contracts(ana)
    assert ad_lab.syncd("sync").code == 0
    dn, _ = _entry(ad_lab, "ana.lopez")
    ad_lab.set_password(dn)
    dont_expire_password = 0x10000
    ad_lab.modify(
        dn, {"userAccountControl": [(MODIFY_REPLACE, [str(0x200 | dont_expire_password)])]}
    )
    ad_lab.contracts({**ana, "end": day(-1)})

    ended = ad_lab.syncd("sync")

    assert ended.code == 0, ended.out + ended.err
    _, entry = _entry(ad_lab, "ana.lopez")
    assert int(entry["useraccountcontrol"][0]) == 0x200 | dont_expire_password | 0x2
    assert entry["pwdlastset"] == ["0"]  # password scrambled and marked
    assert entry["primarygroupid"] == ["513"]
    assert not ad_lab.can_bind("ana.lopez@example.test")
    assert ad_lab.account("ana.lopez") == Account(False, frozenset())
    assert "(no changes)" in ad_lab.syncd("sync").out

    ad_lab.contracts({**ana, "end": day(60)})
    extended = ad_lab.syncd("sync")

    assert extended.code == 0, extended.out + extended.err
    _, entry = _entry(ad_lab, "ana.lopez")
    assert int(entry["useraccountcontrol"][0]) == 0x200 | dont_expire_password


def test_a_past_account_expiry_alone_refuses_the_bind(ad_lab: AdLab) -> None:
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    ad_lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), end.isoformat()))
    assert ad_lab.syncd("sync").code == 0
    dn, _ = _entry(ad_lab, "ana.lopez")
    ad_lab.set_password(dn)
    assert ad_lab.can_bind("ana.lopez@example.test")

    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)

    _, entry = _entry(ad_lab, "ana.lopez")
    assert entry["useraccountcontrol"] == ["512"]  # syncd did not run again
    assert not ad_lab.can_bind("ana.lopez@example.test")


def test_usernames_ad_cannot_take_are_conflicts_with_a_reason(ad_lab: AdLab) -> None:
    ad_lab.configure(policy={"timezone": "UTC", "username": {"pattern": "^.{1,64}$"}})
    ad_lab.contracts(
        contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(9), username="ana[lopez]"),
        contract(
            "C-2", "Bo", "Chen", ["writer"], day(-1), day(9), username="bo.chen.of.the.vendor.team"
        ),
        contract("C-3", "Cy", "Dee", ["writer"], day(-1), day(9)),
    )  # fmt: skip

    result = ad_lab.syncd("sync")

    assert result.code == 1, result.out
    assert (
        "  ! conflict ana[lopez] (contract C-1): username 'ana[lopez]' holds characters AD "
        "forbids in sAMAccountName: '[' ']' (fix: give contract C-1 a username AD accepts "
        "(username: field))"
    ) in result.out
    assert (
        "  ! conflict bo.chen.of.the.vendor.team (contract C-2): username "
        "'bo.chen.of.the.vendor.team' is longer than AD's 20 characters for sAMAccountName "
        "(fix: give contract C-2 a username AD accepts (username: field))"
    ) in result.out
    assert ad_lab.find("ana[lopez]") is None
    assert ad_lab.account("cy.dee") == Account(True, frozenset({"wiki-editors"}))


def test_a_person_key_longer_than_employee_id_is_a_conflict(ad_lab: AdLab) -> None:
    ad_lab.target["key_attribute"] = "employeeID"
    ad_lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(9)))

    result = ad_lab.syncd("sync")

    assert result.code == 1, result.out
    assert (
        "  ! conflict ana.lopez (contract C-1): person key 'ana.lopez@vendor.example' is "
        "longer than employeeID's 16 characters (fix: give contract C-1 a shorter person: "
        "key, or set key_attribute)"
    ) in result.out
    assert ad_lab.find("ana.lopez") is None


def test_offboarded_accounts_move_to_the_disabled_ou_and_back(ad_lab: AdLab) -> None:
    ad_lab.target["disabled_ou"] = DISABLED
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-10), day(-1))
    ad_lab.seed("ana.lopez", "ana.lopez@vendor.example", ("developers", "ops"))
    ad_lab.contracts(ana)

    ended = ad_lab.syncd("sync")

    assert ended.code == 0, ended.out + ended.err
    dn, _ = _entry(ad_lab, "ana.lopez")
    assert dn.lower() == f"cn=ana.lopez,{DISABLED}".lower()
    assert ad_lab.account("ana.lopez") == Account(False, frozenset())
    assert "cn=ana.lopez,ou=people" not in str(ad_lab.snapshot()).lower()
    assert "(no changes)" in ad_lab.syncd("sync").out

    ad_lab.contracts({**ana, "end": day(30)})
    back = ad_lab.syncd("sync")

    assert back.code == 0, back.out + back.err
    dn, _ = _entry(ad_lab, "ana.lopez")
    assert dn.lower() == f"cn=ana.lopez,{CONTRACTORS}".lower()
    assert ad_lab.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))


def test_unmanaged_groups_of_a_managed_account_are_left_alone(ad_lab: AdLab) -> None:
    ad_lab.seed("carla.rossi", "carla.rossi@vendor.example", ("wiki-editors",))
    conn = ad_lab.dc.admin()
    conn.add(f"CN=lunch-club,{ou_dn('groups')}", ["top", "group"], {"sAMAccountName": "lunch"})
    conn.modify(
        f"CN=lunch-club,{ou_dn('groups')}",
        {"member": [(MODIFY_ADD, [f"CN=carla.rossi,{CONTRACTORS}"])]},
    )
    conn.unbind()
    ad_lab.contracts(contract("C-3", "Carla", "Rossi", ["writer"], day(-90), day(-2)))

    assert ad_lab.syncd("sync").code == 0

    _, entry = _entry(ad_lab, "carla.rossi")
    assert [g.split(",")[0] for g in entry["memberof"]] == ["CN=lunch-club"]
    assert entry["primarygroupid"] == ["513"]


def test_a_domain_controller_that_is_down_is_skipped(ad_lab: AdLab) -> None:
    ad_lab.target["urls"] = ["ldaps://127.0.0.1:1", ad_lab.dc.url]
    ad_lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(9)))

    result = ad_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert ad_lab.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))


def test_a_wrong_bind_password_says_what_to_check(ad_lab: AdLab) -> None:
    ad_lab.write_config()
    (ad_lab.work / "bind-password").write_text("not-the-password")

    result = ad_lab.syncd("check-config", "--online")

    assert result.code != 0
    assert "invalid credentials for bind_user" in result.out + result.err
