"""``ScimDirectory.observe_people`` (the daemon's targeted cycles) on both SCIM servers,
scim2-server and SCIMMY: the same accounts as ``observe`` restricted to the keys asked
for (disabled ones and group memberships included, unknown keys absent), a number of
requests that depends on the batches of keys and never on the managed accounts, and a
full observation, said in the log, when the server cannot evaluate the filter."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from syncd.config import load_config
from syncd.core.model import Observed
from syncd.engine import open_target
from syncd.targets.scim import ScimDirectory
from syncd.targets.scim.target import people_batches
from tests.labs.scim import ScimLab
from tests.servers.scim import FaultProxy

PREFIX = "syncd:"
SERVERS = [("scim_lab", "proxy"), ("scimmy_lab", "scimmy_proxy")]


@pytest.fixture(params=SERVERS, ids=["scim2-server", "scimmy"], name="world")
def world_fixture(request: pytest.FixtureRequest) -> tuple[ScimLab, FaultProxy]:
    lab_name, proxy_name = request.param
    proxy: FaultProxy = request.getfixturevalue(proxy_name)  # points the lab at it
    return request.getfixturevalue(lab_name), proxy


def key(i: int) -> str:
    return f"p{i:03d}@vendor.example"


def seed(lab: ScimLab, first: int, count: int) -> None:
    """Managed users: every seventh disabled, every tenth in developers (and every
    twentieth in vpn-users too)."""
    for i in range(first, first + count):
        user = lab.directory.add_user(
            f"c{i:03d}", external_id=PREFIX + key(i), email=key(i), active=i % 7 != 0
        )
        if i % 10 == 0:
            lab.directory.join("developers", user)
        if i % 20 == 0:
            lab.directory.join("vpn-users", user)


@contextmanager
def opened(lab: ScimLab) -> Iterator[ScimDirectory]:
    target = open_target(load_config(lab.write_config()), "corp")
    assert isinstance(target, ScimDirectory)
    try:
        yield target
    finally:
        target.close()


def restricted(full: Observed, keys: list[str]) -> dict[str, object]:
    return {k: full.accounts[k] for k in keys if k in full.accounts}


def test_the_people_asked_for_as_a_full_observation_sees_them(
    world: tuple[ScimLab, FaultProxy],
) -> None:
    lab, _ = world
    seed(lab, 0, 60)
    keys = [key(i) for i in range(0, 60, 3)] + ["nobody@vendor.example", "hr-1001"]
    with opened(lab) as target:
        full = target.observe()
        part = target.observe_people(keys)
        assert part.accounts == restricted(full, keys)
        assert "nobody@vendor.example" not in part.accounts
        assert "hr-1001" not in part.accounts  # an unmanaged user's externalId
        assert not part.accounts[key(21)].enabled
        assert part.accounts[key(30)].groups == {"developers"}
        assert part.accounts[key(0)].groups == {"developers", "vpn-users"}
        assert (dict(part.conflicts), part.missing_groups) == ({}, frozenset())
        # the writes that follow find the groups and users this observation saw
        assert target.known is not None
        assert set(target.known.groups) == {"developers", "vpn-users", "wiki-editors", "ops"}
        assert len(target.known.users) == len(part.accounts)


def test_requests_grow_with_batches_of_keys_not_with_managed_accounts(
    world: tuple[ScimLab, FaultProxy],
) -> None:
    lab, proxy = world
    seed(lab, 0, 160)

    def cost(target: ScimDirectory, keys: list[str]) -> int:
        proxy.reset()
        target.observe_people(keys)
        return proxy.count()

    with opened(lab) as target:
        target.observe()  # a cycle has discovered the server
        batch = len(people_batches(PREFIX, [key(i) for i in range(150)], 10**6)[0].split(" or "))
        one, full_batch = cost(target, [key(1)]), cost(target, [key(i) for i in range(batch)])
        many = cost(target, [key(i) for i in range(150)])
        seed(lab, 160, 40)
        target.observe()
        assert cost(target, [key(i) for i in range(150)]) == many
        assert cost(target, [key(199)]) == one
    assert full_batch == one
    batches = len(people_batches(PREFIX, [key(i) for i in range(150)], target.session.page_size))
    assert many == one + batches - 1
    assert one <= 3  # users, groups (one filter), maybe a group read


def test_a_filter_the_server_refuses_falls_back_to_a_full_observation(
    world: tuple[ScimLab, FaultProxy], caplog: pytest.LogCaptureFixture
) -> None:
    lab, proxy = world
    seed(lab, 0, 30)
    keys = [key(i) for i in range(0, 30, 2)] + ["nobody@vendor.example"]
    with opened(lab) as target:
        full = target.observe()
        proxy.inject(1, method="GET", path="externalId", status=400)
        with caplog.at_level(logging.WARNING):
            part = target.observe_people(keys)
    assert proxy.injected["400"] == 1
    assert part.accounts == restricted(full, keys)
    assert part.missing_groups == frozenset()
    assert "cannot be looked up by externalId" in caplog.text
    assert "observing all managed users for 16 people instead" in caplog.text
