"""The command line's grammar and its user-facing help (SPEC §7): ``parser()``.

Called by ``syncd.cli``, which dispatches on ``args.command`` (``audit verify`` is
``audit-verify``). The texts here are what ``syncd --help`` and ``syncd VERB --help``
show an operator; they say what each verb does and give examples, and change with the
verbs. ``-c/--config`` and ``-v`` are accepted before and after the verb: each
subparser declares them again with ``SUPPRESS`` defaults, so a value given before the
verb is not overwritten by the subparser's default.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from syncd import __version__

DESCRIPTION = """\
syncd keeps contractor accounts in LDAP directories, Active Directory and SCIM
applications in step with their contracts: an account appears when the work starts,
carries exactly the groups its roles grant, and is disabled, stripped of its groups
and credentials when the contract ends. Every change is written to a hash-chained
audit trail before it is sent and after."""

EPILOG = """\
examples:
  syncd check-config --online               validate the config, reach every target
  syncd plan                                what a cycle would change now
  syncd plan --at +14d --json               the same in 14 days, as JSON
  syncd sync --dry-run                      plan, change nothing
  syncd sync                                one reconcile cycle
  syncd explain ana.lopez@vendor.example    why a person has (or lacks) each group
  syncd expiring --within 7d                access ending within a week
  syncd expiring --notify --dry-run         the warnings due now, without sending
  syncd attest                              check the managed scopes
  syncd audit verify                        check the audit trail's hash chain
  syncd -c /etc/syncd/syncd.yaml run        the daemon (the systemd unit runs it)

-c/--config may stand before or after the command. Without it: $SYNCD_CONFIG, then
/etc/syncd/syncd.yaml.

exit codes:
  0  success
  1  a change failed, a conflict stands, a target could not be read
     (attest: a violation found)
  2  usage, config or source error: nothing was changed
  3  something was held by a safety limit (everything else was done)
  4  the audit trail was tampered with, or records were lost

--json output carries a "format" (syncd.plan/1, syncd.explain/1, ...); fields are
only ever added to a format."""

# verb -> (one line for the list of commands, examples for its own --help)
VERBS: dict[str, tuple[str, str]] = {
    "run": (
        "the daemon: reconcile continuously (the systemd service)",
        "syncd run --log-format json",
    ),
    "sync": (
        "run one reconcile cycle now (exit 1 while a conflict stands)",
        "syncd sync --dry-run\n  syncd sync --target corp-ldap\n  syncd sync --allow-mass-change",
    ),
    "plan": (
        "show what a cycle would change, now or at a later time",
        "syncd plan\n  syncd plan --at 2027-03-01 --target corp-ldap\n  syncd plan --json",
    ),
    "explain": (
        "why a person has (or lacks) each account and group",
        "syncd explain ana.lopez@vendor.example\n  syncd explain ana.lopez --at +30d\n"
        "  syncd explain C-1001 --json   (a contract id finds its person too)",
    ),
    "check-config": (
        "validate the config (--online: also reach every target)",
        "syncd check-config\n  syncd check-config -c new.yaml --online",
    ),
    "expiring": (
        "list access ending soon (--notify: send the warnings due now)",
        "syncd expiring --within 7d --json\n  syncd expiring --notify --dry-run\n"
        "  syncd expiring --notify",
    ),
    "notify": (
        "notice tools (notify test: a test message through each channel)",
        "syncd notify test --to ops@example.com",
    ),
    "attest": (
        "check the managed scopes against the contracts, record the result",
        "syncd attest --target corp-ldap --json",
    ),
    "config": (
        "config file tools (config schema: the JSON Schema, for editors)",
        "syncd config schema > syncd.schema.json",
    ),
    "ha": (
        "several hosts, one writer (ha status, ha step-down)",
        "syncd ha status --json\n  syncd ha step-down --wait 30s",
    ),
    "audit": (
        "audit trail tools (audit verify)",
        "syncd audit verify\n  syncd audit verify /var/log/syncd --expect-head 9f2c...",
    ),
}
CONFIG_HELP = "config file (default: $SYNCD_CONFIG, then /etc/syncd/syncd.yaml)"
FORMATTER = argparse.RawDescriptionHelpFormatter


def _common(top: bool) -> argparse.ArgumentParser:
    """``-c`` and ``-v``; below the verb with defaults that leave the top's values be."""
    common = argparse.ArgumentParser(add_help=False)
    suppressed: Any = argparse.SUPPRESS
    common.add_argument(
        "-c", "--config", metavar="FILE", help=CONFIG_HELP, default=None if top else suppressed
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log more (-vv: debug)",
        default=0 if top else suppressed,
    )
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="syncd",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=FORMATTER,
        parents=[_common(top=True)],
    )
    top.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = top.add_subparsers(required=True, metavar="COMMAND", title="commands")
    below = _common(top=False)

    def verb(name: str, parent: Any = sub) -> argparse.ArgumentParser:
        summary, examples = VERBS[name.split()[0]]
        command: argparse.ArgumentParser = parent.add_parser(
            name.split()[-1],
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"examples:\n  {examples}",
            formatter_class=FORMATTER,
            parents=[below],
        )
        command.set_defaults(command=name.replace(" ", "-"))
        return command

    run = verb("run")
    run.add_argument(
        "--log-format",
        choices=["plain", "json"],
        default="plain",
        help="one line per event on stderr, plain text or JSON",
    )

    sync = verb("sync")
    sync.add_argument("--dry-run", action="store_true", help="plan only, write nothing")
    sync.add_argument(
        "--allow-mass-change",
        action="store_true",
        help="lift the safety limits for this run (audited)",
    )
    _targets(sync)
    sync.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines on a terminal (they never go to a file or pipe)",
    )

    plan = verb("plan")
    _at(plan)
    _json(plan, "syncd.plan/1")
    _targets(plan)

    explain = verb("explain")
    explain.add_argument(
        "person",
        metavar="PERSON",
        help="an e-mail, person key, username or contract id (any case)",
    )
    _at(explain)
    _json(explain, "syncd.explain/1")
    _targets(explain)

    check = verb("check-config")
    check.add_argument(
        "--online",
        action="store_true",
        help="also bind to each target and check base DN and groups",
    )

    expiring = verb("expiring")
    expiring.add_argument("--within", default="14d", help="window, e.g. 14d (default)")
    _json(expiring, "syncd.expiring/1")
    expiring.add_argument(
        "--notify",
        action="store_true",
        help="send the warnings due now (notify.warn_before), once each, as the daemon does",
    )
    expiring.add_argument(
        "--dry-run", action="store_true", help="with --notify: show them, send nothing"
    )

    notify = verb("notify")
    channels = notify.add_subparsers(required=True, metavar="ACTION", title="actions")
    check = verb("notify test", channels)
    check.description = "Send a test message through each configured channel."
    check.add_argument("--to", required=True, metavar="ADDRESS", help="the recipient")

    attest = verb("attest")
    _targets(attest)
    _json(attest, "syncd.attest/1")

    audit = verb("audit")
    actions = audit.add_subparsers(required=True, metavar="ACTION", title="actions")
    _verify(verb("audit verify", actions))

    ha = verb("ha")
    election = ha.add_subparsers(required=True, metavar="ACTION", title="actions")
    ha_status = verb("ha status", election)
    ha_status.description = "The leader, its lease and the etcd members (from etcd)."
    _json(ha_status, "syncd.ha-status/1")
    handover = verb("ha step-down", election)
    handover.description = (
        "Ask the leader to hand over (a planned handover): it stops writing, lets its "
        "lease go and rests, so another host takes over. Exit 1 if none did in time."
    )
    handover.add_argument(
        "--wait", default="30s", help="how long to wait for another leader (default 30s)"
    )
    config = verb("config")
    tools = config.add_subparsers(required=True, metavar="ACTION", title="actions")
    verb("config schema", tools).description = "Print the config file's JSON Schema."
    return top


def _verify(check: argparse.ArgumentParser) -> None:
    check.description = "Check the audit trail's hash chain: every hash, link, sequence, seal."
    check.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="files or folders (default: the configured trail)",
    )
    _json(check, "")
    check.add_argument(
        "--expect-head",
        metavar="HASH",
        help="a record hash held elsewhere (SIEM) that must be in the trail",
    )
    check.add_argument(
        "--key-file", type=Path, help="HMAC key: every record must carry a valid HMAC"
    )
    check.add_argument("--key-id", default="", help="the HMAC key's name")


def _at(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--at",
        metavar="TIME",
        help="as of TIME: an ISO date or date-time, or +3d from now (default: now)",
    )


def _json(command: argparse.ArgumentParser, form: str) -> None:
    shape = f" (format {form})" if form else ""
    command.add_argument("--json", action="store_true", help=f"machine-readable output{shape}")


def _targets(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="only this target (repeatable)",
    )
