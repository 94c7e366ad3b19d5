"""The core lifecycle scenarios, run against every target type, each a real server on
loopback: slapd (``tests.servers.slapd``), scim2-server (``tests.servers.scim``) and a Samba
AD DC (``tests.servers.samba``).

A scenario talks to a :class:`World`: syncd's config and contracts file, its command
line, and a small view of the target (does the account exist, is it enabled, which of
the four lab groups is it in). The LDAP world is ``tests.integration.conftest.Lab``;
the SCIM world is :class:`ScimLab`, which the other SCIM test modules use too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.integration.conftest import (
    GROUPS,
    SUFFIX,
    Lab,
    Result,
    SyncdBench,
    contract,
    day,
    dn_of,
)
from tests.integration.test_ad_lifecycle import (  # noqa: F401 (fixtures)
    AdLab,
    ad_lab_fixture,
    samba_dc_fixture,
)
from tests.servers.scim import Directory, ScimServer, start_scim
from tests.servers.slapd import start_slapd

GROUP_NAMES = ("developers", "vpn-users", "wiki-editors", "ops")
ROLES = {
    "developer": ("developers", "vpn-users"),
    "writer": ("wiki-editors",),
    "operator": ("ops", "vpn-users"),
}
ANA = contract("C-1", "Ana", "Lopez", ["developer"], day(-10), day(30), sponsor="jdoe@example.test")
BO_FUTURE = contract("C-2", "Bo", "Chen", ["operator"], day(20), day(60))
CARLA_ENDED = contract("C-3", "Carla", "Rossi", ["writer"], day(-90), day(-2))


@dataclass(frozen=True)
class Account:
    enabled: bool
    groups: frozenset[str]  # of GROUP_NAMES


class World(Protocol):
    def contracts(self, *records: dict[str, Any]) -> None: ...
    def configure(self, **sections: dict[str, Any]) -> None: ...
    def syncd(self, *args: str) -> Result: ...
    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None: ...
    def account(self, username: str) -> Account | None: ...
    def snapshot(self) -> Any: ...
    def audit(self) -> list[dict[str, Any]]: ...


class LdapWorld:
    """``Lab`` seen through the World interface."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def contracts(self, *records: dict[str, Any]) -> None:
        self.lab.contracts(*records)

    def configure(self, **sections: dict[str, Any]) -> None:
        self.lab.overrides.update(sections)
        self.lab.write_config()

    def syncd(self, *args: str) -> Result:
        return self.lab.syncd(*args)

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        # Unmanaged: outside the base DN, where employees live.
        parent = None if key else f"ou=people,{SUFFIX}"
        self.lab.add_account(username, key, groups=groups, **({"parent": parent} if parent else {}))

    def account(self, username: str) -> Account | None:
        entry = self.lab.entry(dn_of(username))
        if entry is None:
            return None
        dn = dn_of(username).lower()
        groups = frozenset(n for n in GROUP_NAMES if dn in self.lab.members(GROUPS[n]))
        return Account("pwdaccountlockedtime" not in entry, groups)

    def snapshot(self) -> Any:
        return self.lab.snapshot()

    def audit(self) -> list[dict[str, Any]]:
        return self.lab.audit()


@dataclass
class ScimLab(SyncdBench):
    """A fresh tenant of a scim2-server, seeded like the slapd of the LDAP tests (four
    groups, employees jdoe and asmith), plus a syncd config pointing at it (or at
    ``url``, e.g. a fault proxy in front of it)."""

    server: ScimServer
    work: Path
    url: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tenant = self.server.tenant()
        self.url = self.url or self.tenant
        self.directory = Directory(self.tenant, self.server.token)
        jdoe = self.directory.add_user("jdoe", external_id="hr-1001", email="jdoe@example.test")
        asmith = self.directory.add_user("asmith", external_id="hr-1002", email="asmith@ex.test")
        members = {"developers": (jdoe,), "vpn-users": (jdoe,), "wiki-editors": (asmith,)}
        for name in GROUP_NAMES:
            self.directory.add_group(name, members.get(name, (asmith,) if name == "ops" else ()))
        (self.work / "token").write_text(self.server.token)

    def roles(self) -> dict[str, dict[str, list[str]]]:
        return {role: {"corp": list(groups)} for role, groups in ROLES.items()}

    def target_config(self, **target: Any) -> dict[str, Any]:
        return {
            "type": "scim",
            "url": self.url,
            "allow_plaintext": True,  # loopback only
            "token_file": "token",
            "retries": 1,
            **target,
        }

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        # Unmanaged: another system's externalId.
        external = f"syncd:{key}" if key else "hr-4711"
        user = self.directory.add_user(username, external_id=external, email=f"{username}@x.test")
        for group in groups:
            self.directory.join(group, user)

    def account(self, username: str) -> Account | None:
        user = self.directory.user(username)
        if user is None or not str(user.get("externalId", "")).startswith("syncd:"):
            return None
        groups = frozenset(n for n in GROUP_NAMES if username in self.directory.member_names(n))
        return Account(user.get("active") is not False, groups)

    def snapshot(self) -> Any:
        return self.directory.snapshot()


class AdWorld(AdLab):
    """The Samba AD DC lab of ``test_ad_lifecycle`` seen through the World interface."""

    def account(self, username: str) -> Account | None:  # type: ignore[override]
        found = super().account(username)
        return None if found is None else Account(found.enabled, found.groups)


# Named fixtures, so that the other SCIM test modules can import them.
@pytest.fixture(scope="session", name="scim_server")
def scim_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """One scim2-server for the session; every test gets its own tenant."""
    server = start_scim(tmp_path_factory.mktemp("scim2-server"), tenants=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="scim_lab")
def scim_lab_fixture(scim_server: ScimServer, tmp_path: Path) -> Iterator[ScimLab]:
    lab = ScimLab(scim_server, tmp_path)
    try:
        yield lab
    finally:
        lab.directory.close()


@pytest.fixture(params=["ldap", "scim", "ad"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "scim":
        yield request.getfixturevalue("scim_lab")
        return
    if request.param == "ad":
        lab = request.getfixturevalue("ad_lab")
        yield AdWorld(lab.dc, lab.work)
        return
    server = start_slapd(tmp_path / "slapd")
    try:
        yield LdapWorld(Lab(server, tmp_path))
    finally:
        server.stop()


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
    assert "conflict ana.lopez" in result.out
    assert "unmanaged" in result.out
    assert world.account("ana.lopez") is None
    assert world.snapshot() == before
    conflicts = [r for r in world.audit() if r.get("unmapped", {}).get("phase") == "conflict"]
    assert [r["user"]["name"] for r in conflicts] == ["ana.lopez"]


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
