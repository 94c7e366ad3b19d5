"""Benchmark: syncd's ``ad`` target against a raw ldap3 baseline, on a Samba AD DC.

For N generated contracts (one or two roles each, all active now) it measures, on the
throwaway DC of ``tests.servers.samba`` (root; ports 389/636):

(a) a raw ldap3 script doing the same work as syncd's first sync: N adds (disabled,
    with a random ``unicodePwd`` in the add), N ``userAccountControl`` modifies that
    enable them, and the memberships as one ``member`` MODIFY_ADD per group and 500
    accounts; then the DC is reset to the seeded domain and
(b) ``syncd sync`` into the empty managed OU, in-process as the CLI runs it,
    including reading the contracts, observing, conflict searches, planning and the
    audit trail; reported as the ratio syncd / baseline;
(c) a second ``syncd sync``: the converged no-op cycle, its wall time and the number of
    actions it planned (should be 0).

Only one DC can run per machine, so the two runs are sequential on the same DC, reset
in between. Run it::

    python bench/ad_cycle.py            # N=1000
    python bench/ad_cycle.py --n 200

This is a script that prints figures, not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from ldap3 import MODIFY_ADD, MODIFY_REPLACE

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.cli import main
from tests.servers.samba import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    SambaDC,
    group_dn,
    ou_dn,
    start_samba,
)

ROLES = {"developer": ("developers", "vpn-users"), "writer": ("wiki-editors",)}


def contracts(n: int) -> list[dict[str, Any]]:
    today = datetime.now(UTC).date()
    return [
        {
            "id": f"C-{i:05d}",
            "email": f"person{i:05d}@vendor.example",
            "given_name": "Person",
            "family_name": f"N{i:05d}",
            "username": f"c{i:05d}",
            "vendor": "Acme",
            "sponsor": "jdoe@example.test",
            "roles": ["developer", "writer"] if i % 3 == 0 else ["developer"],
            "start": (today - timedelta(days=1)).isoformat(),
            "end": (today + timedelta(days=90)).isoformat(),
        }
        for i in range(n)
    ]


def baseline(dc: SambaDC, records: list[dict[str, Any]]) -> float:
    """The same adds, passwords, enables and memberships, written by hand."""
    parent = ou_dn("contractors")
    conn = dc.admin()
    members: dict[str, list[str]] = {}
    start = time.perf_counter()
    for r in records:
        dn = f"CN={r['username']},{parent}"
        password = secrets.token_urlsafe(30) + "aA1!"
        conn.add(
            dn,
            ["top", "person", "organizationalPerson", "user"],
            {
                "sAMAccountName": r["username"],
                "userPrincipalName": f"{r['username']}@example.test",
                "employeeNumber": r["email"],
                "givenName": r["given_name"],
                "sn": r["family_name"],
                "displayName": f"{r['given_name']} {r['family_name']}",
                "mail": r["email"],
                "company": r["vendor"],
                "description": f"contractor: {r['id']}",
                "userAccountControl": "514",
                "unicodePwd": f'"{password}"'.encode("utf-16-le"),
            },
        )
        assert conn.result["result"] == 0, conn.result
        conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})
        for role in r["roles"]:
            for group in ROLES[role]:
                members.setdefault(group, []).append(dn)
    for group, dns in members.items():
        for i in range(0, len(dns), 500):
            conn.modify(group_dn(group), {"member": [(MODIFY_ADD, dns[i : i + 500])]})
    elapsed = time.perf_counter() - start
    conn.unbind()
    return elapsed


def run_syncd(dc: SambaDC, records: list[dict[str, Any]], work: Path) -> tuple[float, float, str]:
    (work / "bind-password").write_text(ADMIN_PASSWORD)
    (work / "contracts.yaml").write_text(yaml.safe_dump({"contracts": records}))
    config = {
        "source": {"type": "file", "path": "contracts.yaml"},
        "roles": {role: {"ad": [group_dn(g) for g in groups]} for role, groups in ROLES.items()},
        "targets": {
            "ad": {
                "type": "ad",
                "urls": [dc.url],
                "ca_file": str(dc.ca_file),
                "bind_user": ADMIN_USER,
                "password_file": "bind-password",
                "base_dn": ou_dn("contractors"),
                "key_attribute": "employeeNumber",
            }
        },
        "audit": {"path": "audit.jsonl"},
    }
    path = work / "syncd.yaml"
    path.write_text(yaml.safe_dump(config))
    times = []
    out = io.StringIO()
    for _ in range(2):
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = main(["-c", str(path), "sync"])
        times.append(time.perf_counter() - start)
        assert code == 0, out.getvalue()[-2000:]
    summary = next((line for line in out.getvalue().splitlines() if "no changes" in line), "")
    return times[0], times[1], summary or out.getvalue().splitlines()[-1]


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    records = contracts(args.n)
    dc = start_samba()
    try:
        dc.reset()
        raw = baseline(dc, records)
        dc.reset()
        with tempfile.TemporaryDirectory() as work:
            first, noop, summary = run_syncd(dc, records, Path(work))
    finally:
        dc.close()
    print(f"contracts: {args.n} (memberships: {sum(len(r['roles']) + 1 for r in records)})")
    print(f"raw ldap3 baseline (adds + enables + members): {raw:6.2f} s")
    print(f"syncd first sync:                              {first:6.2f} s  ({first / raw:.2f}x)")
    print(f"syncd no-op cycle:                             {noop:6.2f} s  ({noop / raw:.2f}x)")
    print(f"no-op cycle output: {summary.strip()}")


if __name__ == "__main__":
    main_()
