"""Two ``syncd run`` hosts against one slapd and a real three-member etcd cluster:
exactly one writes; a killed leader is replaced within the TTL and a cycle, nothing is
lost and its open intents are settled; a frozen leader writes nothing once it thaws;
without the etcd quorum nobody writes, and revocation resumes when it returns."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from syncd.cli import main
from tests.labs.common import Result, contract, day, moment
from tests.labs.hosts import Host, failover_trial, leader_of, wait_for
from tests.labs.ldap import Lab, dn_of
from tests.plugins.etcd import TTL
from tests.servers.etcd import EtcdCluster

CYCLE = 3  # seconds a full cycle over these few people may take on a loaded machine


@pytest.fixture
def hosts(lab: Lab, etcd_cluster: EtcdCluster) -> Iterator[Callable[[str], Host]]:
    made: list[Host] = []

    def make(name: str) -> Host:
        host = Host(lab, name, etcd_cluster.endpoints, ttl=TTL)
        made.append(host)
        return host.start()

    yield make
    for host in made:
        host.close()


def cli(host: Host, *args: str) -> Result:
    """``syncd`` with the host's config, in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["-c", str(host.config_path), *args])
    return Result(code, out.getvalue(), err.getvalue())


def people(count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        contract(f"C-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(9))
        for i in range(start, start + count)
    ]


def locked(lab: Lab, uid: str) -> bool:
    return "pwdaccountlockedtime" in (lab.entry(dn_of(uid)) or {})


def settled(host: Host) -> bool:
    """Every intent in the host's trail has its outcome."""
    records = host.audit()
    intents = {r["metadata"]["uid"] for r in records if r["status"] == "Intent"}
    closed = {r["unmapped"].get("intent_uid") for r in records}
    return intents <= closed


def test_exactly_one_host_writes_and_both_answer_health(
    lab: Lab, hosts: Callable[[str], Host]
) -> None:
    lab.contracts(*people(5))
    a, b = hosts("a"), hosts("b")
    wait_for(lambda: all(lab.entry(dn_of(f"per.son{i}")) for i in range(5)), 10)
    lab.contracts(*people(8))
    wait_for(lambda: lab.entry(dn_of("per.son7")) is not None, 5)
    leader = leader_of([a, b])
    follower = b if leader is a else a
    assert len(leader.writes()) >= 8
    assert follower.writes() == []
    code, body = follower.health()
    assert (code, body["status"], body["leader"]) == (200, "standby", leader.name)
    assert "syncd_leader 1.0" in leader.get("/metrics")[1].decode()
    assert "syncd_leader 0.0" in follower.get("/metrics")[1].decode()
    acquired = [r for r in leader.audit() if r["activity_name"] == "Leadership Acquired"]
    assert len(acquired) == 1
    assert acquired[0]["unmapped"]["member"] == leader.name
    assert acquired[0]["unmapped"]["etcd_revision"] > 0
    assert acquired[0]["unmapped"]["lease_id"]
    status = cli(leader, "ha", "status", "--json")
    assert status.code == 0
    assert json.loads(status.out)["leader"] == leader.name

    handover = cli(leader, "ha", "step-down", "--wait", "10s")
    assert (handover.code, handover.out.strip()) == (
        0,
        f"{leader.name} handed over to {follower.name}",
    )
    wait_for(lambda: follower.role() == "leader", 3, follower)
    lab.contracts(*people(9))
    wait_for(lambda: lab.entry(dn_of("per.son8")) is not None, 5, follower)
    lost = [r for r in leader.audit() if r["activity_name"] == "Leadership Lost"]
    assert "handed over" in lost[-1]["message"]
    assert {r["user"]["name"] for r in follower.writes()} == {"per.son8"}
    assert follower.stop() == 0
    assert leader.stop() == 0
    for host in (leader, follower):
        assert lab.syncd("audit", "verify", str(host.audit_path)).code == 0


def test_a_killed_leader_is_replaced_in_time_nothing_is_lost_its_intents_settle(
    lab: Lab, hosts: Callable[[str], Host]
) -> None:
    lab.contracts(*people(1))
    a = hosts("a")
    wait_for(lambda: lab.entry(dn_of("per.son0")) is not None, 10, a)
    b = hosts("b")
    lab.contracts(*people(300))
    wait_for(lambda: len(a.writes()) > 50, 10, a)  # mid-apply
    a.kill()
    killed = time.monotonic()
    wait_for(lambda: b.writes() != [], TTL + CYCLE + 2, b)
    took = time.monotonic() - killed
    print(f"first write by the new leader {took:.2f} s after the kill")
    assert took <= TTL + CYCLE
    wait_for(lambda: all(lab.entry(dn_of(f"per.son{i}")) for i in range(300)), 30, b)
    assert not settled(a), "the kill should have left intents open"
    # no change made twice: what a had created, b did not create again
    created_by_a = {
        r["user"]["name"]
        for r in a.audit()
        if r["activity_name"] == "Create" and r["status"] == "Success"
    }
    created_by_b = {r["user"]["name"] for r in b.writes() if r["activity_name"] == "Create"}
    assert created_by_a
    assert created_by_b
    assert not created_by_a & created_by_b
    # every change has its intent, in one trail or the other
    intended = {
        r["user"]["name"] for h in (a, b) for r in h.writes() if r["activity_name"] == "Create"
    }
    assert intended >= {f"per.son{i}" for i in range(300)}
    a.start()  # back as a follower; it settles its trail once it leads again
    wait_for(lambda: a.role() == "follower", 5, a)
    assert b.stop() == 0  # a clean stop hands over at once
    wait_for(lambda: a.role() == "leader", TTL + 2, a)
    wait_for(lambda: settled(a), CYCLE + 5, a)
    settles = [r for r in a.audit() if "after restart" in r.get("status_detail", "")]
    assert settles


def test_a_frozen_leader_writes_nothing_after_it_thaws_and_follows(
    lab: Lab, hosts: Callable[[str], Host]
) -> None:
    lab.contracts(*people(1))
    a = hosts("a")
    wait_for(lambda: lab.entry(dn_of("per.son0")) is not None, 10, a)
    b = hosts("b")
    a.signal(signal.SIGSTOP)
    time.sleep(TTL + 1)
    lab.contracts(*people(3))  # a saw none of this: it would write it, were it allowed
    wait_for(lambda: lab.entry(dn_of("per.son2")) is not None, CYCLE + 2, b)
    before = len(a.writes())
    a.signal(signal.SIGCONT)
    lab.contracts(*people(5))
    wait_for(lambda: lab.entry(dn_of("per.son4")) is not None, CYCLE + 3, b)
    wait_for(lambda: a.role() == "follower", 5, a)
    time.sleep(1)
    assert len(a.writes()) == before
    lost = [r for r in a.audit() if r["activity_name"] == "Leadership Lost"]
    assert len(lost) == 1
    assert leader_of([a, b]) is b


def test_without_quorum_nobody_writes_and_revocation_resumes_when_it_returns(
    lab: Lab, hosts: Callable[[str], Host], etcd_cluster: EtcdCluster
) -> None:
    ana = contract("C-1", "Ana", "Lopez", ["developer"], day(-1), day(9))
    lab.contracts(ana, *people(1))
    a, b = hosts("a"), hosts("b")
    wait_for(lambda: lab.entry(dn_of("ana.lopez")) is not None, 10)
    etcd_cluster.stop_member(1)
    etcd_cluster.stop_member(2)
    wait_for(lambda: a.role() == b.role() == "follower", TTL + 2)
    writes = len(a.writes()) + len(b.writes())
    end = moment(2)  # Ana's contract is cut short while nobody may write
    lab.contracts({**ana, "end": end}, *people(1))
    time.sleep((datetime.fromisoformat(end) - datetime.now().astimezone()).total_seconds() + 2)
    assert not locked(lab, "ana.lopez")
    assert len(a.writes()) + len(b.writes()) == writes
    for host in (a, b):
        code, health = host.health()
        assert (code, health["status"]) == (503, "degraded")
        assert health["reason"].startswith("etcd unreachable")
    etcd_cluster.start_member(1)
    etcd_cluster.start_member(2)
    returned = time.monotonic()
    wait_for(lambda: locked(lab, "ana.lopez"), TTL + CYCLE + 5)
    print(f"revoked {time.monotonic() - returned:.2f} s after the quorum returned")


def test_an_end_during_a_failover_is_revoked_within_the_ttl_and_a_second(
    lab: Lab, hosts: Callable[[str], Host]
) -> None:
    lab.contracts(*people(1))
    running = [hosts("a"), hosts("b")]
    wait_for(lambda: lab.entry(dn_of("per.son0")) is not None, 10)
    failover, lag = failover_trial(lab, running, 0, people(1))
    print(f"failover {failover:.2f} s, revocation lag {lag:.2f} s")
    assert 0 < lag <= TTL + 1
    assert failover <= TTL + CYCLE


def test_check_config_online_reaches_etcd(lab: Lab, etcd_cluster: EtcdCluster) -> None:
    ha = {"endpoints": etcd_cluster.endpoints, "lease_ttl": TTL, "margin": 1, "timeout": 1}
    lab.configure(ha=ha)
    checked = lab.syncd("check-config", "--online")
    assert checked.code == 0, checked.err
    assert "ha: etcd reachable (3 members), leader: none" in checked.out
    etcd_cluster.stop()
    checked = lab.syncd("check-config", "--online")
    assert checked.code == 2
    assert "ha: etcd /v3/kv/range: no member answered" in checked.err
