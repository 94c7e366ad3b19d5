"""Verified outcomes on a real Samba AD DC: what the ``ad`` target reads back after its
writes, and a disable the DC does not keep (enabled again on the server between the
write and the read). Few tests: the DC is shared by the session and slow to write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from ldap3 import MODIFY_REPLACE

from syncd.config import load_config
from syncd.core.model import Action, ActionKind
from syncd.engine import open_target
from syncd.targets.ad import AdDirectory
from syncd.targets.base import Report, Target
from syncd.targets.directory.values import normalize_dn
from tests.labs.ad import CONTRACTORS, DISABLED, PASSWORD, AdLab
from tests.labs.common import ANA, day
from tests.servers.samba import group_dn, ou_dn

ANA_KEY = "ana.lopez@vendor.example"
ANA_ENDED = {**ANA, "start": day(-20), "end": day(-1)}
DEVELOPERS, OPS = group_dn("developers"), group_dn("ops")


@contextmanager
def corp(lab: AdLab) -> Iterator[Target]:
    """The lab's target as syncd opens it, observed as a cycle starts."""
    target = open_target(load_config(lab.config_path), "corp")
    try:
        target.observe()
        yield target
    finally:
        target.close()


def outcomes(lab: AdLab, action: str) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.audit()
        if r.get("unmapped", {}).get("action") == action and r["status"] != "Intent"
    ]


def test_read_back_of_an_account_created_then_disabled_and_parked(ad_lab: AdLab) -> None:
    ad_lab.target["disabled_ou"] = DISABLED
    ad_lab.contracts(ANA)
    assert ad_lab.syncd("sync").code == 0
    created = f"CN=ana.lopez,{CONTRACTORS}"
    jdoe = normalize_dn(f"CN=jdoe,{ou_dn('people')}")
    asmith = normalize_dn(f"CN=asmith,{ou_dn('people')}")

    with corp(ad_lab) as target:
        read = target.read_back(ActionKind.CREATE, [(ANA_KEY, created)], [])
        groups = target.read_back(ActionKind.ADD_MEMBER, [], [DEVELOPERS, OPS])

    account = read.accounts[ANA_KEY]
    assert account is not None
    assert normalize_dn(account.ref) == normalize_dn(created)
    assert (account.enabled, account.has_credentials) == (True, True)
    evidence = read.evidence[ANA_KEY]
    assert evidence["userAccountControl"] == ("512",)
    assert evidence["pwdLastSet"] != ("0",)
    assert evidence["accountExpires"] != ("9223372036854775807",)
    assert groups.members == {DEVELOPERS: {ANA_KEY}, OPS: set()}
    assert groups.others == {DEVELOPERS: {jdoe}, OPS: {asmith}}
    (create,) = outcomes(ad_lab, "create")
    assert (create["status"], create["unmapped"]["verified"]) == ("Success", True)

    ad_lab.set_password(created)
    ad_lab.contracts(ANA_ENDED)
    result = ad_lab.syncd("sync")

    assert result.code == 0, result.out
    with corp(ad_lab) as target:
        read = target.read_back(ActionKind.REVOKE_CREDENTIALS, [(ANA_KEY, created)], [])
        groups = target.read_back(ActionKind.REMOVE_MEMBER, [], [DEVELOPERS])
    account = read.accounts[ANA_KEY]
    assert account is not None
    assert normalize_dn(account.ref) == normalize_dn(f"CN=ana.lopez,{DISABLED}")
    assert (account.enabled, account.has_credentials) == (False, False)
    assert read.evidence[ANA_KEY]["userAccountControl"] == ("514",)
    assert read.evidence[ANA_KEY]["pwdLastSet"] == ("0",)
    assert groups.members == {DEVELOPERS: set()}
    assert groups.others == {DEVELOPERS: {jdoe}}
    for kind in ("disable", "remove_member", "revoke_credentials"):
        assert all(r["unmapped"]["verified"] is True for r in outcomes(ad_lab, kind)), kind
    assert not ad_lab.can_bind("ana.lopez@example.test", PASSWORD)


def test_a_disable_the_dc_did_not_keep_fails_and_is_made_again(
    ad_lab: AdLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    ad_lab.contracts(ANA)
    assert ad_lab.syncd("sync").code == 0
    ad_lab.contracts(ANA_ENDED)
    original = AdDirectory.apply

    def apply(self: AdDirectory, actions: Sequence[Action], report: Report) -> None:
        original(self, actions, report)
        if actions and actions[0].kind is ActionKind.DISABLE:
            # a server-side change (another tool, an admin) enables it again
            for action in actions:
                ad_lab.modify(action.ref or "", {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})

    monkeypatch.setattr(AdDirectory, "apply", apply)
    result = ad_lab.syncd("sync")

    assert result.code == 1, result.out
    (disable,) = outcomes(ad_lab, "disable")
    assert disable["status"] == "Failure"
    assert disable["unmapped"]["verified"] is False
    assert "still enabled after disable" in disable["status_detail"]
    assert "userAccountControl: 512" in disable["status_detail"]

    monkeypatch.undo()
    again = ad_lab.syncd("sync")

    assert again.code == 0, again.out
    assert [r["status"] for r in outcomes(ad_lab, "disable")] == ["Failure", "Success"]
    assert ad_lab.account("ana.lopez").enabled is False  # type: ignore[union-attr]
