"""The ``ad`` target end to end on a real Samba AD DC: contracts file → ``syncd`` CLI →
the DC, checked with real binds as the contractor. What the shared scenarios cannot say:
userAccountControl bits, accountExpires enforced by AD itself, the password, the
manager, sAMAccountName rules, the disabled OU, a DC list with one DC down.

:class:`AdLab` is also the shared scenarios' AD world."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, MODIFY_REPLACE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPBindError

from syncd.targets.advalues import to_filetime
from tests.integration.conftest import SyncdBench, contract, day
from tests.servers.samba import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DOMAIN_DN,
    GROUP_NAMES,
    SambaDC,
    group_dn,
    ou_dn,
    start_samba,
)

PASSWORD = "Contractor-Secret-9"
CONTRACTORS = ou_dn("contractors")
DISABLED = ou_dn("disabled")
ROLES = {
    "developer": ("developers", "vpn-users"),
    "writer": ("wiki-editors",),
    "operator": ("ops", "vpn-users"),
}


@dataclass(frozen=True)
class Account:
    enabled: bool
    groups: frozenset[str]


@dataclass
class AdLab(SyncdBench):
    """The seeded domain (reset before each test) plus a syncd config pointing at it.
    The shared scenarios key people by e-mail, longer than employeeID's 16 characters,
    so this world keeps the key in employeeNumber unless a test says otherwise."""

    dc: SambaDC
    work: Path
    target: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def roles(self) -> dict[str, dict[str, list[str]]]:
        return {role: {"corp": [group_dn(g) for g in groups]} for role, groups in ROLES.items()}

    def target_config(self, **target: Any) -> dict[str, Any]:
        (self.work / "bind-password").write_text(ADMIN_PASSWORD)
        return {
            "type": "ad",
            "urls": [self.dc.url],
            "ca_file": str(self.dc.ca_file),
            "bind_user": ADMIN_USER,
            "password_file": "bind-password",
            "base_dn": CONTRACTORS,
            "key_attribute": "employeeNumber",
            "retries": 1,
            **self.target,
            **target,
        }

    # -- looking at the domain with our own eyes ---------------------------------------
    def find(self, username: str) -> tuple[str, dict[str, list[str]]] | None:
        conn = self.dc.admin()
        try:
            conn.search(DOMAIN_DN, f"(sAMAccountName={username})", SUBTREE, attributes=["*"])
            found = [e for e in conn.response if e["type"] == "searchResEntry"]
        finally:
            conn.unbind()
        if not found:
            return None
        raw = found[0]["raw_attributes"]
        return found[0]["dn"], {
            k.lower(): [x.decode(errors="replace") for x in vs] for k, vs in raw.items()
        }

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        """An account as an earlier cycle (or, without a key, someone else) left it."""
        parent = CONTRACTORS if key else ou_dn("people")
        dn = f"CN={username},{parent}"
        attributes: dict[str, Any] = {
            "sAMAccountName": username,
            "userPrincipalName": f"{username}@example.test",
            "userAccountControl": "512",
            "unicodePwd": f'"{PASSWORD}"'.encode("utf-16-le"),
        }
        if key:
            attributes[self.target.get("key_attribute", "employeeNumber")] = key
        conn = self.dc.admin()
        try:
            assert conn.add(dn, ["top", "person", "organizationalPerson", "user"], attributes)
            for group in groups:
                conn.modify(group_dn(group), {"member": [(MODIFY_ADD, [dn])]})
        finally:
            conn.unbind()

    def account(self, username: str) -> Account | None:
        found = self.find(username)
        if found is None or not found[0].lower().endswith((CONTRACTORS.lower(), DISABLED.lower())):
            return None
        _, entry = found
        uac = int(entry["useraccountcontrol"][0])
        member_of = {g.lower() for g in entry.get("memberof", [])}
        groups = frozenset(n for n in GROUP_NAMES if group_dn(n).lower() in member_of)
        return Account(not uac & 2, groups)

    def snapshot(self) -> dict[str, dict[str, list[str]]]:
        conn = self.dc.admin()
        result = {}
        try:
            for ou in ("people", "contractors", "disabled", "groups"):
                conn.search(ou_dn(ou), "(objectClass=*)", SUBTREE, attributes=["*"])
                for e in conn.response:
                    if e["type"] == "searchResEntry":
                        result[e["dn"]] = {
                            k.lower(): sorted(map(repr, vs))
                            for k, vs in e["raw_attributes"].items()
                        }
        finally:
            conn.unbind()
        return result

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        conn = self.dc.admin()
        try:
            assert conn.modify(dn, changes), conn.result
        finally:
            conn.unbind()

    def set_password(self, dn: str, password: str = PASSWORD) -> None:
        self.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])]})

    def can_bind(self, user: str, password: str = PASSWORD) -> bool:
        tls = Tls(ca_certs_file=str(self.dc.ca_file))
        server = Server(self.dc.url, use_ssl=True, tls=tls)
        try:
            Connection(server, user, password, auto_bind=True).unbind()
        except LDAPBindError:
            return False
        return True


_STARTED: list[SambaDC] = []  # the session's DC, whichever module's fixture started it


@pytest.fixture(scope="session", name="samba_dc")
def samba_dc_fixture() -> Iterator[SambaDC]:
    """One Samba AD DC for the session (its ports are fixed), reset before each test.

    Modules that import this fixture get their own session fixture; they share the DC
    started first rather than wait for the machine-wide lock the first one holds."""
    if os.geteuid() != 0:
        pytest.skip("a Samba AD DC listens on ports 389 and 636: run the tests as root")
    if _STARTED:
        yield _STARTED[0]
        return
    dc = start_samba()
    _STARTED.append(dc)
    try:
        yield dc
    finally:
        _STARTED.clear()
        dc.close()


@pytest.fixture(name="ad_lab")
def ad_lab_fixture(samba_dc: SambaDC, tmp_path: Path) -> AdLab:
    samba_dc.reset()
    return AdLab(samba_dc, tmp_path)


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
    assert "forbids in sAMAccountName: '['" in result.out
    assert "longer than AD's 20 characters" in result.out
    assert ad_lab.find("ana[lopez]") is None
    assert ad_lab.account("cy.dee") == Account(True, frozenset({"wiki-editors"}))


def test_a_person_key_longer_than_employee_id_is_a_conflict(ad_lab: AdLab) -> None:
    ad_lab.target["key_attribute"] = "employeeID"
    ad_lab.contracts(contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(9)))

    result = ad_lab.syncd("sync")

    assert result.code == 1, result.out
    assert "longer than employeeID's 16 characters" in result.out
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
