"""Sponsors as SCIM managers without a server (``syncd.targets.scim.sponsors``): what
an outcome says about the manager, and how a sponsor who is no user of the application
stops the same update from being planned every cycle."""

from __future__ import annotations

from typing import Any, cast

from syncd.core.model import Action, ActionKind, ObservedAccount
from syncd.targets.scim import mapping
from syncd.targets.scim.session import Capabilities, Known, ScimSession
from syncd.targets.scim.sponsors import Sponsors, lookup_note

KEY = "ana.lopez@vendor.example"
NOBODY = "nobody@example.test"


def known(managers: dict[str, str | None] | None = None) -> Known:
    """A cycle's knowledge: sponsor -> user id (None: looked up, no such user)."""
    caps = cast(Capabilities, None)  # look-ups are not made in these tests
    found = Known(caps, "syncd:")
    found.managers.update(managers or {})
    return found


def update(sponsor: str | None) -> Action:
    changes = {mapping.MANAGER: (sponsor,) if sponsor else ()}
    return Action("app", ActionKind.UPDATE, KEY, "ana.lopez", "u1", "test", changes=changes)


def account(manager: tuple[str, ...] = ()) -> ObservedAccount:
    attributes: dict[str, Any] = {mapping.MANAGER: manager, "displayName": ("Ana Lopez",)}
    return ObservedAccount(KEY, "u1", "ana.lopez", True, None, False, attributes=attributes)


def sponsors() -> Sponsors:
    return Sponsors("app", cast(ScimSession, None))


def test_the_outcome_tells_an_absent_sponsor_from_a_failed_look_up() -> None:
    cycle = known({NOBODY: None, "jdoe@example.test": "u9"})
    cycle.unresolved["asmith@example.test"] = "503 Service Unavailable: busy"

    assert lookup_note(cycle, "jdoe@example.test", "app") == ""
    assert lookup_note(cycle, None, "app") == ""
    assert lookup_note(cycle, NOBODY, "app") == (
        "manager not set: sponsor nobody@example.test is not a user of app"
    )
    assert lookup_note(cycle, "asmith@example.test", "app") == (
        "sponsors cannot be looked up: 503 Service Unavailable: busy; manager left unchanged"
    )


def test_an_unset_manager_reads_as_the_sponsor_found_to_be_no_user() -> None:
    memory = sponsors()
    cycle = known({NOBODY: None})
    memory.learn(cycle, [update(NOBODY)])

    settled = memory.settled(cycle, account())

    assert settled.attributes[mapping.MANAGER] == (NOBODY,)
    assert settled.attributes["displayName"] == ("Ana Lopez",)
    # a manager someone set meanwhile is observed as it is, and fixed
    assert memory.settled(cycle, account(("boss@example.test",))) == account(("boss@example.test",))


def test_nothing_is_settled_without_this_cycles_word_that_the_sponsor_is_no_user() -> None:
    memory = sponsors()
    memory.learn(known({NOBODY: None}), [update(NOBODY)])

    assert memory.settled(known(), account()) == account()  # not looked up this cycle
    assert memory.settled(known({NOBODY: "u7"}), account()) == account()  # a user now
    failed = known()
    failed.unresolved[NOBODY] = "timeout"
    assert memory.settled(failed, account()) == account()


def test_a_sponsor_found_or_dropped_is_forgotten_and_a_failed_look_up_changes_nothing() -> None:
    memory = sponsors()
    memory.learn(known({NOBODY: None}), [update(NOBODY)])
    failed = known()
    failed.unresolved[NOBODY] = "timeout"

    memory.learn(failed, [update(NOBODY)])
    assert memory.absent == {KEY: NOBODY}
    memory.learn(known({NOBODY: "u7"}), [update(NOBODY)])
    assert memory.absent == {}

    memory.learn(known({NOBODY: None}), [update(NOBODY)])
    memory.learn(known(), [update(None)])  # the contract names no sponsor any more
    assert memory.absent == {}
