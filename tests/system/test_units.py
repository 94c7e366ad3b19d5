"""systemd/: the service unit, sysusers.d and tmpfiles.d files, checked with systemd's
own tools (``systemd-analyze verify`` and ``security``, ``systemd-sysusers``,
``systemd-tmpfiles``) and against the config and command line they must agree with.

systemd need not be running: these tools work offline. A missing tool fails the test
(install the ``systemd`` package) rather than skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "syncd.service"
SYSUSERS = ROOT / "systemd" / "syncd.sysusers"
TMPFILES = ROOT / "systemd" / "syncd.tmpfiles"
OPERATIONS = ROOT / "docs" / "operations.md"
EXEC = "/usr/bin/syncd"
MAX_EXPOSURE = 2.0


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the Debian package 'systemd'")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60
    )


def settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values in order. Unit files repeat keys (SystemCallFilter=), so
    configparser, which keeps only one value per key, does not fit."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return out


SERVICE = settings(UNIT)["Service"]


def one(key: str) -> str:
    values = SERVICE.get(key)
    assert values is not None, f"{key}= missing from [Service]"
    assert len(values) == 1, f"{key}= set {len(values)} times"
    return values[0]


def copy_with_stub_exec(tmp_path: Path) -> Path:
    """verify insists that ExecStart's binary exists, and /usr/bin/syncd is only there
    once the package is installed. The copy differs from the unit in that one path,
    pointing at a stub; its file name stays syncd.service since verify derives the
    unit name from it. (--root would need a whole tree of systemd's own units.)"""
    stub = tmp_path / "bin" / "syncd"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    pattern = re.compile(rf"^ExecStart={re.escape(EXEC)} ", re.MULTILINE)
    assert len(pattern.findall(text)) == 1, f"ExecStart must run {EXEC}"
    copy = tmp_path / "unit" / "syncd.service"
    copy.parent.mkdir()
    copy.write_text(pattern.sub(f"ExecStart={stub} ", text))
    return copy


def test_verify_is_silent(tmp_path: Path) -> None:
    result = run(tool("systemd-analyze"), "verify", str(copy_with_stub_exec(tmp_path)))
    # Unknown keys and bad values only warn, with exit status 0: any output is a failure.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_verify_would_report_a_bad_key(tmp_path: Path) -> None:
    """The silence above means something: this systemd reports an unknown key."""
    unit = copy_with_stub_exec(tmp_path)
    unit.write_text(
        unit.read_text().replace("[Service]\n", "[Service]\nProtectKernelTunable=yes\n")
    )
    result = run(tool("systemd-analyze"), "verify", str(unit))
    assert "ProtectKernelTunable" in result.stderr


def exposure() -> float:
    result = run(tool("systemd-analyze"), "security", "--offline=yes", "--no-pager", str(UNIT))
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for syncd\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout[-2000:]
    return float(match.group(1))


def test_exposure_score_is_low_and_documented() -> None:
    score = exposure()
    assert score <= MAX_EXPOSURE
    # docs/operations.md quotes the measured score: keep it true when the unit changes
    assert f"exposure level {score:.1f}" in OPERATIONS.read_text()


def test_service_contract() -> None:
    """The settings the daemon is written against (sd_notify, signals, directories)."""
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "60s",
        "Restart": "on-failure",
        "RestartSec": "5s",
        "TimeoutStopSec": "30s",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "syncd",
        "Group": "syncd",
        "DynamicUser": "no",
        "UMask": "0027",
        "ConfigurationDirectory": "syncd",
        "StateDirectory": "syncd",
        "LogsDirectory": "syncd",
    }
    assert {key: one(key) for key in expected} == expected
    assert one("ExecStart") == f"{EXEC} -c /etc/syncd/syncd.yaml run --log-format plain"


def test_hardening() -> None:
    expected = {
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "NoNewPrivileges": "yes",
        "PrivateUsers": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "KeyringMode": "private",
        "RemoveIPC": "yes",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallArchitectures": "native",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    assert {key: one(key) for key in expected} == expected
    assert SERVICE["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    # syncd must reach directories the unit cannot know: no IP allow list by default
    assert "IPAddressDeny" not in SERVICE


def test_command_line_exists() -> None:
    """ExecStart's arguments are accepted by the installed CLI (argparse stops at
    --help before anything runs)."""
    args = one("ExecStart").split()[1:]
    result = run(sys.executable, "-m", "syncd", *args, "--help")
    assert result.returncode == 0, result.stderr
    assert "--log-format" in result.stdout


def test_credentials_match_the_example_config() -> None:
    """Every relative secret file in config/syncd.yaml is a LoadCredential= id, so the
    example config works unchanged under the unit."""
    loaded = {
        value.partition(":")[0]: value.partition(":")[2] for value in SERVICE["LoadCredential"]
    }
    assert all(path.startswith("/etc/syncd/credentials/") for path in loaded.values())
    config = yaml.safe_load((ROOT / "config" / "syncd.yaml").read_text())
    wanted = {
        target[key]
        for target in config["targets"].values()
        for key in ("password_file", "token_file", "client_secret_file")
        if key in target and not target[key].startswith("/")
    }
    assert wanted
    assert wanted <= loaded.keys()


def test_paths_match_the_config() -> None:
    """The audit trail lives in LogsDirectory=, the state in StateDirectory=."""
    from syncd.config import DaemonConfig

    config = yaml.safe_load((ROOT / "config" / "syncd.yaml").read_text())
    assert Path(config["audit"]["path"]).parent == Path("/var/log") / one("LogsDirectory")
    state_dir = (config.get("daemon") or {}).get("state_dir", DaemonConfig().state_dir)
    assert Path(state_dir) == Path("/var/lib") / one("StateDirectory")


def test_sysusers_and_tmpfiles_build_a_tree(tmp_path: Path) -> None:
    """Applied to an empty root, sysusers creates the user the unit runs as and tmpfiles
    the directories with the owners and modes the unit declares."""
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles can only chown to syncd as root")
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    (tmp_path / "etc").mkdir()
    for source, folder in ((SYSUSERS, "sysusers.d"), (TMPFILES, "tmpfiles.d")):
        target = tmp_path / "usr" / "lib" / folder / "syncd.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(source, target)

    # arguments name files inside --root, so the files were installed there
    result = run(sysusers, f"--root={tmp_path}")
    assert result.returncode == 0, result.stderr
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
    }
    _, _, uid, gid, _, home, shell = passwd["syncd"]
    assert (home, shell) == ("/var/lib/syncd", "/usr/sbin/nologin")
    assert 0 < int(uid) < 1000  # a system user

    result = run(tmpfiles, f"--root={tmp_path}", "--create")
    assert (result.returncode, result.stderr) == (0, "")
    found = {}
    for path in ("etc/syncd", "etc/syncd/credentials", "var/lib/syncd", "var/log/syncd"):
        st = (tmp_path / path).stat()
        found[path] = (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
    assert found == {
        "etc/syncd": ("0o750", 0, int(gid)),
        "etc/syncd/credentials": ("0o700", 0, 0),
        "var/lib/syncd": ("0o750", int(uid), int(gid)),
        "var/log/syncd": ("0o750", int(uid), int(gid)),
    }
    modes = {
        one("ConfigurationDirectoryMode"),
        one("StateDirectoryMode"),
        one("LogsDirectoryMode"),
    }
    assert modes == {"0750"}


def test_sysusers_dry_run_names_the_user(tmp_path: Path) -> None:
    """The sysusers line parses (as any user: --dry-run writes nothing)."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr" / "lib" / "sysusers.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, tmp_path / "usr" / "lib" / "sysusers.d" / "syncd.conf")
    result = run(tool("systemd-sysusers"), f"--root={tmp_path}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Creating user 'syncd'" in result.stderr
