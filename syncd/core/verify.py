"""Does the target hold what an action meant? Pure: the read-back is a parameter.

Called by ``syncd.apply`` after each chunk of writes, with what the target reads back
(``ReadBack``). A verdict speaks of the security-relevant state only: the enabled flag,
credentials, group membership, native expiry, the account's existence. Attribute
updates are not read back (their values may be rewritten by the target, e.g. a
manager DN for a sponsor's e-mail): their outcome stays what the target answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from syncd.core.model import (
    ActionKind,
    Collateral,
    ObservedAccount,
    Outcome,
    ReadBack,
)
from syncd.core.plan import same_instant
from syncd.core.timeutil import iso_utc

CHECKED = frozenset(ActionKind) - {ActionKind.UPDATE}


def problem(
    kind: ActionKind, group: str, expiry: datetime | None, account: ObservedAccount | None
) -> str:
    """What is wrong with ``account`` after an action of ``kind``, or "" when it holds
    what the action meant."""
    if kind is ActionKind.DELETE:
        return "" if account is None else "the account is still there after delete"
    if account is None:
        return f"no such account after {kind.value}"
    if kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
        return _membership(kind, group, group in account.groups)
    return _state(kind, expiry, account)


def _membership(kind: ActionKind, group: str, member: bool) -> str:
    if kind is ActionKind.ADD_MEMBER and not member:
        return f"not a member of {group} after add"
    if kind is ActionKind.REMOVE_MEMBER and member:
        return f"still a member of {group} after remove"
    return ""


def _state(kind: ActionKind, expiry: datetime | None, account: ObservedAccount) -> str:
    if kind is ActionKind.DISABLE and account.enabled:
        return "the account is still enabled after disable"
    if kind in (ActionKind.ENABLE, ActionKind.CREATE) and not account.enabled:
        return f"the account is disabled after {kind.value}"
    if kind is ActionKind.REVOKE_CREDENTIALS and account.has_credentials:
        return "credentials are still present after revoke"
    if kind is ActionKind.REVOKE_CREDENTIALS and account.enabled:
        # revokes belong to offboarding: a directory that unlocks an account when its
        # password goes (OpenLDAP's ppolicy) must not pass unnoticed
        return "the account is enabled after revoke"
    if kind is ActionKind.SET_EXPIRY and not same_instant(account.expiry, expiry):
        held = iso_utc(account.expiry) if account.expiry else "none"
        return f"the account's expiry is {held} after set_expiry"
    return ""


def verified(outcome: Outcome, read: ReadBack) -> Outcome:
    """``outcome`` with the read-back's verdict: verified, or a Failure naming what the
    target holds. Outcomes that failed or are unknown, updates, and what was not read
    back pass unchanged. Memberships are judged from the group's members as read."""
    action = outcome.action
    if outcome.ok is not True or action.kind not in CHECKED:
        return outcome
    if action.kind in (ActionKind.ADD_MEMBER, ActionKind.REMOVE_MEMBER):
        if action.group not in read.members:
            return outcome
        member = action.person in read.members[action.group]
        evidence: Mapping[str, tuple[str, ...]] = {"member": (str(member).lower(),)}
        wrong = _membership(action.kind, action.group, member)
    elif action.person in read.accounts:
        evidence = read.evidence.get(action.person, {})
        wrong = problem(action.kind, action.group, action.expiry, read.accounts[action.person])
    else:
        return outcome
    if not wrong:
        return replace(outcome, verified=True, observed=evidence)
    shown = "; ".join(f"{k}: {', '.join(v) or 'absent'}" for k, v in sorted(evidence.items()))
    detail = f"{action.target} reports {wrong}" + (f" ({shown})" if shown else "")
    return replace(outcome, ok=False, verified=False, detail=detail, observed=evidence)


def collateral(
    target: str,
    before: Mapping[str, frozenset[str]],
    after: Mapping[str, frozenset[str]],
    groups: Iterable[str],
) -> list[Collateral]:
    """Members outside the managed scope that appeared in or vanished from ``groups``
    between the two reads."""
    found = []
    for group in sorted(set(groups)):
        if group not in before or group not in after:
            continue
        appeared, vanished = after[group] - before[group], before[group] - after[group]
        if appeared or vanished:
            found.append(Collateral(target, group, appeared, vanished))
    return found
