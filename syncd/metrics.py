"""Prometheus metrics and the ``/healthz`` endpoint of ``syncd run``.

Called by ``syncd.daemon``, which updates the metrics after every cycle and the health
state as things happen. One small threaded HTTP server serves ``/metrics`` (the
Prometheus text format) and ``/healthz`` (200 or 503 with a JSON reason). Metric names
are referenced by ``config/alerts.yaml``; renaming one is a breaking change.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LAG_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 5, 10, 30, 60, 300, 900)


class Metrics:
    """Every metric syncd exports, on a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.cycle_duration = Histogram(
            "syncd_cycle_duration_seconds", "Duration of reconcile cycles", registry=r
        )
        self.cycles = Counter("syncd_cycles", "Reconcile cycles by result", ["result"], registry=r)
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds",
            "Unix time of the last fully successful cycle",
            registry=r,
        )
        self.actions = Counter(
            "syncd_actions",
            "Target actions by kind and result",
            ["target", "kind", "result"],
            registry=r,
        )
        self.managed = Gauge(
            "syncd_managed_accounts", "Managed accounts by state", ["target", "state"], registry=r
        )
        self.contracts = Gauge("syncd_contracts", "Valid contracts by state", ["state"], registry=r)
        self.invalid = Gauge("syncd_invalid_records", "Invalid source records", registry=r)
        self.held = Gauge(
            "syncd_safety_held_actions",
            "Actions held by a safety limit in the last cycle",
            ["target"],
            registry=r,
        )
        self.conflicts = Gauge(
            "syncd_conflicts", "Conflicts found in the last cycle", ["target"], registry=r
        )
        self.source_failures = Counter(
            "syncd_source_failures", "Source reads that failed or looked suspicious", registry=r
        )
        self.source_ok_at = time.time()
        self.source_age = Gauge(
            "syncd_source_age_seconds", "Seconds since the last good source read", registry=r
        )
        self.source_age.set_function(lambda: time.time() - self.source_ok_at)
        self.next_expiry = Gauge(
            "syncd_next_expiry_timestamp_seconds", "Unix time of the next access end", registry=r
        )
        self.expiry_lag = Histogram(
            "syncd_expiry_lag_seconds",
            "From a contract's end to its account being disabled",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.expired_enabled = Gauge(
            "syncd_expired_enabled_accounts",
            "Accounts whose access ended that are still enabled",
            ["target"],
            registry=r,
        )
        self.interval = Gauge(
            "syncd_daemon_interval_seconds", "Configured poll interval", registry=r
        )


@dataclass
class Health:
    """What ``/healthz`` reports; updated by the daemon, read by the HTTP thread."""

    status: str = "starting"
    reason: str = "no cycle has finished yet"
    details: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, status: str, reason: str = "", **details: Any) -> None:
        with self.lock:
            self.status, self.reason, self.details = status, reason, details

    def answer(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            body = {"status": self.status, **self.details}
            if self.reason:
                body["reason"] = self.reason
            return (200 if self.status == "ok" else 503), body


def serve(address: str, metrics: Metrics, health: Health) -> ThreadingHTTPServer:
    """Start the endpoint on ``host:port`` in a daemon thread."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                code, body = health.answer()
                self._send(code, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Scrapes every few seconds are not worth a log line."""

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="syncd-http", daemon=True).start()
    return server
