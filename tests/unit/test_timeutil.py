"""Durations and contract instants (``syncd.core.timeutil``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.timeutil import format_duration, iso_utc, parse_duration, parse_instant

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        ("12h", timedelta(hours=12)),
        ("15m", timedelta(minutes=15)),
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("  15M  ", timedelta(minutes=15)),
        ("2W", timedelta(weeks=2)),
        ("45", timedelta(seconds=45)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("3600", timedelta(hours=1)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "d",
        "5x",
        "5 minutes",
        "1.5h",
        "-5m",
        "1h30",
        "h1",
        "1h and 2m",
        "ninety days",
        "P1D",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(weeks=2), "14d"),
        (timedelta(hours=1, seconds=1), "1h1s"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**8))
def test_format_duration_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("value", "tz", "end_of_day", "expected"),
    [
        pytest.param(
            "2027-02-28", UTC_ZONE, False, datetime(2027, 2, 28, tzinfo=UTC), id="date-start-utc"
        ),
        pytest.param(
            "2027-02-28", UTC_ZONE, True, datetime(2027, 3, 1, tzinfo=UTC), id="date-end-utc"
        ),
        pytest.param(
            "2027-02-28",
            BERLIN,
            False,
            datetime(2027, 2, 27, 23, tzinfo=UTC),
            id="date-start-berlin-midnight",
        ),
        pytest.param(
            "2027-02-28",
            BERLIN,
            True,
            datetime(2027, 2, 28, 23, tzinfo=UTC),
            id="date-end-berlin-next-midnight",
        ),
        pytest.param(
            "2028-02-28", UTC_ZONE, True, datetime(2028, 2, 29, tzinfo=UTC), id="leap-year-end"
        ),
        pytest.param("2027-12-31", UTC_ZONE, True, datetime(2028, 1, 1, tzinfo=UTC), id="year-end"),
        pytest.param(
            date(2027, 7, 1),
            BERLIN,
            False,
            datetime(2027, 6, 30, 22, tzinfo=UTC),
            id="date-object-start-summer",
        ),
        pytest.param(
            date(2027, 7, 1),
            BERLIN,
            True,
            datetime(2027, 7, 1, 22, tzinfo=UTC),
            id="date-object-end-summer",
        ),
        pytest.param(
            " 2027-02-28 ", UTC_ZONE, False, datetime(2027, 2, 28, tzinfo=UTC), id="padded-date"
        ),
        pytest.param(
            "2027-02-28T18:00:00+01:00",
            BERLIN,
            False,
            datetime(2027, 2, 28, 17, tzinfo=UTC),
            id="offset-start",
        ),
        pytest.param(
            "2027-02-28T18:00:00+01:00",
            BERLIN,
            True,
            datetime(2027, 2, 28, 17, tzinfo=UTC),
            id="offset-end-is-exact",
        ),
        pytest.param(
            "2027-02-28T18:00:00-05:30",
            UTC_ZONE,
            False,
            datetime(2027, 2, 28, 23, 30, tzinfo=UTC),
            id="negative-offset",
        ),
        pytest.param(
            "2027-02-28T18:00:00Z", BERLIN, False, datetime(2027, 2, 28, 18, tzinfo=UTC), id="zulu"
        ),
        pytest.param(
            "2027-02-28t18:00:00z",
            BERLIN,
            True,
            datetime(2027, 2, 28, 18, tzinfo=UTC),
            id="zulu-lower-case",
        ),
        pytest.param(
            datetime(2027, 2, 28, 18, tzinfo=timezone(timedelta(hours=2))),
            UTC_ZONE,
            True,
            datetime(2027, 2, 28, 16, tzinfo=UTC),
            id="aware-datetime-object",
        ),
    ],
)
def test_parse_instant(value: object, tz: ZoneInfo, end_of_day: bool, expected: datetime) -> None:
    parsed = parse_instant(value, tz, end_of_day=end_of_day)
    assert parsed.utcoffset() is not None
    assert parsed == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2027-02-28T18:00:00", "no UTC offset"),
        ("2027-02-28 18:00", "no UTC offset"),
        (datetime(2027, 2, 28, 18), "no UTC offset"),
        ("tomorrow", "not an ISO 8601 date"),
        ("2027-02-30", "not an ISO 8601 date"),
        ("2027-13-01", "not an ISO 8601 date"),
        ("28.02.2027", "not an ISO 8601 date"),
        ("", "not an ISO 8601 date"),
        ("2027-02-28T25:00:00+01:00", "not an ISO 8601 date"),
        (20270228, "got int"),
        (None, "got NoneType"),
        (["2027-02-28"], "got list"),
    ],
)
@pytest.mark.parametrize("end_of_day", [False, True])
def test_parse_instant_rejects(value: object, message: str, end_of_day: bool) -> None:
    with pytest.raises(ValueError, match=message):
        parse_instant(value, BERLIN, end_of_day=end_of_day)


@pytest.mark.parametrize(
    ("day", "start_utc", "end_utc", "length"),
    [
        pytest.param(
            "2027-03-28",
            datetime(2027, 3, 27, 23, tzinfo=UTC),
            datetime(2027, 3, 28, 22, tzinfo=UTC),
            timedelta(hours=23),
            id="spring-forward",
        ),
        pytest.param(
            "2027-10-31",
            datetime(2027, 10, 30, 22, tzinfo=UTC),
            datetime(2027, 10, 31, 23, tzinfo=UTC),
            timedelta(hours=25),
            id="fall-back",
        ),
    ],
)
def test_parse_instant_dst_day_in_berlin(
    day: str, start_utc: datetime, end_utc: datetime, length: timedelta
) -> None:
    start = parse_instant(day, BERLIN, end_of_day=False)
    end = parse_instant(day, BERLIN, end_of_day=True)
    assert start == start_utc
    assert end == end_utc
    assert end.astimezone(UTC) - start.astimezone(UTC) == length


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC), "2027-02-28T23:59:59Z"),
        (datetime(2027, 3, 1, tzinfo=BERLIN), "2027-02-28T23:00:00Z"),
        (datetime(2027, 7, 1, tzinfo=BERLIN), "2027-06-30T22:00:00Z"),
        (datetime(2027, 2, 28, 12, 0, 0, 999999, tzinfo=UTC), "2027-02-28T12:00:00Z"),
        (
            datetime(2027, 2, 28, 18, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2027-03-01T00:00:00Z",
        ),
    ],
)
def test_iso_utc(moment: datetime, expected: str) -> None:
    assert iso_utc(moment) == expected
