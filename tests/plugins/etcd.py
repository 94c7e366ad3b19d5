"""Fixtures of the HA tests: ``etcd_cluster``, three etcd members of the test's own on
loopback (``tests.servers.etcd``), and ``ha_config``, an ``ha:`` section pointing at
them with a short lease, so that failovers take seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.config.ha import HaConfig
from tests.servers.etcd import EtcdCluster, start_etcd

TTL = 3  # seconds: the tests' lease


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path / "etcd")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def ha_config(etcd_cluster: EtcdCluster) -> Callable[..., HaConfig]:
    def make(name: str, **overrides: object) -> HaConfig:
        settings: dict[str, object] = {
            "endpoints": etcd_cluster.endpoints,
            "name": name,
            "lease_ttl": TTL,
            "margin": 1,
            "timeout": 1,
            **overrides,
        }
        return HaConfig.model_validate(settings)

    return make
