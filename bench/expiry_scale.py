"""Expiry lag at scale, for ``bench/daemon_expiry.py``: one ``syncd run`` against a
target holding N managed accounts, of which ``staggered`` contracts end over ``spread``
seconds and a burst of ``burst`` contracts ends at one second after them.

The target is seeded by fast paths before the daemon starts: for slapd the accounts
are loaded offline with ``slapadd`` (``start_slapd(extra_ldif=...)``) as syncd would
write them, for scim2-server syncd's own first sync creates them through ``/Bulk``.
One ``syncd sync`` then converges whatever the seed left out (group members), and a
second one sets the ends measured, so that the daemon starts on a converged target
and its first cycle changes nothing. Lags come from the Disable outcomes of the audit
trail. ``daemon.targeted_cycles`` is set when ``targeted`` is not None.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from tests.servers.scim import Directory, start_scim
from tests.servers.slapd import start_slapd

CONTRACTORS = "ou=contractors,dc=example,dc=test"
GROUPS = "ou=groups,dc=example,dc=test"
FAR = 30  # days: the end of the contracts that do not end during the run


@dataclass(frozen=True)
class Scale:
    """What one run measured: the staggered lags and the burst's first and last
    disable, seconds after the contract's end."""

    lags: list[float]
    burst_first: float
    burst_last: float
    seed_seconds: float  # seeding and the converging sync, for the record


def username(i: int) -> str:
    return f"c{i:06d}"


def email(i: int) -> str:
    return f"p{i}@vendor.example"


def contracts_csv(path: Path, ends: list[str]) -> None:
    start = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    rows = ["id,email,given_name,family_name,roles,start,end,username"]
    rows += [
        f"C-{i},{email(i)},Per,Son{i},developer,{start},{end},{username(i)}"
        for i, end in enumerate(ends)
    ]
    path.write_text("\n".join(rows) + "\n")


def ldif(n: int, end: datetime) -> str:
    """The accounts syncd's ldap target writes with its default attributes, and the
    native expiry of a contract ending on ``end``'s day."""
    access_end = datetime.combine(end.date() + timedelta(days=1), datetime.min.time(), UTC)
    stamp = access_end.strftime("%Y%m%d%H%M%SZ")
    return "".join(
        f"dn: uid={username(i)},{CONTRACTORS}\nobjectClass: inetOrgPerson\n"
        f"uid: {username(i)}\ncn: Per Son{i}\nsn: Son{i}\ngivenName: Per\n"
        f"displayName: Per Son{i}\nmail: {email(i)}\nemployeeNumber: {email(i)}\n"
        f"description: contractor: C-{i}\npwdEndTime: {stamp}\n\n"
        for i in range(n)
    )


def ldap_target(work: Path, n: int, far: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    server = start_slapd(work / "slapd", nosync=True, extra_ldif=ldif(n, far))
    secret = work / "bind-password"
    secret.write_text(server.service_password)
    secret.chmod(0o600)
    target = {
        "type": "ldap",
        "urls": server.ldaps_url,
        "ca_file": str(server.ca_file),
        "bind_user": server.service_dn,
        "password_file": str(secret),
        "base_dn": CONTRACTORS,
    }
    return {"target": target, "group": f"cn=developers,{GROUPS}"}, server.stop


def scim_target(work: Path, n: int, far: datetime) -> tuple[dict[str, Any], Callable[[], None]]:
    server = start_scim(work / "scim2-server")
    directory = Directory(server.url, server.token)
    directory.add_group("developers")
    directory.close()
    token = work / "token"
    token.write_text(server.token)
    target = {"type": "scim", "url": server.url, "allow_plaintext": True, "token_file": str(token)}
    target["timeout"] = 600  # scim2-server answers a group of 10,000 members slowly
    return {"target": target, "group": "developers"}, server.stop


TARGETS = {"ldap": ldap_target, "scim": scim_target}


def write_config(work: Path, kind: dict[str, Any], port: int, targeted: bool | None) -> Path:
    daemon: dict[str, Any] = {
        "interval": "300s",
        "state_dir": "state",
        "metrics_address": f"127.0.0.1:{port}",
    }
    if targeted is not None:
        daemon["targeted_cycles"] = targeted
    config = {
        "source": {"type": "file", "path": "contracts.csv"},
        "policy": {"timezone": "UTC"},
        "roles": {"developer": {"corp": [kind["group"]]}},
        "targets": {"corp": kind["target"]},
        "audit": {"path": "audit.jsonl"},
        "daemon": daemon,
    }
    path = work / "syncd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def accepts_targeted(work: Path) -> bool:
    """Whether this syncd's config has ``daemon.targeted_cycles`` (``check-config``)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "contracts.csv").write_text("id,email,given_name,family_name,roles,start,end\n")
    target = {"type": "scim", "url": "http://127.0.0.1:9/scim", "allow_plaintext": True}
    (work / "t").write_text("token")
    kind = {"target": {**target, "token_file": "t"}, "group": "developers"}
    config = write_config(work, kind, 9, True)
    check = [sys.executable, "-m", "syncd", "-c", str(config), "check-config"]
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


def sync(config: Path) -> float:
    started = time.monotonic()
    with (config.parent / "sync.log").open("a") as log:
        code = subprocess.call(
            [sys.executable, "-m", "syncd", "-c", str(config), "sync"], stdout=log, stderr=log
        )
    if code != 0:
        raise SystemExit(f"syncd sync exited {code}; see {config.parent / 'sync.log'}")
    return time.monotonic() - started


class Disables:
    """Username -> time of its successful Disable outcome, read from the audit trail as
    it grows: each look reads only what was appended since the last (parsing the whole
    trail every second took a fifth of a core from the daemon measured). The open file
    is read to its end when the trail rotates, then the new one."""

    def __init__(self, audit: Path) -> None:
        self.audit = audit
        self.trail: BinaryIO | None = None
        self.rest = b""
        self.done: dict[str, float] = {}

    def __call__(self) -> dict[str, float]:
        while True:
            if self.trail is None:
                if not self.audit.exists():
                    return self.done
                self.trail = self.audit.open("rb")
            self._take(self.trail.read())
            try:
                rotated = os.stat(self.audit).st_ino != os.fstat(self.trail.fileno()).st_ino
            except FileNotFoundError:
                rotated = True
            if not rotated:
                return self.done
            self._take(self.trail.read())
            self.trail.close()
            self.trail, self.rest = None, b""

    def _take(self, chunk: bytes) -> None:
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()  # a line being written waits for the next look
        for line in lines:
            if b'"Disable"' not in line:
                continue
            record = json.loads(line)
            if record.get("activity_name") == "Disable" and record.get("status") == "Success":
                self.done[record["user"]["name"]] = record["time"] / 1000

    def close(self) -> None:
        if self.trail is not None:
            self.trail.close()


def run_scale(
    work: Path,
    target: str,
    sizes: tuple[int, int, int, int],
    targeted: bool | None,
    start_daemon: Callable[[Path, int], subprocess.Popen[bytes]],
    port: int,
) -> Scale:
    """``sizes``: managed accounts, staggered ends, their spread (s), burst."""
    n, staggered, spread, burst = sizes
    far = datetime.now(UTC) + timedelta(days=FAR)
    work.mkdir(parents=True)
    started = time.monotonic()
    kind, stop = TARGETS[target](work, n, far)
    proc = None
    disables = Disables(work / "audit.jsonl")
    try:
        config = write_config(work, kind, port, targeted)
        contracts_csv(work / "contracts.csv", [far.date().isoformat()] * n)
        took = sync(config)
        seeded = time.monotonic() - started
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20 + 3 * took)
        ends = [first + timedelta(seconds=spread * i / staggered) for i in range(staggered)]
        burst_end = first + timedelta(seconds=spread + 10)
        ending = [e.isoformat() for e in ends] + [burst_end.isoformat()] * burst
        contracts_csv(work / "contracts.csv", ending + [far.date().isoformat()] * (n - len(ending)))
        sync(config)
        proc = start_daemon(config, port)
        if datetime.now(UTC) >= first:
            print(f"  warning: {target} daemon ready after the first end", file=sys.stderr)
        deadline = burst_end.timestamp() + 120 + n / 100
        while time.time() < deadline and len(disables()) < len(ending):
            time.sleep(1)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        stop()
    done = disables()
    disables.close()
    missing = float("inf")
    lags = [done.get(username(i), missing) - ends[i].timestamp() for i in range(staggered)]
    burst_times = [done.get(username(i), missing) for i in range(staggered, len(ending))]
    at = burst_end.timestamp()
    return Scale(sorted(lags), min(burst_times) - at, max(burst_times) - at, seeded)
