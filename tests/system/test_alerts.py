"""config/alerts.yaml: valid for Prometheus (``promtool check rules``), behaving as
intended on synthetic series (``promtool test rules`` with alerts_test.yaml beside this
file), and written against the metrics syncd actually exports.

promtool comes from the Debian package ``prometheus``; without it these tests fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from syncd.ha.role import HaMetrics
from syncd.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "alerts.yaml"
RULE_TESTS = Path(__file__).with_name("alerts_test.yaml")
OPERATIONS = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}

# The alerts operators were promised, with their exact conditions.
REQUIRED = {
    "SyncdDown": ('up{job="syncd"} == 0', "5m", "critical"),
    "SyncdNoSuccessfulCycle": (
        "(time() - syncd_last_success_timestamp_seconds > 3 * syncd_daemon_interval_seconds)"
        " unless on (job, instance) syncd_leader == 0",
        "5m",
        "warning",
    ),
    "SyncdExpiredAccountEnabled": ("syncd_expired_enabled_accounts > 0", "2m", "critical"),
    "SyncdSafetyHold": ("syncd_safety_held_actions > 0", None, "warning"),
    "SyncdSourceStale": (
        "syncd_source_age_seconds > 3 * syncd_daemon_interval_seconds",
        "5m",
        "warning",
    ),
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install the Debian package 'prometheus'")
    return subprocess.run([found, *args], capture_output=True, text=True, check=False, timeout=60)


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert [group["name"] for group in groups] == ["syncd"]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests() -> None:
    # promtool resolves rule_files relative to the test file
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_fire_the_key_alerts() -> None:
    """The promtool tests make the most important alerts actually fire, not just stay
    quiet."""
    fired = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {"SyncdExpiredAccountEnabled", "SyncdNoSuccessfulCycle", "SyncdDown"} <= fired
    assert fired == alert_rules().keys()


def test_required_alerts() -> None:
    rules = alert_rules()
    for name, (expr, for_, severity) in REQUIRED.items():
        rule = rules[name]
        assert " ".join(rule["expr"].split()) == expr, name
        assert rule.get("for") == for_, name
        assert rule["labels"]["severity"] == severity, name


def test_every_alert_is_documented() -> None:
    """A severity, a summary, a description, and a runbook section that exists."""
    headings = {
        # GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"], name
        assert annotations["description"], name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "docs/operations.md", name
        assert anchor == name.lower(), name
        assert anchor in headings, f"docs/operations.md has no section {name}"


def registry() -> CollectorRegistry:
    """Every metric syncd may export: the daemon's, and what ``ha:`` adds."""
    metrics = Metrics()
    HaMetrics(metrics.registry)
    return metrics.registry


def exported_series() -> dict[str, str]:
    """Sample name -> metric family, for every metric syncd's registry declares (labelled
    metrics have no samples before their first use, so names come from the types)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    names = {}
    for family in registry().collect():
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = family.name
    return names


def test_alerts_use_exported_metrics() -> None:
    exported = exported_series()
    for name, rule in alert_rules().items():
        for metric in re.findall(r"\bsyncd_\w+", rule["expr"]):
            assert metric in exported, f"{name} uses {metric}, which syncd does not export"


def test_every_metric_is_documented() -> None:
    text = OPERATIONS.read_text()
    for family in registry().collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}" in text, f"docs/operations.md does not describe {name}"
