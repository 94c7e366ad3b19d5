"""``syncd ha status`` and ``syncd ha step-down``: what etcd says, and a planned handover.

Called by ``syncd.commands``; both talk to etcd only (never to a daemon), so they work
from any host that has the config. ``status`` reads the leader key, its lease's time
left and the cluster's members. ``step_down`` writes the leader's name under the
handover key, which that leader reads at its next renewal (``syncd.ha.election``), and
waits until another host holds the key, or the leader key changed at least.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from syncd.config.ha import HaConfig
from syncd.ha.etcd import Etcd, EtcdError

WAIT_STEP = 0.2


@dataclass(frozen=True)
class Status:
    """The election as etcd holds it."""

    leader: str  # "": none
    lease: int
    ttl: int  # seconds left on the leader's lease (-1: no leader)
    since_revision: int  # the leader key's create revision
    revision: int  # the store's revision now
    members: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": "syncd.ha-status/1",
            "leader": self.leader or None,
            "lease_id": f"{self.lease:x}" if self.lease else None,
            "lease_ttl_left": self.ttl,
            "since_revision": self.since_revision,
            "revision": self.revision,
            "members": self.members,
        }

    def lines(self) -> list[str]:
        if self.leader:
            head = (
                f"leader: {self.leader} (lease {self.lease:x}, {self.ttl} s left, since "
                f"revision {self.since_revision})"
            )
        else:
            head = "leader: none"
        members = [
            f"  {m.get('name', '?')}: {', '.join(m.get('clientURLs') or [])}" for m in self.members
        ]
        return [head, f"revision: {self.revision}", "etcd members:", *members]


def status(config: HaConfig) -> Status:
    """The leader, its lease and the etcd members; ``EtcdError`` when etcd is unreachable."""
    etcd = Etcd(config)
    try:
        held, revision = etcd.get(config.leader_key)
        members = [
            {"name": m.get("name", ""), "clientURLs": m.get("clientURLs") or []}
            for m in etcd.members()
        ]
        if held is None:
            return Status("", 0, -1, 0, revision, members)
        ttl = etcd.time_to_live(held.lease) if held.lease else -1
        return Status(held.value, held.lease, ttl, held.create_revision, revision, members)
    finally:
        etcd.close()


def step_down(config: HaConfig, wait: float) -> tuple[str, str]:
    """Ask the leader to hand over; (the leader asked, the leader after) once the key
    changed hands, or ``wait`` seconds passed. ``EtcdError`` when there is no leader."""
    etcd = Etcd(config)
    try:
        held, _ = etcd.get(config.leader_key)
        if held is None:
            raise EtcdError("no leader holds the key: nothing to hand over")
        etcd.put(config.handover_key, held.value)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            now, _ = etcd.get(config.leader_key)
            if now is not None and now.create_revision != held.create_revision:
                return held.value, now.value
            time.sleep(WAIT_STEP)
        now, _ = etcd.get(config.leader_key)
        return held.value, (now.value if now is not None else "")
    finally:
        etcd.close()
