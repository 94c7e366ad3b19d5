"""The ``syncd`` command line (SPEC §7). Entry point: ``main``.

Exit codes: 0 success; 1 some changes failed (or a conflict, or a target could not be
observed); 2 usage, config or source error; 3 something held by a safety limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from syncd import __version__, report
from syncd.audit import AuditWriter
from syncd.config import Config, config_path, load_config
from syncd.core.desired import resolve
from syncd.core.model import PersonState
from syncd.core.timeutil import parse_duration, parse_instant
from syncd.cycle import (
    CyclePlan,
    apply_cycle,
    gc_relaxed,
    open_target,
    plan_cycle,
    read_contracts,
    selected_targets,
)
from syncd.errors import ConfigError, SourceError, SyncdError
from syncd.targets.base import Target

log = logging.getLogger("syncd")
OK, FAILED, USAGE, HELD = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        with gc_relaxed():
            result: int = args.func(args)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return USAGE
    except SourceError as exc:
        print(f"source error, nothing changed: {exc}", file=sys.stderr)
        return USAGE
    except SyncdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-c", "--config", help="config file (default: $SYNCD_CONFIG, then /etc/syncd/syncd.yaml)"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    sync = sub.add_parser("sync", help="run one reconcile cycle")
    sync.add_argument("--dry-run", action="store_true", help="plan only, write nothing")
    sync.add_argument(
        "--allow-mass-change",
        action="store_true",
        help="lift the safety limits for this run (audited)",
    )
    sync.add_argument("--target", action="append", default=[], help="only this target")
    sync.set_defaults(func=_sync)

    plan = sub.add_parser("plan", help="show what a cycle would change")
    plan.add_argument("--at", help="plan as of TIME (ISO date/date-time, or +3d)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument("--target", action="append", default=[], help="only this target")
    plan.set_defaults(func=_plan)

    check = sub.add_parser("check-config", help="validate the config")
    check.add_argument(
        "--online",
        action="store_true",
        help="also bind to each target and check base DN and groups",
    )
    check.set_defaults(func=_check)

    expiring = sub.add_parser("expiring", help="list access ending soon")
    expiring.add_argument("--within", default="14d", help="window, e.g. 14d (default)")
    expiring.add_argument("--json", action="store_true")
    expiring.set_defaults(func=_expiring)
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def _now() -> datetime:
    return datetime.now(UTC)


def _at(text: str | None, config: Config) -> datetime:
    if not text:
        return _now()
    try:
        if text.startswith("+"):
            return _now() + parse_duration(text[1:])
        return parse_instant(text, config.core_policy().timezone, end_of_day=False)
    except ValueError as exc:
        raise SyncdError(f"--at: {exc}") from exc


def _open_targets(config: Config, only: Sequence[str]) -> dict[str, Target]:
    unknown = [name for name in only if name not in config.targets]
    if unknown:
        raise SyncdError(
            f"--target {unknown[0]}: no such target (have: {', '.join(config.targets)})"
        )
    return {name: open_target(config, name) for name in selected_targets(config, only)}


def _planned(
    args: argparse.Namespace, config: Config, at: datetime, allow_mass_change: bool = False
) -> tuple[CyclePlan, dict[str, Target]]:
    targets = _open_targets(config, args.target)
    try:
        return plan_cycle(config, at, targets, allow_mass_change=allow_mass_change), targets
    except BaseException:
        for target in targets.values():
            target.close()
        raise


def _plan(args: argparse.Namespace) -> int:
    config = _config(args)
    cycle, targets = _planned(args, config, _at(args.at, config))
    for target in targets.values():
        target.close()
    if args.json:
        print(json.dumps(report.plan_json(cycle), indent=2, ensure_ascii=False))
    else:
        print(report.render_plan(cycle))
    return _plan_code(cycle)


def _plan_code(cycle: CyclePlan) -> int:
    if cycle.errors or any(p.conflicts for p in cycle.plans):
        return FAILED
    if any(p.holds for p in cycle.plans):
        return HELD
    return OK


def _sync(args: argparse.Namespace) -> int:
    config = _config(args)
    cycle, targets = _planned(args, config, _now(), args.allow_mass_change)
    print(report.render_plan(cycle))
    if args.dry_run:
        for target in targets.values():
            target.close()
        print("Dry run: nothing was changed.")
        return _plan_code(cycle)
    correlation = str(uuid.uuid4())
    with AuditWriter(config.audit.path) as audit:
        audit.event(6, "Start", "sync started", correlation, targets=sorted(targets))
        if args.allow_mass_change:
            audit.event(
                99,
                "Safety Override",
                "--allow-mass-change: safety limits lifted for this run",
                correlation,
            )
        try:
            reports = apply_cycle(cycle, targets, audit, correlation)
        finally:
            for target in targets.values():
                target.close()
        summary = report.summary_line(cycle)
        audit.event(7, "Stop", f"sync finished: {summary}", correlation)
    print(report.render_results(reports))
    if any(not r.ok for r in reports):
        return FAILED
    return _plan_code(cycle)


def _check(args: argparse.Namespace) -> int:
    config = _config(args)
    print(
        f"{config_path(args.config)}: valid ({len(config.targets)} targets, "
        f"{len(config.roles)} roles)"
    )
    if not args.online:
        return OK
    problems: list[str] = []
    for name in config.targets:
        target = open_target(config, name)
        try:
            found = target.check()
        finally:
            target.close()
        problems += found
        print(
            f"{name}: "
            + ("reachable, base DN and groups present" if not found else f"{len(found)} problems")
        )
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return USAGE if problems else OK


def _expiring(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        within = parse_duration(args.within)
    except ValueError as exc:
        raise SyncdError(f"--within: {exc}") from exc
    now = _now()
    contracts, _invalid = read_contracts(config)
    people = resolve(contracts, config.core_policy(), now)
    horizon = now + within
    ending = [
        p
        for p in people.values()
        if p.state is PersonState.ACTIVE and p.access_end is not None and p.access_end <= horizon
    ]
    rows = report.expiring_rows(ending)
    if args.json:
        print(
            json.dumps(
                {"format": "syncd.expiring/1", "within": args.within, "people": rows},
                indent=2,
                ensure_ascii=False,
            )
        )
        return OK
    if not rows:
        print(f"No access ends within {args.within}.")
    for row in rows:
        left = _left(datetime.fromisoformat(row["end"].replace("Z", "+00:00")) - now)
        sponsor = f" sponsor {row['sponsor']}" if row["sponsor"] else ""
        print(
            f"{row['end']}  in {left:>7}  {row['username']} ({row['person']}) "
            f"contract {', '.join(row['contract_ids'])}{sponsor}"
        )
    return OK


def _left(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"
