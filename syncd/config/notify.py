"""The ``notify:`` section: how sponsors, contractors and ops are told about access.

Composed by ``syncd.config.model.Config``; read by ``syncd.notify`` (the daemon's
notices and ``syncd expiring --notify``, ``syncd notify test``). Two channels, each
optional: SMTP (``smtp``) and an HTTPS webhook (``webhook``). With neither, nothing is
sent. Secrets (the SMTP password, the webhook's header values) come from files or
environment variables only, as everywhere in the config.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from syncd.config.common import Duration, Model, Problem, SecretRef, secret_problem

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class SmtpChannel(SecretRef):
    """Mail through an SMTP relay, always over verified TLS unless ``tls: none``."""

    host: str = Field(description="The relay's host name, as its certificate names it.")
    port: int = Field(
        default=587, ge=1, le=65535, description="587 for STARTTLS, 465 for implicit TLS."
    )
    tls: Literal["starttls", "implicit", "none"] = Field(
        default="starttls",
        description="starttls: plain connection upgraded with STARTTLS (refused when the "
        "relay does not offer it); implicit: TLS from the first byte (port 465); none: no "
        "encryption, only for a relay on the same host, and never with a password.",
    )
    ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that sign the relay's certificate; unset: the "
        "system's. The host name is always checked.",
    )
    username: str = Field(
        default="", description='Login name on the relay; "" sends without logging in.'
    )
    from_address: str = Field(description="The From address of every message.")
    timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="Longest wait for the relay on one connection step.",
    )

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if self.username and self.password_file is None and self.password_env is None:
            out.append(Problem(("username",), "a username needs a password", "set password_file"))
        if self.username:
            out += self.password_problems("point password_file at a readable file")
        if self.username and self.tls == "none":
            out.append(
                Problem(
                    ("tls",),
                    "a password is never sent over an unencrypted connection",
                    "use tls: starttls or implicit",
                )
            )
        return out


class WebhookChannel(Model):
    """An HTTPS POST per message, its JSON body rendered from a template, so that a
    chat or ticket system's shape needs no code."""

    url: str = Field(
        description="Where to POST, https://...", examples=["https://hooks.example.com/x"]
    )
    ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) for the receiver; unset: the system's."
    )
    headers_file: Path | None = Field(
        default=None,
        description='File of extra request headers, one "Name: value" a line (a token, '
        "for example). A relative path is looked up in $CREDENTIALS_DIRECTORY when set.",
    )
    template: str = Field(
        default="webhook.json",
        description="Template of the JSON body, by file name, looked up in "
        "notify.templates_dir and then among the shipped defaults.",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="Longest wait for the receiver."
    )

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"{value!r} is not an https:// URL")
        return value

    def problems(self) -> list[Problem]:
        if self.headers_file is None:
            return []
        problem = secret_problem("headers", self.headers_file, None)
        return [Problem(("headers_file",), problem, "")] if problem else []


class Recipients(Model):
    """Who gets what. Warnings and the digest go to the sponsor (``sponsor:`` field of
    a contract); ops notices to ``ops``."""

    sponsor: bool = Field(default=True, description="Warn the contract's sponsor.")
    contractor: bool = Field(default=False, description="Warn the contractor too.")
    copy_to: list[str] = Field(
        default_factory=list, description="Fixed addresses that get a copy of every warning."
    )
    ops: list[str] = Field(
        default_factory=list,
        description="Addresses for ops notices (held actions, conflicts) and test messages.",
    )


class Kinds(Model):
    """Each kind of notice, on or off."""

    warning: bool = Field(default=True, description="Warnings before access ends.")
    granted: bool = Field(default=True, description="Access granted, to the sponsor.")
    revoked: bool = Field(default=True, description="Access revoked, to the sponsor.")
    ops: bool = Field(default=True, description="Held actions and new conflicts, to ops.")
    digest: bool = Field(default=True, description="The sponsor digest.")


class Digest(Model):
    """The periodic list of the people each sponsor sponsors, in policy.timezone."""

    every: Literal["off", "daily", "weekly"] = Field(
        default="weekly", description="How often; off: never."
    )
    day: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = (
        Field(default="monday", description="Day of a weekly digest.")
    )
    hour: int = Field(default=8, ge=0, le=23, description="Hour of the day it is sent.")


class NotifyConfig(Model):
    """Notices to sponsors, contractors and ops (SPEC §1). With neither smtp nor
    webhook, nothing is sent."""

    smtp: SmtpChannel | None = Field(default=None, description="Mail through an SMTP relay.")
    webhook: WebhookChannel | None = Field(default=None, description="An HTTPS webhook.")
    warn_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=14), timedelta(days=3), timedelta(days=1)],
        description="Warn this long before access ends, once per threshold and end date; "
        "a later end date (an extension) arms them again.",
    )
    recipients: Recipients = Field(default=Recipients(), description="Who gets what.")
    kinds: Kinds = Field(default=Kinds(), description="Which kinds of notice are sent.")
    digest: Digest = Field(default=Digest(), description="The sponsor digest.")
    extend_text: str = Field(
        default="To extend it, ask the vendor manager to extend the contract.",
        description="How to extend access, in the warning.",
    )
    extend_link: str = Field(default="", description="A link to the extension request form.")
    templates_dir: Path | None = Field(
        default=None,
        description="Folder of templates that replace the shipped ones by name (warning.txt, "
        "warning.html, granted.txt, ...). Relative to the config file's folder.",
    )
    retries: int = Field(
        default=3, ge=1, le=10, description="Tries per message within a cycle (backoff)."
    )
    queue_size: int = Field(
        default=1000,
        ge=1,
        description="Messages waiting for delivery at most; more wait for the next cycle.",
    )

    @property
    def channels(self) -> list[str]:
        return [name for name in ("smtp", "webhook") if getattr(self, name) is not None]

    def problems(self) -> list[Problem]:
        out = [p.within("smtp") for p in (self.smtp.problems() if self.smtp else [])]
        out += [p.within("webhook") for p in (self.webhook.problems() if self.webhook else [])]
        if self.templates_dir is not None and not self.templates_dir.is_dir():
            out.append(Problem(("templates_dir",), f"{self.templates_dir} is not a folder", ""))
        if any(t <= timedelta(0) for t in self.warn_before):
            out.append(Problem(("warn_before",), "thresholds must be positive", "e.g. [14d, 1d]"))
        return out
