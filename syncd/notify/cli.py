"""The notices' commands: ``syncd expiring --notify [--dry-run]`` and ``syncd notify
test --to ADDRESS``. Called by ``syncd.commands``.

``expiring --notify`` sends the warnings due now, as the daemon would, with the same
bookkeeping in the state directory (so neither sends one the other sent) and the same
audit records; it takes the state directory's lock, so it refuses to run beside a
daemon, which sends them itself. ``--dry-run`` reads what was sent, shows what would
go out (recipients, subject, threshold) and changes nothing. ``notify test`` sends one
test message through each configured channel, records it, and says how each went.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import MappingProxyType

from syncd.audit import AuditWriter
from syncd.audit.notice import Delivery
from syncd.config import Config
from syncd.core.text import shown
from syncd.engine import read_source
from syncd.errors import SyncdError
from syncd.notify.message import Notice, NotifyError
from syncd.notify.service import Job, Notices
from syncd.state import StateDir


def _lines(deliveries: list[Delivery]) -> list[str]:
    out = []
    for d in deliveries:
        outcome = "sent" if d.ok else f"NOT SENT ({d.detail})"
        late = " late" if d.late else ""
        about = f" {d.threshold}{late}" if d.threshold else ""
        ids = f" contract {', '.join(d.contract_ids)}" if d.contract_ids else ""
        out.append(shown(f"{d.channel}: {d.kind}{about} to {', '.join(d.to)}{ids}: {outcome}"))
    return out


def _preview(notices: Notices, job: Job) -> str:
    notice = job.notice
    late = " late" if notice.late else ""
    ids = ", ".join(notice.contract_ids)
    try:
        subject = notices.channels[job.channel].renderer.message(notice).subject
    except NotifyError as exc:
        subject = f"(cannot render: {exc})"
    return shown(
        f"would send {job.channel}: {notice.kind} {notice.threshold}{late} to "
        f"{', '.join(notice.to)} contract {ids}: {subject}"
    )


def expiring(config: Config, *, dry_run: bool) -> tuple[int, list[str]]:
    """Send (or show) the warnings due now; how many did not go out, and one line for
    each."""
    if not config.notify.channels:
        raise SyncdError("notify: no channel is configured (set notify.smtp or notify.webhook)")
    now = datetime.now(UTC)
    contracts = read_source(config).contracts
    if dry_run:
        notices = Notices(config, None)
        jobs = notices.warnings(notices.people(contracts, now), now)
        return 0, [_preview(notices, job) for job in jobs] or ["nothing is due"]
    state = StateDir(config.daemon.state_dir)
    try:
        notices = Notices(config, state)
        jobs = notices.warnings(notices.people(contracts, now), now)
        with AuditWriter.from_config(config.audit, str(uuid.uuid4())) as audit:
            notices.submit(jobs)
            deliveries = notices.drain(audit, audit.correlation)
        notices.store.prune(now)
    finally:
        state.close()
    failed = [d for d in deliveries if not d.ok]
    return len(failed), _lines(deliveries) or ["nothing is due"]


def test(config: Config, to: str) -> tuple[int, list[str]]:
    """A test message to ``to`` through each channel; how many failed, and a line each."""
    if not config.notify.channels:
        raise SyncdError("notify: no channel is configured (set notify.smtp or notify.webhook)")
    notices = Notices(config, None)
    key = f"test:{uuid.uuid4()}"
    values = MappingProxyType({"channel": ", ".join(config.notify.channels)})
    notice = Notice("test", key, (to,), values=values)
    with AuditWriter.from_config(config.audit, str(uuid.uuid4())) as audit:
        notices.submit(Job(notice, name) for name in notices.channels)
        deliveries = notices.drain(audit, audit.correlation)
    return sum(not d.ok for d in deliveries), _lines(deliveries)
