"""A throwaway three-member etcd cluster on 127.0.0.1 for syncd's HA tests and benchmark.

:func:`start_etcd` starts the members as plain child processes, each with its own data
folder under the given work folder and two free ports, and waits until the cluster
elects a leader; :meth:`EtcdCluster.stop` ends them all. A member can be stopped and
started again (:meth:`EtcdCluster.stop_member`, :meth:`EtcdCluster.start_member`) to
take the quorum away and give it back. No system service is involved.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

_READY_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EtcdCluster:
    """Three etcd members on loopback; ``endpoints``: their client URLs."""

    work: Path
    client_ports: list[int]
    peer_ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.client_ports]

    def _command(self, i: int, state: str) -> list[str]:
        cluster = ",".join(
            f"n{j}=http://127.0.0.1:{port}" for j, port in enumerate(self.peer_ports)
        )
        client = f"http://127.0.0.1:{self.client_ports[i]}"
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        return [
            shutil.which("etcd") or "/usr/bin/etcd",
            "--name",
            f"n{i}",
            "--data-dir",
            str(self.work / f"n{i}"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            state,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            "--log-level",
            "warn",
        ]

    def start_member(self, i: int, state: str = "existing") -> None:
        log = (self.work / f"n{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(
            self._command(i, state), stdout=log, stderr=subprocess.STDOUT
        )

    def stop_member(self, i: int) -> None:
        proc = self.procs.pop(i, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for i in list(self.procs):
            self.stop_member(i)

    def healthy(self, i: int = 0) -> bool:
        """Whether member ``i`` answers and the cluster has a leader."""
        try:
            answer = httpx2.post(f"{self.endpoints[i]}/v3/maintenance/status", json={}, timeout=1)
            return int(answer.json().get("leader", 0)) != 0
        except (httpx2.HTTPError, ValueError):
            return False

    def wait_ready(self, timeout: float = _READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(self.healthy(i) for i in self.procs):
                return
            time.sleep(0.05)
        logs = "\n".join(p.read_text()[-2000:] for p in self.work.glob("n*.log"))
        raise RuntimeError(f"etcd cluster not ready after {timeout} s:\n{logs}")


def start_etcd(work: Path, members: int = 3) -> EtcdCluster:
    """Start a fresh cluster of ``members`` under ``work`` and wait until it has a leader."""
    work.mkdir(parents=True, exist_ok=True)
    cluster = EtcdCluster(
        work,
        [_free_port() for _ in range(members)],
        [_free_port() for _ in range(members)],
    )
    for i in range(members):
        cluster.start_member(i, "new")
    try:
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster
