"""Benchmark: reading a large contract source, in time and peak memory, per format.

Generates the same kind of contracts as YAML, JSON and CSV files of about 50 MB each
(``--mb``), then runs, each in a fresh subprocess so that peak RSS is its own:

* syncd: what ``read_source`` does (read and parse the file, validate the records)
  and ``resolve`` (contracts into people, as ``plan_cycle`` runs it), with the file
  source's default limits, timed stage by stage;
* a baseline: the least any reader of that format must do, on the same file in the
  same run: ``json.load``, every row of ``csv.reader``, and PyYAML's own
  ``yaml.load(..., CSafeLoader)`` (libyaml; what syncd used before).

It prints wall and CPU seconds and peak RSS for both, their ratios, peak RSS as a
multiple of the file's size, and whether the goal is met: the whole read (parse,
validate, resolve) in at most ``GOAL_SECONDS`` of CPU and ``GOAL_RSS`` times the file's
size. These machines are shared and noisy: wall time depends on what else runs, so
compare CPU seconds and ratios within a run; ``--compare DIR`` runs syncd from another
copy of the code (``git archive HEAD | tar -x -C DIR``) on the same files in the same
run, and prints the stages of both.

Run: ``python bench/source_size.py`` (a few minutes; ``--mb 5`` for a smoke run,
``--formats yaml`` for one format).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

PASSWORD_ENV = "SYNCD_BENCH_BIND_PASSWORD"
GOAL_SECONDS = 10.0  # CPU seconds to read a 50 MB source (parse, validate, resolve)
GOAL_RSS = 10.0  # peak RSS as a multiple of the file's size
ROLES = ("developer", "vpn", "ops", "analyst")
FIRST = ("Ana", "Bo", "Chloé", "Dara", "Émile", "Farah", "Gus", "Hana", "Ivo", "Jun", "Zoë")
LAST = ("Adams", "Brandt", "Costa", "Døssing", "Evans", "Fischer", "García", "Müller", "Nakamura")
FIELDS = ["id", "email", "given_name", "family_name", "vendor", "sponsor", "approved_by"]
FIELDS += ["roles", "start", "end", "status"]
ATTRIBUTES = ["department", "cost_center", "location", "phone"]


def contract(i: int) -> dict[str, Any]:
    """Contract ``i``: unique id, e-mail and phone, the rest drawn from small pools, as
    in an export from a vendor-management system."""
    given, family = FIRST[i % len(FIRST)], LAST[(i // 7) % len(LAST)]
    start = date(2026, 1, 1) + timedelta(days=i % 365)
    return {
        "id": f"C-{i:07d}",
        "email": f"{given.lower()}.{family.lower()}.{i}@vendor{i % 40}.example",
        "given_name": given,
        "family_name": f"{family}-{i}",
        "vendor": f"Vendor {i % 40} GmbH",
        "sponsor": f"sponsor{i % 300}@corp.example",
        "approved_by": f"manager{i % 25}@corp.example",
        "roles": list(ROLES[: 1 + i % 3]),
        "start": start,
        "end": start + timedelta(days=90 + i % 600),
        "status": "active",
        "attributes": {
            "department": f"Engineering {i % 17}",
            "cost_center": f"CC-{i % 500:04d}",
            "location": ("Berlin", "Lisbon", "Remote", "Tokyo")[i % 4],
            "phone": f"+49 30 {i:08d}",
        },
    }


def write_yaml(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("contracts:\n")
        for i in range(count):
            c = contract(i)
            out.write(f"  - id: {c['id']}\n")
            for name in FIELDS[1:]:
                value = c[name]
                if isinstance(value, list):
                    out.write(f"    {name}: [{', '.join(value)}]\n")
                else:
                    out.write(f"    {name}: {value}\n")
            out.write("    attributes:\n")
            for name, value in c["attributes"].items():
                out.write(f'      {name}: "{value}"\n')


def write_json(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write('{"contracts": [\n')
        for i in range(count):
            c = contract(i)
            c["start"], c["end"] = c["start"].isoformat(), c["end"].isoformat()
            out.write(("" if i == 0 else ",\n") + json.dumps(c, ensure_ascii=False, indent=2))
        out.write("\n]}\n")


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS + [f"attributes.{a}" for a in ATTRIBUTES])
        for i in range(count):
            c = contract(i)
            row = [";".join(c[f]) if f == "roles" else str(c[f]) for f in FIELDS]
            writer.writerow(row + [c["attributes"][a] for a in ATTRIBUTES])


WRITERS = {"yaml": write_yaml, "json": write_json, "csv": write_csv}


def generate(fmt: str, path: Path, megabytes: float) -> int:
    """A file of about ``megabytes``: a small sample tells the size of one contract."""
    WRITERS[fmt](path, 1000)
    count = int(megabytes * 1e6 / path.stat().st_size * 1000)
    WRITERS[fmt](path, count)
    return count


def write_config(folder: Path, source: Path) -> Path:
    config = folder / f"syncd-{source.suffix[1:]}.yaml"
    roles = "".join(f"  {r}: {{corp: ['cn={r},ou=groups,dc=example,dc=com']}}\n" for r in ROLES)
    config.write_text(
        f"source: {{type: file, path: {source.name}}}\n"
        f"roles:\n{roles}"
        "targets:\n"
        "  corp:\n"
        "    type: ldap\n"
        "    urls: ldaps://ldap.example.com\n"
        "    bind_user: cn=syncd,dc=example,dc=com\n"
        "    base_dn: ou=contractors,dc=example,dc=com\n"
        f"    password_env: {PASSWORD_ENV}\n"
        "audit: {path: audit.jsonl}\n",
        encoding="utf-8",
    )
    return config


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Clock:
    """Wall and CPU seconds since the last lap (the machine may be busy with others)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        spent = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return spent


def child_syncd(config_path: Path) -> dict[str, Any]:
    from datetime import UTC, datetime

    from syncd.config import load_config
    from syncd.core.desired import resolve
    from syncd.engine import gc_relaxed, validated
    from syncd.sources import file as file_source

    config = load_config(config_path)
    before = peak_mb()
    clock = Clock()
    records = file_source.read(config.source)
    parse = clock.lap()
    source = validated(config, records)
    validate = clock.lap()
    with gc_relaxed():  # as plan_cycle runs it
        people = resolve(source.contracts, config.core_policy(), datetime.now(UTC))
    resolved = clock.lap()
    assert not source.invalid, source.invalid[:3]
    stages = {"parse": parse, "validate": validate, "resolve": resolved}
    return {
        "wall": sum(wall for wall, _ in stages.values()),
        "cpu": sum(cpu for _, cpu in stages.values()),
        "stages": stages,
        "records": len(source.contracts),
        "people": len(people),
        "before_mb": before,
        "peak_mb": peak_mb(),
    }


def child_baseline(fmt: str, path: Path) -> dict[str, Any]:
    import yaml

    before = peak_mb()
    clock = Clock()
    if fmt == "json":
        with path.open("rb") as handle:
            count = len(json.load(handle)["contracts"])
    elif fmt == "csv":
        with path.open(encoding="utf-8", newline="") as handle:
            count = sum(1 for _ in csv.reader(handle)) - 1
    else:
        with path.open("rb") as handle:
            count = len(yaml.load(handle, Loader=yaml.CSafeLoader)["contracts"])
    wall, cpu = clock.lap()
    return {"wall": wall, "cpu": cpu, "records": count, "before_mb": before, "peak_mb": peak_mb()}


def run_child(*args: str, code: str = "") -> dict[str, Any]:
    """A child's figures; ``code``: a directory to import syncd from instead."""
    env = {**os.environ, PASSWORD_ENV: "unused"}
    if code:
        env["PYTHONPATH"] = code
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def report(fmt: str, path: Path, ours: dict[str, Any], base: dict[str, Any]) -> None:
    size_mb = path.stat().st_size / 1e6
    stages = ", ".join(
        f"{name} {wall:.1f}/{cpu:.1f}" for name, (wall, cpu) in ours["stages"].items()
    )
    print(f"{fmt}: {size_mb:.1f} MB, {ours['records']} contracts, {ours['people']} people")
    print(
        f"  syncd     {ours['wall']:6.1f} s wall {ours['cpu']:6.1f} s CPU ({stages} s wall/CPU)"
        f"  peak RSS {ours['peak_mb']:5.0f} MB = {ours['peak_mb'] / size_mb:.1f}x the file"
        f" ({ours['before_mb']:.0f} MB before reading)"
    )
    print(
        f"  baseline  {base['wall']:6.1f} s wall {base['cpu']:6.1f} s CPU"
        f"  peak RSS {base['peak_mb']:5.0f} MB = {base['peak_mb'] / size_mb:.1f}x the file"
    )
    print(
        f"  syncd / baseline: CPU {ours['cpu'] / base['cpu']:.2f}, peak RSS "
        f"{ours['peak_mb'] / base['peak_mb']:.2f}; parse alone: CPU "
        f"{ours['stages']['parse'][1] / base['cpu']:.2f}"
    )
    met = ours["cpu"] <= GOAL_SECONDS * size_mb / 50 and ours["peak_mb"] / size_mb <= GOAL_RSS
    print(
        f"  goal: {GOAL_SECONDS:g} s CPU for 50 MB and {GOAL_RSS:g}x the file: "
        f"{'met' if met else 'missed'}"
    )


def compare(code: str, path: Path, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The CPU seconds of each stage and the peak RSS of the code in ``code``, then of
    this code, and their ratio."""
    size_mb = path.stat().st_size / 1e6
    stages = ", ".join(
        f"{name} {theirs['stages'][name][1]:.1f} -> {cpu:.1f}"
        for name, (_, cpu) in ours["stages"].items()
    )
    print(
        f"  {code} -> this: CPU s {stages}; total {theirs['cpu']:.1f} -> {ours['cpu']:.1f} "
        f"({ours['cpu'] / theirs['cpu']:.2f}); peak RSS {theirs['peak_mb'] / size_mb:.1f}x "
        f"-> {ours['peak_mb'] / size_mb:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of each file in MB")
    parser.add_argument("--formats", nargs="+", default=list(WRITERS), choices=list(WRITERS))
    parser.add_argument("--compare", metavar="DIR", help="also run syncd from DIR, and compare")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (
            child_syncd(Path(rest[0]))
            if kind == "syncd"
            else child_baseline(rest[0], Path(rest[1]))
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        folder = Path(tmp)
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        for fmt in args.formats:
            path = folder / f"contracts.{fmt}"
            generate(fmt, path, args.mb)
            config = write_config(folder, path)
            ours = run_child("syncd", str(config))
            theirs = run_child("syncd", str(config), code=args.compare) if args.compare else {}
            base = run_child("baseline", fmt, str(path))
            report(fmt, path, ours, base)
            if theirs:
                compare(args.compare, path, ours, theirs)


if __name__ == "__main__":
    main()
