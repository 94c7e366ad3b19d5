"""docker/: the image and the compose demo, checked without a container engine.

The Dockerfile is parsed here (its syntax is plain on purpose) and held to the rules
of a service image: pinned base, fixed non-root user, health check on /healthz, no
secrets or remote downloads, volumes for config, state and audit trail. compose.yaml is
validated against the Compose Specification schema (shipped with check-jsonschema) and
checked for the demo's wiring; the demo's syncd.yaml must pass ``syncd check-config``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
VOLUMES = ["/etc/syncd", "/var/lib/syncd", "/var/log/syncd"]
UID = "10001"
SECRET_NAME = re.compile(r"passw|token|secret|api_?key|private", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"line {self.line}: expected a JSON array"
        return [str(item) for item in value]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their first line number. Continuation lines are joined and
    comment lines dropped, also inside a continuation, as the builder does."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not parts:
            start = number
        continued = line.endswith("\\")
        parts.append(line.removesuffix("\\").strip())
        if continued:
            continue
        keyword, _, args = " ".join(parts).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued line"
    return out


STEPS = parse_dockerfile((DOCKER / "Dockerfile").read_text())


def only(keyword: str) -> Instruction:
    found = [step for step in STEPS if step.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def env() -> dict[str, str]:
    out = {}
    for step in STEPS:
        if step.keyword == "ENV":
            for token in shlex.split(step.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {step.line}: write ENV as KEY=value"
                out[key] = value
    return out


def test_base_image_is_pinned() -> None:
    for step in STEPS:
        if step.keyword == "FROM":
            image = step.args.split()[0]
            tag = image.partition(":")[2]
            assert "@sha256:" in image or (tag and tag != "latest"), f"line {step.line}"
    assert only("FROM").args.startswith("python:3.11-slim")


def test_runs_as_a_fixed_non_root_user() -> None:
    entrypoint = STEPS.index(only("ENTRYPOINT"))
    users = [step for step in STEPS[:entrypoint] if step.keyword == "USER"]
    assert users, "no USER before ENTRYPOINT: the service would run as root"
    assert users[-1].args == f"{UID}:{UID}"
    # nothing after ENTRYPOINT switches back
    assert not [step for step in STEPS[entrypoint:] if step.keyword == "USER"]
    created = " ".join(step.args for step in STEPS if step.keyword == "RUN")
    assert f"--uid {UID}" in created
    assert f"--gid {UID}" in created


def test_entrypoint_command_and_signals() -> None:
    assert only("ENTRYPOINT").exec_form() == ["syncd"]
    assert only("CMD").exec_form() == [
        "-c",
        "/etc/syncd/syncd.yaml",
        "run",
        "--log-format",
        "json",
    ]
    assert only("STOPSIGNAL").args == "SIGTERM"
    assert only("EXPOSE").args.split() == ["9464"]


def test_volumes_are_prepared_before_they_are_declared() -> None:
    """Docker drops changes made to a volume path after VOLUME, and seeds a new named
    volume from the image: the directories must exist, owned by syncd, before it."""
    volume = only("VOLUME")
    assert volume.exec_form() == VOLUMES
    position = STEPS.index(volume)
    assert all(step.keyword != "RUN" for step in STEPS[position:])
    runs = " ".join(step.args for step in STEPS[:position] if step.keyword == "RUN")
    assert re.search(r"-o syncd -g syncd /var/lib/syncd /var/log/syncd", runs)
    assert re.search(r"-o root -g syncd /etc/syncd", runs)


def test_no_secrets_and_no_downloads_in_the_image() -> None:
    for step in STEPS:
        if step.keyword == "ADD":
            assert not re.search(r"(https?|git)://|git@", step.args), f"line {step.line}"
        if step.keyword in {"ENV", "ARG"}:
            for token in shlex.split(step.args):
                name = token.partition("=")[0]
                assert not SECRET_NAME.search(name), f"line {step.line}: {name}"
    assert env()["CREDENTIALS_DIRECTORY"] == "/run/secrets"  # a path, mounted at run time


def test_build_context_has_what_copy_needs() -> None:
    """The context is the repository root (docker build -f docker/Dockerfile .)."""
    sources = []
    for step in STEPS:
        if step.keyword == "COPY":
            words = [word for word in step.args.split() if not word.startswith("--")]
            sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not SECRET_NAME.search(source), source
        assert "credential" not in source, source


class Healthz(BaseHTTPRequestHandler):
    status: ClassVar[int] = 200

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok" if self.status == 200 else "starting"}).encode()
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet test output."""


@pytest.fixture
def healthz() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthz)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command(
    healthz: str, monkeypatch: pytest.MonkeyPatch, status: int, healthy: bool
) -> None:
    """The HEALTHCHECK's own command, run against a stand-in for the daemon."""
    options, _, command = only("HEALTHCHECK").args.partition(" CMD ")
    assert "--start-period=" in options
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert env()["SYNCD_HEALTHZ_URL"] == "http://127.0.0.1:9464/healthz"
    monkeypatch.setattr(Healthz, "status", status)
    result = subprocess.run(
        [sys.executable, "-c", argv[2]],
        env={**os.environ, "SYNCD_HEALTHZ_URL": healthz},
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert (result.returncode == 0) == healthy, result.stderr


COMPOSE_FILE = DOCKER / "compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES = COMPOSE["services"]
DEMO_CONFIG = yaml.safe_load((DOCKER / "syncd.yaml").read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    # No compose plugin and no engine here: the specification's JSON schema stands in
    # for `docker compose config`.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services() -> None:
    assert {"openldap", "scim", "syncd"} <= SERVICES.keys()
    syncd = SERVICES["syncd"]
    assert syncd["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert syncd["user"] == f"{UID}:{UID}"
    assert syncd["read_only"] is True
    assert syncd["cap_drop"] == ["ALL"]
    check = syncd["healthcheck"]
    assert not check.get("disable")
    assert "/healthz" in " ".join(check["test"])
    assert {"openldap", "scim-groups"} <= syncd["depends_on"].keys()
    mounts = {volume.split(":")[1]: volume for volume in syncd["volumes"]}
    assert {"/var/lib/syncd", "/var/log/syncd", "/etc/syncd/syncd.yaml"} <= mounts.keys()
    assert mounts["/etc/syncd/syncd.yaml"].endswith(":ro")
    # metrics published on the host's loopback only
    assert syncd["ports"] == ["127.0.0.1:9464:9464"]


def test_compose_keeps_secrets_out_of_the_file() -> None:
    """Secrets come from files as compose secrets; no password or token is written in
    compose.yaml or passed in an environment variable."""
    assert all(set(spec) == {"file"} for spec in COMPOSE["secrets"].values())
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert key.endswith("_FILE"), f"{name}: {key}"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}"
        for secret in service.get("secrets", []):
            assert secret in COMPOSE["secrets"], f"{name}: {secret}"
    scim = " ".join(SERVICES["scim"]["command"])
    assert "/run/secrets/scim-token" in scim


def test_compose_bind_mounts_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).is_file(), f"{name}: {source}"


def test_demo_config_is_valid(tmp_path: Path) -> None:
    """The real config loader accepts the demo config, with its secrets where the image
    looks for them ($CREDENTIALS_DIRECTORY)."""
    for secret in COMPOSE["secrets"]:
        (tmp_path / secret).write_text("not-a-real-secret\n")
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(DOCKER / "syncd.yaml"), "check-config"],
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_config_listens_for_the_health_check() -> None:
    daemon = DEMO_CONFIG["daemon"]
    assert daemon["metrics_address"] == "0.0.0.0:9464"
    assert daemon["state_dir"] == "/var/lib/syncd"
    assert DEMO_CONFIG["audit"]["path"].startswith("/var/log/syncd/")


def test_demo_directories_have_the_mapped_groups() -> None:
    """Every group a role maps to exists in the demo's LDAP seed or is created by the
    scim-groups job: syncd only manages memberships of existing groups."""
    seed = (DOCKER / "openldap-seed.ldif").read_text()
    entries = set(re.findall(r"^dn: (.+)$", seed, re.MULTILINE))
    targets = DEMO_CONFIG["targets"]
    scim_groups = set(SERVICES["scim-groups"]["command"][4:])
    for role, mapping in DEMO_CONFIG["roles"].items():
        for target, groups in mapping.items():
            known = entries if targets[target]["type"] == "ldap" else scim_groups
            assert set(groups) <= known, f"{role} -> {target}"
    assert targets["corp-ldap"]["base_dn"] in entries
    policy = re.search(r"olcPPolicyDefault: (.+)", (DOCKER / "openldap-ppolicy.sh").read_text())
    assert policy is not None
    assert policy.group(1) in entries
