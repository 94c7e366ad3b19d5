"""Real receivers for notices on loopback: an SMTP server (aiosmtpd) that insists on
STARTTLS, or speaks TLS from the first byte, and an HTTPS webhook receiver, both with a
throwaway CA and certificate (as the directory servers' fixtures make them). Each keeps
what it received. ``Silent`` is a relay that accepts connections and never answers.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers.slapd import _make_tls


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Inbox:
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 OK"

    def __len__(self) -> int:
        with self.lock:
            return len(self.mails)


@dataclass
class MailServer:
    port: int
    ca_file: Path
    inbox: Inbox
    controller: Controller

    def stop(self) -> None:
        self.controller.stop()


def start_mail(folder: Path, *, implicit: bool = False) -> MailServer:
    """An SMTP server on 127.0.0.1 requiring STARTTLS (or TLS from the first byte)."""
    ca, cert, key = _make_tls(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    tls: dict[str, Any] = (
        {"ssl_context": context, "server_hostname": "127.0.0.1"}
        if implicit
        else {"tls_context": context, "require_starttls": True}
    )
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    return MailServer(port, ca, inbox, controller)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Hook:
    """An HTTPS receiver: each POST's headers and JSON body; ``answer`` picks the status."""

    port: int
    ca_file: Path
    server: ThreadingHTTPServer
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    answer: Callable[[int], int] = lambda _n: 200

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hooks/syncd"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_hook(folder: Path) -> Hook:
    ca, cert, key = _make_tls(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    calls: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            calls.append(1)
            status = hook.answer(len(calls))
            if status < 300:
                hook.received.append((dict(self.headers), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    hook = Hook(server.server_address[1], ca, server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hook


class Silent:
    """A relay that accepts connections and never says a word: a hung mail server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def stop(self) -> None:
        self.sock.close()
