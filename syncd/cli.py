"""The ``syncd`` command line (SPEC §7). Entry point: ``main``.

The grammar and the help an operator reads live in ``syncd.usage``; this module maps
each verb to its handler (``COMMANDS``), maps errors to exit codes, and owns the
signals of ``syncd run``.

Exit codes: 0 success; 1 some changes failed (or a conflict, or a target could not be
observed; ``attest``: a violation found); 2 usage, config or source error; 3 something
held by a safety limit; 4 the audit trail was tampered with. The commands that only
read live in ``syncd.commands``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from syncd import commands, logfmt, report, usage
from syncd.audit import AuditWriter
from syncd.audit.chain import Sealer
from syncd.audit.verify import verify
from syncd.audit.writer import rotated_files
from syncd.commands import FAILED, HELD, OK, TAMPERED, USAGE
from syncd.config import Config, HaConfig, config_path, load_config
from syncd.core.text import json_safe, shown
from syncd.daemon import Daemon
from syncd.engine import (
    CyclePlan,
    close_all,
    gc_relaxed,
    open_target,
    open_targets,
    plan_cycle,
    run_cycle,
)
from syncd.errors import ConfigError, SourceError, SyncdError
from syncd.ha.status import status as ha_status
from syncd.progress import Progress
from syncd.state import Absences, StateLocked, read_absences
from syncd.targets.base import Target
from syncd.watch import Controls

log = logging.getLogger("syncd")
# What ``signal.signal`` returns: a function, SIG_DFL or SIG_IGN, or None (set outside Python)
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def main(argv: Sequence[str] | None = None) -> int:
    args = usage.parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        handlers=[logfmt.plain_handler()],
    )
    # One-shot commands run as one cycle; the daemon relaxes the collector per cycle.
    relaxed = gc_relaxed() if args.command != "run" else contextlib.nullcontext()
    try:
        with relaxed:
            result: int = COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"config error:\n{report.lines(str(exc).split(chr(10)))}", file=sys.stderr)
        return USAGE
    except SourceError as exc:
        print(f"source error, nothing changed: {shown(exc)}", file=sys.stderr)
        return USAGE
    except SyncdError as exc:
        print(f"error: {shown(exc)}", file=sys.stderr)
        return FAILED
    except BrokenPipeError:
        # the reader went away (``syncd config schema | head``): no traceback, and none
        # either when the interpreter flushes stdout on its way out
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    return result


def _config(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def _now() -> datetime:
    return datetime.now(UTC)


def _planned(
    args: argparse.Namespace,
    config: Config,
    at: datetime,
    absent_since: Mapping[str, datetime],
    allow_mass_change: bool = False,
) -> tuple[CyclePlan, dict[str, Target]]:
    targets = open_targets(config, args.target)
    try:
        cycle = plan_cycle(
            config, at, targets, allow_mass_change=allow_mass_change, absent_since=absent_since
        )
        return cycle, targets
    except BaseException:
        close_all(targets)
        raise


def _run(args: argparse.Namespace) -> int:
    logfmt.setup(logging.DEBUG if args.verbose > 1 else logging.INFO, args.log_format)
    path = config_path(args.config)
    config = load_config(path)
    controls = Controls()
    previous = _take_signals(controls)
    try:
        _serve(Daemon(path, config), controls)
    except StateLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return OK


def _serve(daemon: Daemon, controls: Controls) -> None:
    """Run the daemon in a thread of its own and wait for it, re-raising what ended it.

    The main thread, where Python runs signal handlers, then holds none of the loop's
    locks: a handler that sets an event cannot find that event's lock held by the very
    thread it interrupted, which would hang the process."""
    ended: list[BaseException] = []

    def serve() -> None:
        # The kernel hands a signal to any thread that does not block it; the main
        # thread, asleep in join(), would only run the handler once this one ended.
        # Blocked here, and in every thread started from here, signals reach it at once.
        signal.pthread_sigmask(
            signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}
        )
        try:
            daemon.run(controls)
        except BaseException as exc:  # handed to the main thread, raised there
            ended.append(exc)

    thread = threading.Thread(target=serve, name="syncd-daemon")
    thread.start()
    thread.join()
    if ended:
        raise ended[0]


def _take_signals(controls: Controls) -> dict[signal.Signals, Handler]:
    """Turn the daemon's signals into requests: SIGHUP reloads the config, SIGUSR1
    forces a cycle, SIGTERM and SIGINT stop after the write in flight. Returns the
    handlers they replace."""
    requests = {
        signal.SIGHUP: controls.request_reload,
        signal.SIGUSR1: controls.request_cycle,
        signal.SIGTERM: controls.request_stop,
        signal.SIGINT: controls.request_stop,
    }

    def handler(signum: int, _frame: FrameType | None) -> None:
        requests[signal.Signals(signum)]()

    return {signum: signal.signal(signum, handler) for signum in requests}


def _plan(args: argparse.Namespace) -> int:
    config = _config(args)
    absent_since = read_absences(config.daemon.state_dir)
    cycle, targets = _planned(args, config, commands.at_time(args.at, config), absent_since)
    close_all(targets)
    if args.json:
        print(json_safe(json.dumps(report.plan_json(cycle), indent=2, ensure_ascii=False)))
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
    if config.ha is not None and not args.dry_run:  # one writer: the elected leader
        print(
            "error: the config has an ha: section, so only the elected leader writes: "
            "let syncd run do it (syncd ha status names the leader), or use --dry-run",
            file=sys.stderr,
        )
        return USAGE
    with Absences.open(config.daemon.state_dir, record=not args.dry_run) as absences:
        return _sync_recording(args, config, absences)


def _sync_recording(args: argparse.Namespace, config: Config, absences: Absences) -> int:
    """``sync`` planning from the recorded absences, and recording them when it may."""
    cycle, targets = _planned(args, config, _now(), absences.since, args.allow_mass_change)
    absences.record(cycle.absent_since)
    print(report.render_plan(cycle))
    if note := absences.note(cycle.waits):
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        close_all(targets)
        print("Dry run: nothing was changed.")
        return _plan_code(cycle)
    correlation = str(uuid.uuid4())
    progress = Progress.on(sys.stderr, args.quiet)
    try:
        with AuditWriter.from_config(config.audit, correlation) as audit:
            reports = run_cycle(
                cycle,
                targets,
                audit,
                correlation,
                session="sync",
                mass_change=args.allow_mass_change,
                progress=progress,
            ).reports
    finally:
        if progress is not None:
            progress.close()
        close_all(targets)
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
    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if not args.online:
        return OK
    problems: list[str] = []
    for name in config.targets:
        target = open_target(config, name)
        try:
            found = target.check()
        finally:
            target.close()
        if about := getattr(target, "about", ""):  # an ldap target: its server, what it chose
            print(f"{name}: {shown(about)}")
        problems += found
        print(
            f"{name}: "
            + (
                "reachable, managed scope and groups present"
                if not found
                else f"{len(found)} problems"
            )
        )
    if config.ha is not None:
        problems += _check_ha(config.ha)
    for problem in problems:
        print(f"  {shown(problem)}", file=sys.stderr)
    return USAGE if problems else OK


def _check_ha(config: HaConfig) -> list[str]:
    """``check-config --online`` with ``ha:``: etcd answers, with these credentials."""
    try:
        seen = ha_status(config)
    except SyncdError as exc:
        print("ha: 1 problem")
        return [f"ha: {exc}"]
    print(f"ha: etcd reachable ({len(seen.members)} members), leader: {seen.leader or 'none'}")
    return []


def _verify(args: argparse.Namespace) -> int:
    """Explicit paths are checked as given (HMAC only with --key-file); without paths,
    the configured trail is checked with the configured HMAC key."""
    paths: list[Path] = list(args.paths)
    key_file, key_id = args.key_file, args.key_id
    if not paths:
        config = _config(args)
        paths = [*rotated_files(config.audit.path), config.audit.path]
        if key_file is None and config.audit.hmac_key_file is not None:
            key_file, key_id = config.audit.hmac_key_file, key_id or config.audit.key_id
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SyncdError(f"no such file or folder: {', '.join(missing)}")
    sealer = None
    if key_file is not None:
        try:
            sealer = Sealer(key_file.read_bytes().strip(), key_id)
        except OSError as exc:
            raise SyncdError(f"--key-file {key_file}: {exc.strerror}") from exc
    result = verify(paths, sealer=sealer, expect_head=args.expect_head)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    elif result.problem is None:
        span = f"sequence {result.first_sequence}-{result.last_sequence}"
        print(
            f"OK: {len(result.files)} files, {result.records} records ({span}), head {result.head}"
        )
    else:
        print(f"TAMPERED: {shown(result.problem)}")
    for note in result.notes:
        print(f"note: {shown(note)}", file=sys.stderr)
    if not result.files:
        return USAGE
    return OK if result.ok else TAMPERED


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "sync": _sync,
    "plan": _plan,
    "explain": commands.explain,
    "check-config": _check,
    "expiring": commands.expiring,
    "notify-test": commands.notify_test,
    "attest": commands.attest,
    "audit-verify": _verify,
    "config-schema": commands.schema,
    "ha-status": commands.ha_status,
    "ha-step-down": commands.ha_step_down,
}
