"""Benchmark: syncd's LDAP cycle against a raw ldap3 baseline, on throwaway slapds.

What it measures, for N generated contracts (1-3 roles each, all active now):

(a) the first sync (``syncd sync`` into an empty ``ou=contractors``) against a
    hand-written ldap3 script that adds the same N entries one by one and then the
    memberships as one MODIFY_ADD per group and 200 members, on its own fresh slapd
    with the same options, in the same run; reported as the ratio syncd / baseline
    (target: <= 1.3x);
(b) a converged no-op cycle right after the first sync: wall time (target: <= 2 s at
    10k), writes (target: 0) and LDAP operations, counted client-side by wrapping
    ldap3's ``Connection`` methods, at N and at N/10 to show they do not grow with N
    (paged searches grow by one page per ``page_size`` entries, so both logical
    searches and pages are shown);
(c) the peak RSS of each phase: every phase runs in its own subprocess
    (``--phase baseline|syncd``) that reports its VmHWM (``ru_maxrss`` where there is
    no /proc), taken before the result check, so peaks are not mixed.

Below each headline figure the table shows where syncd's time went (source, observe,
conflict searches, plan, apply split into LDAP writes / audit / DN building / rest),
time inside ldap3 calls per operation, GC pauses and client CPU, measured by wrapping
functions in the phase process; syncd's files are not touched.

After each first load both directories are read back and compared (entries,
attributes and memberOf digests), so the baseline and syncd did the same work.

syncd runs in-process in its phase subprocess exactly as the CLI does
(``syncd.cli.main(["-c", CONFIG, "sync"])``, its per-action stdout sent to a file).
The baseline's entries are computed before its clock starts; syncd's time includes
reading and validating the contracts file, observing, planning and the audit trail.

Run it (``make bench`` runs ``python bench/ldap_cycle.py``)::

    python bench/ldap_cycle.py                  # N=10000, slapd with dbnosync
    python bench/ldap_cycle.py --quick          # N=1000 smoke run
    python bench/ldap_cycle.py --fsync --repeat 2 --out /tmp/bench
    python bench/ldap_cycle.py --n 2000 --profile   # cProfile of syncd's first sync

Needs slapd and openssl (``make system-packages``). Figures are ratios against the
baseline of the same run because these machines are noisy; this is not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers.slapd import Slapd, SlapdError, start_slapd  # noqa: E402

SUFFIX = "dc=example,dc=test"
BASE_DN = f"ou=contractors,{SUFFIX}"
GROUPS = {
    name: f"cn={name},ou=groups,{SUFFIX}"
    for name in ("developers", "vpn-users", "wiki-editors", "ops")
}
ROLES = {
    "developer": ("developers", "vpn-users"),
    "writer": ("wiki-editors",),
    "operator": ("ops", "vpn-users"),
    "tester": ("developers",),
    "sre": ("ops", "developers", "vpn-users"),
}
ATTRIBUTES = {
    "cn": "{given_name} {family_name}",
    "sn": "{family_name}",
    "givenName": "{given_name}",
    "displayName": "{given_name} {family_name}",
    "mail": "{email}",
    "o": "{vendor}",
    "description": "contractor: {contract_ids}",
}
MEMBER_BATCH = 200  # the baseline's members per MODIFY_ADD
READ_BACK = [
    "objectClass", "uid", "cn", "sn", "givenName", "displayName", "mail", "o",
    "employeeNumber", "description", "pwdEndTime", "memberOf",
]  # fmt: skip
WRITES = ("add", "modify", "delete", "modify_dn")
TARGET_RATIO = 1.3
TARGET_NOOP_SECONDS = 2.0

GIVEN = [
    "Ana", "Bo", "Carla", "Dmitri", "Emeka", "Fatima", "Gus", "Hana", "Ivan", "Józef",
    "Kai", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
    "Ulla", "Vera", "Wen", "Xavier", "Yara", "Zoë",
]  # fmt: skip
FAMILY = [
    "López", "Chen", "Rossi", "Ivanov", "Obi", "Zahra", "Old", "Sato", "Petrov", "Nowak",
    "Müller", "Smith", "Garcia", "Kim", "Haddad", "Patel", "Brown", "Silva", "Larsen",
    "Khan", "Berg", "Novák", "Li", "Dubois", "Okafor", "Costa",
]  # fmt: skip
VENDORS = ["Vendor A", "Vendor B", "Vendor C", "Acme Consulting", "Globex"]


# -- generated data ---------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    id: str
    username: str
    email: str
    given_name: str
    family_name: str
    vendor: str
    sponsor: str
    roles: tuple[str, ...]
    start: date
    end: date  # last day included

    @property
    def dn(self) -> str:
        return f"uid={self.username},{BASE_DN}"

    @property
    def groups(self) -> list[str]:
        return sorted({GROUPS[g] for role in self.roles for g in ROLES[role]})


def generate(n: int, seed: int, today: date) -> list[Contract]:
    """N contracts, deterministic for a seed: unique usernames, all in effect today."""
    rng = random.Random(seed)
    width = max(5, len(str(n)))
    out = []
    for i in range(1, n + 1):
        username = f"c{i:0{width}d}"
        vendor = rng.choice(VENDORS)
        out.append(
            Contract(
                id=f"C-{i:0{width + 1}d}",
                username=username,
                email=f"{username}@{vendor.split()[-1].lower()}.example",
                given_name=rng.choice(GIVEN),
                family_name=rng.choice(FAMILY),
                vendor=vendor,
                sponsor=rng.choice(["jdoe@example.test", "asmith@example.test", ""]),
                roles=tuple(sorted(rng.sample(sorted(ROLES), rng.randint(1, 3)))),
                start=today - timedelta(days=rng.randint(1, 700)),
                end=today + timedelta(days=rng.randint(30, 900)),
            )
        )
    return out


def write_contracts(contracts: list[Contract], path: Path, fmt: str) -> None:
    rows = [
        {
            "id": c.id,
            "email": c.email,
            "given_name": c.given_name,
            "family_name": c.family_name,
            "username": c.username,
            "vendor": c.vendor,
            "sponsor": c.sponsor,
            "roles": ";".join(c.roles) if fmt == "csv" else list(c.roles),
            "start": c.start.isoformat(),
            "end": c.end.isoformat(),
        }
        for c in contracts
    ]
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(
            yaml.safe_dump({"contracts": rows}, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )


def baseline_entry(c: Contract) -> dict[str, list[str]]:
    """What syncd writes for a new account with ATTRIBUTES, computed independently."""
    name = f"{c.given_name} {c.family_name}"
    access_end = datetime.combine(c.end + timedelta(days=1), datetime.min.time(), UTC)
    return {
        "objectClass": ["inetOrgPerson"],
        "uid": [c.username],
        "cn": [name],
        "sn": [c.family_name],
        "givenName": [c.given_name],
        "displayName": [name],
        "mail": [c.email],
        "o": [c.vendor],
        "employeeNumber": [c.email.lower()],
        "description": [f"contractor: {c.id}"],
        "pwdEndTime": [access_end.strftime("%Y%m%d%H%M%SZ")],
    }


def write_baseline_input(contracts: list[Contract], path: Path) -> int:
    members: dict[str, list[str]] = {dn: [] for dn in sorted(GROUPS.values())}
    for c in contracts:
        for group in c.groups:
            members[group].append(c.dn)
    data = {
        "entries": [[c.dn, baseline_entry(c)] for c in contracts],
        "members": members,
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return sum(len(v) for v in members.values())


def write_config(server_file: Path, contracts: Path, audit: Path, path: Path) -> None:
    server = json.loads(server_file.read_text())
    config = {
        "source": {"type": "file", "path": str(contracts)},
        "policy": {"timezone": "UTC", "lead_time": "0s"},
        "roles": {
            role: {"bench-ldap": [GROUPS[g] for g in groups]} for role, groups in ROLES.items()
        },
        "targets": {
            "bench-ldap": {
                "type": "ldap",
                "urls": server["url"],
                "ca_file": server["ca_file"],
                "bind_user": server["bind_dn"],
                "password_file": server["password_file"],
                "base_dn": BASE_DN,
                "attributes": ATTRIBUTES,
            }
        },
        "audit": {"path": str(audit)},
    }  # no safety section: its defaults apply
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def describe_server(server: Slapd, workdir: Path) -> Path:
    """A 0600 JSON file naming the server and the service account's password file."""
    password = workdir / "bind-password"
    write_private(password, server.service_password)
    info = {
        "url": server.ldaps_url,
        "ca_file": str(server.ca_file),
        "bind_dn": server.service_dn,
        "password_file": str(password),
    }
    path = workdir / "server.json"
    write_private(path, json.dumps(info))
    return path


# -- measuring inside a phase process ---------------------------------------------------
class OpCounter:
    """Counts and times ldap3 Connection calls in this process.

    A call to ``extend.standard.paged_search`` is one logical search; every page it
    fetches is one ``Connection.search`` call, counted as a page. A plain search is one
    logical search of one page.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._paging = 0

    def install(self) -> None:
        from ldap3 import Connection
        from ldap3.extend import StandardExtendedOperations

        for name in ("bind", "unbind", "search", *WRITES):
            setattr(Connection, name, self._wrap(name, getattr(Connection, name)))
        paged = StandardExtendedOperations.paged_search

        def paged_search(ext: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls["logical_search"] += 1
            self._paging += 1
            try:
                result = paged(ext, *args, **kwargs)
            finally:
                self._paging -= 1
            if kwargs.get("generator", True) and not isinstance(result, list):
                return self._pages(result)
            return result

        StandardExtendedOperations.paged_search = paged_search

    def _pages(self, entries: Any) -> Any:
        """A generator-mode paged search fetches its pages while it is iterated."""
        self._paging += 1
        try:
            yield from entries
        finally:
            self._paging -= 1

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(conn: Any, *args: Any, **kwargs: Any) -> Any:
            if name == "search":
                self.calls["search_page"] += 1
                if not self._paging:
                    self.calls["logical_search"] += 1
            else:
                self.calls[name] += 1
            start = time.perf_counter()
            try:
                return method(conn, *args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        return wrapper

    def snapshot(self) -> dict[str, Any]:
        calls = dict(self.calls)
        return {
            "calls": calls,
            "writes": sum(calls.get(w, 0) for w in WRITES),
            "seconds": dict(self.seconds),
            "ldap_seconds": sum(self.seconds.values()),
        }


class GcClock:
    """Total time spent in the cyclic garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start

    def install(self) -> GcClock:
        gc.callbacks.append(self)
        return self


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``ru_maxrss``: Linux carries that across
    fork and exec, so a child would report at least its parent's RSS at fork time."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def stopwatch(out: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        out[key] = out.get(key, 0.0) + time.perf_counter() - start


def connect(server: dict[str, str]) -> Any:
    """A bound connection as the service account, TLS set up as syncd does."""
    from ldap3 import NONE, Connection, Server

    from syncd.targets.directory.tls import VerifiedTls

    tls = VerifiedTls(ca_file=Path(server["ca_file"]))
    conn = Connection(
        Server(server["url"], use_ssl=True, tls=tls, get_info=NONE),
        user=server["bind_dn"],
        password=Path(server["password_file"]).read_text(encoding="utf-8").strip(),
        raise_exceptions=True,
        return_empty_attributes=False,
    )
    conn.open()
    conn.bind()
    return conn


def directory_digest(server: dict[str, str]) -> dict[str, Any]:
    """Entries under the managed base and their memberOf, as a comparable digest."""
    from ldap3 import SUBTREE

    conn = connect(server)
    try:
        entries = conn.extend.standard.paged_search(
            BASE_DN,
            "(employeeNumber=*)",
            search_scope=SUBTREE,
            attributes=READ_BACK,
            paged_size=1000,
            generator=False,
        )
        lines = []
        memberships = 0
        for entry in entries:
            if entry.get("type") != "searchResEntry":
                continue
            attrs = entry["attributes"]
            parts = [entry["dn"].lower()]
            for name in sorted(READ_BACK, key=str.lower):
                raw = attrs.get(name, [])
                values = raw if isinstance(raw, list) else [raw]
                parts.append(f"{name.lower()}={sorted(str(v) for v in values)}")
            memberships += len(attrs.get("memberOf", []) or [])
            lines.append("|".join(parts))
    finally:
        conn.unbind()
    lines.sort()
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {"entries": len(lines), "memberships": memberships, "digest": digest[:16]}


def phase_baseline(server_file: Path, entries_file: Path) -> dict[str, Any]:
    from ldap3 import MODIFY_ADD

    server = json.loads(server_file.read_text())
    data = json.loads(entries_file.read_text(encoding="utf-8"))
    counter = OpCounter()
    counter.install()
    gc_clock = GcClock().install()
    cpu0, start = cpu_seconds(), time.perf_counter()
    conn = connect(server)
    for dn, attributes in data["entries"]:
        conn.add(dn, attributes=attributes)
    for group, dns in data["members"].items():
        for i in range(0, len(dns), MEMBER_BATCH):
            conn.modify(group, {"member": [(MODIFY_ADD, dns[i : i + MEMBER_BATCH])]})
    conn.unbind()
    seconds = time.perf_counter() - start
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu0,
        "gc_seconds": gc_clock.seconds,
        "peak_rss_mb": peak_rss_mb(),
        "ops": counter.snapshot(),
    }
    result["check"] = directory_digest(server)
    return result


def phase_syncd(
    config: Path, server_file: Path, output: Path, profile: Path | None
) -> dict[str, Any]:
    import syncd.cli
    import syncd.engine
    import syncd.report
    from syncd.audit import AuditWriter
    from syncd.targets.ldap import LdapDirectory

    audit = Path(yaml.safe_load(config.read_text())["audit"]["path"])
    audit_before = count_lines(audit)
    parts: dict[str, float] = {}
    # where the cycle's time goes: module functions and methods wrapped in this process
    for owner, name, key in [
        (syncd.engine, "read_source", "source"),
        (syncd.engine, "resolve", "resolve"),
        (LdapDirectory, "observe", "observe"),
        (LdapDirectory, "find_conflicts", "conflicts"),
        (syncd.engine, "plan_with_waits", "plan"),
        (syncd.engine, "apply_plan", "apply"),
        (syncd.report, "render_plan", "report"),
        (syncd.report, "render_results", "report"),
        (LdapDirectory, "dn_for", "dn_for"),
        (AuditWriter, "intent", "audit"),
        (AuditWriter, "outcome", "audit"),
        (AuditWriter, "held", "audit"),
        (AuditWriter, "conflict", "audit"),
        (AuditWriter, "event", "audit"),
        (AuditWriter, "sync", "audit"),
    ]:
        setattr(owner, name, timed(getattr(owner, name), parts, key))
    counter = OpCounter()
    counter.install()
    gc_clock = GcClock().install()
    argv = ["-c", str(config), "sync"]
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    with output.open("w", encoding="utf-8") as out, contextlib.redirect_stdout(out):
        cpu0, start = cpu_seconds(), time.perf_counter()
        if profiler is not None:
            code = profiler.runcall(syncd.cli.main, argv)
        else:
            code = syncd.cli.main(argv)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu0
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
    ops = counter.snapshot()
    top = ("source", "resolve", "observe", "conflicts", "plan", "apply", "report")
    parts["other"] = seconds - sum(parts.get(k, 0.0) for k in top)
    result: dict[str, Any] = {
        "exit_code": code,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "gc_seconds": gc_clock.seconds,
        "peak_rss_mb": peak_rss_mb(),
        "ops": ops,
        "parts": parts,
        "audit_records": count_lines(audit) - audit_before,
        "summary": last_summary(output),
    }
    if ops["writes"]:
        result["check"] = directory_digest(json.loads(server_file.read_text()))
    return result


def timed(function: Callable[..., Any], parts: dict[str, float], key: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with stopwatch(parts, key):
            return function(*args, **kwargs)

    return wrapper


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def last_summary(output: Path) -> str:
    lines = [ln for ln in output.read_text(encoding="utf-8").splitlines() if ln.strip()]
    summaries = [ln for ln in lines if ln.startswith("Summary:")]
    return summaries[-1] if summaries else (lines[-1] if lines else "")


# -- orchestration (parent process) -----------------------------------------------------
class PhaseError(RuntimeError):
    pass


def run_phase(out: Path, label: str, args: list[str]) -> dict[str, Any]:
    result_file = out / f"{label}.result.json"
    stderr_file = out / f"{label}.stderr"
    cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--result", str(result_file)]
    with stderr_file.open("wb") as err:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, check=False)
    if proc.returncode != 0 or not result_file.exists():
        tail = stderr_file.read_text(errors="replace")[-3000:]
        raise PhaseError(f"phase {label} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


@dataclass
class Dataset:
    n: int
    contracts: Path
    entries: Path
    memberships: int


def make_dataset(out: Path, n: int, seed: int, fmt: str) -> Dataset:
    contracts = generate(n, seed, datetime.now(UTC).date())
    path = out / f"contracts-{n}.{fmt}"
    write_contracts(contracts, path, fmt)
    entries = out / f"baseline-{n}.json"
    memberships = write_baseline_input(contracts, entries)
    return Dataset(n, path, entries, memberships)


class Servers:
    """Fresh slapds on demand; all stopped by ``stop_all`` (their mdb files removed)."""

    def __init__(self, nosync: bool) -> None:
        self.nosync = nosync
        self.running: list[Slapd] = []

    def fresh(self, workdir: Path) -> tuple[Slapd, Path]:
        server = start_slapd(workdir, nosync=self.nosync)
        self.running.append(server)
        return server, describe_server(server, workdir)

    def stop(self, server: Slapd) -> None:
        server.stop()
        shutil.rmtree(server.workdir / "data", ignore_errors=True)
        if server in self.running:
            self.running.remove(server)

    def stop_all(self) -> None:
        for server in list(self.running):
            self.stop(server)


def run_baseline(servers: Servers, out: Path, data: Dataset, tag: str) -> dict[str, Any]:
    label = f"baseline-{data.n}-{tag}"
    server, info = servers.fresh(out / f"slapd-{label}")
    try:
        return run_phase(
            out,
            label,
            ["--phase", "baseline", "--server", str(info), "--entries", str(data.entries)],
        )
    finally:
        servers.stop(server)


def run_syncd(
    servers: Servers, out: Path, data: Dataset, tag: str, profile: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    label = f"syncd-{data.n}-{tag}"
    workdir = out / f"slapd-{label}"
    server, info = servers.fresh(workdir)
    try:
        config = workdir / "syncd.yaml"
        write_config(info, data.contracts, out / f"audit-{label}.jsonl", config)
        common = ["--phase", "syncd", "--server", str(info), "--config", str(config)]
        first_args = [*common, "--output", str(out / f"{label}-first.out")]
        if profile:
            first_args += ["--profile-file", str(out / f"{label}-first.pstats")]
        first = run_phase(out, f"{label}-first", first_args)
        noop = run_phase(
            out, f"{label}-noop", [*common, "--output", str(out / f"{label}-noop.out")]
        )
        return first, noop
    finally:
        servers.stop(server)


def run_pair(
    servers: Servers, out: Path, data: Dataset, order: list[str], tag: str, profile: bool
) -> dict[str, Any]:
    pair: dict[str, Any] = {"n": data.n, "order": order}
    for which in order:
        print(f"  N={data.n}: {which} ...", file=sys.stderr, flush=True)
        if which == "baseline":
            pair["baseline"] = run_baseline(servers, out, data, tag)
        else:
            pair["first"], pair["noop"] = run_syncd(servers, out, data, tag, profile)
    pair["ratio"] = pair["first"]["seconds"] / pair["baseline"]["seconds"]
    pair["same_result"] = pair["first"].get("check") == pair["baseline"]["check"]
    return pair


def summarize(pairs: list[dict[str, Any]], data: Dataset) -> dict[str, Any]:
    """Medians over repeated pairs of one N (a single pair is itself)."""

    def med(get: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(get(p) for p in pairs)

    last = pairs[-1]
    return {
        "n": last["n"],
        "memberships": data.memberships,
        "pairs": len(pairs),
        "orders": [" → ".join(p["order"]) for p in pairs],
        "baseline_s": med(lambda p: p["baseline"]["seconds"]),
        "syncd_s": med(lambda p: p["first"]["seconds"]),
        "ratio": med(lambda p: p["ratio"]),
        "noop_s": med(lambda p: p["noop"]["seconds"]),
        "baseline": last["baseline"],
        "first": last["first"],
        "noop": last["noop"],
        "same_result": all(p["same_result"] for p in pairs),
    }


def fmt_ops(ops: dict[str, Any]) -> str:
    calls = ops["calls"]
    return (
        f"{calls.get('logical_search', 0)} searches, {calls.get('search_page', 0)} pages, "
        f"{calls.get('bind', 0)} bind"
    )


def apply_split(run: dict[str, Any]) -> str:
    """apply's wall time split: LDAP writes, audit records + fsync, dn_for, the rest."""
    parts, seconds = run["parts"], run["ops"]["seconds"]
    writes = sum(seconds.get(w, 0.0) for w in WRITES)
    audit, dns = parts.get("audit", 0.0), parts.get("dn_for", 0.0)
    rest = parts.get("apply", 0.0) - writes - audit - dns
    return f"{writes:.2f} / {audit:.2f} / {dns:.2f} / {rest:.2f} s"


def fmt_parts(run: dict[str, Any], keys: tuple[str, ...]) -> str:
    parts = run["parts"]
    values = [sum(parts.get(k, 0.0) for k in key.split("+")) for key in keys]
    return " / ".join(f"{v:.2f}" for v in values) + " s"


def fmt_calls(r: dict[str, Any], name: str, only_syncd: bool = False) -> str:
    def one(ops: dict[str, Any]) -> str:
        count = ops["calls"].get("search_page" if name == "search" else name, 0)
        return f"{count:,} in {ops['seconds'].get(name, 0.0):.2f} s"

    if only_syncd:
        return one(r["first"]["ops"])
    return f"{one(r['baseline']['ops'])} / {one(r['first']['ops'])}"


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    mode = "dbnosync (writes not durable)" if args.nosync else "fsync (durable writes, slower)"
    head = [
        f"syncd LDAP cycle benchmark: slapd {mode}, ldaps on 127.0.0.1, one connection,",
        f"contracts from {args.source.upper()}, seed {args.seed}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}",
        "",
    ]
    table: list[tuple[str, ...]] = [("", *(f"N={r['n']:,}" for r in rows))]

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        table.append((label, *(get(r) for r in rows)))

    row("memberships to add", lambda r: f"{r['memberships']:,}")
    row("run order", lambda r: "; ".join(r["orders"]))
    row("baseline first load (raw ldap3)", lambda r: f"{r['baseline_s']:.2f} s")
    row("syncd first sync", lambda r: f"{r['syncd_s']:.2f} s")
    row(
        "ratio syncd / baseline (<= 1.3)",
        lambda r: f"{r['ratio']:.2f}x " + ("ok" if r["ratio"] <= TARGET_RATIO else "MISSED"),
    )
    row(
        "  syncd source/observe/conflicts/plan",
        lambda r: fmt_parts(r["first"], ("source", "observe", "conflicts", "resolve+plan")),
    )
    row("  syncd apply", lambda r: fmt_parts(r["first"], ("apply",)))
    row("    LDAP writes/audit/dn_for/rest", lambda r: apply_split(r["first"]))
    row("  syncd other (config, report...)", lambda r: fmt_parts(r["first"], ("other",)))
    row(
        "  in ldap3 calls baseline / syncd",
        lambda r: (
            f"{r['baseline']['ops']['ldap_seconds']:.2f} / "
            f"{r['first']['ops']['ldap_seconds']:.2f} s"
        ),
    )
    row("  adds baseline / syncd", lambda r: fmt_calls(r, "add"))
    row("  modifies baseline / syncd", lambda r: fmt_calls(r, "modify"))
    row("  searches syncd", lambda r: fmt_calls(r, "search", only_syncd=True))
    row(
        "  GC pauses baseline / syncd",
        lambda r: f"{r['baseline']['gc_seconds']:.2f} / {r['first']['gc_seconds']:.2f} s",
    )
    row(
        "  client CPU baseline / syncd",
        lambda r: f"{r['baseline']['cpu_seconds']:.2f} / {r['first']['cpu_seconds']:.2f} s",
    )
    row(
        "  same entries + memberOf",
        lambda r: (
            ("yes " if r["same_result"] else "NO ")
            + f"({r['first'].get('check', {}).get('entries', '?')} entries)"
        ),
    )
    row(
        "no-op cycle (<= 2 s)",
        lambda r: (
            f"{r['noop_s']:.2f} s " + ("ok" if r["noop_s"] <= TARGET_NOOP_SECONDS else "MISSED")
        ),
    )
    row(
        "  no-op source/observe/plan",
        lambda r: fmt_parts(r["noop"], ("source", "observe", "resolve+plan")),
    )
    row("no-op LDAP ops", lambda r: fmt_ops(r["noop"]["ops"]))
    row("no-op writes", lambda r: str(r["noop"]["ops"]["writes"]))
    row("no-op plan", lambda r: r["noop"]["summary"].removeprefix("Summary: "))
    row(
        "audit records first / no-op",
        lambda r: f"{r['first']['audit_records']:,} / {r['noop']['audit_records']:,}",
    )
    row(
        "peak RSS syncd first / no-op",
        lambda r: f"{r['first']['peak_rss_mb']:.0f} / {r['noop']['peak_rss_mb']:.0f} MB",
    )
    row("peak RSS baseline", lambda r: f"{r['baseline']['peak_rss_mb']:.0f} MB")
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    body = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in table]  # fmt: skip
    body.insert(1, "  ".join("-" * w for w in widths))
    logical = {r["noop"]["ops"]["calls"].get("logical_search", 0) for r in rows}
    writes = sum(r["noop"]["ops"]["writes"] for r in rows)
    foot = [
        "",
        "no-op: logical searches "
        + ("independent of N" if len(logical) == 1 else "DEPEND ON N")
        + f"; pages grow by one per page_size entries; writes {writes}.",
        "Times are wall clock of the whole command (syncd: config, source, observe, plan,",
        "audit, LDAP); the baseline's entries are prepared before its clock starts.",
    ]
    return "\n".join(head + body + foot)


def orchestrate(args: argparse.Namespace) -> int:
    n = 1000 if args.quick else args.n
    small = max(1, n // 10)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    print(f"work dir {out}", file=sys.stderr)
    servers = Servers(args.nosync)
    rows = []
    try:
        big = make_dataset(out, n, args.seed, args.source)
        pairs = []
        for r in range(args.repeat):
            order = ["baseline", "syncd"] if r % 2 == 0 else ["syncd", "baseline"]
            pairs.append(run_pair(servers, out, big, order, f"r{r + 1}", args.profile))
        rows.append(summarize(pairs, big))
        little = make_dataset(out, small, args.seed, args.source)
        # the other order from the first big pair, so each order is seen at least once
        pair = run_pair(servers, out, little, ["syncd", "baseline"], "r1", False)
        rows.append(summarize([pair], little))
    except (PhaseError, SlapdError) as exc:
        print(f"{exc}\n(work dir kept: {out})", file=sys.stderr)
        return 1
    finally:
        servers.stop_all()
    text = render(rows, args)
    print(text)
    problems = [r for r in rows if not r["same_result"]]
    problems += [r for r in rows if r["first"]["exit_code"] or r["noop"]["exit_code"]]
    if args.out or args.profile or problems:
        (out / "results.txt").write_text(text + "\n", encoding="utf-8")
        (out / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
        print(f"\nraw results, syncd output, audit files and logs: {out}")
        if args.profile:
            print(f"cProfile of syncd's first sync: {out}/syncd-{n}-r1-first.pstats")
    else:
        shutil.rmtree(out, ignore_errors=True)  # a temp dir: the table above is the result
    return 1 if problems else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="contracts (default 10000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=1000")
    sync = parser.add_mutually_exclusive_group()
    sync.add_argument(
        "--nosync",
        dest="nosync",
        action="store_true",
        default=True,
        help="slapd with dbnosync (default: fast, not durable)",
    )
    sync.add_argument("--fsync", dest="nosync", action="store_false", help="durable slapd")
    parser.add_argument(
        "--out", help="keep data, logs, audit and results here (default: a temp dir, removed)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="pairs at N, alternating order")
    parser.add_argument("--source", choices=["csv", "yaml"], default="csv", help="contracts file")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile syncd's first sync (slows it)"
    )
    hidden = argparse.SUPPRESS
    parser.add_argument("--phase", choices=["baseline", "syncd"], help=hidden)
    parser.add_argument("--server", help=hidden)
    parser.add_argument("--entries", help=hidden)
    parser.add_argument("--config", help=hidden)
    parser.add_argument("--output", help=hidden)
    parser.add_argument("--profile-file", help=hidden)
    parser.add_argument("--result", help=hidden)
    args = parser.parse_args(argv)
    if args.n < 10 or args.repeat < 1:
        parser.error("--n must be at least 10 and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase is None:
        return orchestrate(args)
    if args.phase == "baseline":
        result = phase_baseline(Path(args.server), Path(args.entries))
    else:
        profile = Path(args.profile_file) if args.profile_file else None
        result = phase_syncd(Path(args.config), Path(args.server), Path(args.output), profile)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
