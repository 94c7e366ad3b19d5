"""The daemon's side of high availability: which role this host plays, and what follows.

Made by ``syncd.daemon.Daemon.run`` when the config has an ``ha:`` section (without
one there is no ``Role`` and nothing changes). It runs the ``Election`` thread, puts
the lease's gate on the daemon's pulse (``syncd.pulse.Pulse.fence``: no request to a
target is sent unless the lease is known to be held) and, asked by the loop before
every step (``check``):

- writes each leadership change to this host's audit trail, as an Event Log record
  with the lease id and the etcd revision (``docs/siem.md`` stitches the hosts' trails
  by them), and counts it in ``syncd_leadership_changes_total``;
- sets ``syncd_leader`` and the role shown by ``/healthz``;
- tells the loop when leadership was just gained: its next cycle is a full one, which
  settles open intents by observing the targets and plans whatever is missing, as after
  a crash.

A follower does not touch the targets; ``follow`` keeps its source snapshot warm (read
at every ``daemon.interval`` and when the file changes), so that it can take over
with the contracts of the moment even if the source is down by then.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from syncd.audit import AuditWriter
from syncd.audit.records import OTHER_ACTIVITY
from syncd.config import Config
from syncd.config.ha import HaConfig
from syncd.errors import SyncdError
from syncd.ha.election import Change, Election
from syncd.listener import Health
from syncd.metrics import Metrics
from syncd.pulse import Pulse
from syncd.watch import SourceWatch, Stopping

log = logging.getLogger(__name__)
ACQUIRED, LOST = "Leadership Acquired", "Leadership Lost"


def record_change(audit: AuditWriter, config: HaConfig, change: Change) -> None:
    """A leadership change as an Event Log record (class 1008, activity 99 Other) in
    this host's trail, made durable at once."""
    name = ACQUIRED if change.acquired else LOST
    audit.event(
        OTHER_ACTIVITY,
        name,
        f"{name.lower()} by {config.member}: {change.reason}",
        audit.correlation,
        member=config.member,
        lease_id=f"{change.lease:x}",
        etcd_revision=change.revision,
        leader_key=config.leader_key,
    )
    audit.sync()


class HaMetrics:
    """What ``ha:`` adds to ``/metrics`` (``docs/operations.md``, ``config/alerts.yaml``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "syncd_leader",
            "1 while this host holds the leader lease and may write, 0 while it follows",
            registry=registry,
        )
        self.changes = Counter(
            "syncd_leadership_changes",
            "Leadership acquired and lost by this host",
            ["change"],
            registry=registry,
        )


class Role:
    """This host's role under ``ha:``, kept by its ``Election``."""

    def __init__(self, config: HaConfig, metrics: Metrics, health: Health, pulse: Pulse) -> None:
        self.config = config
        self.election = Election(config, quiet=pulse.quiet)
        self.health = health
        pulse.fence = self.election.may_write
        self.metrics = HaMetrics(metrics.registry)
        self._metrics = metrics
        self._next_read = 0.0  # a follower's next source read (monotonic)
        self._show(False)

    def start(self) -> None:
        self.election.start()

    def close(self, audit: AuditWriter | None = None) -> None:
        """Stop campaigning and let the lease go; the loss goes to ``audit`` if given."""
        self.election.close()
        if audit is not None:
            self.check(audit)

    def gate(self) -> bool:
        """Whether a write may be sent now."""
        return self.election.may_write()

    def check(self, audit: AuditWriter) -> tuple[bool, bool]:
        """Record what changed; whether this host leads now, and whether it just began."""
        changes = self.election.take_changes()
        for change in changes:
            self._record(change, audit)
        leading = self.election.may_write()
        self._show(leading)
        return leading, leading and any(change.acquired for change in changes)

    def follow(self, config: Config, source: SourceWatch) -> None:
        """A follower's step: read the source when it is due or changed (the snapshot
        stays warm), and say in ``/healthz`` who leads (``standby``, 200), or that etcd
        cannot be reached (``degraded``, 503: this host could not take over)."""
        if time.monotonic() >= self._next_read or source.changed(config):
            self._next_read = time.monotonic() + config.daemon.interval.total_seconds()
            try:
                reading = source.read(config, datetime.now(UTC))
                self._metrics.source_read(ok=reading.source is not None and not reading.degraded)
            except Stopping:
                return
            except SyncdError as exc:
                log.error("follower: the source snapshot cannot be kept: %s", exc)
        leader = self.election.leader
        if self.election.error:  # it could not take over: not ready
            self.health.set("degraded", f"etcd unreachable: {self.election.error}")
        else:
            self.health.set("standby", f"following {leader}" if leader else "campaigning")

    @property
    def poll(self) -> float:
        """How long a follower's loop sleeps between looks at its role."""
        return self.election.poll

    def _record(self, change: Change, audit: AuditWriter) -> None:
        self.metrics.changes.labels("acquired" if change.acquired else "lost").inc()
        record_change(audit, self.config, change)

    def _show(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self.health.role = {
            "role": "leader" if leading else "follower",
            "member": self.config.member,
            "leader": self.election.leader,
        }
