"""Faults between syncd and a real scim2-server, injected by ``FaultProxy``: bursts of
429 with ``Retry-After``, 503, a slow server, connections dropped before or after the
server acted. Each cycle converges, nobody is created twice, and every failure, and
every retry that hid one, is in the audit trail."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tests.labs.common import ANA, people
from tests.labs.scim import ScimLab
from tests.servers.scim import FaultProxy


def outcomes(lab: ScimLab, activity: str) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.audit()
        if r.get("activity_name") == activity and r["unmapped"]["phase"] == "outcome"
    ]


def assert_each_user_once(lab: ScimLab, count: int) -> None:
    names = Counter(u["userName"] for u in lab.directory.users())
    assert sum(names.values()) == 2 + count  # the employees jdoe and asmith, and ours
    assert max(names.values()) == 1


def test_bursts_of_429_are_waited_out_as_retry_after_says(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.write_config(retries=5)
    scim_lab.contracts(*people(20))
    proxy.inject(3, status=429, retry_after="1", method="POST", path="/Bulk")

    started = time.monotonic()
    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert time.monotonic() - started >= 1.0
    assert proxy.injected["429"] == 3
    assert_each_user_once(scim_lab, 20)
    creates = outcomes(scim_lab, "Create")
    assert {r["status"] for r in creates} == {"Success"}
    assert any("retried after: 429" in r.get("status_detail", "") for r in creates)
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_503_on_group_patches_is_retried(scim_lab: ScimLab, proxy: FaultProxy) -> None:
    scim_lab.contracts(*people(4))
    proxy.inject(2, status=503, method="PATCH", path="/Groups/")

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    assert proxy.injected["503"] == 2
    assert len(scim_lab.directory.member_names("developers")) == 1 + 4
    adds = outcomes(scim_lab, "Add User")
    assert {r["status"] for r in adds} == {"Success"}
    assert any("503 Service Unavailable" in r.get("status_detail", "") for r in adds)


def test_a_slow_server_times_out_and_nothing_is_created_twice(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.write_config(timeout=1, retries=3)
    scim_lab.contracts(ANA)
    proxy.inject(1, delay=2.0, method="POST", path="/Users")

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert_each_user_once(scim_lab, 1)
    (create,) = outcomes(scim_lab, "Create")
    assert create["status"] == "Success"
    assert "timed out" in create["status_detail"]
    time.sleep(1.5)  # the delayed request reaches the server and is refused there
    assert_each_user_once(scim_lab, 1)
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_a_bulk_whose_answer_is_lost_is_settled_without_duplicates(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(*people(20))
    proxy.inject(1, drop="after", method="POST", path="/Bulk")

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert_each_user_once(scim_lab, 20)
    creates = outcomes(scim_lab, "Create")
    assert len(creates) == 20
    assert {r["status"] for r in creates} == {"Success"}
    again = [r for r in creates if "already created by an earlier" in r.get("status_detail", "")]
    assert len(again) == 20  # the whole bulk request went through the first time
    assert all("connection failed" in r["status_detail"] for r in again)


def test_a_create_whose_answer_is_lost_is_ours_not_a_conflict(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    proxy.inject(1, drop="after", method="POST", path="/Users")

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert_each_user_once(scim_lab, 1)
    (create,) = outcomes(scim_lab, "Create")
    assert create["status"] == "Success"
    assert create["status_detail"].startswith("already created by an earlier attempt")
    assert scim_lab.account("ana.lopez") is not None
    assert "ana.lopez" in scim_lab.directory.member_names("developers")


def test_a_connection_dropped_mid_cycle_is_sent_again(scim_lab: ScimLab, proxy: FaultProxy) -> None:
    scim_lab.contracts(*people(6))
    proxy.inject(2, drop="before", method="PATCH", path="/Groups/")

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    assert proxy.injected["before"] == 2
    assert len(scim_lab.directory.member_names("wiki-editors")) == 1 + 6
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_a_server_that_stays_down_leaves_outcomes_unknown_until_the_next_cycle(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.write_config(retries=1)
    scim_lab.contracts(*people(8))
    proxy.inject(100, status=503, method="POST", path="/Bulk")

    down = scim_lab.syncd("sync")

    assert down.code == 1
    assert "unavailable" in down.out
    creates = outcomes(scim_lab, "Create")
    assert len(creates) == 8
    assert {(r["status"], r["status_id"]) for r in creates} == {("Unknown", 99)}
    assert all("503" in r["status_detail"] for r in creates)
    assert_each_user_once(scim_lab, 0)

    proxy.reset()
    up = scim_lab.syncd("sync")

    assert up.code == 0, up.out
    assert_each_user_once(scim_lab, 8)
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_a_retry_after_beyond_max_retry_after_is_not_waited_for(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.write_config(max_retry_after=2)
    scim_lab.contracts(ANA)
    proxy.inject(1, status=429, retry_after="3600", method="POST", path="/Users")

    started = time.monotonic()
    result = scim_lab.syncd("sync")

    assert time.monotonic() - started < 10
    assert result.code == 1
    assert "more than max_retry_after 2" in result.out
    (create,) = outcomes(scim_lab, "Create")
    assert create["status"] == "Unknown"


def test_a_refused_change_fails_alone_and_is_in_the_audit_trail(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    developers = scim_lab.directory.group("developers")["id"]
    scim_lab.contracts(ANA)
    proxy.inject(1, status=400, method="PATCH", path=f"/Groups/{developers}")

    result = scim_lab.syncd("sync")

    assert result.code == 1
    assert "FAILED + add" in result.out
    failures = [r for r in scim_lab.audit() if r["status"] == "Failure"]
    assert [r["group"]["uid"] for r in failures] == ["developers"]
    assert "400 Bad Request: injected by the test proxy" in failures[0]["status_detail"]
    assert scim_lab.account("ana.lopez") is not None
    assert "ana.lopez" in scim_lab.directory.member_names("vpn-users")

    again = scim_lab.syncd("sync")

    assert again.code == 0, again.out
    assert "ana.lopez" in scim_lab.directory.member_names("developers")
