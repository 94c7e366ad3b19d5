"""Several ``syncd run`` hosts on one machine for the HA tests and benchmark: each its
own config file, state folder, audit trail and metrics port, all sharing the lab's
target (slapd), its contracts file and one etcd cluster (``tests.servers.etcd``)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml

from tests.labs.common import SyncdBench


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Host:
    """One ``syncd run`` process named ``name`` (its election name too)."""

    def __init__(self, lab: SyncdBench, name: str, endpoints: list[str], ttl: int = 3) -> None:
        self.lab, self.name = lab, name
        self.port = free_port()
        lab.write_config()
        config: dict[str, Any] = yaml.safe_load(lab.config_path.read_text())
        config["audit"] = {**config.get("audit", {}), "path": f"audit-{name}.jsonl"}
        config["daemon"] = {
            **config.get("daemon", {}),
            "interval": "300s",
            "state_dir": f"state-{name}",
            "metrics_address": f"127.0.0.1:{self.port}",
        }
        config["ha"] = {
            "endpoints": endpoints,
            "name": name,
            "lease_ttl": ttl,
            "margin": 1,
            "timeout": 1,
        }
        self.config_path = lab.work / f"syncd-{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.audit_path = lab.work / f"audit-{name}.jsonl"
        self.log = lab.work / f"daemon-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Host:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(self.config_path), "run"],
            stderr=self.log.open("a"),
        )
        wait_for(lambda: self.health()[0] == 200, 15, self)
        return self

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def health(self) -> tuple[int, dict[str, Any]]:
        code, body = self.get("/healthz")
        return code, (json.loads(body) if code else {})

    def role(self) -> str:
        return str(self.health()[1].get("role", ""))

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]

    def writes(self) -> list[dict[str, Any]]:
        """The intents in this host's trail: what it set out to write."""
        return [r for r in self.audit() if r.get("status") == "Intent"]

    def logs(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_for(check: Callable[[], bool], seconds: float, host: Host | None = None) -> float:
    """Seconds until ``check`` held; AssertionError (with the host's log) if it did not."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if check():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("timed out" + (f"; log of {host.name}:\n{host.logs()}" if host else ""))


def leader_of(hosts: list[Host]) -> Host:
    leaders = [h for h in hosts if h.role() == "leader"]
    assert len(leaders) == 1, [(h.name, h.health()) for h in hosts]
    return leaders[0]
