"""The ways a notice leaves syncd: mail through an SMTP relay and an HTTPS webhook.

Built by ``syncd.notify.service`` from ``notify.smtp`` and ``notify.webhook``; each has
``send(notice)`` that either delivers the message or raises ``NotifyError``. Connection
failures, timeouts, SMTP 4xx answers and HTTP 429/5xx are temporary and tried again
(tenacity, exponential backoff with jitter, ``notify.retries`` tries); anything else is
permanent. TLS is always verified (the host name included): STARTTLS or TLS from the
first byte for SMTP, https for the webhook. Secrets (the SMTP password, header values)
are read when a message is sent, and never appear in an error.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

import httpx2
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from syncd.config.notify import NotifyConfig, SmtpChannel, WebhookChannel
from syncd.notify.message import Notice, NotifyError, Receipt, Renderer

log = logging.getLogger(__name__)
BACKOFF_MAX = 8.0  # seconds between two tries at most: a cycle's delivery stays short


class Channel(Protocol):
    name: str
    endpoint: str  # host:port of the relay, or the webhook's URL
    sender: str  # the From address; "" for a webhook
    renderer: Renderer

    def send(self, notice: Notice) -> Receipt: ...


def _temporary(exc: BaseException) -> bool:
    return isinstance(exc, NotifyError) and exc.temporary


def retrying(tries: int, first: float = 1.0) -> Retrying:
    """Temporary failures tried again, ``tries`` tries in all."""
    return Retrying(
        retry=retry_if_exception(_temporary),
        stop=stop_after_attempt(tries),
        wait=wait_exponential_jitter(initial=first, max=BACKOFF_MAX),
        reraise=True,
    )


def _context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class Mail:
    """One message per notice, to all its recipients, text and HTML alternatives."""

    name = "smtp"

    def __init__(self, config: SmtpChannel, renderer: Renderer, tries: int) -> None:
        self.config = config
        self.renderer = renderer
        self.tries = tries
        self.endpoint = f"{config.host}:{config.port}"
        self.sender = config.from_address

    def send(self, notice: Notice) -> Receipt:
        rendered = self.renderer.message(notice)
        message = EmailMessage()
        message["From"] = self.config.from_address
        message["To"] = ", ".join(notice.to)
        message["Subject"] = rendered.subject
        message_uid = make_msgid(domain=self.config.from_address.rpartition("@")[2])
        message["Message-ID"] = message_uid
        message["X-Syncd-Notice"] = notice.kind
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        for attempt in retrying(self.tries):
            with attempt:
                self._deliver(message, notice.to)
        return Receipt(message_uid=message_uid)

    def _deliver(self, message: EmailMessage, to: tuple[str, ...]) -> None:
        c = self.config
        timeout = c.timeout.total_seconds()
        try:
            with self._connect(timeout) as smtp:
                if c.username:
                    smtp.login(c.username, c.read_secret())
                refused = smtp.send_message(message, from_addr=c.from_address, to_addrs=list(to))
            if refused:
                log.warning("smtp %s: refused %s", self.endpoint, ", ".join(sorted(refused)))
        except smtplib.SMTPResponseException as exc:
            detail = f"smtp {c.host}:{c.port}: {exc.smtp_code} {exc.smtp_error!r}"
            raise NotifyError(detail, temporary=400 <= exc.smtp_code < 500) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            names = ", ".join(sorted(exc.recipients))
            raise NotifyError(f"smtp {c.host}:{c.port}: refused {names}", temporary=False) from exc
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"smtp {c.host}:{c.port}: TLS: {exc}", temporary=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"smtp {c.host}:{c.port}: {exc or type(exc).__name__}") from exc

    def _connect(self, timeout: float) -> smtplib.SMTP:
        c = self.config
        if c.tls == "implicit":
            return smtplib.SMTP_SSL(c.host, c.port, timeout=timeout, context=_context(c.ca_file))
        smtp = smtplib.SMTP(c.host, c.port, timeout=timeout)
        try:
            if c.tls == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise NotifyError(
                        f"smtp {c.host}:{c.port} does not offer STARTTLS "
                        "(fix: enable it on the relay, or use tls: implicit)",
                        temporary=False,
                    )
                smtp.starttls(context=_context(c.ca_file))
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


def read_headers(path: Path | None) -> dict[str, str]:
    """Extra request headers, one ``Name: value`` a line; blank lines and # comments skipped."""
    if path is None:
        return {}
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise NotifyError(f"{path}:{number}: not a 'Name: value' header", temporary=False)
        out[name.strip()] = value.strip()
    return out


class Webhook:
    """A POST per notice, its JSON body from ``notify.webhook.template``."""

    name = "webhook"

    def __init__(
        self,
        config: WebhookChannel,
        renderer: Renderer,
        tries: int,
        client: Callable[[], httpx2.Client] | None = None,
    ) -> None:
        self.config = config
        self.renderer = renderer
        self.tries = tries
        self._client = client or self._new_client
        self.endpoint = config.url
        self.sender = ""

    def _new_client(self) -> httpx2.Client:
        return httpx2.Client(
            verify=_context(self.config.ca_file),
            timeout=self.config.timeout.total_seconds(),
            follow_redirects=False,
        )

    def send(self, notice: Notice) -> Receipt:
        body = self.renderer.webhook_body(notice, self.config.template)
        try:
            headers = read_headers(self.config.headers_file)
        except OSError as exc:
            detail = f"webhook headers_file {self.config.headers_file}: {exc.strerror}"
            raise NotifyError(detail, temporary=False) from exc
        with self._client() as client:
            for attempt in retrying(self.tries):
                with attempt:
                    return Receipt(code=self._post(client, body, headers))
        raise AssertionError("retrying stops by raising")  # pragma: no cover

    def _post(self, client: httpx2.Client, body: object, headers: dict[str, str]) -> int:
        host = httpx2.URL(self.config.url).host
        try:
            response = client.post(self.config.url, json=body, headers=headers)
        except httpx2.HTTPError as exc:
            raise NotifyError(f"webhook {host}: {type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if code < 300:
            return code
        temporary = code == 429 or code >= 500
        raise NotifyError(f"webhook {host}: HTTP {code}", temporary=temporary, code=code)


def channels(config: NotifyConfig, renderer: Renderer) -> list[Channel]:
    """The channels ``config`` names, in a fixed order (smtp, webhook)."""
    out: list[Channel] = []
    if config.smtp is not None:
        out.append(Mail(config.smtp, renderer, config.retries))
    if config.webhook is not None:
        out.append(Webhook(config.webhook, renderer, config.retries))
    return out
