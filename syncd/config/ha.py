"""The ``ha:`` section: active/passive ``syncd run`` on several hosts, one leader at a
time, elected with a lease on etcd (``syncd.ha``).

Composed by ``syncd.config.model.Config`` (absent: a single host, nothing changes);
read by ``syncd.ha.etcd`` (endpoints, TLS, credentials) and ``syncd.ha.election``
(key prefix, lease TTL, safety margin).
"""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

from pydantic import Field

from syncd.config.common import Duration, Model, Problem, read_secret, secret_problem

_CREDENTIALS = (
    "A relative path is looked up in $CREDENTIALS_DIRECTORY when systemd set it, otherwise "
    "next to the config file."
)


class HaConfig(Model):
    """Leader election on etcd (its v3 API): every host campaigns; only the holder of
    the leader key's lease writes to the targets."""

    endpoints: list[str] = Field(
        default=["https://127.0.0.1:2379"],
        min_length=1,
        description="etcd client URLs (all members of the cluster); a request that fails "
        "on one is tried on the next. https:// unless the network is trusted.",
    )
    key_prefix: str = Field(
        default="/syncd/",
        min_length=1,
        description="Prefix of syncd's keys in etcd: the leader key is PREFIX + leader. "
        "Hosts that should elect one writer among them share it; another syncd deployment "
        "on the same etcd uses another prefix.",
    )
    name: str = Field(
        default="",
        description="This host's name in the election, the audit trail and syncd ha "
        'status. "": the host name.',
    )
    lease_ttl: Duration = Field(
        default=timedelta(seconds=10),
        description="TTL of the leader's lease (whole seconds, at least 2): a leader that "
        "stops renewing loses the lease this long after its last renewal, and another "
        "host takes over. Renewed every third of it.",
    )
    margin: Duration = Field(
        default=timedelta(seconds=2),
        description="The leader stops sending writes this long before its lease could "
        "expire when it cannot renew it, so that no write of a deposed leader reaches a "
        "target. At most half of lease_ttl; longer than a clock step or a GC pause.",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=2),
        description="Timeout of one request to an etcd member.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificate(s) that sign the etcd members' certificates (PEM); "
        "unset: the system's CAs. Server certificates are always verified.",
    )
    cert_file: Path | None = Field(
        default=None,
        description="Client certificate (PEM) when etcd requires client certificates "
        "(--client-cert-auth). Needs key_file. " + _CREDENTIALS,
    )
    key_file: Path | None = Field(
        default=None,
        description="Private key of cert_file (PEM). " + _CREDENTIALS,
    )
    user: str = Field(
        default="",
        description='etcd user (etcd auth enabled) with read-write access to key_prefix. "": '
        "no user authentication.",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the etcd user's password. " + _CREDENTIALS,
    )
    password_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the etcd user's password, "
        "instead of password_file.",
    )

    @property
    def member(self) -> str:
        """This host's name in the election."""
        return self.name or socket.gethostname()

    @property
    def ttl_seconds(self) -> int:
        return int(self.lease_ttl.total_seconds())

    @property
    def leader_key(self) -> str:
        return self.key_prefix + "leader"

    @property
    def handover_key(self) -> str:
        """Where ``syncd ha step-down`` asks the leader to hand over."""
        return self.key_prefix + "step-down"

    def password(self) -> str:
        """The etcd user's password; callers must never log or print it."""
        return read_secret(self.password_file, self.password_env)

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check: the timings fit together, the files exist."""
        out: list[Problem] = []
        ttl = self.lease_ttl.total_seconds()
        if ttl < 2 or ttl != int(ttl):
            out.append(Problem(("lease_ttl",), "must be whole seconds, at least 2s", "e.g. 10s"))
        if self.margin.total_seconds() <= 0 or self.margin.total_seconds() > ttl / 2:
            out.append(Problem(("margin",), "must be more than 0s and at most half of lease_ttl"))
        if self.timeout.total_seconds() * 3 > ttl:
            out.append(Problem(("timeout",), "must be at most a third of lease_ttl", "e.g. 2s"))
        for key, file in (("ca_file", self.ca_file), ("cert_file", self.cert_file),
                          ("key_file", self.key_file)):  # fmt: skip
            if file is not None and not file.is_file():
                out.append(Problem((key,), f"{file} does not exist"))
        if (self.cert_file is None) != (self.key_file is None):
            out.append(Problem(("key_file",), "cert_file and key_file go together"))
        if self.user:
            problem = secret_problem("password", self.password_file, self.password_env)
            if problem is not None:
                out.append(Problem(("password_file",), problem))
        return out
