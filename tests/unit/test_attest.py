"""``syncd.core.attest``: what a target holds, checked against the people of the source.

Tables of plain values: one person, one account as observed, the violations expected;
then the counts, the digest, and which violations a cycle's own changes corrected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.core.attest import Attestation, Counts, ViolationKind, attest, digest
from syncd.core.model import (
    Action,
    ActionKind,
    Observed,
    ObservedAccount,
    Outcome,
    Person,
    PersonState,
)
from syncd.core.policy import TargetPolicy

AT = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
END = datetime(2027, 6, 30, 22, 0, tzinfo=UTC)  # an active person's access end
ENDED = datetime(2027, 2, 28, 23, 0, tzinfo=UTC)  # an ended person's last end
DEVS, VPN, WIKI = "cn=devs,dc=test", "cn=vpn,dc=test", "cn=wiki,dc=test"
CORP = TargetPolicy("corp", {"developer": (DEVS, VPN), "writer": (WIKI,)})
KEY = "per@vendor.example"
ENDED_ENABLED = ViolationKind.ENDED_ENABLED
UNGRANTED = ViolationKind.UNGRANTED_GROUP
CREDENTIALS = ViolationKind.CREDENTIALS_ON_DISABLED
EXPIRY = ViolationKind.EXPIRY_BEYOND_END


def person(state: PersonState, key: str = KEY, roles: tuple[str, ...] = ("developer",)) -> Person:
    return Person(
        key=key,
        state=state,
        username=key.split("@")[0],
        email=key,
        given_name="Per",
        family_name="Son",
        vendor="",
        sponsor="",
        roles=frozenset(roles),
        contract_ids=("C-1",),
        access_end=END if state is PersonState.ACTIVE else None,
        last_end=ENDED if state is PersonState.ENDED else None,
        next_start=None,
        reason=f"contract C-1 ended {ENDED:%Y-%m-%dT%H:%M:%SZ}",
    )


def account(key: str = KEY, **fields: Any) -> ObservedAccount:
    values: dict[str, Any] = {
        "enabled": True,
        "expiry": END,
        "has_credentials": False,
        "groups": frozenset(),
    }
    values.update(fields)
    return ObservedAccount(key, f"uid={key.split('@')[0]}", key.split("@")[0], **values)


ACTIVE, GONE, LATER = PersonState.ACTIVE, PersonState.ENDED, PersonState.FUTURE


@pytest.mark.parametrize(
    ("state", "fields", "expected"),
    [
        pytest.param(ACTIVE, {"groups": frozenset({DEVS, VPN})}, [], id="active-as-granted"),
        pytest.param(ACTIVE, {"groups": frozenset({DEVS, WIKI})}, [(UNGRANTED, WIKI)], id="extra"),
        pytest.param(ACTIVE, {"groups": frozenset({DEVS})}, [], id="missing-group-is-no-breach"),
        pytest.param(ACTIVE, {"expiry": None}, [(EXPIRY, "")], id="active-no-expiry"),
        pytest.param(ACTIVE, {"expiry": END + timedelta(days=1)}, [(EXPIRY, "")], id="later"),
        pytest.param(ACTIVE, {"expiry": END - timedelta(days=1)}, [], id="earlier-is-safe"),
        pytest.param(ACTIVE, {"expiry": END + timedelta(seconds=0.5)}, [], id="same-second"),
        pytest.param(
            ACTIVE, {"enabled": False, "has_credentials": True}, [], id="active-disabled-creds"
        ),
        pytest.param(
            GONE, {"enabled": True, "expiry": ENDED}, [(ENDED_ENABLED, "")], id="ended-enabled"
        ),
        pytest.param(GONE, {"enabled": False, "expiry": ENDED}, [], id="ended-offboarded"),
        pytest.param(
            GONE,
            {"enabled": False, "expiry": ENDED, "groups": frozenset({DEVS})},
            [(UNGRANTED, DEVS)],
            id="ended-in-group",
        ),
        pytest.param(
            GONE,
            {"enabled": False, "expiry": ENDED, "has_credentials": True},
            [(CREDENTIALS, "")],
            id="ended-credentials",
        ),
        pytest.param(
            GONE, {"enabled": False, "expiry": None}, [(EXPIRY, "")], id="ended-no-expiry"
        ),
        pytest.param(
            GONE,
            {"enabled": True, "expiry": None, "has_credentials": True, "groups": frozenset({VPN})},
            [(ENDED_ENABLED, ""), (EXPIRY, ""), (UNGRANTED, VPN)],
            id="ended-untouched",
        ),
        pytest.param(
            LATER,
            {"enabled": False, "expiry": None, "has_credentials": True},
            [(CREDENTIALS, "")],
            id="future-credentials",
        ),
        pytest.param(LATER, {"enabled": False, "expiry": None}, [], id="future-disabled"),
    ],
)
def test_violations(
    state: PersonState, fields: dict[str, Any], expected: list[tuple[ViolationKind, str]]
) -> None:
    result = attest(CORP, {KEY: person(state)}, Observed({KEY: account(**fields)}), AT)

    assert [(v.kind, v.group) for v in result.violations] == expected
    assert all(v.person == KEY and v.username == "per" and v.detail for v in result.violations)
    assert result.clean is not expected
    assert result.outstanding == result.violations


def test_expiry_is_not_checked_where_the_target_keeps_none() -> None:
    target = replace(CORP, native_expiry=False)
    people = {KEY: person(GONE)}

    result = attest(target, people, Observed({KEY: account(enabled=False, expiry=None)}), AT)

    assert result.clean


def test_an_account_without_a_person_is_counted_not_judged() -> None:
    orphan = account("old@vendor.example", groups=frozenset({DEVS}), expiry=None)

    result = attest(CORP, {}, Observed({orphan.key: orphan}), AT)

    assert result.clean
    assert result.counts.orphans == 1


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        (ENDED_ENABLED, "contract C-1 ended 2027-02-28T23:00:00Z; the account is enabled"),
        (UNGRANTED, f"member of {DEVS}: the person has no access (ended)"),
        (EXPIRY, "native expiry none is later than the access end 2027-02-28T23:00:00Z"),
    ],
)
def test_a_violation_says_what_was_seen(kind: ViolationKind, detail: str) -> None:
    seen = account(enabled=True, expiry=None, groups=frozenset({DEVS}))

    result = attest(CORP, {KEY: person(GONE)}, Observed({KEY: seen}), AT)

    assert {v.kind: v.detail for v in result.violations}[kind] == detail


def test_counts() -> None:
    people = {
        "a@x": person(ACTIVE, "a@x"),
        "b@x": person(ACTIVE, "b@x"),
        "c@x": person(GONE, "c@x"),
        "d@x": person(LATER, "d@x"),
    }
    accounts = {
        "a@x": account("a@x", groups=frozenset({DEVS, VPN})),
        "c@x": account("c@x", enabled=False, expiry=ENDED),
        "z@x": account("z@x", enabled=False, expiry=None),
    }

    result = attest(CORP, people, Observed(accounts), AT)

    assert result.counts == Counts(
        accounts=3, enabled=1, disabled=2, orphans=1, active=2, future=1, ended=1
    )
    assert (result.target, result.at) == ("corp", AT)


def test_the_digest_is_sha256_of_the_documented_rows() -> None:
    accounts = [
        account("b@x", groups=frozenset({VPN, DEVS})),
        account("a@x", enabled=False, expiry=None),
    ]
    rows = [
        ["a@x", False, [], ""],
        ["b@x", True, [DEVS, VPN], "2027-06-30T22:00:00Z"],
    ]
    text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)

    assert digest(accounts) == hashlib.sha256(text.encode()).hexdigest()
    assert digest(reversed(accounts)) == digest(accounts)
    assert digest([]) == hashlib.sha256(b"[]").hexdigest()


@pytest.mark.parametrize(
    "change",
    [
        {"enabled": False},
        {"groups": frozenset({DEVS})},
        {"expiry": END + timedelta(seconds=1)},
        {"expiry": None},
    ],
    ids=["enabled", "groups", "expiry", "no-expiry"],
)
def test_the_digest_changes_with_each_attested_field(change: dict[str, Any]) -> None:
    before = account(groups=frozenset({DEVS, VPN}))

    assert digest([replace(before, **change)]) != digest([before])


def test_the_digest_ignores_what_it_does_not_attest() -> None:
    before = account()

    assert digest([replace(before, ref="uid=other", has_credentials=True)]) == digest([before])


def outcome(
    kind: ActionKind,
    ok: bool | None,
    verified: bool | None = None,
    group: str = "",
    target: str = "corp",
) -> Outcome:
    action = Action(target, kind, KEY, "per", "uid=per", "why", group=group)
    return Outcome(action, ok, verified=verified)


@pytest.mark.parametrize(
    ("outcomes", "corrected"),
    [
        pytest.param([], set(), id="nothing-sent"),
        pytest.param([outcome(ActionKind.DISABLE, True)], {ENDED_ENABLED}, id="disabled"),
        pytest.param(
            [outcome(ActionKind.DISABLE, True, verified=True)], {ENDED_ENABLED}, id="verified"
        ),
        pytest.param(
            [outcome(ActionKind.DISABLE, False, verified=False)], set(), id="read-back-failed"
        ),
        pytest.param([outcome(ActionKind.DISABLE, None)], set(), id="outcome-unknown"),
        pytest.param([outcome(ActionKind.DISABLE, True, target="hr")], set(), id="other-target"),
        pytest.param(
            [outcome(ActionKind.REMOVE_MEMBER, True, group=DEVS)], {UNGRANTED}, id="removed"
        ),
        pytest.param(
            [outcome(ActionKind.REMOVE_MEMBER, True, group=VPN)], set(), id="other-group-removed"
        ),
        pytest.param([outcome(ActionKind.SET_EXPIRY, True)], {EXPIRY}, id="expiry-set"),
        pytest.param(
            [outcome(ActionKind.DELETE, True)], {ENDED_ENABLED, UNGRANTED, EXPIRY}, id="deleted"
        ),
    ],
)
def test_a_change_of_the_cycle_corrects_what_it_put_right(
    outcomes: list[Outcome], corrected: set[ViolationKind]
) -> None:
    seen = account(enabled=True, expiry=None, groups=frozenset({DEVS}))

    result = attest(CORP, {KEY: person(GONE)}, Observed({KEY: seen}), AT, outcomes)

    assert {v.kind for v in result.violations if v.corrected} == corrected
    assert len(result.violations) == 3  # what was observed stays on record
    assert {v.kind for v in result.outstanding} == {ENDED_ENABLED, UNGRANTED, EXPIRY} - corrected


def test_a_clean_attestation() -> None:
    result = Attestation("corp", AT, Counts(), (), digest([]))

    assert result.clean
    assert result.outstanding == ()
