"""A small JSON API of our own that fails on purpose, for the HTTP source's failure cases.

It serves one collection in pages, ``GET /items?page=N`` (``page`` paging, ``size`` items
a page), with a ``next`` URL, a ``cursor`` and a ``total`` in each body and an ``ETag``
that ``If-None-Match`` answers with 304. ``FaultApi.faults`` switches on one misbehaviour
at a time, each a real HTTP answer on a real socket: a page that answers 500, a 429 with
``Retry-After`` (once), a body cut short of its ``Content-Length``, a cursor that loops,
a total that disagrees with the items. ``hits`` counts requests by page; with
``authorization`` set, a request without that ``Authorization`` header gets 401.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FaultApi:
    """The collection, the faults switched on, and what was asked."""

    items: list[dict[str, Any]]
    size: int = 2
    faults: set[str] = field(default_factory=set)
    hits: Counter[int] = field(default_factory=Counter)
    url: str = ""
    authorization: str | None = None  # when set, the Authorization header every request needs

    def body(self, page: int) -> dict[str, Any]:
        start = (page - 1) * self.size
        chunk = self.items[start : start + self.size]
        more = start + self.size < len(self.items)
        cursor = (str(page + 1) if more else None) if "cursor-loop" not in self.faults else "1"
        total = len(self.items) + (1 if "wrong-total" in self.faults else 0)
        return {
            "data": {"items": chunk},
            "next": f"{self.url}/items?page={page + 1}" if more else None,
            "cursor": cursor,
            "total": total,
        }


def _handler(api: FaultApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            page = int((query.get("page") or query.get("cursor") or ["1"])[0])
            api.hits[page] += 1
            if api.authorization and self.headers.get("Authorization") != api.authorization:
                return self._send(401, b'{"error": "unauthorized"}')
            if page == 2 and "500" in api.faults:
                return self._send(500, b'{"error": "boom"}')
            if page == 2 and "429" in api.faults and api.hits[page] == 1:
                return self._send(429, b"{}", {"Retry-After": "1"})
            data = json.dumps(api.body(page)).encode()
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", {"ETag": etag})
            if page == 2 and "truncated" in api.faults:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return None
            return self._send(200, data, {"ETag": etag})

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(api: FaultApi) -> Iterator[FaultApi]:
    """Serve ``api`` on a free port of 127.0.0.1 until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
