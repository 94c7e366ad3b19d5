"""Command handlers that only read: ``syncd attest``, ``syncd expiring``, ``syncd
explain``, ``syncd config schema`` and ``syncd ha`` (whose step-down asks etcd for a
handover), and the exit codes every command shares (SPEC §7).
``syncd expiring --notify`` and ``syncd notify test`` send notices (``syncd.notify.cli``).

Called by ``syncd.cli``, which parses the command line, maps errors to exit codes and
dispatches here. ``attest`` observes the targets and plans nothing for them: it writes
only to the audit trail, where every attestation is evidence worth keeping.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta

from syncd import report
from syncd.audit import AuditError, AuditWriter
from syncd.audit.records import START, STOP
from syncd.config import Config, HaConfig, config_path, config_schema, load_config
from syncd.core.attest import Attestation
from syncd.core.desired import resolve
from syncd.core.explain import find
from syncd.core.model import Contract, PersonState
from syncd.core.text import json_safe, shown
from syncd.core.timeutil import parse_duration, parse_instant
from syncd.engine import (
    attest_cycle,
    close_all,
    open_targets,
    plan_cycle,
    plan_targeted,
    read_source,
)
from syncd.errors import SyncdError
from syncd.explain import as_json as explained_json
from syncd.explain import explain as explained
from syncd.explain import render as render_explained
from syncd.ha import status as ha
from syncd.notify import cli as notify_cli

OK, FAILED, USAGE, HELD, TAMPERED = 0, 1, 2, 3, 4


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def attest(args: argparse.Namespace) -> int:
    """Observe every target (or those ``--target`` names), attest each managed scope,
    record the attestations in the audit trail and print them. 0: clean; 1: a violation
    found, or a target could not be observed."""
    config = load(args)
    targets = open_targets(config, args.target)
    try:
        cycle = plan_cycle(config, datetime.now(UTC), targets)
    finally:
        close_all(targets)
    attestations = attest_cycle(cycle)
    recorded = _record(config, attestations, cycle.errors, sorted(targets))
    if args.json:
        document = report.attestations_json(attestations, cycle.errors, recorded)
        print(json_safe(json.dumps(document, indent=2, ensure_ascii=False)))
    else:
        print(report.render_attestations(attestations, cycle.errors))
    if cycle.errors or any(not a.clean for a in attestations):
        return FAILED
    return OK


def _record(
    config: Config, attestations: list[Attestation], errors: dict[str, str], targets: list[str]
) -> bool:
    """Write the attestations between a start and a stop record; False when the trail
    is held by another writer (a running daemon, which attests every cycle itself)."""
    correlation = str(uuid.uuid4())
    try:
        audit = AuditWriter.from_config(config.audit, correlation)
    except AuditError as exc:
        print(f"note: attestation not recorded in the audit trail: {shown(exc)}", file=sys.stderr)
        return False
    with audit:
        audit.event(START, "Start", "attest started", correlation, targets=targets)
        for attestation in attestations:
            audit.attestation(attestation, correlation)
        found = sum(len(a.violations) for a in attestations)
        unobserved = "".join(f"; {name} not observed: {why}" for name, why in errors.items())
        message = f"attest finished: {len(attestations)} targets, {found} violations{unobserved}"
        audit.event(STOP, "Stop", message, correlation)
    return True


def at_time(text: str | None, config: Config) -> datetime:
    """``--at``: an ISO date or date-time (in ``policy.timezone`` when it has no
    offset), ``+3d`` from now, or now when not given."""
    now = datetime.now(UTC)
    if not text:
        return now
    try:
        if text.startswith("+"):
            return now + parse_duration(text[1:])
        return parse_instant(text, config.core_policy().timezone, end_of_day=False)
    except ValueError as exc:
        raise SyncdError(f"--at: {exc}") from exc


def explain(args: argparse.Namespace) -> int:
    """Why a person has what they have: see ``syncd.explain``. 2 when no person in the
    source matches; 1 when a target could not be read or a conflict stands."""
    config = load(args)
    at = at_time(args.at, config)
    source = read_source(config)
    keys = find(args.person, source.contracts)
    wanted = args.person.strip().lower()
    keys += sorted(
        {r.person for r in source.invalid if wanted in (r.person, r.contract_id.lower())}
        - {c.person for c in source.contracts}
    )
    if not keys:
        print(f"error: {_unknown(args.person, source.contracts)}", file=sys.stderr)
        return USAGE
    targets = open_targets(config, args.target)
    try:
        cycle = plan_targeted(
            config, at, targets, source, frozenset(keys), {}, allow_mass_change=True
        )
    finally:
        close_all(targets)
    found = [explained(cycle, source.invalid, config.core_policy(), key) for key in keys]
    if args.json:
        document = explained_json(args.person, found, cycle)
        print(json_safe(json.dumps(document, indent=2, ensure_ascii=False)))
    else:
        print(render_explained(found, cycle, later=bool(args.at)))
    if cycle.errors or any(v.conflict for e in found for v in e.targets):
        return FAILED
    return OK


def _unknown(query: str, contracts: list[Contract]) -> str:
    """No person matches ``query``: say so, and what might have been meant."""
    names = sorted({n for c in contracts for n in (c.email.lower(), c.username.lower())})
    close = difflib.get_close_matches(query.strip().lower(), names, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return (
        f"no person in the source matches {query!r} (give an e-mail, person key, username "
        f"or contract id; `syncd expiring` lists people whose access ends soon){hint}"
    )


def expiring(args: argparse.Namespace) -> int:
    config = load(args)
    if args.dry_run and not args.notify:
        raise SyncdError("--dry-run goes with --notify (syncd expiring --notify --dry-run)")
    if args.notify:
        failed, lines = notify_cli.expiring(config, dry_run=args.dry_run)
        print("\n".join(lines))
        return FAILED if failed and not args.dry_run else OK
    try:
        within = parse_duration(args.within)
    except ValueError as exc:
        raise SyncdError(f"--within: {exc}") from exc
    now = datetime.now(UTC)
    people = resolve(read_source(config).contracts, config.core_policy(), now)
    horizon = now + within
    ending = [
        p
        for p in people.values()
        if p.state is PersonState.ACTIVE and p.access_end is not None and p.access_end <= horizon
    ]
    rows = report.expiring_rows(ending)
    if args.json:
        document = {"format": "syncd.expiring/1", "within": args.within, "people": rows}
        print(json_safe(json.dumps(document, indent=2, ensure_ascii=False)))
        return OK
    if not rows:
        print(f"No access ends within {args.within}.")
    for row in rows:
        left = _left(datetime.fromisoformat(row["end"].replace("Z", "+00:00")) - now)
        sponsor = f" sponsor {row['sponsor']}" if row["sponsor"] else ""
        print(
            shown(
                f"{row['end']}  in {left:>7}  {row['username']} ({row['person']}) "
                f"contract {', '.join(row['contract_ids'])}{sponsor}"
            )
        )
    return OK


def _left(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24}h" if hours >= 24 else f"{hours}h"


def notify_test(args: argparse.Namespace) -> int:
    """A test message through each channel; 1 when one did not go out."""
    failed, lines = notify_cli.test(load(args), args.to)
    print("\n".join(lines))
    return FAILED if failed else OK


def schema(_args: argparse.Namespace) -> int:
    """Print the config file's JSON Schema (``config/syncd.schema.json`` is a copy)."""
    print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
    return OK


def ha_status(args: argparse.Namespace) -> int:
    """The leader, its lease and the etcd members; exit 1 when nobody leads."""
    config = _ha(args)
    result = ha.status(config)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print("\n".join(result.lines()))
    return OK if result.leader else FAILED


def ha_step_down(args: argparse.Namespace) -> int:
    """A planned handover; exit 1 when no other host took over within ``--wait``."""
    config = _ha(args)
    before, after = ha.step_down(config, parse_duration(args.wait).total_seconds())
    if after and after != before:
        print(f"{before} handed over to {after}")
        return OK
    print(f"{before} was asked to hand over; leader now: {after or 'none'}", file=sys.stderr)
    return FAILED


def _ha(args: argparse.Namespace) -> HaConfig:
    config = load(args)
    if config.ha is None:
        raise SyncdError("the config has no ha: section (a single host: nothing to elect)")
    return config.ha
