"""The HTTP listener of ``syncd run`` (``daemon.metrics_address``): ``/metrics`` (the
Prometheus text format, ``syncd.metrics``), ``/healthz`` (200 or 503 with a JSON
reason, from ``Health``) and, when given one, a POST handler (``syncd.trigger``).

Called by ``syncd.daemon``, which starts it (``serve``) and, with ``syncd.cycles`` and
``syncd.ha``, sets the health state as things happen. One small threaded HTTP server
in a daemon thread; requests are never logged (scrapes come every few seconds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from syncd.metrics import Metrics

MAX_POST_BODY = 64 << 10  # a POST body is read (and ignored) up to this size
# answers a POST: (path, headers, client address) -> status, JSON body, extra headers
Post = Callable[[str, Mapping[str, str], str], tuple[int, dict[str, Any], dict[str, str]]]


@dataclass
class Health:
    """What ``/healthz`` reports (200: ``ok``, or a follower's ``standby``, ``ha:``)."""

    status: str = "starting"
    reason: str = "no cycle has finished yet"
    details: dict[str, Any] = field(default_factory=dict)
    # what the running config weakens (``Config.warnings``), shown whatever the status
    warnings: list[str] = field(default_factory=list)
    # what the running cycle is retrying right now (``syncd.pulse.Pulse.troubles``): a
    # cycle stuck on a target shows as failing before it ends
    retrying: Callable[[], list[str]] | None = None
    role: dict[str, Any] = field(default_factory=dict)  # ha: this host's role, the leader
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, status: str, reason: str = "", **details: Any) -> None:
        with self.lock:
            self.status, self.reason, self.details = status, reason, details

    def answer(self) -> tuple[int, dict[str, Any]]:
        retrying = self.retrying() if self.retrying is not None else []
        with self.lock:
            status, reason = self.status, self.reason
            if retrying and status in ("ok", "starting"):
                status, reason = "failing", f"a cycle is retrying: {'; '.join(retrying)}"
            body = {"status": status, **self.details}
            if reason:
                body["reason"] = reason
            if retrying:
                body["retrying"] = retrying
            if self.warnings:
                body["warnings"] = list(self.warnings)
            body.update(self.role)
            return (200 if status in ("ok", "standby") else 503), body


def serve(
    address: str, metrics: Metrics, health: Health, post: Post | None = None
) -> ThreadingHTTPServer:
    """Start the endpoint on ``host:port`` in a daemon thread. ``post``: what answers a
    POST (``syncd.trigger``); None: every POST is 405."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= MAX_POST_BODY:
                self.rfile.read(length)  # ignored
            else:
                self.close_connection = True
            if post is None:
                self._send(405, b"method not allowed\n", "text/plain")
                return
            auth = {"Authorization": self.headers.get("Authorization", "")}
            code, body, headers = post(self.path, auth, self.client_address[0])
            self._send(code, json.dumps(body).encode(), "application/json", headers)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                code, body = health.answer()
                self._send(code, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(
            self, code: int, body: bytes, content_type: str, more: Mapping[str, str] | None = None
        ) -> None:
            self.send_response(code)
            for name, value in (more or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Scrapes every few seconds are not worth a log line."""

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    # polls for shutdown() every 0.1 s, so that a stop does not wait for it
    serving = threading.Thread(
        target=server.serve_forever, args=(0.1,), name="syncd-http", daemon=True
    )
    serving.start()
    return server
