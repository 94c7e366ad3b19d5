"""Untrusted values on their way out: escaped in plain log lines and command output,
never raw line breakers in JSON logs or the audit trail (``syncd.core.text``,
``syncd.logfmt``, ``syncd.report``, ``syncd.audit.chain``); and the config's say over
field lengths and its warnings (``policy.field_lengths``, ``tls_verify: false``)."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd import report
from syncd.apply import ApplyReport
from syncd.audit import AuditWriter
from syncd.audit.chain import canonical
from syncd.audit.verify import verify
from syncd.cli import main
from syncd.config import AuditConfig, load_config
from syncd.core.model import Action, ActionKind, InvalidRecord, Outcome
from syncd.core.text import FORBIDDEN, json_safe, shown
from syncd.engine import CyclePlan
from syncd.errors import ConfigError
from syncd.listener import Health
from syncd.logfmt import JsonFormatter, PlainFormatter

REPO = Path(__file__).resolve().parents[2]
FORGED = "C-1\nERROR syncd.daemon: FORGED-ID"
# One of each kind of character a value must not bring into a line
HOSTILE = "a\nb\rc\x00d\x85e\u2028f\u2029g\u202eh\u2066i\x1bj\tk\x7fl"


def starts_forged(text: str) -> bool:
    """Whether a forged value starts a line of its own (as a terminal splits lines)."""
    forged = ("ERROR syncd.daemon", "ERROR forged", "ERROR again")
    return any(line.startswith(forged) for line in re.split(r"\r|\n", text))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("Zoë Ñúñez 李 עברית", "Zoë Ñúñez 李 עברית"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("nul\x00", "nul\\x00"),
        ("esc\x1b[31m", "esc\\x1b[31m"),
        ("del\x7f", "del\\x7f"),
        ("nel\x85", "nel\\x85"),
        ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
        ("rlo\u202eabc\u202c", "rlo\\u202eabc\\u202c"),
        ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
        ("cn=Lee\\, Ann", "cn=Lee\\, Ann"),  # backslashes stay as they are
        (42, "42"),
    ],
)
def test_shown_escapes_what_could_break_or_turn_a_line(value: object, expected: str) -> None:
    assert shown(value) == expected
    assert FORBIDDEN.search(shown(value)) is None


@pytest.mark.parametrize("value", [HOSTILE, "plain", "Zoë", {"k\u2028": ["\x85", "\u202e"]}])
def test_json_safe_reads_back_the_same_and_holds_no_line_breaker(value: object) -> None:
    text = json_safe(json.dumps(value, ensure_ascii=False))
    assert FORBIDDEN.search(text) is None
    assert json.loads(text) == value


def test_json_safe_keeps_other_non_ascii_readable() -> None:
    assert json_safe(json.dumps("Zoë 李", ensure_ascii=False)) == '"Zoë 李"'


# -- plain and JSON log lines -----------------------------------------------------------


@pytest.fixture
def plain() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PlainFormatter())
    logger = logging.getLogger("syncd.test.untrusted")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def test_plain_log_escapes_a_forged_id(plain: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = plain
    record = InvalidRecord("c.yaml:3", FORGED, "", "id", "holds the control character U+000A")
    log.warning("invalid contract record: %s", record)
    assert stream.getvalue() == (
        "WARNING syncd.test.untrusted: invalid contract record: c.yaml:3 (contract C-1\\nERROR "
        "syncd.daemon: FORGED-ID) id: holds the control character U+000A\n"
    )


def test_plain_log_escapes_every_kind_of_argument(
    plain: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = plain
    log.error("%s / %r / %d / %.1f", HOSTILE, HOSTILE, 7, 2.5)
    log.error("%(who)s did it", {"who": FORGED})
    log.error(FORGED)  # even a message that is a value: its line break continues the record
    text = stream.getvalue()
    assert text.count("\n") == 4
    assert text.endswith("ERROR syncd.test.untrusted: C-1\n    ERROR syncd.daemon: FORGED-ID\n")
    assert FORBIDDEN.search(text.replace("\n", "")) is None
    assert " / 7 / 2.5\n" in text
    assert "C-1\\nERROR syncd.daemon: FORGED-ID did it" in text
    assert not starts_forged(text)


def test_plain_log_keeps_a_traceback_inside_its_record(
    plain: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = plain
    try:
        raise ValueError(FORGED + "\u2028ERROR again")
    except ValueError:
        log.exception("cycle failed")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ERROR syncd.test.untrusted: cycle failed"
    assert all(line.startswith("    ") for line in lines[1:])
    assert "Traceback (most recent call last):" in lines[1]
    assert "\\u2028ERROR again" in lines[-1]
    assert not starts_forged(stream.getvalue())


def test_json_log_line_is_one_line_without_raw_line_breakers() -> None:
    record = logging.LogRecord(
        "syncd.engine", logging.WARNING, __file__, 1, "invalid: %s", (HOSTILE,), None
    )
    line = JsonFormatter().format(record)
    assert FORBIDDEN.search(line) is None
    assert json.loads(line)["message"] == f"invalid: {HOSTILE}"


# -- command output ---------------------------------------------------------------------


def test_plan_output_lists_a_forged_invalid_record_on_one_line() -> None:
    invalid = [
        InvalidRecord("c.yaml:3", FORGED, "", "id", "holds the control character U+000A"),
        InvalidRecord("c.yaml:9", "C-2\u2028x", "", "given_name", "r\x85"),
    ]
    cycle = CyclePlan(datetime(2027, 1, 1, tzinfo=UTC), [], invalid, {})
    text = report.render_plan(cycle)
    assert "(contract C-1\\nERROR syncd.daemon: FORGED-ID) id:" in text
    assert "C-2\\u2028x" in text
    assert "r\\x85" in text
    assert FORBIDDEN.search(text.replace("\n", "")) is None
    assert not starts_forged(text)


def test_failed_results_escape_the_servers_answer() -> None:
    action = Action("corp", ActionKind.CREATE, "p@v.example", "ann", None, "why", ("C-1",))
    outcome = Outcome(action, False, "refused\nERROR syncd.daemon: FORGED")
    done = ApplyReport("corp", failed=[outcome])
    text = report.render_results([done])
    assert "refused\\nERROR syncd.daemon: FORGED" in text
    assert not starts_forged(text)


# -- the audit trail --------------------------------------------------------------------


def test_line_breakers_land_escaped_in_the_trail_and_it_verifies(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    reason = "contract C-1\u2028ERROR forged\x85NEL \u202eRLO ended"
    action = Action("corp", ActionKind.DISABLE, "p@v.example", "ann", "uid=ann", reason, ("C-1",))
    with AuditWriter.from_config(AuditConfig(path=trail), "run") as audit:
        audit.intent(action, "run")
        audit.outcome(Outcome(action, True, "done\u2029", "uid=ann"), "run")

    raw = trail.read_text(encoding="utf-8")
    assert FORBIDDEN.search(raw.replace("\n", "")) is None
    assert "\\u2028ERROR forged\\u0085NEL \\u202eRLO" in raw
    assert len(raw.splitlines()) == len(re.split(r"\r\n|\r|\n|\x85|\u2028|\u2029", raw.rstrip()))
    reasons = [json.loads(line)["unmapped"].get("reason") for line in raw.splitlines()]
    assert reason in reasons  # read back as the very same text
    for line in raw.splitlines():
        assert line == canonical(json.loads(line))
    assert verify([trail]).ok


def test_the_verifier_in_the_siem_guide_accepts_such_a_trail(tmp_path: Path) -> None:
    """docs/siem.md's stand-alone script recomputes the canonical form: it must agree."""
    guide = (REPO / "docs" / "siem.md").read_text(encoding="utf-8")
    script = re.search(r"```python\n(# verify_chain\.py.*?)```", guide, re.DOTALL)
    assert script is not None
    path = tmp_path / "verify_chain.py"
    path.write_text(script.group(1), encoding="utf-8")
    trail = tmp_path / "audit.jsonl"
    action = Action("corp", ActionKind.CREATE, "p@v.example", "ann", None, "a\u2028b\x85c", ())
    with AuditWriter.from_config(AuditConfig(path=trail), "run") as audit:
        audit.intent(action, "run")
        audit.outcome(Outcome(action, True, "\u202e", "uid=ann"), "run")
    run = subprocess.run(
        [sys.executable, str(path), str(trail)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK: sequence 1-")


# -- config: field lengths and warnings ------------------------------------------------

CONFIG = """\
source: {{path: contracts.yaml}}
policy: {policy}
roles: {{developer: {{corp: [cn=developers,ou=groups,dc=example,dc=test]}}}}
targets:
  corp:
    type: ldap
    urls: ldaps://ldap.example.test:636
    bind_user: cn=syncd,ou=services,dc=example,dc=test
    base_dn: ou=contractors,dc=example,dc=test
    password_file: {password}
    {extra}
audit: {{path: audit.jsonl}}
"""


def _config_file(tmp_path: Path, policy: str = "{}", extra: str = "") -> Path:
    password = tmp_path / "password"
    password.write_text("secret")
    path = tmp_path / "syncd.yaml"
    path.write_text(CONFIG.format(policy=policy, password=password, extra=extra))
    return path


def test_field_length_limits_reach_the_policy(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path))
    assert config.core_policy().max_length("given_name") == 256
    path = _config_file(
        tmp_path, "{max_field_length: 100, field_lengths: {given_name: 64, attributes: 1000}}"
    )
    policy = load_config(path).core_policy()
    assert policy.max_length("given_name") == 64
    assert policy.max_length("attributes") == 1000
    assert policy.max_length("vendor") == 100


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{field_lengths: {nickname: 10}}", "unknown contract field 'nickname'"),
        ("{field_lengths: {id: 0}}", "a length limit is at least 1"),
        ("{max_field_length: 0}", "greater than or equal to 1"),
    ],
)
def test_bad_field_length_settings_are_config_errors(
    tmp_path: Path, policy: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, policy))
    assert message in str(caught.value)
    assert "policy." in str(caught.value)


def test_tls_verify_false_is_a_warning_of_the_config_and_of_healthz(tmp_path: Path) -> None:
    assert load_config(_config_file(tmp_path)).warnings() == []
    config = load_config(_config_file(tmp_path, extra="tls_verify: false"))
    [warning] = config.warnings()
    assert warning.startswith("targets.corp.tls_verify is false:")
    health = Health()
    assert "warnings" not in health.answer()[1]
    health.warnings = config.warnings()
    health.set("ok")
    assert health.answer() == (200, {"status": "ok", "warnings": [warning]})


def test_check_config_warns_about_tls_verify_false(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(tmp_path, extra="tls_verify: false")
    assert main(["-c", str(path), "check-config"]) == 0
    out, err = capsys.readouterr()
    assert ": valid (1 targets, 1 roles)" in out
    assert "warning: targets.corp.tls_verify is false:" in err
    assert main(["-c", str(_config_file(tmp_path)), "check-config"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_source_error_cannot_forge_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config_file(tmp_path)
    (tmp_path / "contracts.yaml").write_text('contracts: "\\nERROR forged\\u2028"\n- : :\n')
    assert main(["-c", str(path), "plan"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("source error, nothing changed:")
    assert not starts_forged(out + err)
