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
from datetime import UTC, datetime
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


def first_record_after(host: Host, since: float, match: Callable[[dict[str, Any]], bool]) -> float:
    """Unix time of the first record of ``host`` after ``since`` that ``match`` accepts."""
    for record in host.audit():
        at = record["time"] / 1000
        if at >= since and match(record):
            return float(at)
    raise AssertionError(f"no such record in {host.name}'s trail")


def failover_trial(
    lab: Any, hosts: list[Host], index: int, keep: list[dict[str, Any]], end_after: float = 1.0
) -> tuple[float, float]:
    """Kill the leader with ``kill -9`` while a contract's end is ``end_after`` seconds
    ahead; (seconds from the kill to the new leader's first write, seconds from the end
    to the account's disable). ``keep``: the other contracts of the source; the trial's
    is added to it. The killed host is started again, as a follower."""
    from tests.labs.common import contract, day
    from tests.labs.ldap import dn_of

    leader = leader_of(hosts)
    others = [h for h in hosts if h is not leader]
    uid = f"per.trial{index}"
    trial = contract(f"T-{index}", "Per", f"Trial{index}", ["developer"], day(-1), day(9))
    lab.contracts(*keep, trial)
    wait_for(lambda: lab.entry(dn_of(uid)) is not None, 10, leader)
    # the followers know the contract before it is cut short: their snapshot is warm
    killed = time.time() + 2.0
    end = datetime.fromtimestamp(killed + end_after, UTC)
    keep.append({**trial, "end": end.isoformat()})
    lab.contracts(*keep)
    time.sleep(max(0.0, killed - time.time()))
    leader.kill()
    killed = time.time()
    wait_for(lambda: "pwdaccountlockedtime" in (lab.entry(dn_of(uid)) or {}), 30)
    new = next(h for h in others if h.role() == "leader")
    first_write = first_record_after(new, killed, lambda r: r.get("status") == "Intent")

    def disable(record: dict[str, Any]) -> bool:
        return (
            record.get("activity_name") == "Disable"
            and record.get("status") == "Success"
            and record["user"]["name"] == uid
        )

    def recorded() -> bool:
        try:
            return any(disable(r) for r in new.audit() if r["time"] / 1000 >= killed)
        except ValueError:  # a line being written
            return False

    # the lock is in the directory before its outcome is on the trail: it is recorded
    # once the read-back verified it
    wait_for(recorded, 10, new)
    disabled = first_record_after(new, killed, disable)
    leader.start()
    wait_for(lambda: leader.role() == "follower", 10, leader)
    return first_write - killed, disabled - end.timestamp()
