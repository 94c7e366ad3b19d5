"""Safe defaults of the ``ldap`` target on a real slapd: with no ``conflict_base`` the
look-up for entries in the way covers the naming context that holds ``base_dn``, so a
contractor is never created beside an employee of the same uid; and ``tls_verify:
false`` is never silent (daemon log at start, ``/healthz``, ``check-config``)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml
from ldap3.core.exceptions import LDAPInsufficientAccessRightsResult

from syncd.config import LdapTarget, load_config
from syncd.targets.ldap import target as ldap_target
from syncd.targets.ldap.target import LdapDirectory, naming_context
from tests.labs.common import ANA
from tests.labs.ldap import BASE_DN, SUFFIX, Lab, dn_of

EMPLOYEE = f"uid=jdoe,ou=people,{SUFFIX}"  # seeded by the lab: an employee, not managed
ANA_AS_JDOE = {**ANA, "username": "jdoe"}  # a contractor whose username is an employee's uid


def stock_config(lab: Lab, **target: Any) -> None:
    """The lab's config without its explicit ``conflict_base``: syncd's default."""
    lab.write_config(**target)
    config = yaml.safe_load(lab.config_path.read_text())
    del config["targets"]["corp"]["conflict_base"]
    lab.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.parametrize(
    ("base_dn", "contexts", "expected"),
    [
        ("ou=contractors,dc=example,dc=test", ["dc=example,dc=test"], "dc=example,dc=test"),
        (
            "ou=contractors,dc=example,dc=test",
            ["cn=config", "DC=Example, DC=Test", "dc=other,dc=test"],
            "DC=Example, DC=Test",
        ),
        (
            "ou=c,ou=corp,dc=example,dc=test",
            ["dc=example,dc=test", "ou=corp,dc=example,dc=test"],
            "ou=corp,dc=example,dc=test",
        ),
        ("ou=contractors,o=example", ["o=example"], "o=example"),
        ("ou=contractors,dc=example,dc=test", [], "dc=example,dc=test"),
        ("ou=contractors,dc=example,dc=test", ["o=other"], "dc=example,dc=test"),
        ("ou=c,dc=corp,o=example,dc=test", [], "dc=test"),
        ("ou=contractors,o=example", [], "ou=contractors,o=example"),
        ("dc=example,dc=test", ["dc=example,dc=test"], "dc=example,dc=test"),
    ],
)
def test_naming_context_holding_the_base_dn(
    base_dn: str, contexts: list[str], expected: str
) -> None:
    assert naming_context(base_dn, contexts) == expected


def test_stock_config_finds_the_employee_with_the_same_uid(lab: Lab) -> None:
    stock_config(lab)
    lab.contracts(ANA_AS_JDOE)
    before = lab.snapshot()

    plan = lab.syncd("plan")
    result = lab.syncd("sync")

    assert plan.code == 1, plan.out
    assert (
        f"  ! conflict jdoe (contract C-1): username 'jdoe' is taken by an unmanaged entry "
        f"(person 'jdoe@example.test') ({EMPLOYEE}) (fix: give contract C-1 another "
        "username (its username: field), or rename or remove the account holding it)\n"
    ) in plan.out
    assert result.code == 1, result.out
    assert EMPLOYEE in result.out
    assert lab.entry(dn_of("jdoe")) is None  # not created beside the employee
    assert lab.snapshot() == before
    conflicts = [r for r in lab.audit() if r.get("unmapped", {}).get("phase") == "conflict"]
    assert [(r["user"]["name"], r["user"]["uid_alt"]) for r in conflicts] == [("jdoe", EMPLOYEE)]
    assert [r["unmapped"]["contract_ids"] for r in conflicts] == [["C-1"]]


def test_the_root_dse_is_read_once_and_names_the_suffix(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    stock_config(lab)
    config = load_config(lab.config_path)
    reads: list[str] = []
    real = ldap_target.read_entry

    def counted(conn: Any, dn: str, attributes: list[str]) -> dict[str, Any]:
        reads.append(dn)
        return real(conn, dn, attributes)

    monkeypatch.setattr(ldap_target, "read_entry", counted)
    target = config.targets["corp"]
    assert isinstance(target, LdapTarget)
    directory = LdapDirectory("corp", target, frozenset())
    try:
        assert directory.conflict_base() == SUFFIX
        assert directory.find_conflicts([("ana.lopez@vendor.example", "jdoe")])
        assert directory.find_conflicts([("ana.lopez@vendor.example", "asmith")])
    finally:
        directory.close()
    assert reads == [""]


def test_an_unreadable_root_dse_falls_back_to_the_dc_components(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ldap_target.read_entry

    def refused(conn: Any, dn: str, attributes: list[str]) -> dict[str, Any]:
        if dn == "":  # fault injection: a server that hides its root DSE
            raise LDAPInsufficientAccessRightsResult(result=50, description="no root DSE")
        return real(conn, dn, attributes)

    monkeypatch.setattr(ldap_target, "read_entry", refused)
    stock_config(lab)
    lab.contracts(ANA_AS_JDOE)

    result = lab.syncd("sync")

    assert result.code == 1, result.out
    assert "! conflict jdoe" in result.out
    assert lab.entry(dn_of("jdoe")) is None


def test_an_explicit_conflict_base_is_honoured(lab: Lab) -> None:
    lab.write_config(conflict_base=BASE_DN)  # narrower than the default, on purpose
    lab.contracts(ANA_AS_JDOE)

    result = lab.syncd("sync")

    assert result.code == 0, result.out
    assert lab.entry(dn_of("jdoe")) is not None
    assert lab.entry(EMPLOYEE) is not None


# -- tls_verify: false --------------------------------------------------------------------

WARNING = "targets.corp.tls_verify is false: the server certificate and host name are not"


def test_check_config_warns_when_tls_is_not_verified(lab: Lab) -> None:
    lab.write_config(tls_verify=False)
    result = lab.syncd("check-config", "--online")
    assert result.code == 0, result.err
    assert f"warning: {WARNING}" in result.err
    lab.write_config()
    assert "warning" not in lab.syncd("check-config").err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def test_the_daemon_warns_at_start_and_in_healthz(lab: Lab) -> None:
    port = _free_port()
    lab.overrides["daemon"] = {
        "interval": "300s",
        "state_dir": "state",
        "metrics_address": f"127.0.0.1:{port}",
    }
    lab.write_config(tls_verify=False)
    lab.contracts(ANA)
    log = lab.work / "daemon.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(lab.config_path), "run"], stderr=stderr
        )
    try:
        deadline, health = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            health = _health(port)
            if health is not None and health[0] == 200:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    text = log.read_text()
    assert health is not None, text
    assert health[0] == 200, text
    assert health[1]["status"] == "ok"
    [warning] = health[1]["warnings"]
    assert warning.startswith(WARNING)
    assert f"WARNING syncd.daemon: {WARNING}" in text
    assert code == 0
    assert lab.entry(dn_of("ana.lopez")) is not None  # a warning, not a refusal
