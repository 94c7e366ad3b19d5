"""``POST /trigger``: a cycle now, for an HR system that calls a webhook on "contract
terminated" instead of waiting for the next poll.

Served by ``syncd.listener.serve`` on the daemon's listener when
``daemon.trigger_token_file`` is set (off by default). A request must carry
``Authorization: Bearer <token>``, compared in constant time; its body is ignored (it
is never trusted to say what changed: the cycle reads the sources). Requests closer
together than ``daemon.trigger_min_interval`` are answered 429 with ``Retry-After``;
the cycle already requested covers them. An accepted request sets
``Controls.request_cycle`` (through ``request``) and is kept for the daemon's loop to
write to the audit trail as an event (``take``); refused ones are logged.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from syncd.config import DaemonConfig

log = logging.getLogger(__name__)
PATH = "/trigger"
Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers


class Trigger:
    """Checks and rate-limits ``POST /trigger`` and requests a cycle."""

    def __init__(
        self,
        token: str,
        min_interval: float,
        request: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token:
            raise ValueError("an empty trigger token would let anyone in")
        self._token = token.encode()
        self.min_interval = min_interval
        self.request = request
        self.clock = clock
        self._lock = threading.Lock()
        self._last = -math.inf
        self._accepted: list[str] = []  # the clients of accepted requests, for the audit

    def answer(self, path: str, headers: Mapping[str, str], client: str) -> Answer:
        """The answer to a POST on ``path``."""
        if path.partition("?")[0] != PATH:
            return 404, {"error": f"not found: POST {PATH}"}, {}
        scheme, _, given = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            log.warning("POST %s from %s refused: missing or wrong bearer token", PATH, client)
            return 401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"}
        with self._lock:
            now = self.clock()
            wait = self._last + self.min_interval - now
            if wait > 0:
                retry = str(math.ceil(wait))
                body = {"error": "a cycle was requested moments ago", "retry_after": int(retry)}
                return 429, body, {"Retry-After": retry}
            self._last = now
            self._accepted.append(client)
        log.info("POST %s from %s: a cycle is requested", PATH, client)
        self.request()
        return 202, {"status": "cycle requested"}, {}

    def take(self) -> list[str]:
        """The clients of the requests accepted since the last call."""
        with self._lock:
            accepted, self._accepted = self._accepted, []
        return accepted


def trigger_of(daemon: DaemonConfig, request: Callable[[], None]) -> Trigger | None:
    """POST /trigger when ``daemon.trigger_token_file`` is set (checked by the config)."""
    if daemon.trigger_token_file is None:
        return None
    token = daemon.trigger_token_file.read_text(encoding="utf-8").strip()
    return Trigger(token, daemon.trigger_min_interval.total_seconds(), request)
