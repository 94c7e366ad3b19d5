"""``syncd explain PERSON`` against a real slapd: the contracts, and per target the
account syncd wants (each group with the role and contract that grant it), what the
directory holds and what syncd will do; ``--at``, ``--json``, lookups by e-mail,
username and contract id in any case, a conflict, and an unknown person."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime, timedelta

from ldap3 import MODIFY_ADD, MODIFY_DELETE

from syncd.cli import main
from tests.labs.common import CARLA_ENDED, contract, day
from tests.labs.ldap import GROUPS, SUFFIX, Lab, dn_of

ANA = contract("C-1", "Ana", "Lopez", ["developer"], day(-10), day(30))
ANA_LATER = contract("C-2", "Ana", "Lopez", ["operator"], day(20), day(60))
BO = contract("C-4", "Bo", "Chen", ["writer"], day(-1), day(9))
DEV, VPN, WIKI, OPS = (GROUPS[g] for g in ("developers", "vpn-users", "wiki-editors", "ops"))
NEXT = "             at the next cycle (syncd sync, or the daemon within daemon.interval)"


def midnight(offset: int) -> str:
    """The instant a contract date means: the start of day ``offset`` (UTC)."""
    moment = datetime.now(UTC).date() + timedelta(days=offset)
    return f"{moment.isoformat()}T00:00:00Z"


def move(lab: Lab, dn: str, *, into: str, out_of: str) -> None:
    """Someone changes the directory behind syncd's back."""
    conn = lab.admin()
    conn.modify(into, {"member": [(MODIFY_ADD, [dn])]})
    conn.modify(out_of, {"member": [(MODIFY_DELETE, [dn])]})
    conn.unbind()


def test_why_a_person_has_a_group_and_what_syncd_will_do_about_it(lab: Lab) -> None:
    lab.contracts(ANA, ANA_LATER, CARLA_ENDED)
    assert lab.syncd("sync").code == 0
    move(lab, dn_of("ana.lopez"), into=WIKI, out_of=VPN)
    s1, e1, s2, e2 = midnight(-10), midnight(31), midnight(20), midnight(61)

    result = lab.syncd("explain", "ANA.Lopez@Vendor.example")

    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[1:] == [
        f"ana.lopez@vendor.example (username ana.lopez): active: contract C-1 in effect until {e1}",
        "  contracts:",
        f"    C-1  roles developer  {s1} → {e1}  in effect until {e1}  [contracts.yaml:2]",
        f"    C-2  roles operator  {s2} → {e2}  starts {s2}  [contracts.yaml:10]",
        f"  next boundary: {s2}: active: contract C-1, C-2 in effect until {e2}; gains roles "
        "operator (the daemon wakes then)",
        "  corp:",
        f"    wants:   an enabled account: contract C-1 in effect until {e1}",
        f"             expiry {e1}",
        f"             group {DEV}  ← role developer (C-1)",
        f"             group {VPN}  ← role developer (C-1)",
        f"             not {OPS}  ← role operator (C-2): starts {s2}",
        f"    holds:   {dn_of('ana.lopez')}: enabled, expiry {e1}, no credentials",
        f"             group {DEV}",
        f"             group {WIKI}",
        f"    will do: - remove   ana.lopez ✕ {WIKI}  (no role in effect grants {WIKI})",
        f"             + add      ana.lopez → {VPN}  (role developer (C-1))",
        NEXT,
    ]
    assert lines[0].startswith("As of ")
    assert dn_of("ana.lopez") in lab.members(WIKI)  # explain changes nothing

    later = lab.syncd("explain", "ana.lopez", "--at", day(25))

    assert f"             group {OPS}  ← role operator (C-2)" in later.out
    assert f"             group {VPN}  ← role developer (C-1), role operator (C-2)" in later.out
    assert "; the targets as they are now" in later.out.splitlines()[0]
    assert f"+ add      ana.lopez → {OPS}  (role operator (C-1, C-2))" in later.out

    assert lab.syncd("sync").code == 0
    settled = lab.syncd("explain", "ana.lopez")
    assert "    will do: nothing to do" in settled.out.splitlines()


def test_explain_json_finds_a_person_by_contract_id(lab: Lab) -> None:
    lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("wiki-editors",))
    lab.contracts(ANA, CARLA_ENDED)

    result = lab.syncd("explain", "c-3", "--json")

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert (document["format"], document["query"]) == ("syncd.explain/1", "c-3")
    [carla] = document["people"]
    assert (carla["person"], carla["state"]) == ("carla.rossi@vendor.example", "ended")
    assert [(c["id"], c["state"]) for c in carla["contracts"]] == [("C-3", "ended")]
    [target] = carla["targets"]
    assert target["wants"]["enabled_account"] is False
    assert target["wants"]["groups"] == []
    assert target["wants"]["not_granted"] == [
        {"group": WIKI, "role": "writer", "contract_id": "C-3", "why": f"ended {midnight(-1)}"}
    ]
    assert target["holds"]["enabled"] is True
    assert target["holds"]["groups"] == [WIKI]
    assert [a["kind"] for a in target["actions"]] == [
        "disable",
        "remove_member",
        "revoke_credentials",
        "set_expiry",
    ]
    assert {tuple(a["contract_ids"]) for a in target["actions"]} == {("C-3",)}
    assert carla["next_boundary"] is None


def test_a_conflict_is_explained_with_its_contract(lab: Lab) -> None:
    lab.add_account("bo.chen", None, parent=f"ou=people,{SUFFIX}")
    lab.contracts(BO)

    result = lab.syncd("explain", "bo.chen")

    assert result.code == 1
    assert "    holds:   no managed account" in result.out.splitlines()
    assert (
        "    ! conflict bo.chen (contract C-4): username 'bo.chen' is taken by an unmanaged "
        f"entry (no employeeNumber) (uid=bo.chen,ou=people,{SUFFIX}) (fix: give contract "
        "C-4 another username (its username: field), or rename or remove the account "
        "holding it)"
    ) in result.out.splitlines()
    assert "    will do: nothing until the conflict is resolved" in result.out.splitlines()


def test_an_unknown_person_is_a_usage_error_with_a_hint(lab: Lab) -> None:
    lab.contracts(ANA, CARLA_ENDED)

    result = lab.syncd("explain", "ana.lopex")

    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "error: no person in the source matches 'ana.lopex' (give an e-mail, person key, "
        "username or contract id; `syncd expiring` lists people whose access ends soon); "
        "did you mean ana.lopez?\n"
    )


def test_the_config_option_may_follow_the_verb(lab: Lab) -> None:
    lab.contracts(ANA)
    lab.write_config()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["explain", "ana.lopez", "--config", str(lab.config_path), "--json"])
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue())["people"][0]["username"] == "ana.lopez"
