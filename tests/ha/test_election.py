"""Leader election (``syncd.ha.election``) against a real three-member etcd cluster:
one leader at a time, the gate closed by the clock before the lease can expire, a
lost lease noticed, a handover, and no writer while the quorum is gone."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.config.ha import HaConfig
from syncd.ha.election import Election
from syncd.ha.etcd import Etcd, EtcdError
from syncd.ha.status import status, step_down
from tests.plugins.etcd import TTL
from tests.servers.etcd import EtcdCluster, start_etcd

ETCDCTL_ENV = {**os.environ, "ETCDCTL_API": "3"}


@pytest.fixture
def elections(ha_config: Callable[..., HaConfig]) -> Iterator[Callable[[str], Election]]:
    made: list[Election] = []

    def make(name: str) -> Election:
        election = Election(ha_config(name))
        made.append(election)
        election.start()
        return election

    yield make
    for election in made:
        election.close()


def wait_until(check: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {seconds} s")


def test_exactly_one_of_three_leads_and_says_so_in_etcd(
    elections: Callable[[str], Election], ha_config: Callable[..., HaConfig]
) -> None:
    hosts = [elections(name) for name in ("a", "b", "c")]
    wait_until(lambda: any(h.may_write() for h in hosts), 5)
    for _ in range(3 * TTL * 10):  # renewals keep it there, and nobody else gets in
        assert sum(h.may_write() for h in hosts) == 1
        time.sleep(0.1)
    leader = next(h for h in hosts if h.may_write())
    seen = status(ha_config("x"))
    assert seen.leader == leader.config.member
    assert seen.lease == leader.lease
    assert 0 < seen.ttl <= TTL
    assert len(seen.members) == 3
    acquired = leader.take_changes()
    assert [c.acquired for c in acquired] == [True]
    assert acquired[0].revision == seen.since_revision


def test_a_leader_that_cannot_renew_closes_its_gate_before_the_lease_expires(
    ha_config: Callable[..., HaConfig],
) -> None:
    config = ha_config("frozen")
    leader = Election(config)
    leader.round()  # campaign once, by hand: no thread renews it afterwards
    assert leader.may_write()
    granted = time.monotonic()
    closed = wait_until(lambda: not leader.may_write(), TTL)
    assert closed <= TTL - config.margin.total_seconds() + 0.05
    # the key still stands: the lease outlives the gate by the margin at least
    etcd = Etcd(config)
    held, _ = etcd.get(config.leader_key)
    assert held is not None
    assert time.monotonic() - granted < TTL
    wait_until(lambda: etcd.get(config.leader_key)[0] is None, TTL + 2)
    leader.round()  # the renewal finds the lease gone: a loss, recorded
    assert [c.acquired for c in leader.take_changes()] == [True, False]
    assert not leader.may_write()
    etcd.close()
    leader.close()


def test_when_the_leader_dies_another_takes_over_after_the_ttl(
    elections: Callable[[str], Election], ha_config: Callable[..., HaConfig]
) -> None:
    first = elections("a")
    wait_until(first.may_write, 5)
    second = elections("b")
    time.sleep(1)
    assert not second.may_write()
    first._stop.set()  # it stops renewing, as a killed process would
    lost = time.monotonic()
    took = wait_until(second.may_write, TTL + 2)
    assert not first.may_write()
    assert took <= TTL + 1
    print(f"takeover after {time.monotonic() - lost:.2f} s")


def test_a_step_down_hands_over_and_the_old_leader_rests(
    elections: Callable[[str], Election], ha_config: Callable[..., HaConfig]
) -> None:
    first = elections("a")
    wait_until(first.may_write, 5)
    second = elections("b")
    before, after = step_down(ha_config("cli"), wait=TTL * 2)
    assert (before, after) == ("a", "b")
    assert second.may_write()
    assert not first.may_write()
    assert [c.acquired for c in first.take_changes()] == [True, False]


def test_without_quorum_nobody_writes_and_leadership_returns_with_it(
    elections: Callable[[str], Election], etcd_cluster: EtcdCluster
) -> None:
    hosts = [elections("a"), elections("b")]
    wait_until(lambda: any(h.may_write() for h in hosts), 5)
    etcd_cluster.stop_member(1)
    etcd_cluster.stop_member(2)
    wait_until(lambda: not any(h.may_write() for h in hosts), TTL)
    for _ in range(20):  # no quorum: no renewal, no campaign succeeds
        assert not any(h.may_write() for h in hosts)
        time.sleep(0.1)
    etcd_cluster.start_member(1)
    etcd_cluster.start_member(2)
    wait_until(lambda: any(h.may_write() for h in hosts), 15)
    assert sum(h.may_write() for h in hosts) == 1


def test_tls_is_verified_and_a_client_certificate_is_shown(tmp_path: Path) -> None:
    cluster = start_etcd(tmp_path / "etcd", tls=True)
    try:
        assert cluster.tls is not None
        settings = {"endpoints": cluster.endpoints, "name": "a", "lease_ttl": 3}
        settings |= {"margin": 1, "timeout": 1}
        config = HaConfig.model_validate(
            {
                **settings,
                "ca_file": cluster.tls.ca,
                "cert_file": cluster.tls.client_cert,
                "key_file": cluster.tls.client_key,
            }
        )
        leader = Election(config)
        leader.round()
        assert leader.may_write()
        leader.close()
        # the members' certificate is not trusted without the CA, and the members
        # refuse a client without a certificate
        for missing in (
            {**settings, "cert_file": cluster.tls.client_cert, "key_file": cluster.tls.client_key},
            {**settings, "ca_file": cluster.tls.ca},
        ):
            refused = Etcd(HaConfig.model_validate(missing))
            with pytest.raises(EtcdError):
                refused.grant(3)
            refused.close()
    finally:
        cluster.stop()


def test_a_user_and_password_from_a_file(
    etcd_cluster: EtcdCluster, ha_config: Callable[..., HaConfig], tmp_path: Path
) -> None:
    etcdctl = ["etcdctl", f"--endpoints={etcd_cluster.endpoints[0]}"]
    for step in (
        ["user", "add", "root", "--new-user-password=root-Secret-1"],
        ["user", "add", "syncd", "--new-user-password=syncd-Secret-1"],
        ["role", "add", "syncd"],
        ["role", "grant-permission", "syncd", "--prefix=true", "readwrite", "/syncd/"],
        ["user", "grant-role", "syncd", "syncd"],
        ["auth", "enable"],
    ):
        subprocess.run([*etcdctl, *step], check=True, capture_output=True, env=ETCDCTL_ENV)
    password = tmp_path / "etcd-password"
    password.write_text("syncd-Secret-1\n")
    leader = Election(ha_config("a", user="syncd", password_file=password))
    leader.round()
    assert leader.may_write()
    leader.close()
    password.write_text("wrong\n")
    with pytest.raises(EtcdError, match="authentication as syncd refused"):
        Etcd(ha_config("a", user="syncd", password_file=password)).grant(3)
    anonymous = Etcd(ha_config("a"))
    with pytest.raises(EtcdError):
        anonymous.create("/syncd/leader", "a", 0)
    anonymous.close()


class SlowEtcd(Etcd):
    """Fault injection: every lease renewal answers ``delay`` seconds late."""

    delay = 0.8

    def keepalive(self, lease: int) -> int:
        time.sleep(self.delay)
        return super().keepalive(lease)


def test_the_gate_counts_from_when_a_renewal_was_sent_not_answered(
    ha_config: Callable[..., HaConfig],
) -> None:
    config = ha_config("slow")
    leader = Election(config, SlowEtcd(config))
    leader.round()  # grant, create: leads
    assert leader.may_write()
    leader.round()  # a renewal answered 0.8 s after it was sent
    margin = config.margin.total_seconds()
    assert leader.held_for() <= TTL - margin - SlowEtcd.delay + 0.05
    assert leader.held_for() > TTL - margin - SlowEtcd.delay - 0.5
    leader.close()
