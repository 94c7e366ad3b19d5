"""Leader election on etcd: a lease, a transactional create of the leader key, renewal.

Run by ``syncd.ha.role.Role`` in a thread of its own, one per ``syncd run`` with an
``ha:`` section. Every host campaigns: it holds a lease of ``ha.lease_ttl`` and tries
to create the leader key bound to it, on the condition that the key does not exist
(``create_revision == 0``), so at most one host holds it at any revision. The holder
renews its lease every third of the TTL; a host that stops renewing (killed, frozen,
cut off from the quorum) loses the key with the lease, and another's next campaign
takes it.

**Safety before liveness.** The leader may write only before ``held_until``: the
monotonic time at which its last renewal was *sent*, plus the TTL etcd granted, minus
``ha.margin``. etcd started counting the TTL no earlier than the request was sent, so
the lease cannot expire before ``held_until + margin``, whatever the network did to the
answer. ``may_write`` is the gate the daemon puts before every write (it closes by the
clock alone, even when this thread is stuck or the process was frozen); when the
deadline passes without a renewal, this thread records the loss and the host campaigns
again as a follower. A loss or a gain is queued as a ``Change`` for the daemon's audit
trail, with the lease id and the etcd revision at which it happened.

**Handing over.** ``syncd ha step-down`` writes the leader's name under the handover
key; the leader sees it at its next renewal, closes its gate, waits for the requests in
flight to finish (``quiet``), revokes its lease (the key goes with it) and does not
campaign for twice the TTL, so another host takes over within one follower poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from syncd.config.ha import HaConfig
from syncd.ha.etcd import Etcd, EtcdError

log = logging.getLogger(__name__)
Clock = Callable[[], float]
FOLLOWER_POLL = 0.25  # seconds between a follower's campaigns, at most
QUIET_WAIT = 0.05  # how often a leader stepping down looks for requests still in flight


@dataclass(frozen=True)
class Change:
    """Leadership gained or lost, for the audit trail (``acquired``: gained)."""

    acquired: bool
    lease: int
    revision: int
    reason: str


class Election:
    """One host's campaign. ``quiet``: whether no write request is in flight (a leader
    handing over waits for it before it lets the lease go)."""

    def __init__(
        self,
        config: HaConfig,
        etcd: Etcd | None = None,
        *,
        quiet: Callable[[], bool] = lambda: True,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.etcd = etcd if etcd is not None else Etcd(config)
        self.quiet = quiet
        self.clock = clock
        self.ttl = config.ttl_seconds
        self.margin = config.margin.total_seconds()
        self._lock = threading.Lock()
        self._leading = False
        self._held_until = 0.0
        self._lease = 0
        self._revision = 0
        self._rest_until = 0.0  # after a step-down: no campaign before then
        self.leader = ""  # the leader's name as last seen ("": none)
        self.error = ""  # why etcd could not be reached at the last try ("": it could)
        self._changes: list[Change] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what the daemon asks --------------------------------------------------------------
    def may_write(self) -> bool:
        """The gate: this host leads and its lease is known to be held for ``margin``
        seconds more at least."""
        with self._lock:
            return self._leading and self.clock() < self._held_until

    def held_for(self) -> float:
        """Seconds the gate stays open without another renewal (0: closed)."""
        with self._lock:
            return max(0.0, self._held_until - self.clock()) if self._leading else 0.0

    @property
    def lease(self) -> int:
        return self._lease

    @property
    def poll(self) -> float:
        """Seconds between rounds: a third of the TTL for a leader's renewals, shorter
        for a follower's campaigns (the time a failover waits for it)."""
        third = self.ttl / 3
        return third if self._leading else min(third, FOLLOWER_POLL)

    def take_changes(self) -> list[Change]:
        with self._lock:
            changes, self._changes = self._changes, []
        return changes

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syncd-election", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop campaigning; a leader lets its lease go at once (a clean stop hands over
        without waiting for the TTL)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        if self._leading:
            self._lose("the daemon stopped")
        self._let_go()
        self.etcd.close()

    # -- the rounds ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self.round()
            wait = self.poll
            if self._leading:  # wake in time to record a loss when renewals fail
                wait = min(wait, max(self.held_for(), 0.01))
            self._stop.wait(wait)

    def round(self) -> None:
        """One renewal (leader) or campaign (follower); etcd errors are logged and
        count as no renewal."""
        try:
            if self._leading:
                self._renew()
            else:
                self._campaign()
            self.error = ""
        except EtcdError as exc:
            if not self.error:
                log.error("etcd unreachable: %s", exc)
            self.error = str(exc)
        if self._leading and not self.may_write():
            self._lose(f"the lease could not be renewed in time: {self.error or 'no answer'}")

    def _renew(self) -> None:
        sent = self.clock()
        ttl = self.etcd.keepalive(self._lease)
        if ttl <= 0:
            self._lose("the lease expired")
            self._lease = 0
            return
        held, self._revision = self.etcd.get(self.config.leader_key)
        if held is None or held.lease != self._lease:
            self._lose("the leader key is no longer bound to this host's lease")
            return
        with self._lock:
            if self._leading:
                self._held_until = sent + ttl - self.margin
        handover, _ = self.etcd.get(self.config.handover_key)
        if handover is not None and handover.value == self.config.member:
            self._hand_over()

    def _campaign(self) -> None:
        if self.clock() < self._rest_until:
            self._see_leader()
            return
        sent = self.clock()
        if not self._lease or self.etcd.keepalive(self._lease) <= 0:
            self._lease = self.etcd.grant(self.ttl)
        result = self.etcd.create(self.config.leader_key, self.config.member, self._lease)
        if result.succeeded:
            self._acquire(sent, result.revision, "the leader key was free")
            return
        held, revision = self.etcd.get(self.config.leader_key)
        if held is not None and held.lease == self._lease:  # ours still, e.g. quorum back
            self._acquire(sent, revision, "the leader key is still bound to this host's lease")
            return
        self.leader = held.value if held is not None else ""

    def _see_leader(self) -> None:
        held, _ = self.etcd.get(self.config.leader_key)
        self.leader = held.value if held is not None else ""

    def _acquire(self, sent: float, revision: int, reason: str) -> None:
        with self._lock:
            self._leading = True
            self._held_until = sent + self.ttl - self.margin
            self._revision = revision
            self._changes.append(Change(True, self._lease, revision, reason))
        self.leader = self.config.member
        log.info("leadership acquired (lease %x, revision %d)", self._lease, revision)

    def _lose(self, reason: str) -> None:
        with self._lock:
            if not self._leading:
                return
            self._leading = False
            self._held_until = 0.0
            self._changes.append(Change(False, self._lease, self._revision, reason))
        self.leader = ""
        log.warning("leadership lost (lease %x): %s", self._lease, reason)

    def _hand_over(self) -> None:
        """``syncd ha step-down`` asked: stop writing, let the requests in flight end,
        let the lease go, and rest so that another host takes over."""
        self._lose("handed over (syncd ha step-down)")
        deadline = self.clock() + self.margin
        while not self.quiet() and self.clock() < deadline:
            time.sleep(QUIET_WAIT)
        self._rest_until = self.clock() + 2 * self.ttl
        self.etcd.delete(self.config.handover_key)
        self._let_go()

    def _let_go(self) -> None:
        if not self._lease:
            return
        try:
            self.etcd.revoke(self._lease)
        except EtcdError as exc:
            log.warning("could not revoke the lease (it expires by itself): %s", exc)
        self._lease = 0
