"""Lifecycle scenarios end to end: contracts file → ``syncd`` CLI → a real slapd."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from ldap3 import Connection

from syncd.audit import AuditWriter
from syncd.core.model import Action, ActionKind
from tests.labs.common import ANA, BO_FUTURE, CARLA_ENDED, contract, day, moment
from tests.labs.ldap import BASE_DN, GROUPS, SUFFIX, Lab, dn_of

EMEKA_TERMINATED = contract(
    "C-4",
    "Emeka",
    "Obi",
    ["developer"],
    day(-30),
    day(300),
    status="terminated",
    terminated_at=moment(-3600),
)
FATIMA_CANCELLED = contract(
    "C-5", "Fatima", "Zahra", ["developer"], day(-5), day(100), status="cancelled"
)
INVALID = contract("C-6", "Gus", "Bad", ["designer"], day(-1), day(10))


def test_each_state_lands_in_the_directory_and_a_second_sync_changes_nothing(lab: Lab) -> None:
    carla = lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("wiki-editors",))
    emeka = lab.add_account(
        "emeka.obi", "emeka.obi@vendor.example", groups=("developers", "vpn-users")
    )
    fatima = lab.add_account("fatima.zahra", "fatima.zahra@vendor.example", groups=("developers",))
    orphan = lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.contracts(ANA, BO_FUTURE, CARLA_ENDED, EMEKA_TERMINATED, FATIMA_CANCELLED, INVALID)

    first = lab.syncd("sync")

    assert first.code == 0, first.err
    ana = lab.entry(dn_of("ana.lopez"))
    assert ana is not None
    assert ana["employeenumber"] == ["ana.lopez@vendor.example"]
    assert ana["mail"] == ["ana.lopez@vendor.example"]
    assert "pwdaccountlockedtime" not in ana
    assert ana["pwdendtime"][0].startswith(day(31).replace("-", ""))  # end day inclusive
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])
    assert dn_of("ana.lopez") in lab.members(GROUPS["vpn-users"])
    assert lab.entry(dn_of("bo.chen")) is None  # future: just in time, not yet
    assert lab.entry(dn_of("gus.bad")) is None  # invalid: grants nothing
    for dn in (carla, emeka, fatima, orphan):
        entry = lab.entry(dn)
        assert entry is not None, dn  # kept for audit: no delete_after configured
        assert entry["pwdaccountlockedtime"] == ["000001010000Z"], dn
        # an orphan's password waits for policy.orphan_grace (see test_orphan_grace.py)
        assert ("userpassword" in entry) is (dn == orphan), dn
        assert not any(dn in lab.members(g) for g in GROUPS.values()), dn
    assert "C-6" in first.out
    assert "unknown role 'designer'" in first.out

    before = lab.snapshot()
    second = lab.syncd("sync")
    assert second.code == 0, second.err
    assert "(no changes)" in second.out
    assert lab.snapshot() == before


def test_employees_and_their_groups_outside_the_scope_are_never_touched(lab: Lab) -> None:
    # An employee outside the base DN even carries a person-key attribute: not managed.
    outsider = lab.add_account(
        "pat", "pat@example.test", parent=f"ou=people,{SUFFIX}", groups=("developers",)
    )
    unkeyed = lab.add_account("helper", None, groups=("ops",))  # inside the base, no key
    lab.add_account("leaver", "leaver@vendor.example", groups=("developers", "ops"))
    lab.contracts(ANA)
    before = lab.snapshot()

    result = lab.syncd("sync")

    assert result.code == 0, result.err
    after = lab.snapshot()
    for dn in (outsider, unkeyed, f"uid=jdoe,ou=people,{SUFFIX}", f"uid=asmith,ou=people,{SUFFIX}"):
        assert after[dn] == before[dn], dn
    assert outsider in lab.members(GROUPS["developers"])
    assert unkeyed in lab.members(GROUPS["ops"])
    assert f"uid=jdoe,ou=people,{SUFFIX}" in lab.members(GROUPS["developers"])
    assert dn_of("leaver") not in lab.members(GROUPS["developers"])


def test_dry_run_and_plan_write_nothing(lab: Lab) -> None:
    lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.contracts(ANA, CARLA_ENDED)
    before = lab.snapshot()

    plan = lab.syncd("plan")
    dry = lab.syncd("sync", "--dry-run")

    assert plan.code == 0
    assert dry.code == 0
    assert "+ create   ana.lopez" in plan.out
    assert "- disable  old.hand" in plan.out
    assert "Dry run: nothing was changed." in dry.out
    assert lab.snapshot() == before
    assert not lab.audit_path.exists()


def test_plan_at_a_future_time_shows_the_coming_start_and_end(lab: Lab) -> None:
    lab.contracts(ANA, BO_FUTURE)
    lab.syncd("sync")

    later = lab.syncd("plan", "--at", day(45))

    assert "+ create   bo.chen" in later.out  # starts day 20
    assert "- disable  ana.lopez" in later.out  # ended day 30
    assert lab.entry(dn_of("bo.chen")) is None


def test_a_locked_account_cannot_bind_and_an_active_one_can(lab: Lab) -> None:
    # Credentials are kept here so that only the ppolicy lock stands between them and a bind.
    lab.write_config(credential_attributes=[])
    lab.contracts(ANA)
    lab.syncd("sync")
    lab.set_password(dn_of("ana.lopez"))
    assert lab.can_bind(dn_of("ana.lopez"))

    lab.contracts({**ANA, "status": "terminated"})
    result = lab.syncd("sync")

    assert result.code == 0, result.err
    assert lab.entry(dn_of("ana.lopez"))["userpassword"]  # type: ignore[index]
    assert not lab.can_bind(dn_of("ana.lopez"))


def test_the_directory_itself_refuses_binds_after_the_end_without_another_sync(lab: Lab) -> None:
    end = moment(5)  # still ahead once the sync is done, even on a loaded machine
    lab.contracts(contract("C-9", "Ana", "Lopez", ["developer"], day(-1), end))
    lab.syncd("sync")
    lab.set_password(dn_of("ana.lopez"))
    assert lab.can_bind(dn_of("ana.lopez"))

    # past the end; syncd does not run again
    time.sleep((datetime.fromisoformat(end) - datetime.now(UTC)).total_seconds() + 1)

    assert not lab.can_bind(dn_of("ana.lopez"))  # pwdEndTime did it


def test_offboarding_revokes_credentials_and_ssh_keys(lab: Lab) -> None:
    lab.contracts(ANA)
    lab.syncd("sync")
    lab.set_password(dn_of("ana.lopez"))
    conn = lab.admin()
    conn.modify(
        dn_of("ana.lopez"),
        {
            "objectClass": [("MODIFY_ADD", ["ldapPublicKey"])],
            "sshPublicKey": [("MODIFY_ADD", ["ssh-ed25519 AAAAC3Nza ana@laptop"])],
        },
    )
    lab.contracts({**ANA, "end": day(-1), "start": day(-20)})

    result = lab.syncd("sync")

    assert result.code == 0, result.err
    entry = lab.entry(dn_of("ana.lopez"))
    assert entry is not None
    assert "userpassword" not in entry
    assert "sshpublickey" not in entry
    assert not lab.can_bind(dn_of("ana.lopez"))


def test_unicode_names_round_trip_and_converge(lab: Lab) -> None:
    lab.contracts(
        contract(
            "C-7",
            "Zoë",
            "Ñúñez-Ōta",
            ["writer"],
            day(-1),
            day(10),
            email="zoe.nunez@vendor.example",
        )
    )

    first = lab.syncd("sync")
    second = lab.syncd("sync")

    assert first.code == 0, first.err
    assert second.code == 0, second.err
    entry = lab.entry(dn_of("zoe.nunez-ota"))
    assert entry is not None
    assert entry["cn"] == ["Zoë Ñúñez-Ōta"]
    assert "(no changes)" in second.out


def test_hostile_usernames_never_widen_a_search_or_leave_the_base(lab: Lab) -> None:
    lab.overrides["policy"] = {"username": {"pattern": "^.+$"}}
    lab.write_config()
    lab.contracts(
        contract("C-10", "Star", "Filter", ["writer"], day(-1), day(10), username="*)(uid=*"),
        contract("C-11", "Comma", "Dn", ["writer"], day(-1), day(10), username="x,ou=admins"),
    )
    before = lab.snapshot()

    result = lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert "conflict" not in result.out  # an unescaped filter would match every entry
    after = lab.snapshot()
    new = sorted(set(after) - set(before))
    assert len(new) == 2
    assert all(dn.lower().endswith("," + BASE_DN) and dn.count("=") >= 4 for dn in new)
    assert {after[dn]["uid"][0] for dn in new} == {"*)(uid=*", "x,ou=admins"}
    assert lab.entry(f"uid=x,ou=admins,{BASE_DN}") is None
    for dn in before:
        if "wiki-editors" not in dn:
            assert after[dn] == before[dn], dn
    assert "(no changes)" in lab.syncd("sync").out


def test_an_unmanaged_entry_in_the_way_is_a_conflict_not_an_adoption(lab: Lab) -> None:
    squatter = lab.add_account("ana.lopez", None, parent=f"ou=people,{SUFFIX}")
    lab.contracts(ANA, CARLA_ENDED)
    before = lab.snapshot()[squatter]

    result = lab.syncd("sync")

    assert result.code == 1
    assert "conflict ana.lopez" in result.out
    assert "unmanaged" in result.out
    assert lab.snapshot()[squatter] == before
    assert lab.entry(dn_of("ana.lopez")) is None
    conflicts = [r for r in lab.audit() if r.get("unmapped", {}).get("phase") == "conflict"]
    assert [r["user"]["name"] for r in conflicts] == ["ana.lopez"]


def test_orphans_over_the_limit_are_held_until_allowed(lab: Lab) -> None:
    lab.overrides["safety"] = {"max_orphan_disables": 2}
    lab.write_config()
    orphans = [
        lab.add_account(f"gone{i}", f"gone{i}@vendor.example", groups=("ops",)) for i in range(3)
    ]
    ended = lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("wiki-editors",))
    lab.contracts(ANA, CARLA_ENDED)

    held = lab.syncd("sync")

    assert held.code == 3, held.out
    assert "3 orphan accounts exceed safety.max_orphan_disables 2" in held.out
    for dn in orphans:
        assert "pwdaccountlockedtime" not in lab.entry(dn)  # type: ignore[operator]
    # the contract's own end is never held
    assert lab.entry(ended)["pwdaccountlockedtime"] == ["000001010000Z"]  # type: ignore[index]
    assert lab.entry(dn_of("ana.lopez")) is not None
    assert sum(r["status"] == "Held" for r in lab.audit()) >= 3

    allowed = lab.syncd("sync", "--allow-mass-change")

    assert allowed.code == 0, allowed.out
    for dn in orphans:
        assert lab.entry(dn)["pwdaccountlockedtime"] == ["000001010000Z"]  # type: ignore[index]
    assert any(r.get("activity_name") == "Safety Override" for r in lab.audit())


def test_an_invalid_record_never_takes_access_away(lab: Lab) -> None:
    lab.contracts(ANA)
    lab.syncd("sync")
    lab.contracts({**ANA, "end": "not-a-date"})

    result = lab.syncd("sync")

    assert result.code == 0
    assert "end: not an ISO 8601 date" in result.out
    entry = lab.entry(dn_of("ana.lopez"))
    assert entry is not None
    assert "pwdaccountlockedtime" not in entry
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])


def test_roles_changes_move_memberships(lab: Lab) -> None:
    lab.contracts(ANA)
    lab.syncd("sync")
    lab.contracts({**ANA, "roles": ["writer"]})

    result = lab.syncd("sync")

    assert result.code == 0
    assert dn_of("ana.lopez") in lab.members(GROUPS["wiki-editors"])
    assert dn_of("ana.lopez") not in lab.members(GROUPS["developers"])
    assert dn_of("ana.lopez") not in lab.members(GROUPS["vpn-users"])


def test_a_rehired_contractor_is_enabled_again_with_a_new_end(lab: Lab) -> None:
    lab.contracts({**ANA, "start": day(-40), "end": day(-5)})
    lab.syncd("plan")
    lab.add_account("ana.lopez", "ana.lopez@vendor.example", password=None)
    lab.syncd("sync")
    assert lab.entry(dn_of("ana.lopez"))["pwdaccountlockedtime"]  # type: ignore[index]

    lab.contracts({**ANA, "start": day(-40), "end": day(-5)}, {**ANA, "id": "C-1b"})
    result = lab.syncd("sync")

    assert result.code == 0
    entry = lab.entry(dn_of("ana.lopez"))
    assert entry is not None
    assert "pwdaccountlockedtime" not in entry
    assert entry["pwdendtime"][0].startswith(day(31).replace("-", ""))
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])


def test_deleted_after_delete_after_and_limited(lab: Lab) -> None:
    lab.overrides["policy"] = {"delete_after": "1d"}
    lab.write_config()
    gone = lab.add_account("carla.rossi", "carla.rossi@vendor.example", groups=("wiki-editors",))
    lab.contracts(ANA, CARLA_ENDED)

    result = lab.syncd("sync")

    assert result.code == 0, result.out
    assert lab.entry(gone) is None
    kinds = [
        r["unmapped"]["action"]
        for r in lab.audit()
        if r["status"] == "Success"
        and r["class_uid"] in (3001, 3006)
        and r["user"]["name"] == "carla.rossi"
    ]
    assert kinds[-1] == "delete"


def test_every_change_has_an_intent_before_its_outcome(lab: Lab) -> None:
    lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.contracts(ANA)
    lab.syncd("sync")

    records = lab.audit()
    sequences = [r["metadata"]["sequence"] for r in records]
    assert sequences == list(range(1, len(records) + 1))
    assert len({r["metadata"]["correlation_uid"] for r in records}) == 1
    intents = [r for r in records if r["status"] == "Intent"]
    outcomes = [
        r
        for r in records
        if r["status"] in ("Success", "Failure") and r["class_uid"] in (3001, 3006)
    ]
    assert len(intents) == len(outcomes) > 0

    def key(r: dict) -> tuple:  # type: ignore[type-arg]
        return (r["unmapped"]["action"], r["user"]["uid"], r.get("group", {}).get("uid"))

    first_seen = {}
    for index, record in enumerate(records):
        if record["class_uid"] in (3001, 3006):
            first_seen.setdefault(key(record), index)
            if record["status"] == "Success":
                assert records[first_seen[key(record)]]["status"] == "Intent"
    disable = next(
        r for r in records if r["activity_name"] == "Disable" and r["status"] == "Success"
    )
    assert disable["type_uid"] == 300105
    assert disable["user"] == {
        "name": "old.hand",
        "uid": "old.hand@vendor.example",
        "uid_alt": dn_of("old.hand"),
    }
    assert disable["unmapped"]["reason"].startswith("person absent from the source")
    add = next(r for r in records if r["activity_name"] == "Add User" and r["status"] == "Success")
    assert add["type_uid"] == 300603
    assert add["group"]["name"] in ("developers", "vpn-users")
    assert add["unmapped"]["contract_ids"] == ["C-1"]
    assert isinstance(add["time"], int)
    assert add["time_dt"].endswith("Z")


def test_a_failed_action_is_reported_and_the_rest_goes_on(lab: Lab) -> None:
    lab.overrides["roles"] = {"writer": {"corp": [f"cn=no-such-group,ou=groups,{SUFFIX}"]}}
    lab.write_config()
    lab.contracts(ANA, contract("C-8", "Wes", "Writer", ["writer"], day(-1), day(10)))

    result = lab.syncd("sync")

    assert result.code == 1
    assert "FAILED + add" in result.out
    assert "no-such-group" in result.out
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])
    failures = [r for r in lab.audit() if r["status"] == "Failure"]
    assert failures
    assert all("no-such-group" in r["group"]["uid"] for r in failures)


def test_an_unreachable_directory_fails_the_cycle_and_writes_nothing(lab: Lab) -> None:
    lab.write_config(urls="ldaps://127.0.0.1:9", retries=0)
    lab.contracts(ANA)

    result = lab.syncd("sync")

    assert result.code == 1
    assert "NOT PLANNED" in result.out
    assert "connection failed" in result.out
    assert not [r for r in lab.audit() if r["class_uid"] != 1008]


def test_check_config_online_names_missing_groups(lab: Lab) -> None:
    lab.overrides["roles"] = {"writer": {"corp": [f"cn=no-such-group,ou=groups,{SUFFIX}"]}}
    lab.write_config()
    lab.contracts(ANA)

    offline = lab.syncd("check-config")
    online = lab.syncd("check-config", "--online")

    assert offline.code == 0
    assert online.code == 2
    assert "group cn=no-such-group,ou=groups,dc=example,dc=test does not exist" in online.err


def test_a_source_that_cannot_be_parsed_changes_nothing(lab: Lab) -> None:
    lab.add_account("old.hand", "old.hand@vendor.example", groups=("ops",))
    lab.write_config()
    (lab.work / "contracts.yaml").write_text("contracts: [ {id: 1, broken\n")
    before = lab.snapshot()

    result = lab.syncd("sync")

    assert result.code == 2
    assert "source error, nothing changed" in result.err
    assert lab.snapshot() == before


def test_csv_source_with_mapped_field_names(lab: Lab) -> None:
    lab.overrides["source"] = {
        "path": "contracts.csv",
        "fields": {"id": "contract_no", "email": "mail"},
    }
    lab.write_config()
    (lab.work / "contracts.csv").write_text(
        "contract_no,mail,given_name,family_name,roles,start,end\n"
        f"C-20,ana.lopez@vendor.example,Ana,Lopez,developer;writer,{day(-1)},{day(9)}\n"
        f"C-21,broken,Bo,Chen,developer,{day(-1)},{day(9)}\n"
    )

    result = lab.syncd("sync")

    assert result.code == 0
    assert "contracts.csv:3 (contract C-21) email" in result.out
    assert dn_of("ana.lopez") in lab.members(GROUPS["wiki-editors"])


def test_plan_json_is_stable_and_complete(lab: Lab) -> None:
    import json

    lab.contracts(ANA, INVALID)
    result = lab.syncd("plan", "--json")

    data = json.loads(result.out)
    assert data["format"] == "syncd.plan/1"
    (target,) = data["targets"]
    create = target["actions"][0]
    assert create["kind"] == "create"
    assert create["username"] == "ana.lopez"
    assert create["changes"]["mail"] == ["ana.lopez@vendor.example"]
    assert data["invalid"][0]["contract_id"] == "C-6"
    assert data["summary"]["create"] == 1
    assert data["summary"]["add_member"] == 2


def test_a_frozen_server_is_retried_and_the_cycle_converges(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab.write_config(timeout=1, retries=4)
    lab.contracts(ANA)
    assert lab.server.process is not None
    pid = lab.server.process.pid
    os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing
    thaw = threading.Timer(2.5, os.kill, (pid, signal.SIGCONT))
    thaw.start()
    try:
        result = lab.syncd("sync")
    finally:
        thaw.cancel()
        os.kill(pid, signal.SIGCONT)

    assert result.code == 0, result.out + result.err
    assert "handshake operation timed out, retry 1" in caplog.text
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])
    creates = [
        r for r in lab.audit() if r.get("activity_name") == "Create" and r["class_uid"] == 3001
    ]
    assert [r["status"] for r in creates] == ["Intent", "Success"]


def test_disable_by_attribute_and_unique_member_groups(lab: Lab) -> None:
    lab.overrides["roles"] = {"writer": {"corp": [f"cn=auditors,ou=groups,{SUFFIX}"]}}
    lab.write_config(
        disable={
            "method": "attribute",
            "attribute": "employeeType",
            "disabled_value": "disabled",
            "enabled_value": "active",
        },
        member_attribute="uniqueMember",
    )
    lab.contracts(contract("C-30", "Una", "Unique", ["writer"], day(-1), day(10)))
    lab.syncd("sync")
    auditors = lab.entry(f"cn=auditors,ou=groups,{SUFFIX}")
    assert auditors is not None
    assert dn_of("una.unique") in auditors["uniquemember"]
    assert lab.entry(dn_of("una.unique"))["employeetype"] == ["active"]  # type: ignore[index]

    lab.contracts(contract("C-30", "Una", "Unique", ["writer"], day(-9), day(-1)))
    result = lab.syncd("sync")

    assert result.code == 0, result.out
    entry = lab.entry(dn_of("una.unique"))
    assert entry is not None
    assert entry["employeetype"] == ["disabled"]
    assert "pwdaccountlockedtime" not in entry
    auditors = lab.entry(f"cn=auditors,ou=groups,{SUFFIX}")
    assert auditors is not None
    assert dn_of("una.unique") not in auditors["uniquemember"]
    assert auditors["uniquemember"]  # the employee member stays


@pytest.mark.parametrize("size", [5, 60])
def test_a_converged_cycle_costs_the_same_few_searches_whatever_the_size(
    lab: Lab, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.contracts(
        *[
            contract(f"C-{i}", "Per", f"Son{i}", ["developer", "writer"], day(-1), day(10))
            for i in range(size)
        ]
    )
    assert lab.syncd("sync").code == 0
    calls: Counter[str] = Counter()
    for name in ("search", "add", "modify", "delete", "modify_dn"):
        original = getattr(Connection, name)

        def counted(
            self: Connection, *args: Any, _name: str = name, _orig: Any = original, **kwargs: Any
        ) -> Any:
            calls[_name] += 1
            return _orig(self, *args, **kwargs)

        monkeypatch.setattr(Connection, name, counted)

    result = lab.syncd("sync")

    assert "(no changes)" in result.out
    # the root DSE (the server's flavour), managed entries, one per credential attribute,
    # one per managed group (all four)
    assert calls == Counter({"search": 1 + 1 + 2 + len(GROUPS)})


def test_intents_a_crash_left_open_are_settled_from_what_the_directory_shows(lab: Lab) -> None:
    lab.write_config()
    lab.contracts(ANA, contract("C-40", "Bo", "Chen", ["writer"], day(-1), day(9)))
    # A previous run announced both creates, made only Ana's, then died.
    with AuditWriter(lab.audit_path) as audit:
        for person, user in (
            ("ana.lopez@vendor.example", "ana.lopez"),
            ("bo.chen@vendor.example", "bo.chen"),
        ):
            audit.intent(
                Action("corp", ActionKind.CREATE, person, user, None, "before crash", ("C",)),
                "crashed-run",
            )
        audit.sync()
    lab.add_account("ana.lopez", "ana.lopez@vendor.example")

    result = lab.syncd("sync")

    assert result.code == 0, result.out
    settled = {r["user"]["name"]: r for r in lab.audit() if r["unmapped"].get("observed")}
    assert settled["ana.lopez"]["status"] == "Success"
    assert settled["bo.chen"]["status"] == "Failure"
    assert "planned again" in settled["bo.chen"]["status_detail"]
    assert lab.entry(dn_of("bo.chen")) is not None
    assert lab.syncd("audit", "verify").code == 0
