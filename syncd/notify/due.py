"""Which warnings and digests are due, and when the next one is. Pure: the clock and
what was sent already are passed in.

Called by ``syncd.notify.service`` (the daemon, ``syncd expiring --notify``). A warning
is due for a person with access when ``now`` has reached ``access end - threshold`` for
a threshold (``notify.warn_before``) not yet sent for that end. Several thresholds can
be due at once when the daemon was down across their moments, or a contract is new and
already near its end: only the nearest one is sent, once, and the others count as sent
with it. A warning is late when its moment came after the previous planning
(``checked``) and more than ``LATE_AFTER`` before this one: the daemon was not running
then. A moment that lay before the previous planning is news (a new contract, an
extension), not late. An end that moves (an extension, or an earlier termination) arms
every threshold again.

The digest is due once per period (a day, or a week starting on ``notify.digest.day``),
at ``notify.digest.hour`` in ``policy.timezone``; ``period`` names the period so that
the one sent is remembered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from syncd.core.model import Person, PersonState
from syncd.core.timeutil import format_duration

LATE_AFTER = timedelta(minutes=15)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Armed:
    """What was sent for a person: the access end it was about and the thresholds (in
    seconds) sent for that end."""

    end: datetime
    sent: frozenset[int]


@dataclass(frozen=True)
class DueWarning:
    person: Person
    threshold: timedelta
    moment: datetime  # access end - threshold
    late: bool
    covers: frozenset[int]  # thresholds (seconds) this one sends for: itself and skipped ones

    @property
    def label(self) -> str:
        return format_duration(self.threshold)


def _sent(person: Person, armed: Mapping[str, Armed]) -> frozenset[int]:
    held = armed.get(person.key)
    return held.sent if held is not None and held.end == person.access_end else frozenset()


def _warned(people: Iterable[Person]) -> Iterable[tuple[Person, datetime]]:
    for person in people:
        if person.state is PersonState.ACTIVE and person.access_end is not None:
            yield person, person.access_end


def due_warnings(
    people: Iterable[Person],
    thresholds: Iterable[timedelta],
    armed: Mapping[str, Armed],
    now: datetime,
    checked: datetime | None = None,
) -> list[DueWarning]:
    """The warnings to send now, soonest end first. ``checked``: when warnings were
    last planned (None: never)."""
    ordered = sorted(set(thresholds))
    out = []
    for person, end in _warned(people):
        if now >= end:
            continue
        sent = _sent(person, armed)
        passed = [t for t in ordered if end - t <= now and int(t.total_seconds()) not in sent]
        if not passed:
            continue
        nearest = passed[0]
        moment = end - nearest
        covers = frozenset(int(t.total_seconds()) for t in passed) | sent
        late = checked is not None and moment > checked and now - moment > LATE_AFTER
        out.append(DueWarning(person, nearest, moment, late, covers))
    return sorted(out, key=lambda w: (w.moment, w.person.key))


def next_warning(
    people: Iterable[Person],
    thresholds: Iterable[timedelta],
    armed: Mapping[str, Armed],
    now: datetime,
) -> datetime | None:
    """The first moment after ``now`` at which a warning comes due."""
    moments = [
        end - t
        for person, end in _warned(people)
        for t in thresholds
        if end - t > now and int(t.total_seconds()) not in _sent(person, armed)
    ]
    return min(moments, default=None)


def digest_slot(every: str, day: str, hour: int, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The start of the digest period ``now`` lies in (when this period's digest is
    due); None when the digest is off."""
    if every == "off":
        return None
    local = now.astimezone(tz)
    slot = datetime.combine(local.date(), time(hour), tzinfo=tz)
    if every == "weekly":
        slot -= timedelta(days=(local.weekday() - WEEKDAYS.index(day)) % 7)
    if slot > local:
        slot -= timedelta(days=7 if every == "weekly" else 1)
    return slot


def next_digest(every: str, day: str, hour: int, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The next digest moment after ``now``."""
    slot = digest_slot(every, day, hour, tz, now)
    if slot is None:
        return None
    step = timedelta(days=7 if every == "weekly" else 1)
    # a wall-clock time: the same hour after a daylight saving change
    return datetime.combine(slot.date() + step, time(hour), tzinfo=tz)


def period(slot: datetime) -> str:
    """The name of the period a slot starts: its local date and hour."""
    return slot.strftime("%Y-%m-%dT%H")
