"""The config file's sections other than targets and sources: policy, safety, daemon, audit.

Composed by ``syncd.config.model.Config``. Their values reach the rest of syncd directly
(``AuditConfig`` for the audit writer,
``DaemonConfig`` for ``syncd run``) or through ``Config.core_policy()``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from syncd.config.common import (
    Duration,
    LimitField,
    Model,
    Problem,
    Size,
    read_secret,
    secret_problem,
)
from syncd.core.contracts import TEXT_FIELDS
from syncd.core.policy import Limit


class UsernamePolicy(Model):
    """How a username is made when a contract gives none, and what every username must
    look like. A username is fixed once its account exists."""

    template: str = Field(
        default="{given_name}.{family_name}",
        description="Username template with contract placeholders ({given_name}, "
        "{family_name}, ...); the result is ASCII-folded and lower-cased.",
    )
    pattern: str = Field(
        default=r"^[a-z][a-z0-9._-]{0,63}$",
        description="Regular expression every username, made or given, must match; the "
        "default accepts common POSIX login names.",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"not a valid regular expression: {exc} (use e.g. ^[a-z][a-z0-9._-]{{0,63}}$)"
            ) from exc
        return value


class PolicyConfig(Model):
    """How contracts become access: time zone, lead time, approval, limits, deletion."""

    timezone: str = Field(
        default="UTC",
        description="IANA time zone (e.g. Europe/Berlin) in which date-only starts and ends "
        "of contracts are read.",
    )
    lead_time: Duration = Field(
        default=timedelta(0),
        description="Accounts are granted this long before a contract starts (30m, 12h, 1d, "
        "2w), so people can log in when they arrive. Default 0: at the start itself.",
    )
    require_approval: bool = Field(
        default=False, description="When true, a contract without approved_by grants nothing."
    )
    max_duration: Duration | None = Field(
        default=None,
        description="Contracts longer than this are rejected as invalid. Unset: no limit.",
    )
    delete_after: Duration | None = Field(
        default=None,
        description="Disabled accounts are deleted this long after their access ended. "
        "Unset: never deleted; they stay disabled for audit.",
    )
    orphan_grace: Duration = Field(
        default=timedelta(hours=1),
        description="A managed account whose person vanished from the source (an orphan) "
        "is disabled and removed from its groups at once, but its credentials are revoked, "
        "and it is deleted, only once the person has been absent this long (30m, 1h, 1d): "
        "a source read half-written must not cost passwords. A contract's own end or "
        "termination is never delayed. 0s: no grace.",
    )
    username: UsernamePolicy = Field(
        default=UsernamePolicy(), description="How usernames are made and checked."
    )
    max_field_length: int = Field(
        default=256,
        ge=1,
        description="Most characters of any text field of a contract (ids, names, person, "
        "e-mail, vendor, sponsor, username, each role, each attribute name and value); a "
        "longer value makes its record invalid. field_lengths sets other limits per field.",
    )
    field_lengths: dict[str, int] = Field(
        default_factory=dict,
        description="Contract field -> its own length limit in characters, instead of "
        "max_field_length (e.g. given_name: 64 for a directory that takes no more; "
        "attributes: applies to every attribute name and value).",
    )

    @field_validator("field_lengths")
    @classmethod
    def _known_fields(cls, value: dict[str, int]) -> dict[str, int]:
        for name, most in value.items():
            if name not in TEXT_FIELDS:
                known = ", ".join(TEXT_FIELDS)
                raise ValueError(f"unknown contract field {name!r}; use one of: {known}")
            if most < 1:
                raise ValueError(f"{name}: a length limit is at least 1")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown IANA timezone {value!r} (use a name such as Europe/Berlin, "
                "America/New_York or UTC)"
            ) from exc
        return value


class SafetyConfig(Model):
    """Limits on mass changes, per target and cycle: a count, or a percentage of the
    target's managed accounts. Over a limit all such actions are held (exit code 3) until
    someone runs ``syncd sync --allow-mass-change``."""

    max_orphan_disables: LimitField = Field(
        default=Limit(10),
        description="Most accounts offboarded in one cycle because their person vanished "
        "from the source. Disables a contract's own end calls for are never held.",
    )
    max_deletes: LimitField = Field(
        default=Limit(10), description="Most accounts deleted in one cycle."
    )
    max_source_drop: LimitField = Field(
        default=Limit(20, percent=True),
        description="syncd run distrusts a source whose valid contracts drop by more than "
        "this since the last accepted read, and plans from its snapshot instead: dated "
        "expiries still happen, everything else waits.",
    )


class DaemonConfig(Model):
    """``syncd run`` (SPEC §4): polling, its state, the metrics endpoint, systemd."""

    interval: Duration = Field(
        default=timedelta(minutes=5),
        description="How often the source is polled. Access still ends on time: the daemon "
        "also wakes at every known grant time and access end.",
    )
    state_dir: Path = Field(
        default=Path("/var/lib/syncd"),
        description="Folder of the instance lock, the last accepted source snapshot and "
        "when each orphan was first seen absent (policy.orphan_grace; syncd sync uses it "
        "too, but never creates it); one daemon per folder. A relative path is relative "
        "to the config file's folder.",
    )
    metrics_address: str = Field(
        default="127.0.0.1:9464",
        description='host:port serving Prometheus /metrics and /healthz; "" turns the '
        "endpoint off. Loopback by default, so nothing is exposed unasked.",
    )
    ready_timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="READY=1 goes to systemd after the first successful cycle, or after this "
        "at the latest, so an unreachable target does not hold up boot.",
    )
    backoff_max: Duration = Field(
        default=timedelta(minutes=5),
        description="Longest wait between failing cycles (exponential backoff with jitter).",
    )
    source_debounce: Duration = Field(
        default=timedelta(seconds=1),
        description="A changed source file is read once its size and times have stayed the "
        "same this long, so a file being rewritten in place is not read half-written. "
        "Writing a new file and renaming it into place is safer still. 0s: read at once.",
    )
    targeted_cycles: bool = Field(
        default=True,
        description="When only a boundary is due (a grant time, an access end, an orphan's "
        "grace), act on just the people whose access changes then: observe their accounts "
        "alone and plan them from the last accepted source (or its snapshot), so that an "
        "end is enforced within a second even over a large managed scope. Full cycles "
        "still run at every interval and source change. false: every wake-up is a full "
        "cycle.",
    )
    trigger_token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token that POST /trigger on metrics_address must "
        "carry to run a cycle now (a webhook for an HR system's 'contract terminated'). "
        "Unset: /trigger is off. Read at start. A relative path is looked up in "
        "$CREDENTIALS_DIRECTORY when set.",
    )
    trigger_min_interval: Duration = Field(
        default=timedelta(seconds=10),
        description="POST /trigger requests closer together than this are answered 429 with "
        "Retry-After; the cycle already requested covers them.",
    )

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check: /trigger has a listener and a token."""
        file = self.trigger_token_file
        if file is None:
            return []
        if not self.metrics_address:
            return [
                Problem(
                    ("trigger_token_file",),
                    "POST /trigger needs the listener, and metrics_address is off",
                    "set metrics_address: 127.0.0.1:9464, or remove trigger_token_file",
                )
            ]
        problem = secret_problem("trigger_token", file, None)
        if problem is None and not read_secret(file, None):
            problem = f"trigger_token_file {file} is empty"
        if problem:
            return [Problem(("trigger_token_file",), problem, "point it at the token's file")]
        return []


class AuditConfig(Model):
    """The hash-chained audit trail (SPEC §6); ``syncd audit verify`` checks it."""

    path: Path = Field(
        default=Path("/var/log/syncd/audit.jsonl"),
        description="The trail's active file (created 0640). A relative path is relative "
        "to the config file's folder.",
    )
    fsync: Literal["batch", "record"] = Field(
        default="batch",
        description="batch: the intents of a batch are fsynced before any of its changes is "
        "sent, and everything after each target's changes; record: each record is fsynced as "
        "it is written (slower).",
    )
    rotate_size: Size = Field(
        default=100 << 20,
        ge=0,
        description="Seal the file and start a new one at this size: bytes, or with a unit "
        "(512K, 100MB, 1GB; powers of 1024). 0: never by size.",
    )
    rotate_age: Duration | None = Field(
        default=None,
        description="Also seal and start a new file when it is this old. Unset: never by age.",
    )
    checkpoint_records: int = Field(
        default=1000,
        ge=1,
        description="A checkpoint record, repeating the chain head for anchoring in a SIEM, "
        "every this many records.",
    )
    checkpoint_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="A checkpoint at least this often while records are written.",
    )
    hmac_key_file: Path | None = Field(
        default=None,
        description="File holding a site key: the chain then uses HMAC-SHA-256 instead of "
        "SHA-256, so only key holders can rewrite it unnoticed. A relative path is looked up "
        "in $CREDENTIALS_DIRECTORY when set. Needs key_id.",
    )
    key_id: str = Field(
        default="",
        description="Name of the HMAC key, written into the records so a verifier knows "
        "which key to use. Required with hmac_key_file.",
    )

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check: the HMAC key exists and is named."""
        out: list[Problem] = []
        if self.hmac_key_file is None:
            return out
        if not self.hmac_key_file.is_file():
            out.append(
                Problem(
                    ("hmac_key_file",),
                    f"{self.hmac_key_file} does not exist",
                    "point it at a file holding the HMAC key (e.g. 32 random bytes, base64)",
                )
            )
        if not self.key_id:
            out.append(
                Problem(
                    ("key_id",),
                    "an HMAC key needs a key_id",
                    "name the key, e.g. key_id: audit-2027",
                )
            )
        return out
