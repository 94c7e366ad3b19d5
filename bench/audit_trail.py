"""Benchmark: the audit trail's append rate per fsync policy, and verify's throughput.

Each figure is a ratio against a baseline measured in the same run on the same disk
(these machines are noisy):

* append: syncd's ``AuditWriter`` writing intent+outcome pairs (record building, the
  hash chain, one ``write`` per record) against a plain loop that ``write``s the very
  same lines, both with the same fsync policy: ``record`` (fsync after every record)
  and ``batch`` (fsync before each batch of 100 changes, as ``syncd sync`` does);
* verify: ``syncd audit verify`` over 1,000,000 records against a plain loop that
  reads the same file and parses every line as JSON (the least any checker must do).

Run: ``python bench/audit_trail.py`` (about two minutes; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from syncd.audit import AuditWriter
from syncd.audit.verify import verify
from syncd.audit.writer import WriterOptions
from syncd.core.model import Action, ActionKind, Outcome

BATCH = 100  # changes per fsync with the batch policy (intent + outcome = 2 records each)


def actions(count: int) -> list[Action]:
    kinds = [ActionKind.CREATE, ActionKind.ADD_MEMBER, ActionKind.DISABLE]
    return [
        Action(
            "corp",
            kinds[i % 3],
            f"p{i}@vendor.example",
            f"user{i:06d}",
            None,
            f"contract C-{i} in effect until 2027-03-01T00:00:00Z",
            (f"C-{i}",),
            group="cn=developers,ou=groups,dc=example,dc=com" if i % 3 == 1 else "",
        )
        for i in range(count)
    ]


def run_syncd(path: Path, items: list[Action], policy: str) -> float:
    start = time.perf_counter()
    with AuditWriter(path, WriterOptions(fsync=policy, rotate_bytes=0)) as audit:
        for first in range(0, len(items), BATCH):
            batch = items[first : first + BATCH]
            for item in batch:
                audit.intent(item, "bench")
            audit.sync()
            for item in batch:
                audit.outcome(Outcome(item, True, "", f"uid={item.username}"), "bench")
    return time.perf_counter() - start


def run_plain(path: Path, lines: list[bytes], policy: str) -> float:
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        for index, line in enumerate(lines, 1):
            os.write(fd, line)
            if policy == "record" or index % (2 * BATCH) == 0:
                os.fsync(fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def plain_read(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - start


def best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, smoke run")
    args = parser.parse_args()
    per_policy = {"record": 500 if args.quick else 5_000, "batch": 5_000 if args.quick else 50_000}
    verify_records = 20_000 if args.quick else 1_000_000
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        work = Path(tmp)
        for policy, count in per_policy.items():
            items = actions(count)
            syncd_times, plain_times = [], []
            for run in range(2):  # alternate, keep the best of each
                trail = work / f"{policy}-{run}.jsonl"
                syncd_times.append(run_syncd(trail, items, policy))
                lines = trail.read_bytes().splitlines(keepends=True)
                plain_times.append(run_plain(work / f"{policy}-{run}-plain.jsonl", lines, policy))
            records = len(lines)
            rows.append((f"append, fsync {policy}", records, min(plain_times), min(syncd_times)))
        big = work / "verify" / "audit.jsonl"
        big.parent.mkdir()
        run_syncd(big, actions(verify_records // 2), "batch")
        records = sum(1 for _ in big.open("rb"))
        plain = best(2, lambda: plain_read(big))
        checked = best(2, lambda: _timed_verify(big))
        rows.append(("verify", records, plain, checked))
    print(
        f"syncd audit trail benchmark ({os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}, disk of the current folder)\n"
    )
    print(f"{'':<22}{'records':>10}{'baseline rec/s':>16}{'syncd rec/s':>14}{'ratio':>8}")
    for name, count, base_s, syncd_s in rows:
        print(
            f"{name:<22}{count:>10,}{count / base_s:>16,.0f}{count / syncd_s:>14,.0f}"
            f"{syncd_s / base_s:>7.2f}x"
        )
    print(
        "\nratio = syncd time / baseline time. Baselines: append = a plain write(+fsync) loop "
        "of the same lines;\nverify = reading the same file and json-parsing every line."
    )
    return 0


def _timed_verify(path: Path) -> float:
    start = time.perf_counter()
    result = verify([path.parent])
    elapsed = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"verify failed on a fresh trail: {result.problem}")
    return elapsed


if __name__ == "__main__":
    raise SystemExit(main())
