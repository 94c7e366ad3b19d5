"""Hostile values in the source, end to end on a real slapd: an oversized value or a
control, separator or bidirectional character makes its own record invalid and nothing
else; no value can start a line of syncd's output, its log or its daemon log."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Any

from syncd.core.text import FORBIDDEN
from tests.labs.common import ANA, contract, day
from tests.labs.ldap import GROUPS, Lab, dn_of

FORGED_ID = "C-7\nERROR syncd.daemon: FORGED-ID"
ESCAPED_ID = "C-7\\nERROR syncd.daemon: FORGED-ID"


def forged_lines(text: str) -> list[str]:
    """Lines (split wherever a terminal or a log viewer might) that a value started."""
    lines = re.split(r"\r\n|\r|\n|\x85|\u2028|\u2029", text)
    return [line for line in lines if line.startswith(("ERROR syncd.daemon", "FORGED"))]


def json_source(lab: Lab, *records: dict[str, Any]) -> None:
    lab.overrides["source"] = {"path": "contracts.json"}
    lab.write_config()
    (lab.work / "contracts.json").write_text(json.dumps({"contracts": list(records)}))


def hostile(cid: str, name: str, **fields: Any) -> dict[str, Any]:
    return contract(cid, name, "Hostile", ["developer"], day(-1), day(30), **fields)


HOSTILE = [
    (hostile("H-1", "Lf", given_name="Eve\nERROR syncd.daemon: FORGED"), "given_name", "U+000A"),
    (hostile("H-2", "Cr", family_name="Hostile\r"), "family_name", "U+000D"),
    (hostile("H-3", "Nul", vendor="Acme\x00"), "vendor", "U+0000"),
    (hostile("H-4", "Nel", person="nel\x85person"), "person", "U+0085"),
    (hostile("H-5", "Ls", sponsor="boss\u2028@corp.example"), "sponsor", "U+2028"),
    (hostile("H-6", "Ps", given_name="Ps\u2029"), "given_name", "U+2029"),
    (hostile("H-7", "Rlo", family_name="\u202eevil"), "family_name", "U+202E"),
    (hostile("H-8", "Lri", vendor="\u2066Acme\u2069"), "vendor", "U+2066"),
    (hostile("H-9", "Map", attributes={"team": {"nested": "mapping"}}), "attributes.team", ""),
    (hostile("H-10", "List", attributes={"team": ["a", "b"]}), "attributes.team", ""),
    (hostile("H-11", "Attr", attributes={"team": "core\n"}), "attributes.team", "U+000A"),
]


def test_a_normal_contractor_gets_access_beside_a_five_million_character_name(
    lab: Lab,
) -> None:
    huge = contract("C-9", "Hugh", "Long", ["developer"], day(-1), day(30), username="hugh.long")
    huge["given_name"] = "H" * 5_000_000
    json_source(lab, ANA, huge)

    result = lab.syncd("sync")

    assert result.code == 0, result.err[-2000:]
    assert lab.entry(dn_of("ana.lopez")) is not None
    assert dn_of("ana.lopez") in lab.members(GROUPS["developers"])
    assert dn_of("ana.lopez") in lab.members(GROUPS["vpn-users"])
    assert lab.entry(dn_of("hugh.long")) is None
    assert (
        "contracts.json#2 (contract C-9) given_name: the value is 5000000 characters long, "
        "over the limit of 256 (policy.max_field_length) (fix: shorten it in the source, or "
        "raise policy.max_field_length)" in result.out
    )
    assert len(result.out) + len(result.err) < 20_000  # the value is never echoed
    assert all("HHHHHHHH" not in line for line in lab.audit_path.read_text().splitlines())
    again = lab.syncd("sync")
    assert again.code == 0
    assert "(no changes)" in again.out


def test_a_field_length_can_be_set_per_field(lab: Lab) -> None:
    lab.configure(policy={"field_lengths": {"given_name": 3}})
    long_name = contract("C-8", "Bartholomew", "Chen", ["writer"], day(-1), day(30))
    lab.contracts(ANA, long_name)

    result = lab.syncd("sync")

    assert result.code == 0, result.err
    assert lab.entry(dn_of("ana.lopez")) is not None
    assert lab.entry(dn_of("bartholomew.chen")) is None
    assert "over the limit of 3 (policy.field_lengths.given_name)" in result.out


def test_hostile_characters_and_nested_values_never_reach_the_directory(lab: Lab) -> None:
    # JSON: a YAML dump would carry NEL raw, and YAML reads a raw NEL as a line break
    json_source(lab, ANA, *(record for record, _field, _point in HOSTILE))

    result = lab.syncd("sync")

    assert result.code == 0, result.err
    assert lab.entry(dn_of("ana.lopez")) is not None
    assert f"Invalid records ({len(HOSTILE)})" in result.out
    for record, field, point in HOSTILE:
        [line] = [line for line in result.out.splitlines() if f"(contract {record['id']})" in line]
        assert f" {field}: " in line, line
        assert point in line, line
    # nothing in the directory holds any of them, or Python's text of a mapping
    snapshot = lab.snapshot()
    for dn, entry in snapshot.items():
        for values in entry.values():
            for value in values:
                assert FORBIDDEN.search(value) is None, (dn, value)
                assert "{'nested'" not in value, (dn, value)
    managed = [dn for dn, entry in snapshot.items() if "employeenumber" in entry]
    assert [dn for dn in managed if "ou=contractors" in dn] == [dn_of("ana.lopez")]
    assert not forged_lines(result.out + "\n" + result.err)
    assert FORBIDDEN.search(result.out.replace("\n", "")) is None


def _syncd(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The command line in a process of its own: its stderr log as users see it."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(lab.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_forged_contract_id_cannot_start_a_line_of_cli_output(lab: Lab) -> None:
    lab.write_config()
    lab.contracts(ANA, {**ANA, "id": FORGED_ID, "email": "eve@vendor.example"})

    for args in (("plan",), ("-v", "sync")):
        run = _syncd(lab, *args)
        assert run.returncode == 0, run.stderr
        assert not forged_lines(run.stdout), args
        assert not forged_lines(run.stderr), args
        assert f"(contract {ESCAPED_ID}) id: " in run.stdout, args
        assert "invalid contract record: contracts.yaml:" in run.stderr, args
        assert ESCAPED_ID in run.stderr, args
    document = json.loads(_syncd(lab, "plan", "--json").stdout)
    assert [r["contract_id"] for r in document["invalid"]] == [FORGED_ID]
    assert "U+000A" in document["invalid"][0]["reason"]


def test_a_forged_contract_id_cannot_start_a_line_of_the_daemon_log(lab: Lab) -> None:
    lab.overrides["daemon"] = {"interval": "300s", "state_dir": "state", "metrics_address": ""}
    lab.write_config()
    lab.contracts(ANA, {**ANA, "id": FORGED_ID, "email": "eve@vendor.example"})
    logs = {fmt: _daemon_log(lab, fmt) for fmt in ("plain", "json")}

    assert lab.entry(dn_of("ana.lopez")) is not None
    assert "invalid contract record: contracts.yaml:" in logs["plain"]
    assert ESCAPED_ID in logs["plain"]
    assert not forged_lines(logs["plain"])
    for line in logs["json"].splitlines():
        assert FORBIDDEN.search(line) is None
        json.loads(line)
    assert any(FORGED_ID in json.loads(line)["message"] for line in logs["json"].splitlines())


def _daemon_log(lab: Lab, fmt: str) -> str:
    """What ``syncd run --log-format fmt`` logs up to its first invalid record (and its
    stop)."""
    log = lab.work / f"daemon-{fmt}.log"
    command = [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"]
    with log.open("w") as stderr:
        proc = subprocess.Popen([*command, "--log-format", fmt], stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while "FORGED-ID" not in log.read_text() or lab.entry(dn_of("ana.lopez")) is None:
            assert proc.poll() is None, f"the daemon exited with {proc.returncode}"
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    return log.read_text()
