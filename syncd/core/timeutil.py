"""Parsing of durations and contract dates. Pure: the caller supplies the timezone.

Called by the config loader (durations) and by ``core.contracts`` (dates).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+)\s*([wdhms])")


def parse_duration(text: str) -> timedelta:
    """Parse ``"90d"``, ``"1h30m"``, ``"2w"`` or a bare number of seconds.

    >>> parse_duration("1d12h")
    datetime.timedelta(days=1, seconds=43200)
    """
    cleaned = text.strip().lower()
    if cleaned.isdigit():
        return timedelta(seconds=int(cleaned))
    total = 0
    pos = 0
    for match in _DURATION.finditer(cleaned):
        if cleaned[pos : match.start()].strip():
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or cleaned[pos:].strip():
        raise ValueError(
            f"not a duration: {text!r} (use e.g. 30s, 15m, 12h, 90d, 2w, 1d12h, or 300 for seconds)"
        )
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The inverse of ``parse_duration`` for display (``"1d12h"``)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_instant(value: object, tz: ZoneInfo, *, end_of_day: bool) -> datetime:
    """A contract start or end as an aware datetime.

    A date means the start of that day in ``tz``; for an end (``end_of_day``) it means
    the whole day is included, so the returned instant is the next midnight (exclusive).
    A date-time must carry an offset: a naive one is ambiguous across timezones.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        return _day_boundary(value, tz, end_of_day)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                day = date.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"not an ISO 8601 date: {text!r}") from exc
            return _day_boundary(day, tz, end_of_day)
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date or date-time: {text!r}") from exc
    else:
        raise ValueError(f"expected an ISO 8601 date or date-time, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"date-time {parsed.isoformat()} has no UTC offset")
    return parsed.astimezone(UTC)


def _day_boundary(day: date, tz: ZoneInfo, end_of_day: bool) -> datetime:
    """Midnight in ``tz``, as UTC so that later arithmetic (lead time, durations) counts
    real hours across daylight-saving changes, not wall-clock hours."""
    if end_of_day:
        day = day + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """``2027-02-28T23:00:00Z``: the one way instants are printed in reasons and audit."""
    text = moment.astimezone(ZoneInfo("UTC")).replace(tzinfo=None).isoformat(timespec="seconds")
    return text + "Z"
