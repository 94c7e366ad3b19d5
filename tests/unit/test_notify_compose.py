"""``syncd.notify.compose``: who is told of grants, revocations, holds and conflicts,
and who is not (orphans, kinds switched off, no recipients). Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config import Config, load_config
from syncd.core.model import Action, ActionKind, Cause, Conflict, Outcome, Person, PersonState
from syncd.notify.compose import ops, outcomes, when
from tests.unit.test_notify_config import write
from tests.unit.test_notify_due import END, person

SPONSOR = "sam@corp.example"


def config(tmp_path: Path, **notify: Any) -> Config:
    return load_config(write(tmp_path, {"recipients": {"ops": ["ops@corp.example"]}, **notify}))


def outcome(kind: ActionKind, cause: Cause = Cause.CONTRACT, ok: bool = True) -> Outcome:
    action = Action("corp", kind, "ana@vendor.example", "ana", "uid=ana", "why", ("C-1",), cause)
    return Outcome(action, ok)


def people(state: PersonState = PersonState.ACTIVE) -> dict[str, Person]:
    return {"ana@vendor.example": replace(person(state=state), sponsor=SPONSOR)}


def test_a_grant_and_an_end_are_told_to_the_sponsor(tmp_path: Path) -> None:
    granted = outcomes(config(tmp_path), [outcome(ActionKind.CREATE)], people())
    assert [(n.kind, n.to, n.contract_ids) for n in granted] == [("granted", (SPONSOR,), ("C-1",))]
    ended = people(PersonState.ENDED)
    revoked = outcomes(config(tmp_path), [outcome(ActionKind.DISABLE)], ended)
    assert [(n.kind, n.values["targets"]) for n in revoked] == [("revoked", ["corp"])]


def test_orphans_failures_and_switched_off_kinds_are_not_told(tmp_path: Path) -> None:
    ended = people(PersonState.ENDED)
    assert outcomes(config(tmp_path), [outcome(ActionKind.DISABLE, Cause.ORPHAN)], ended) == []
    assert outcomes(config(tmp_path), [outcome(ActionKind.DISABLE, ok=False)], ended) == []
    quiet = config(tmp_path, kinds={"revoked": False})
    assert outcomes(quiet, [outcome(ActionKind.DISABLE)], ended) == []
    nobody = config(tmp_path, recipients={"sponsor": False})
    assert outcomes(nobody, [outcome(ActionKind.CREATE)], people()) == []


def test_holds_and_new_conflicts_make_one_ops_notice(tmp_path: Path) -> None:
    conflict = Conflict("corp", "bo@vendor.example", "bo", "uid=bo", "username taken", ("C-2",))
    notice = ops(config(tmp_path), ["corp: 3 orphan disables held"], [conflict])
    assert notice is not None
    assert notice.to == ("ops@corp.example",)
    assert notice.contract_ids == ("C-2",)
    assert notice.values["summary"] == "1 held, 1 new conflicts"
    assert notice.values["lines"][1] == "conflict on corp: bo (bo@vendor.example): username taken"
    assert ops(config(tmp_path), [], []) is None
    assert ops(config(tmp_path, kinds={"ops": False}), ["x"], []) is None
    assert ops(load_config(write(tmp_path, {})), ["x"], []) is None  # no ops recipients


def test_the_end_is_given_in_the_policy_zone_and_in_utc() -> None:
    assert datetime(2027, 3, 1, 23, 0, tzinfo=UTC) == END
    assert when(END, ZoneInfo("Europe/Berlin")) == {
        "date": "Tuesday 02 March 2027",
        "time": "00:00",
        "zone": "CET (Europe/Berlin)",
        "utc": "2027-03-01T23:00:00Z",
    }
