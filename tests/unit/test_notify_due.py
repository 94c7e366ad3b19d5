"""``syncd.notify.due``: which warnings are due, once per threshold and end, late ones
once, an extension arming them again; when the next one and the next digest come."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.core.model import Person, PersonState
from syncd.notify.due import (
    Armed,
    digest_slot,
    due_warnings,
    next_digest,
    next_warning,
    period,
)

END = datetime(2027, 3, 1, 23, 0, tzinfo=UTC)
D = timedelta(days=1)
THRESHOLDS = [14 * D, 3 * D, D]


def person(end: datetime | None = END, state: PersonState = PersonState.ACTIVE) -> Person:
    return Person(
        key="ana@vendor.example",
        state=state,
        username="ana",
        email="ana@vendor.example",
        given_name="Ana",
        family_name="Lopez",
        vendor="",
        sponsor="sam@corp.example",
        roles=frozenset({"developer"}),
        contract_ids=("C-1",),
        access_end=end,
        last_end=end,
        next_start=None,
        reason="",
    )


def secs(*deltas: timedelta) -> frozenset[int]:
    return frozenset(int(d.total_seconds()) for d in deltas)


DOWN = END - 20 * D  # the daemon last planned then, and was down since


@pytest.mark.parametrize(
    ("now", "armed", "expected"),
    [
        (END - 15 * D, {}, None),  # before the first threshold
        (END - 14 * D, {}, ("14d", False)),  # at its moment
        (END - 14 * D + timedelta(minutes=10), {}, ("14d", False)),  # a little after
        (END - 13 * D, {}, ("14d", True)),  # long after, the daemon down: late
        (END - 13 * D, {"ana@vendor.example": Armed(END, secs(14 * D))}, None),  # sent
        (END - 2 * D, {}, ("3d", True)),  # 14d and 3d passed: only 3d, late, once
        (END - 2 * D, {"ana@vendor.example": Armed(END, secs(14 * D))}, ("3d", True)),
        # an extension: what was sent for the old end does not count for the new one
        (END - 13 * D, {"ana@vendor.example": Armed(END - 7 * D, secs(14 * D))}, ("14d", True)),
        (END, {}, None),  # access has ended: nothing to warn about
    ],
    ids=[
        "early",
        "at-moment",
        "just-after",
        "late",
        "sent",
        "two-passed",
        "next-threshold",
        "extended",
        "ended",
    ],
)
def test_due_warnings(
    now: datetime, armed: dict[str, Armed], expected: tuple[str, bool] | None
) -> None:
    due = due_warnings([person()], THRESHOLDS, armed, now, DOWN)
    if expected is None:
        assert due == []
        return
    assert [(w.label, w.late) for w in due] == [expected]


@pytest.mark.parametrize("checked", [None, END - 2 * D - timedelta(minutes=5)])
def test_a_moment_before_the_last_planning_is_news_not_late(checked: datetime | None) -> None:
    """A new contract, or an extension, whose thresholds already passed when it was
    first seen: the nearest is sent, not marked late."""
    (due,) = due_warnings([person()], THRESHOLDS, {}, END - 2 * D, checked)
    assert (due.label, due.late) == ("3d", False)


def test_the_warning_sent_covers_the_thresholds_it_skipped() -> None:
    (due,) = due_warnings([person()], THRESHOLDS, {}, END - 2 * D)
    assert due.covers == secs(14 * D, 3 * D)
    armed = {"ana@vendor.example": Armed(END, due.covers)}
    assert due_warnings([person()], THRESHOLDS, armed, END - 2 * D) == []
    assert next_warning([person()], THRESHOLDS, armed, END - 2 * D) == END - D


@pytest.mark.parametrize("state", [PersonState.FUTURE, PersonState.ENDED])
def test_only_people_with_access_are_warned(state: PersonState) -> None:
    assert due_warnings([person(state=state)], THRESHOLDS, {}, END - 2 * D) == []
    assert next_warning([person(state=state)], THRESHOLDS, {}, END - 20 * D) is None


def test_next_warning_is_the_first_moment_ahead() -> None:
    assert next_warning([person()], THRESHOLDS, {}, END - 20 * D) == END - 14 * D
    assert next_warning([person()], THRESHOLDS, {}, END - 14 * D) == END - 3 * D
    assert next_warning([person()], THRESHOLDS, {}, END - timedelta(hours=1)) is None


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("every", "now", "slot", "after"),
    [
        # Monday 2027-03-01; weekly on Monday at 08:00 Berlin (07:00 UTC)
        ("weekly", datetime(2027, 3, 1, 7, 0, tzinfo=UTC), "2027-03-01T08", "2027-03-08T08"),
        ("weekly", datetime(2027, 3, 1, 6, 59, tzinfo=UTC), "2027-02-22T08", "2027-03-01T08"),
        ("weekly", datetime(2027, 3, 4, 12, 0, tzinfo=UTC), "2027-03-01T08", "2027-03-08T08"),
        ("daily", datetime(2027, 3, 4, 6, 0, tzinfo=UTC), "2027-03-03T08", "2027-03-04T08"),
        # across the spring change (28 March 2027): still 08:00 on the wall clock
        ("weekly", datetime(2027, 3, 24, 12, 0, tzinfo=UTC), "2027-03-22T08", "2027-03-29T08"),
    ],
)
def test_digest_periods(every: str, now: datetime, slot: str, after: str) -> None:
    start = digest_slot(every, "monday", 8, BERLIN, now)
    assert start is not None
    assert period(start) == slot
    upcoming = next_digest(every, "monday", 8, BERLIN, now)
    assert upcoming is not None
    assert period(upcoming) == after
    assert upcoming > now


def test_no_digest_when_off() -> None:
    assert digest_slot("off", "monday", 8, BERLIN, END) is None
    assert next_digest("off", "monday", 8, BERLIN, END) is None
