"""``syncd attest`` against a real slapd: a directory syncd has reconciled attests
clean; an ended contractor's account unlocked by hand, or put back into a group, is
named with its fix. Attesting changes nothing in the directory, and the attestation
lands in the audit trail, whose chain still verifies."""

from __future__ import annotations

import json
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE

from tests.labs.common import ANA, CARLA_ENDED
from tests.labs.ldap import GROUPS, Lab

CARLA = "carla.rossi@vendor.example"


def reconciled(lab: Lab) -> str:
    """Ana active, Carla ended and offboarded by a sync; Carla's DN."""
    carla = lab.add_account("carla.rossi", CARLA, groups=("wiki-editors",))
    lab.contracts(ANA, CARLA_ENDED)
    assert lab.syncd("sync").code == 0
    return carla


def attestations(lab: Lab) -> list[dict[str, Any]]:
    return [r for r in lab.audit() if r["class_uid"] == 2003]


def test_a_reconciled_directory_attests_clean(lab: Lab) -> None:
    reconciled(lab)
    before = lab.snapshot()

    result = lab.syncd("attest")

    assert result.code == 0, result.out + result.err
    assert "corp: attested at" in result.out
    assert "2 managed accounts: 1 enabled, 1 disabled" in result.out
    assert "Clean: no violations." in result.out
    assert lab.snapshot() == before
    *by_sync, record = attestations(lab)  # the syncs that reconciled attested too
    assert len(by_sync) == 1
    assert record["compliance"]["status"] == "Pass"
    assert lab.syncd("audit", "verify").code == 0


def test_an_ended_account_unlocked_by_hand_is_named(lab: Lab) -> None:
    carla = reconciled(lab)
    conn = lab.admin()
    conn.modify(carla, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
    conn.modify(GROUPS["ops"], {"member": [(MODIFY_ADD, [carla])]})
    conn.unbind()

    result = lab.syncd("attest")

    assert result.code == 1, result.out + result.err
    assert f"✗ ended_enabled           carla.rossi ({CARLA})" in result.out
    assert "fix: disable the account" in result.out
    assert f"ungranted_group         carla.rossi ({CARLA}): member of {GROUPS['ops']}" in (
        result.out
    )
    assert "2 violations found." in result.out
    assert "pwdaccountlockedtime" not in (lab.entry(carla) or {})  # attest repairs nothing
    record = attestations(lab)[-1]
    assert record["severity"] == "High"
    kinds = {v["kind"] for v in record["unmapped"]["violations"]}
    assert kinds == {"ended_enabled", "ungranted_group"}
    assert lab.syncd("audit", "verify").code == 0

    assert lab.syncd("sync").code == 0  # the next cycle puts it right
    assert lab.syncd("attest").code == 0


def test_attest_json_for_one_target(lab: Lab) -> None:
    carla = reconciled(lab)
    conn = lab.admin()
    conn.modify(carla, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
    conn.unbind()

    result = lab.syncd("attest", "--target", "corp", "--json")

    assert result.code == 1, result.err
    document = json.loads(result.out)
    assert document["format"] == "syncd.attest/1"
    assert document["recorded"] is True
    (target,) = document["targets"]
    assert target["name"] == "corp"
    assert target["clean"] is False
    assert target["counts"]["enabled"] == 2
    assert [(v["kind"], v["username"]) for v in target["violations"]] == [
        ("ended_enabled", "carla.rossi")
    ]
    assert len(target["digest"]) == 64
    assert document["target_errors"] == {}


def test_an_unknown_target_is_refused(lab: Lab) -> None:
    reconciled(lab)

    result = lab.syncd("attest", "--target", "nope")

    assert result.code == 1
    assert "--target nope: no such target" in result.err
