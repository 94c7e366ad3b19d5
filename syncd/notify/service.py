"""Notices as the daemon and the CLI send them: what is due, delivery, bookkeeping.

``Notices`` is made by ``syncd.daemon`` (one per run, ``background=True``) and by
``syncd expiring --notify`` and ``syncd notify test`` (``syncd.notify.cli``, inline).

In the daemon, delivery never holds up reconciliation: ``submit`` puts each (notice,
channel) on a bounded queue (``notify.queue_size``) that one thread of its own works
through, retrying temporary failures with backoff (``syncd.notify.channels``). A relay
that is down or hangs delays mail, never a revocation: the loop only enqueues. A full
queue leaves the rest for the next cycle. The thread records each delivery in the
store (``syncd.notify.store``) as it happens; the loop writes the audit records and
counts ``syncd_notifications_total`` when it ``drain``\\s the results, since the audit
writer belongs to the loop's thread.

What is due is planned (``tick``) after every full cycle and whenever the next warning
or digest moment (``next_wake``, which the daemon sleeps towards) has come: warnings
(``syncd.notify.due``), this period's digests, and grants, revocations and ops notices
waiting in the store's outbox. A temporary failure leaves the notice due, so it is
tried again at the next cycle; a permanent one (a template error, an address refused)
is given up and not tried again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from syncd.apply import ApplyReport
from syncd.audit import AuditError, AuditWriter
from syncd.audit.notice import Delivery
from syncd.config import Config
from syncd.core.desired import resolve
from syncd.core.model import Conflict, Contract, Person
from syncd.engine import CyclePlan
from syncd.metrics import Metrics
from syncd.notify import compose
from syncd.notify.channels import Channel, channels
from syncd.notify.due import Armed, digest_slot, due_warnings, next_digest, next_warning, period
from syncd.notify.message import Notice, NotifyError, Renderer
from syncd.notify.store import NoticeStore
from syncd.state import StateDir

log = logging.getLogger(__name__)
FINISH_GRACE = 1.0  # seconds a stopping daemon waits for the message being delivered


@dataclass(frozen=True)
class Job:
    """One notice through one channel; a warning's job says what its person is armed
    with once it has gone out on every channel."""

    notice: Notice
    channel: str
    armed: tuple[str, Armed] | None = None


class Notices:
    """The notices of one daemon run or one command."""

    def __init__(
        self,
        config: Config,
        state: StateDir | None,
        *,
        metrics: Metrics | None = None,
        background: bool = False,
    ) -> None:
        self.store = NoticeStore(config.daemon.state_dir, state)
        self.metrics = metrics
        self.next_wake: datetime | None = None
        self._planned_from: object = None
        self._results: queue.Queue[Delivery] = queue.Queue()
        self._inflight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Job | None] | None = None
        self._worker: threading.Thread | None = None
        self.reload(config)
        if background:
            self._jobs = queue.Queue(config.notify.queue_size)
            self._worker = threading.Thread(target=self._work, name="syncd-notify", daemon=True)
            self._worker.start()

    def reload(self, config: Config) -> None:
        self.config = config
        self.channels: dict[str, Channel] = {
            c.name: c for c in channels(config.notify, Renderer(config.notify.templates_dir))
        }
        self._planned_from = None  # plan again under the new config
        self.next_wake = None

    def close(self) -> None:
        """Stop the delivery thread once its current message is done (not waited for).
        Messages still queued stay due: the next run sends them."""
        if self._jobs is None:
            return
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
        self._jobs.put_nowait(None)
        self._jobs = None

    def finish(self, audit: AuditWriter, correlation: str) -> None:
        """At a stop: let the message in flight finish (``FINISH_GRACE`` at most) and
        record what was delivered."""
        self.close()
        if self._worker is not None:
            self._worker.join(FINISH_GRACE)
        self.drain(audit, correlation)

    # planning (the loop's thread)

    def step(
        self, audit: AuditWriter, contracts: Sequence[Contract] | None, source: object
    ) -> datetime | None:
        """One pass of the daemon's loop: record the notices delivered since the last
        pass, submit those due from ``contracts`` (the last accepted source; None: none
        yet, nothing to plan from), and say when to wake for the next."""
        self.drain(audit, audit.correlation)
        if contracts is None:
            return None
        self.tick(contracts, datetime.now(UTC), source)
        return self.next_wake

    def people(self, contracts: Sequence[Contract], now: datetime) -> dict[str, Person]:
        return resolve(contracts, self.config.core_policy(), now)

    def due(self, now: datetime, source: object) -> bool:
        """Whether to plan: a new source read since the last plan, or a moment came."""
        if not self.channels:
            return False
        return source is not self._planned_from or (
            self.next_wake is not None and now >= self.next_wake
        )

    def tick(self, contracts: Sequence[Contract], now: datetime, source: object = None) -> None:
        """Plan and submit what is due, if anything may be (``due``)."""
        if not self.due(now, source):
            return
        self._planned_from = source
        people = self.people(contracts, now)
        jobs = [*self.warnings(people, now), *self.digests(people, now), *self.waiting()]
        self.store.prune(now)
        self.submit(jobs)
        self.next_wake = self._next(people, now)

    def _next(self, people: Mapping[str, Person], now: datetime) -> datetime | None:
        n = self.config.notify
        moments = [next_warning(people.values(), n.warn_before, self.store.sent(), now)]
        if n.kinds.digest:
            tz = ZoneInfo(self.config.policy.timezone)
            moments.append(next_digest(n.digest.every, n.digest.day, n.digest.hour, tz, now))
        return min((m for m in moments if m is not None), default=None)

    def warnings(self, people: Mapping[str, Person], now: datetime) -> list[Job]:
        n = self.config.notify
        if not n.kinds.warning:
            return []
        jobs: list[Job] = []
        sent, checked = self.store.sent(), self.store.checked
        for due in due_warnings(people.values(), n.warn_before, sent, now, checked):
            assert due.person.access_end is not None
            armed = (due.person.key, Armed(due.person.access_end, due.covers))
            notice = compose.warning(self.config, due, now)
            if notice is not None:
                jobs += self._jobs_for(notice, armed)
        return jobs

    def digests(self, people: Mapping[str, Person], now: datetime) -> list[Job]:
        d, tz = self.config.notify.digest, ZoneInfo(self.config.policy.timezone)
        slot = digest_slot(d.every, d.day, d.hour, tz, now)
        if slot is None or not self.config.notify.kinds.digest:
            return []
        notices = compose.digests(self.config, people.values(), now, period(slot))
        return [job for notice in notices for job in self._jobs_for(notice)]

    def waiting(self) -> list[Job]:
        return [job for notice in self.store.waiting() for job in self._jobs_for(notice)]

    def _jobs_for(self, notice: Notice, armed: tuple[str, Armed] | None = None) -> list[Job]:
        return [
            Job(notice, name, armed)
            for name in self.channels
            if not self.store.delivered(notice.key, name)
        ]

    def events(
        self,
        cycle: CyclePlan,
        reports: Iterable[ApplyReport],
        conflicts: Sequence[Conflict],
        now: datetime,
    ) -> None:
        """Grants, revocations and an ops notice from a cycle that ran: kept in the
        outbox until delivered, and submitted now."""
        if not self.channels:
            return
        done = [outcome for report in reports for outcome in report.done]
        notices = compose.outcomes(self.config, done, cycle.people)
        holds = [f"{plan.target}: {line}" for plan in cycle.plans for line in plan.holds]
        ops = compose.ops(self.config, holds, conflicts)
        notices += [ops] if ops is not None else []
        fresh = [
            n for n in notices if any(not self.store.delivered(n.key, c) for c in self.channels)
        ]
        if fresh:
            self.store.queue(fresh, now)
            self.submit([job for notice in fresh for job in self._jobs_for(notice)])

    # delivery

    def submit(self, jobs: Iterable[Job]) -> None:
        """Deliver ``jobs``: on the queue (the daemon) or at once (a command)."""
        for job in jobs:
            ident = (job.notice.key, job.channel)
            with self._lock:
                if ident in self._inflight:
                    continue
                self._inflight.add(ident)
            if self._worker is None:
                self._deliver(job)
                continue
            if self._jobs is None:
                return  # stopping: the next run sends it
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                with self._lock:
                    self._inflight.discard(ident)
                self._count(job.channel, job.notice.kind, "deferred")
                log.warning("notice queue full: %s waits for the next cycle", job.notice.kind)

    def _work(self) -> None:
        jobs = self._jobs
        assert jobs is not None
        while (job := jobs.get()) is not None:
            self._deliver(job)

    def _deliver(self, job: Job) -> None:
        channel, notice = self.channels.get(job.channel), job.notice
        if channel is None:  # the config changed since it was queued
            with self._lock:
                self._inflight.discard((notice.key, job.channel))
            return
        try:
            receipt = channel.send(notice)
            delivery = _delivery(job, channel, "", receipt.message_uid, receipt.code)
            self._mark(job)
        except NotifyError as exc:
            delivery = _delivery(job, channel, str(exc), code=exc.code, retry=exc.temporary)
            if not exc.temporary:
                self._mark(job)  # given up for good: not tried again
        except Exception as exc:  # a bug must not stop the delivery thread
            log.exception("delivering a %s notice failed", notice.kind)
            delivery = _delivery(job, channel, f"internal error: {exc}", retry=True)
        finally:
            with self._lock:
                self._inflight.discard((notice.key, job.channel))
            self._results.put(delivery)

    def _mark(self, job: Job) -> None:
        now = datetime.now(UTC)
        self.store.mark(job.notice, job.channel, list(self.channels), now, job.armed)

    def drain(self, audit: AuditWriter, correlation: str) -> list[Delivery]:
        """Write an audit record for each delivery finished since the last call, and
        count it; returns them."""
        out: list[Delivery] = []
        while True:
            try:
                delivery = self._results.get_nowait()
            except queue.Empty:
                return out
            try:
                audit.notification(delivery, correlation)
            except AuditError as exc:
                self._results.put(delivery)  # recorded at the next try
                log.error("cannot record a notification in the audit trail: %s", exc)
                return out
            self._count(delivery.channel, delivery.kind, _result(delivery))
            if delivery.ok:
                log.info("%s notice sent by %s", delivery.kind, delivery.channel)
            else:
                log.warning(
                    "%s notice not sent by %s: %s", delivery.kind, delivery.channel, delivery.detail
                )
            out.append(delivery)

    def _count(self, channel: str, kind: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(channel, kind, result).inc()


def _result(delivery: Delivery) -> str:
    if delivery.ok:
        return "sent"
    return "failed" if delivery.retry else "given_up"


def _delivery(
    job: Job,
    channel: Channel | None,
    detail: str,
    message_uid: str = "",
    code: int = 0,
    *,
    retry: bool = False,
) -> Delivery:
    """What the audit trail says of one job: sent when ``detail`` is empty."""
    notice = job.notice
    return Delivery(
        channel=job.channel,
        kind=notice.kind,
        to=notice.to,
        contract_ids=notice.contract_ids,
        ok=not detail,
        detail=detail,
        retry=retry,
        threshold=notice.threshold,
        late=notice.late,
        endpoint=channel.endpoint if channel is not None else "",
        sender=channel.sender if channel is not None else "",
        message_uid=message_uid,
        http_code=code,
    )
