"""What a notice is, and how it becomes text: ``Notice`` and ``Renderer``.

A ``Notice`` is made by ``syncd.notify.due`` (warnings, the digest) and
``syncd.notify.events`` (grants, revocations, ops notices); ``syncd.notify.service``
hands it to the channels, which render it here. Templates are files ops can edit:
``<kind>.txt`` (its first line ``Subject: ...``), ``<kind>.html`` and the webhook's
JSON body, looked up in ``notify.templates_dir`` first, then among the defaults shipped
in ``syncd/notify/templates``. Jinja2 renders them in a sandbox, autoescaped for HTML
and JSON-safe through ``tojson``; an unknown variable is an error, not an empty string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from syncd.errors import SyncdError

SHIPPED = Path(__file__).resolve().parent / "templates"
KINDS = ("warning", "granted", "revoked", "ops", "digest", "test")


class NotifyError(SyncdError):
    """A notice could not be rendered or delivered. ``temporary``: worth trying again."""

    def __init__(self, message: str, *, temporary: bool = True, code: int = 0) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code  # a webhook receiver's HTTP status, 0 when none came


@dataclass(frozen=True)
class Receipt:
    """What a channel knows of a message it delivered."""

    message_uid: str = ""  # the mail's Message-ID
    code: int = 0  # the webhook receiver's HTTP status


@dataclass(frozen=True)
class Notice:
    """One message to send: its kind, recipients, what it is about, and the values its
    templates fill in. ``key`` names it for exactly-once bookkeeping."""

    kind: str
    key: str
    to: tuple[str, ...]
    contract_ids: tuple[str, ...] = ()
    threshold: str = ""  # a warning's threshold, as configured (14d)
    late: bool = False  # a warning sent after its moment passed (the daemon was down)
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def context(self) -> dict[str, Any]:
        return {
            **self.values,
            "kind": self.kind,
            "to": list(self.to),
            "contract_ids": list(self.contract_ids),
            "threshold": self.threshold,
            "late": self.late,
        }


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    """The templates of one configuration."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        folders = [str(templates_dir)] if templates_dir is not None else []
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader([*folders, str(SHIPPED)]),
            autoescape=select_autoescape(["html"], default_for_string=False, default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            return self.env.get_template(name).render(context)
        except TemplateError as exc:
            raise NotifyError(f"template {name}: {exc}", temporary=False) from exc

    def message(self, notice: Notice) -> Rendered:
        """Subject, plain text and HTML of ``notice``."""
        context = notice.context()
        text = self._render(f"{notice.kind}.txt", context)
        first, _, rest = text.partition("\n")
        if not first.startswith("Subject:"):
            raise NotifyError(
                f"template {notice.kind}.txt: its first line must be 'Subject: ...'",
                temporary=False,
            )
        html = self._render(f"{notice.kind}.html", context)
        return Rendered(first.removeprefix("Subject:").strip(), rest.lstrip("\n"), html)

    def webhook_body(self, notice: Notice, template: str) -> Any:
        """The webhook's JSON body: ``template`` rendered with the message's values."""
        rendered = self.message(notice)
        context = {**notice.context(), "subject": rendered.subject, "text": rendered.text}
        body = self._render(template, context)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise NotifyError(f"template {template}: not JSON: {exc}", temporary=False) from exc
