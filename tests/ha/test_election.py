"""Leader election (``syncd.ha.election``) against a real three-member etcd cluster:
one leader at a time, the gate closed by the clock before the lease can expire, a
lost lease noticed, a handover, and no writer while the quorum is gone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from syncd.config.ha import HaConfig
from syncd.ha.election import Election
from syncd.ha.etcd import Etcd
from syncd.ha.status import status, step_down
from tests.plugins.etcd import TTL
from tests.servers.etcd import EtcdCluster


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
