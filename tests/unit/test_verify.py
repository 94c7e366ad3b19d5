"""Verdicts on what a target holds after a write (``syncd.core.verify``), as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from syncd.core.model import Action, ActionKind, ObservedAccount, Outcome, ReadBack
from syncd.core.verify import collateral, problem, verified

END = datetime(2027, 6, 30, 22, 0, tzinfo=UTC)
G = "cn=devs"
ON = ObservedAccount("p", "uid=p", "p", True, END, True, frozenset({G}))
OFF = replace(ON, enabled=False, has_credentials=False, groups=frozenset())
NO_END = replace(ON, expiry=None)
NO_CREDS_ON = replace(ON, has_credentials=False)


@pytest.mark.parametrize(
    ("kind", "account", "wrong"),
    [
        (ActionKind.DISABLE, OFF, ""),
        (ActionKind.DISABLE, ON, "the account is still enabled after disable"),
        (ActionKind.ENABLE, ON, ""),
        (ActionKind.ENABLE, OFF, "the account is disabled after enable"),
        (ActionKind.CREATE, ON, ""),
        (ActionKind.CREATE, None, "no such account after create"),
        (ActionKind.REVOKE_CREDENTIALS, OFF, ""),
        (ActionKind.REVOKE_CREDENTIALS, ON, "credentials are still present after revoke"),
        (ActionKind.REVOKE_CREDENTIALS, NO_CREDS_ON, "the account is enabled after revoke"),
        (ActionKind.ADD_MEMBER, ON, ""),
        (ActionKind.ADD_MEMBER, OFF, "not a member of cn=devs after add"),
        (ActionKind.REMOVE_MEMBER, OFF, ""),
        (ActionKind.REMOVE_MEMBER, ON, "still a member of cn=devs after remove"),
        (ActionKind.REMOVE_MEMBER, None, "no such account after remove_member"),
        (ActionKind.SET_EXPIRY, ON, ""),
        (ActionKind.SET_EXPIRY, NO_END, "the account's expiry is none after set_expiry"),
        (ActionKind.DELETE, None, ""),
        (ActionKind.DELETE, OFF, "the account is still there after delete"),
    ],
)  # fmt: skip
def test_what_each_action_must_leave_in_the_target(
    kind: ActionKind, account: ObservedAccount | None, wrong: str
) -> None:
    assert problem(kind, G, END, account) == wrong


def _outcome(kind: ActionKind, ok: bool | None = True) -> Outcome:
    return Outcome(Action("corp", kind, "p", "p", "uid=p", "why", group=G, expiry=END), ok)


def test_a_verdict_keeps_the_evidence_and_names_what_the_target_holds() -> None:
    read = ReadBack({"p": ON}, {"p": {"pwdAccountLockedTime": ()}})

    checked = verified(_outcome(ActionKind.DISABLE), read)

    assert (checked.ok, checked.verified) == (False, False)
    assert checked.detail == (
        "corp reports the account is still enabled after disable (pwdAccountLockedTime: absent)"
    )
    assert checked.observed == {"pwdAccountLockedTime": ()}


@pytest.mark.parametrize(
    ("outcome", "read"),
    [
        (_outcome(ActionKind.DISABLE, ok=False), ReadBack({"p": ON})),  # refused already
        (_outcome(ActionKind.DISABLE, ok=None), ReadBack({"p": ON})),  # unknown: settled later
        (_outcome(ActionKind.UPDATE), ReadBack({"p": ON})),  # attribute values not verified
        (_outcome(ActionKind.DISABLE), ReadBack({})),  # not read back
    ],
)
def test_what_is_not_verified_passes_unchanged(outcome: Outcome, read: ReadBack) -> None:
    assert verified(outcome, read) is outcome


def test_collateral_is_what_changed_outside_the_managed_scope_per_group() -> None:
    before = {G: frozenset({"a", "b"}), "cn=ops": frozenset({"c"})}
    after = {G: frozenset({"b", "z"}), "cn=ops": frozenset({"c"})}

    (change,) = collateral("corp", before, after, [G, "cn=ops", "cn=unread"])

    assert (change.group, change.vanished, change.appeared) == (G, {"a"}, {"z"})


@pytest.mark.parametrize(
    ("kind", "members", "ok"),
    [
        (ActionKind.ADD_MEMBER, {"p", "q"}, True),
        (ActionKind.ADD_MEMBER, {"q"}, False),
        (ActionKind.REMOVE_MEMBER, {"q"}, True),
        (ActionKind.REMOVE_MEMBER, {"p"}, False),
    ],
)
def test_memberships_are_judged_from_the_group_as_read(
    kind: ActionKind, members: set[str], ok: bool
) -> None:
    read = ReadBack(members={G: frozenset(members)})

    checked = verified(_outcome(kind), read)

    assert (checked.ok, checked.verified) == (ok, ok)
    assert checked.observed == {"member": ("true",) if "p" in members else ("false",)}
