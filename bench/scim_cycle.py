"""Benchmark: syncd's SCIM cycle against raw sequential scim2-client calls, on throwaway
scim2-servers (``tests.servers.scim``).

What it measures, for N generated contracts (1-3 roles each, all in effect now):

(a) the first sync (``syncd sync`` into an empty tenant) against a hand-written
    baseline that creates the same users one POST at a time with scim2-client, then adds
    the memberships with one PATCH per group and 200 members, each on its own fresh
    scim2-server process in the same run; reported as the speedup baseline / syncd
    (target: >= 2x). The baseline's discovery, group lookups and payloads are prepared
    before its clock starts; syncd's time includes reading the contracts file,
    discovery, observing, conflict look-ups, planning and the audit trail. After each
    load both servers are read back and compared (users, attributes, memberships).
    ``syncd (bulk: false)`` shows what concurrency alone gives on this server.
(b) a converged no-op cycle right after the first sync: HTTP requests (counted by
    wrapping httpx2's ``Client.send`` in this process), writes (target: 0) and wall
    time, at N and at N/10, to show that requests grow with pages, not users.

Run it::

    python bench/scim_cycle.py              # N=1000, median of 5 runs
    python bench/scim_cycle.py --n 200 --repeat 1

scim2-server keeps everything in memory in one Python process, so its CPU (one core,
the GIL) bounds both sides; figures are ratios within one run. Not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scim2_client.engines.httpx2 import SyncSCIMClient  # noqa: E402
from scim2_models import PatchOp, PatchOperation  # noqa: E402

from syncd.cli import main as syncd_main  # noqa: E402
from tests.servers.scim import ENTERPRISE, USER_SCHEMA, Directory, start_scim  # noqa: E402

ROLES = {
    "developer": ("developers", "vpn-users"),
    "writer": ("wiki-editors",),
    "operator": ("ops", "vpn-users"),
    "tester": ("developers",),
    "sre": ("ops", "developers", "vpn-users"),
}
GROUPS = ("developers", "vpn-users", "wiki-editors", "ops")
SPONSORS = ("jdoe@example.test", "asmith@example.test", "")
VENDORS = ("Vendor A", "Vendor B", "Acme Consulting", "Globex")
GIVEN = ("Ana", "Bo", "Carla", "Dmitri", "Emeka", "Fatima", "Hana", "Józef", "Zoë")
FAMILY = ("López", "Chen", "Rossi", "Ivanov", "Obi", "Zahra", "Sato", "Nowak", "Müller")
MEMBER_BATCH = 200  # the baseline's members per PATCH
TARGET_SPEEDUP = 2.0


def generate(n: int, seed: int, today: date) -> list[dict[str, Any]]:
    """N contracts, deterministic for a seed: unique usernames, all in effect today."""
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        username = f"c{i:05d}"
        vendor = rng.choice(VENDORS)
        out.append(
            {
                "id": f"C-{i:06d}",
                "email": f"{username}@{vendor.split()[-1].lower()}.example",
                "given_name": rng.choice(GIVEN),
                "family_name": rng.choice(FAMILY),
                "username": username,
                "vendor": vendor,
                "sponsor": rng.choice(SPONSORS),
                "roles": sorted(rng.sample(sorted(ROLES), rng.randint(1, 3))),
                "start": (today - timedelta(days=rng.randint(1, 700))).isoformat(),
                "end": (today + timedelta(days=rng.randint(30, 900))).isoformat(),
            }
        )
    return out


def groups_of(c: dict[str, Any]) -> list[str]:
    return sorted({g for role in c["roles"] for g in ROLES[role]})


class Tenant:
    """A fresh scim2-server with the lab's groups and the two sponsoring employees."""

    def __init__(self, workdir: Path) -> None:
        self.server = start_scim(workdir)
        self.directory = Directory(self.server.url, self.server.token)
        self.employees = {
            email: self.directory.add_user(email.split("@")[0], email=email)
            for email in SPONSORS
            if email
        }
        for name in GROUPS:
            self.directory.add_group(name)

    def read_back(self) -> dict[str, Any]:
        """Users (without ids and meta) and memberships by userName, to compare loads."""
        users = self.directory.users()
        names = {u["id"]: u["userName"] for u in users}
        people = {}
        for user in users:
            body = {k: v for k, v in user.items() if k not in ("id", "meta")}
            manager = body.get(ENTERPRISE, {}).get("manager")
            if manager:
                manager["value"] = names[manager["value"]]
            people[user["userName"]] = body
        members = {g: sorted(self.directory.member_names(g)) for g in GROUPS}
        return {"users": people, "members": members}

    def close(self) -> None:
        self.directory.close()
        self.server.stop()


class Requests:
    """HTTP requests sent by this process, by method (httpx2 ``Client.send``)."""

    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()
        original: Callable[..., Any] = httpx2.Client.send

        def send(client: httpx2.Client, request: httpx2.Request, *a: Any, **k: Any) -> Any:
            self.by_method[request.method] += 1
            return original(client, request, *a, **k)

        httpx2.Client.send = send  # type: ignore[method-assign]

    @contextlib.contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        before = Counter(self.by_method)
        seen: Counter[str] = Counter()
        try:
            yield seen
        finally:
            seen.update(self.by_method - before)


def user_payload(c: dict[str, Any], employees: dict[str, str]) -> dict[str, Any]:
    """What syncd sends for a new user with its default attributes, built independently."""
    enterprise: dict[str, Any] = {"employeeNumber": c["email"], "organization": c["vendor"]}
    if c["sponsor"]:
        enterprise["manager"] = {"value": employees[c["sponsor"]]}
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": c["username"],
        "externalId": f"syncd:{c['email']}",
        "active": True,
        "name": {"familyName": c["family_name"], "givenName": c["given_name"]},
        "displayName": f"{c['given_name']} {c['family_name']}",
        "emails": [{"value": c["email"], "type": "work", "primary": True}],
        ENTERPRISE: enterprise,
    }


def baseline(tenant: Tenant, contracts: list[dict[str, Any]]) -> float:
    """Sequential creates, then one PATCH per group and MEMBER_BATCH members."""
    http = httpx2.Client(
        base_url=tenant.server.url, headers={"Authorization": f"Bearer {tenant.server.token}"}
    )
    scim = SyncSCIMClient(http)
    scim.discover()
    user, group = scim.get_resource_model("User"), scim.get_resource_model("Group")
    assert user is not None
    assert group is not None
    group_ids = {name: tenant.directory.group(name)["id"] for name in GROUPS}
    payloads = [user.model_validate(user_payload(c, tenant.employees)) for c in contracts]
    started = time.perf_counter()
    ids = {}
    for c, payload in zip(contracts, payloads, strict=True):
        ids[c["username"]] = scim.create(payload).id  # type: ignore[union-attr]
    members: dict[str, list[str]] = {name: [] for name in GROUPS}
    for c in contracts:
        for name in groups_of(c):
            members[name].append(ids[c["username"]])
    for name, values in members.items():
        for i in range(0, len(values), MEMBER_BATCH):
            value = [{"value": v} for v in values[i : i + MEMBER_BATCH]]
            operation = PatchOperation(op="add", path="members", value=value)
            scim.modify(group, group_ids[name], PatchOp[group](operations=[operation]))  # type: ignore[valid-type]
    elapsed = time.perf_counter() - started
    http.close()
    return elapsed


def syncd_run(work: Path, tenant: Tenant, contracts_file: Path, **target: Any) -> float:
    token = work / "token"
    token.write_text(tenant.server.token)
    config = {
        "source": {"type": "file", "path": str(contracts_file)},
        "policy": {"timezone": "UTC"},
        "roles": {role: {"bench-scim": list(groups)} for role, groups in ROLES.items()},
        "targets": {
            "bench-scim": {
                "type": "scim",
                "url": tenant.server.url,
                "allow_plaintext": True,  # loopback
                "token_file": str(token),
                **target,
            }
        },
        "audit": {"path": str(work / "audit.jsonl")},
    }
    path = work / "syncd.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    with (work / "syncd.out").open("a") as out, contextlib.redirect_stdout(out):
        started = time.perf_counter()
        code = syncd_main(["-c", str(path), "sync"])
        elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"syncd sync exited {code}; see {work / 'syncd.out'}")
    return elapsed


def run(n: int, repeat: int, root: Path, requests: Requests) -> None:
    contracts = generate(n, seed=7, today=datetime.now(UTC).date())
    contracts_file = root / "contracts.yaml"
    contracts_file.write_text(yaml.safe_dump({"contracts": contracts}, allow_unicode=True))
    memberships = sum(len(groups_of(c)) for c in contracts)
    rows: list[tuple[str, str]] = []
    times: dict[str, list[float]] = {"baseline": [], "syncd": [], "plain": []}
    first_requests: Counter[str] = Counter()
    noop: dict[int, tuple[Counter[str], float]] = {}
    for attempt in range(repeat):
        work = root / f"run{attempt}"
        work.mkdir()
        base, bulk, plain = (Tenant(work / name) for name in ("base", "bulk", "plain"))
        try:
            times["baseline"].append(baseline(base, contracts))
            with requests.counting() as seen:
                times["syncd"].append(syncd_run(work / "bulk", bulk, contracts_file))
            first_requests = seen
            times["plain"].append(syncd_run(work / "plain", plain, contracts_file, bulk=False))
            expected = base.read_back()
            for name, tenant in (("syncd", bulk), ("syncd (bulk: false)", plain)):
                if tenant.read_back() != expected:
                    raise SystemExit(f"{name} and the baseline disagree after the first load")
            with requests.counting() as seen:
                noop[n] = (seen, syncd_run(work / "bulk", bulk, contracts_file))
        finally:
            for tenant in (base, bulk, plain):
                tenant.close()
    small = max(1, n // 10)
    small_file = root / "contracts-small.yaml"
    small_file.write_text(yaml.safe_dump({"contracts": contracts[:small]}, allow_unicode=True))
    tenant = Tenant(root / "small")
    try:
        syncd_run(root / "small", tenant, small_file)
        with requests.counting() as seen:
            noop[small] = (seen, syncd_run(root / "small", tenant, small_file))
    finally:
        tenant.close()

    rows.append(("contracts / memberships", f"{n} / {memberships}"))
    median = {name: statistics.median(values) for name, values in times.items()}
    rows.append(("baseline: sequential creates + group PATCHes", _spread(times["baseline"])))
    speedup = median["baseline"] / median["syncd"]
    mark = "ok" if speedup >= TARGET_SPEEDUP else "BELOW TARGET"
    rows.append(("syncd first sync", f"{_spread(times['syncd'])}  {speedup:.1f}x ({mark})"))
    rows.append(("  its HTTP requests", _methods(first_requests)))
    plain = median["baseline"] / median["plain"]
    rows.append(("syncd first sync, bulk: false", f"{_spread(times['plain'])}  {plain:.1f}x"))
    for size in sorted(noop, reverse=True):
        seen, took = noop[size]
        writes = sum(v for k, v in seen.items() if k != "GET")
        rows.append(
            (
                f"no-op cycle at {size} managed users",
                f"{sum(seen.values())} requests ({_methods(seen)}), {writes} writes, {took:.2f} s",
            )
        )
    width = max(len(label) for label, _ in rows)
    print(f"SCIM cycle benchmark (median [min-max] of {repeat}; scim2-server in memory)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s [{min(values):.2f}-{max(values):.2f}]"


def _methods(counts: Counter[str]) -> str:
    return ", ".join(f"{method} {count}" for method, count in sorted(counts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="contracts (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; medians are shown")
    args = parser.parse_args()
    requests = Requests()
    with tempfile.TemporaryDirectory(prefix="syncd-bench-scim-") as folder:
        run(args.n, args.repeat, Path(folder), requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
