"""Verified outcomes on a real slapd: what the ``ldap`` target reads back after its
writes, a write the directory does not keep (changed back on the server between the
write and the read), members outside the managed scope changed under a write, and the
ppolicy lock kept through a credential removal by a password administrator."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from ldap3 import MODIFY_DELETE, MODIFY_REPLACE, Connection

from syncd.config import load_config
from syncd.core.model import Action, ActionKind, Outcome
from syncd.core.verify import verified
from syncd.engine import open_target
from syncd.targets.base import Report, Target
from syncd.targets.directory.values import normalize_dn
from syncd.targets.ldap import LOCKED_FOREVER, LdapDirectory
from tests.labs.common import ANA, contract, day
from tests.labs.ldap import GROUPS, PASSWORD, SUFFIX, Lab, dn_of

ANA_KEY = "ana.lopez@vendor.example"
ANA_ENDED = {**ANA, "start": day(-20), "end": day(-1)}
DEVELOPERS, OPS = GROUPS["developers"], GROUPS["ops"]
JDOE = normalize_dn(f"uid=jdoe,ou=people,{SUFFIX}")
ASMITH = normalize_dn(f"uid=asmith,ou=people,{SUFFIX}")


@contextmanager
def corp(lab: Lab) -> Iterator[Target]:
    """The lab's target as syncd opens it, observed as a cycle starts."""
    target = open_target(load_config(lab.config_path), "corp")
    try:
        target.observe()
        yield target
    finally:
        target.close()


def outcomes(lab: Lab, action: str) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.audit()
        if r.get("unmapped", {}).get("action") == action and r["status"] != "Intent"
    ]


def after_each_chunk(
    monkeypatch: pytest.MonkeyPatch, kind: ActionKind, change: Any
) -> list[Sequence[Action]]:
    """Make ``change(actions)`` happen on the server right after the target has sent a
    chunk of ``kind``, before syncd reads it back; the chunks seen are returned."""
    original = LdapDirectory.apply
    seen: list[Sequence[Action]] = []

    def apply(self: LdapDirectory, actions: Sequence[Action], report: Report) -> None:
        original(self, actions, report)
        if actions and actions[0].kind is kind:
            seen.append(actions)
            change(actions)

    monkeypatch.setattr(LdapDirectory, "apply", apply)
    return seen


def test_read_back_follows_an_account_from_creation_to_deletion(lab: Lab) -> None:
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    dn = dn_of("ana.lopez")
    lab.set_password(dn)  # a helpdesk reset

    with corp(lab) as target:
        read = target.read_back(ActionKind.REVOKE_CREDENTIALS, [(ANA_KEY, dn)], [])
        groups = target.read_back(ActionKind.ADD_MEMBER, [], [DEVELOPERS, OPS])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert (account.ref, account.username, account.enabled) == (dn, "ana.lopez", True)
    assert account.has_credentials
    evidence = read.evidence[ANA_KEY]
    assert evidence["pwdAccountLockedTime"] == ()
    assert evidence["userPassword"] == ("present",)  # never the value
    assert evidence["sshPublicKey"] == ()
    assert evidence["pwdEndTime"][0].startswith(day(31).replace("-", ""))
    assert PASSWORD not in repr(read)
    assert groups.accounts == {}
    assert groups.members == {DEVELOPERS: {ANA_KEY}, OPS: set()}
    assert groups.others == {DEVELOPERS: {JDOE}, OPS: {ASMITH}}

    lab.contracts(ANA_ENDED)
    assert lab.syncd("sync").code == 0
    with corp(lab) as target:
        read = target.read_back(ActionKind.REVOKE_CREDENTIALS, [(ANA_KEY, dn)], [])
        groups = target.read_back(ActionKind.REMOVE_MEMBER, [], [DEVELOPERS])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert (account.enabled, account.has_credentials) == (False, False)
    evidence = read.evidence[ANA_KEY]
    assert evidence["pwdAccountLockedTime"] == (LOCKED_FOREVER,)
    assert evidence["userPassword"] == ()
    assert groups.members == {DEVELOPERS: set()}
    assert groups.others == {DEVELOPERS: {JDOE}}
    # the cycle itself read the same back and said so in the trail
    (disable,) = outcomes(lab, "disable")
    assert disable["status"] == "Success"
    assert disable["unmapped"]["verified"] is True
    assert disable["unmapped"]["readback"]["pwdAccountLockedTime"] == [LOCKED_FOREVER]
    assert PASSWORD not in json.dumps(lab.audit())

    lab.configure(policy={"delete_after": "1d"})
    lab.contracts({**ANA, "start": day(-20), "end": day(-3)})
    assert lab.syncd("sync").code == 0
    with corp(lab) as target:
        read = target.read_back(ActionKind.DELETE, [(ANA_KEY, dn)], [])

    assert read.accounts == {ANA_KEY: None}
    assert ANA_KEY not in read.evidence
    (delete,) = outcomes(lab, "delete")
    assert (delete["status"], delete["unmapped"]["verified"]) == ("Success", True)


def test_a_disable_undone_before_the_read_is_no_success(lab: Lab) -> None:
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    dn = dn_of("ana.lopez")
    answers: list[Outcome] = []

    with corp(lab) as target:
        action = Action("corp", ActionKind.DISABLE, ANA_KEY, "ana.lopez", dn, "contract ended")
        target.apply([action], answers.append)
        assert answers[0].ok
        admin = lab.admin()
        admin.modify(dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
        admin.unbind()
        read = target.read_back(ActionKind.DISABLE, [(ANA_KEY, answers[0].ref)], [])

    verdict = verified(answers[0], read)
    assert (verdict.ok, verdict.verified) == (False, False)
    assert "still enabled after disable" in verdict.detail
    assert "pwdAccountLockedTime: absent" in verdict.detail


def test_a_change_the_directory_did_not_keep_fails_and_is_made_again(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    lab.contracts(ANA_ENDED)

    def unlock(actions: Sequence[Action]) -> None:
        # a server-side change (a replica, a plug-in, an admin) undoes the lock
        admin = lab.admin()
        for action in actions:
            admin.modify(action.ref, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
        admin.unbind()

    seen = after_each_chunk(monkeypatch, ActionKind.DISABLE, unlock)
    result = lab.syncd("sync")

    assert len(seen) == 1
    assert result.code == 1, result.out
    (disable,) = outcomes(lab, "disable")
    assert disable["status"] == "Failure"
    assert disable["unmapped"]["verified"] is False
    assert "still enabled after disable" in disable["status_detail"]
    assert "pwdAccountLockedTime: absent" in disable["status_detail"]
    assert disable["unmapped"]["readback"]["pwdAccountLockedTime"] == []

    monkeypatch.undo()
    again = lab.syncd("sync")

    assert again.code == 0, again.out
    assert "disable" in again.out
    assert [r["status"] for r in outcomes(lab, "disable")] == ["Failure", "Success"]
    assert lab.entry(dn_of("ana.lopez"))["pwdaccountlockedtime"] == [LOCKED_FOREVER]  # type: ignore[index]


def test_members_outside_the_scope_that_vanish_under_a_write_are_reported_not_repaired(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    jdoe = f"uid=jdoe,ou=people,{SUFFIX}"

    def drop_jdoe(actions: Sequence[Action]) -> None:
        if any(a.group == DEVELOPERS for a in actions):
            admin = lab.admin()
            admin.modify(DEVELOPERS, {"member": [(MODIFY_DELETE, [jdoe])]})
            admin.unbind()

    after_each_chunk(monkeypatch, ActionKind.ADD_MEMBER, drop_jdoe)
    lab.contracts(ANA)

    result = lab.syncd("sync")

    assert result.code == 0, result.out
    (record,) = [r for r in lab.audit() if r["unmapped"].get("phase") == "collateral"]
    assert record["group"]["uid"] == DEVELOPERS
    assert record["unmapped"]["vanished"] == [JDOE]
    assert record["unmapped"]["appeared"] == []
    assert jdoe.lower() not in lab.members(DEVELOPERS)  # never repaired
    assert dn_of("ana.lopez").lower() in lab.members(DEVELOPERS)


def test_a_password_administrator_offboarding_leaves_the_account_locked(lab: Lab) -> None:
    # syncd binds as an identity with manage rights on userPassword (here the rootdn):
    # for it, ppolicy drops pwdAccountLockedTime whenever the password changes, a
    # delete included. That is what this directory does; check it first.
    admin = lab.admin()
    probe = lab.add_account("probe", None)
    admin.modify(probe, {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED_FOREVER])]})
    admin.modify(probe, {"userPassword": [(MODIFY_DELETE, [])]})
    admin.unbind()
    assert "pwdaccountlockedtime" not in lab.entry(probe)  # type: ignore[operator]

    secret = lab.work / "admin-password"
    secret.write_text(lab.server.admin_password)
    secret.chmod(0o600)
    lab.write_config(bind_user=lab.server.admin_dn, password_file=str(secret))
    lab.contracts(ANA)
    assert lab.syncd("sync").code == 0
    dn = dn_of("ana.lopez")
    lab.set_password(dn)  # a helpdesk reset
    assert lab.can_bind(dn)
    lab.contracts(ANA_ENDED)

    result = lab.syncd("sync")

    assert result.code == 0, result.out
    assert "disable" in result.out
    assert "revoke" in result.out
    entry = lab.entry(dn)
    assert entry is not None
    assert entry["pwdaccountlockedtime"] == [LOCKED_FOREVER]
    assert "userpassword" not in entry
    assert not lab.can_bind(dn)
    (revoke,) = outcomes(lab, "revoke_credentials")
    assert (revoke["status"], revoke["unmapped"]["verified"]) == ("Success", True)
    assert revoke["unmapped"]["readback"]["pwdAccountLockedTime"] == [LOCKED_FOREVER]
    assert revoke["unmapped"]["readback"]["userPassword"] == []
    # locked in one cycle: the next one has nothing to disable again
    assert "(no changes)" in lab.syncd("sync").out


def test_read_back_finds_many_accounts_in_a_few_searches(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [
        contract(f"P-{i}", "Per", f"Son{i}", ["developer"], day(-1), day(10)) for i in range(120)
    ]
    lab.contracts(*people)
    assert lab.syncd("sync").code == 0
    wanted = [(p["email"], None) for p in people] + [("nobody@vendor.example", None)]
    searches: list[str] = []
    original = Connection.search

    def search(self: Connection, base: str, search_filter: str, *args: Any, **kw: Any) -> Any:
        searches.append(search_filter)
        return original(self, base, search_filter, *args, **kw)

    with corp(lab) as target:
        monkeypatch.setattr(Connection, "search", search)
        read = target.read_back(ActionKind.REVOKE_CREDENTIALS, wanted, [])
        revoke_searches = len(searches)
        target.read_back(ActionKind.DISABLE, wanted, [])
        disable_searches = len(searches) - revoke_searches
        groups = target.read_back(ActionKind.ADD_MEMBER, [], [OPS, DEVELOPERS])

    assert sum(a is not None for a in read.accounts.values()) == 120
    assert read.accounts["nobody@vendor.example"] is None
    # two chunks of 100 keys: the entries, and for a revoke one presence search per
    # credential attribute each; a membership chunk reads each group once
    assert revoke_searches == 2 * 3
    assert disable_searches == 2
    assert len(searches) == 2 * 3 + 2 + 2
    assert len(groups.members[DEVELOPERS]) == 120
