"""Benchmark: how late ``syncd run`` revokes access, and what it costs when idle.

(a) Expiry lag: 200 contracts ending at staggered times over one minute, daemon with
    ``interval: 300s``; the lag of each account is the time of its Disable outcome in
    the audit trail minus the contract's end. Printed as p50/p99/max, and against the
    baseline of the same run's poll interval: a daemon that only polled every 300 s
    would be late by half the interval on average and the whole interval at worst.
(b) Idle cost with 10,000 managed accounts: CPU seconds per minute and RSS of the
    daemon while nothing changes, against a bare Python process that only wakes to
    stat the contracts file as often as the daemon does (the floor for file watching).
(c) Expiry lag at scale (``bench/expiry_scale.py``): with 10,000 managed accounts
    (``--n 10000 100000`` adds 100,000), 200 contracts ending over one minute (lag
    p50/p99/max) and a burst of 5,000 ending at the same second (time to the first and
    the last disable), for slapd and scim2-server, with ``daemon.targeted_cycles: true``
    (a boundary observes only the people it changes) against ``false`` (a full cycle at
    each boundary, the baseline of the same run). A syncd whose config lacks the key
    (``syncd check-config`` says so) is measured once, as it is.

Runs against throwaway slapds (``dbnosync``) and scim2-servers.
``python bench/daemon_expiry.py`` (about half an hour at 10,000; ``--quick`` for 50
contracts over 20 s, 2,000 accounts, and 2,000 accounts with a burst of 500 in (c)).
``--scale-only`` runs (c) alone, ``--targets ldap`` (or ``scim``) one kind. scim2-server
answers every request on a group with all its members, and at 10,000 members its
seeding sync times out here: measure SCIM with ``--scale-only --targets scim --quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.expiry_scale import Scale, accepts_targeted, run_scale  # noqa: E402
from tests.servers.slapd import Slapd, start_slapd  # noqa: E402

GROUPS = "ou=groups,dc=example,dc=test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(work: Path, server: Slapd, port: int) -> Path:
    secret = work / "bind-password"
    secret.write_text(server.service_password)
    secret.chmod(0o600)
    config = {
        "source": {"type": "file", "path": "contracts.csv"},
        "policy": {"timezone": "UTC"},
        "roles": {"developer": {"corp": [f"cn=developers,{GROUPS}"]}},
        "targets": {
            "corp": {
                "type": "ldap",
                "urls": server.ldaps_url,
                "ca_file": str(server.ca_file),
                "bind_user": server.service_dn,
                "password_file": str(secret),
                "base_dn": "ou=contractors,dc=example,dc=test",
            }
        },
        "audit": {"path": "audit.jsonl"},
        "daemon": {
            "interval": "300s",
            "state_dir": "state",
            "metrics_address": f"127.0.0.1:{port}",
        },
    }
    path = work / "syncd.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_contracts(work: Path, ends: list[str]) -> None:
    rows = ["id,email,given_name,family_name,roles,start,end,username"]
    start = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    rows += [
        f"C-{i},p{i}@vendor.example,Per,Son{i},developer,{start},{end},c{i:05d}"
        for i, end in enumerate(ends)
    ]
    (work / "contracts.csv").write_text("\n".join(rows) + "\n")


def start_daemon(config: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "-c", str(config), "run"],
        stderr=(config.parent / "daemon.log").open("w"),
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the daemon did not become healthy; see daemon.log")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def expiry_lag(work: Path, count: int, spread: int) -> list[float]:
    server = start_slapd(work / "slapd", nosync=True)
    proc = None
    try:
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
        ends = [first + timedelta(seconds=spread * i / count) for i in range(count)]
        write_contracts(work, [e.isoformat() for e in ends])
        port = free_port()
        proc = start_daemon(write_config(work, server, port), port)
        time.sleep(max(0.0, (ends[-1] - datetime.now(UTC)).total_seconds()) + 3)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        server.stop()
    by_user: dict[str, float] = {}
    for line in (work / "audit.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("activity_name") == "Disable" and record["status"] == "Success":
            by_user[record["user"]["name"]] = record["time"] / 1000
    return [by_user[f"c{i:05d}"] - ends[i].timestamp() for i in range(count)]


def idle_cost(work: Path, accounts: int, seconds: int) -> tuple[float, float, float, float]:
    server = start_slapd(work / "slapd", nosync=True)
    proc = None
    try:
        write_contracts(
            work, [(datetime.now(UTC) + timedelta(days=30)).date().isoformat()] * accounts
        )
        port = free_port()
        proc = start_daemon(write_config(work, server, port), port)
        time.sleep(2)
        before = cpu_seconds(proc.pid)
        time.sleep(seconds)
        daemon_cpu = (cpu_seconds(proc.pid) - before) * 60 / seconds
        daemon_rss = rss_mb(proc.pid)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        server.stop()
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, time\n"
                f"p = {str(work / 'contracts.csv')!r}\n"
                "while True:\n    os.stat(p)\n    time.sleep(0.5)\n"
            ),
        ]
    )
    try:
        time.sleep(2)
        before = cpu_seconds(watcher.pid)
        time.sleep(seconds)
        base_cpu = (cpu_seconds(watcher.pid) - before) * 60 / seconds
        base_rss = rss_mb(watcher.pid)
    finally:
        watcher.kill()
        watcher.wait()
    return daemon_cpu, daemon_rss, base_cpu, base_rss


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def scale_runs(
    root: Path, sizes: list[int], quick: bool, targets: tuple[str, ...] = ("ldap", "scim")
) -> tuple[dict[tuple[str, int, bool | None], Scale], bool]:
    """(target, accounts, targeted) -> what (c) measured; whether the key exists."""
    supported = accepts_targeted(root / "probe")
    modes: list[bool | None] = [True, False] if supported else [None]
    staggered, spread, burst = (50, 20, 500) if quick else (200, 60, 5000)
    out = {}
    for n in sizes:
        for target in targets:
            for mode in modes:
                work = root / f"{target}-{n}-{mode}"
                shape = (n, staggered, spread, burst)
                out[target, n, mode] = run_scale(
                    work, target, shape, mode, start_daemon, free_port()
                )
    return out, supported


def print_scale(
    runs: dict[tuple[str, int, bool | None], Scale], supported: bool, quick: bool
) -> None:
    staggered, spread, burst = (50, 20, 500) if quick else (200, 60, 5000)
    print(
        f"expiry at scale: {staggered} contracts ending over {spread} s, then {burst:,} "
        "ending at one second"
    )
    if not supported:
        print("  (this syncd has no daemon.targeted_cycles: measured as it is)")
    for (target, n, mode), run in runs.items():
        label = {True: "targeted", False: "full", None: "as is"}[mode]
        lags = run.lags
        line = (
            f"  {target:<4} {n:>7,} accounts  {label:<8}  lag p50 {statistics.median(lags):6.2f} s"
            f"  p99 {percentile(lags, 0.99):6.2f} s  max {lags[-1]:6.2f} s   burst first "
            f"{run.burst_first:6.2f} s  last {run.burst_last:6.2f} s"
            f"  (seeded in {run.seed_seconds:.0f} s)"
        )
        print(line)
        base = runs.get((target, n, False))
        if mode is True and base is not None:
            print(
                f"  {'':<4} {'':>7}           ratio     targeted / full: lag p50 "
                f"{_ratio(statistics.median(lags), statistics.median(base.lags))}, max "
                f"{_ratio(lags[-1], base.lags[-1])}, burst last "
                f"{_ratio(run.burst_last, base.burst_last)}"
            )


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--n", type=int, nargs="+", help="managed accounts for (c) (default 10000; quick 2000)"
    )
    parser.add_argument(
        "--scale-only", action="store_true", help="run (c) alone, skipping (a) and (b)"
    )
    parser.add_argument(
        "--targets", nargs="+", choices=["ldap", "scim"], default=["ldap", "scim"], help="for (c)"
    )
    args = parser.parse_args()
    count, spread = (50, 20) if args.quick else (200, 60)
    accounts, idle = (2000, 10) if args.quick else (10000, 30)
    sizes = args.n or ([2000] if args.quick else [10000])
    if args.scale_only:
        with tempfile.TemporaryDirectory() as tmp:
            runs, supported = scale_runs(Path(tmp), sizes, args.quick, tuple(args.targets))
        print_scale(runs, supported, args.quick)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "lag").mkdir()
        (Path(tmp) / "idle").mkdir()
        lags = sorted(expiry_lag(Path(tmp) / "lag", count, spread))
        cpu, rss, base_cpu, base_rss = idle_cost(Path(tmp) / "idle", accounts, idle)
        runs, supported = scale_runs(Path(tmp) / "scale", sizes, args.quick, tuple(args.targets))
    p99 = percentile(lags, 0.99)
    print(
        f"syncd run benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        "slapd dbnosync, interval 300 s)\n"
    )
    print(f"expiry lag, {count} contracts ending over {spread} s:")
    print(f"  p50 {statistics.median(lags):.3f} s   p99 {p99:.3f} s   max {lags[-1]:.3f} s")
    print(
        f"  baseline, polling every 300 s: mean 150 s, max 300 s "
        f"(syncd's max is {lags[-1] / 300:.4f}x the poll-only worst case)"
    )
    print(f"idle with {accounts:,} managed accounts, {idle} s:")
    print(f"  syncd     {cpu:.3f} CPU s/min, RSS {rss:.0f} MB")
    print(
        f"  baseline  {base_cpu:.3f} CPU s/min, RSS {base_rss:.0f} MB "
        "(a bare Python loop stat-ing the file every 0.5 s)"
    )
    ratio = cpu / base_cpu if base_cpu else float("inf")
    print(f"  ratio     {ratio:.1f}x CPU, {rss / base_rss:.1f}x RSS")
    print_scale(runs, supported, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
