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
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from tests.servers.slapd import _make_tls as make_tls

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
    # with TLS on the client port: the CA, and a client certificate with its key that
    # the members require (--client-cert-auth)
    tls: ClientTls | None = None

    @property
    def endpoints(self) -> list[str]:
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://127.0.0.1:{port}" for port in self.client_ports]

    def _command(self, i: int, state: str) -> list[str]:
        cluster = ",".join(
            f"n{j}=http://127.0.0.1:{port}" for j, port in enumerate(self.peer_ports)
        )
        client = self.endpoints[i]
        peer = f"http://127.0.0.1:{self.peer_ports[i]}"
        tls = []
        if self.tls is not None:
            tls = [
                "--cert-file",
                str(self.tls.server_cert),
                "--key-file",
                str(self.tls.server_key),
                "--client-cert-auth",
                "--trusted-ca-file",
                str(self.tls.ca),
            ]
        return [
            *tls,
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
        command = [shutil.which("etcd") or "/usr/bin/etcd", *self._command(i, state)]
        self.procs[i] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

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
        verify: ssl.SSLContext | bool = True
        if self.tls is not None:
            verify = ssl.create_default_context(cafile=str(self.tls.ca))
            verify.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        url = f"{self.endpoints[i]}/v3/maintenance/status"
        try:
            answer = httpx2.post(url, json={}, timeout=1, verify=verify)
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


@dataclass(frozen=True)
class ClientTls:
    """A throwaway CA, the members' certificate and a client certificate (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


# The members' certificate serves clients and is also shown as a client certificate:
# etcd's JSON gateway connects to its own gRPC service with it, which with
# --client-cert-auth needs clientAuth.
_EXTENSIONS = """\
[member]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def _make_tls(folder: Path) -> ClientTls:
    """The slapd fixture's throwaway CA, a certificate for the members (127.0.0.1) and
    one for syncd as a client."""
    ca, _, _ = make_tls(folder)
    ext = folder / "etcd.cnf"
    ext.write_text(_EXTENSIONS)
    made = {}
    for serial, (name, section) in enumerate((("member", "member"), ("client", "client")), 1):
        key, csr, cert = (folder / f"{name}{suffix}" for suffix in (".key", ".csr", ".pem"))
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        _openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", folder / "ca.key",
            "-set_serial", str(serial + 16), "-sha256", "-days", "2", "-extfile", ext,
            "-extensions", section, "-out", cert,
        )  # fmt: skip
        made[name] = (cert, key)
    return ClientTls(ca, *made["member"], *made["client"])


def _openssl(*args: str | Path) -> None:
    openssl = shutil.which("openssl") or "openssl"
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)


def start_etcd(work: Path, members: int = 3, *, tls: bool = False) -> EtcdCluster:
    """Start a fresh cluster of ``members`` under ``work`` and wait until it has a leader;
    ``tls``: clients speak TLS to the members and must show a certificate."""
    work.mkdir(parents=True, exist_ok=True)
    cluster = EtcdCluster(
        work,
        [_free_port() for _ in range(members)],
        [_free_port() for _ in range(members)],
        tls=_make_tls(work / "tls") if tls else None,
    )
    for i in range(members):
        cluster.start_member(i, "new")
    try:
        cluster.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster
