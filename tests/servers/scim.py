"""Throwaway scim2-server on 127.0.0.1 for syncd's SCIM tests and benchmark, and the
tools those tests look at it with.

* :func:`start_scim` runs ``scim2-server`` (in memory, threaded) as a child process on
  a free loopback port with a random bearer token; ready in about 0.6 s.
  :meth:`ScimServer.stop` ends it. With ``tenants=True`` every first path segment is a
  new empty server (``--dynamic-tenants``), so one process serves many tests without
  sharing anything: :meth:`ScimServer.tenant` names a fresh one. ``config`` replaces
  the ServiceProviderConfig it announces (to take PATCH or bulk away).
* :class:`Directory` seeds and reads one tenant (or a whole server without tenants,
  such as SCIMMY: ``tests.servers.scimmy``) over its own httpx2 client, never through
  syncd, the way an admin of the application would see it.
* :class:`FaultProxy` stands between syncd and the server: it answers a scripted
  number of requests with a status (429 with ``Retry-After``, 503), delays them, or
  drops the connection before or after forwarding them, and records every request (its
  headers too) and the status the server answered. It can also play a server that
  misbehaves: answer success to a write it never applies (``swallow``), or apply
  another write than the one sent (``rewrite``).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
_READY_TIMEOUT = 10.0


class ScimServerError(RuntimeError):
    """scim2-server did not start; the message carries its output."""


@dataclass
class ScimServer:
    """A running (or stopped) scim2-server child process."""

    port: int
    token: str
    tenants: bool
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL without tenants."""
        return f"http://127.0.0.1:{self.port}/v2"

    def tenant(self) -> str:
        """The base URL of a tenant nobody has used yet."""
        assert self.tenants, "start_scim(tenants=True) serves tenants"
        return f"http://127.0.0.1:{self.port}/t{uuid.uuid4().hex[:12]}/v2"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Idempotent."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_scim(
    workdir: Path, *, tenants: bool = False, config: dict[str, Any] | None = None
) -> ScimServer:
    """Start scim2-server; its output goes to ``workdir/scim2-server.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(18)
    port = _free_port()
    command = [_executable(), "--hostname", "127.0.0.1", "--port", str(port)]
    command.append(f"--bearer-token={token}")  # a token may start with "-"
    if tenants:
        command.append("--dynamic-tenants")
    if config is not None:
        spc = workdir / "service-provider-config.json"
        spc.write_text(json.dumps(config))
        command += ["--service-provider-config", str(spc)]
    log = workdir / "scim2-server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    server = ScimServer(port, token, tenants, process)
    probe = server.tenant() if tenants else server.url
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            answer = httpx2.get(
                f"{probe}/ServiceProviderConfig", headers={"Authorization": f"Bearer {token}"}
            )
            if answer.status_code == 200:
                return server
        except httpx2.TransportError:
            time.sleep(0.05)
    server.stop()
    raise ScimServerError(f"scim2-server did not start:\n{log.read_text()[-2000:]}")


def default_config(**changes: Any) -> dict[str, Any]:
    """scim2-server's default ServiceProviderConfig with ``changes`` (e.g. ``patch=False``,
    ``bulk=False``, ``etag=False``, ``max_results=50``)."""
    config: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": changes.get("patch", True)},
        "bulk": {"supported": changes.get("bulk", True), "maxOperations": 1000,
                 "maxPayloadSize": 1048576},
        "filter": {"supported": True, "maxResults": changes.get("max_results", 1000)},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": changes.get("etag", True)},
    }  # fmt: skip
    return config


def _executable() -> str:
    beside = Path(sys.executable).with_name("scim2-server")
    found = str(beside) if beside.exists() else shutil.which("scim2-server")
    if not found:
        raise ScimServerError("scim2-server is not installed (pip install scim2-server)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Directory:
    """One tenant seen by its administrator: seed users and groups, read them back."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = httpx2.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def close(self) -> None:
        self.http.close()

    def _ok(self, response: httpx2.Response) -> Any:
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None

    def add_user(
        self,
        user_name: str,
        *,
        external_id: str | None = None,
        email: str | None = None,
        active: bool = True,
        **extra: Any,
    ) -> str:
        """A user as an earlier cycle (or someone else) left it; returns its id."""
        body: dict[str, Any] = {
            "schemas": [USER_SCHEMA],
            "userName": user_name,
            "active": active,
            **extra,
        }
        if external_id is not None:
            body["externalId"] = external_id
        if email:
            body["emails"] = [{"value": email, "type": "work", "primary": True}]
        return str(self._ok(self.http.post("/Users", json=body))["id"])

    def add_group(self, name: str, members: tuple[str, ...] = ()) -> str:
        body = {
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [{"value": m} for m in members],
        }
        return str(self._ok(self.http.post("/Groups", json=body))["id"])

    def join(self, group: str, user_id: str) -> None:
        # PUT, which every server has (a server may refuse PATCH).
        body = self.group(group)
        body["members"] = [*(body.get("members") or []), {"value": user_id}]
        self._ok(self.http.put(f"/Groups/{body['id']}", json=body))

    def users(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:  # pages of the server's maxResults
            params = {"startIndex": len(found) + 1, "count": 1000}
            answer = self._ok(self.http.get("/Users", params=params))
            page = answer.get("Resources") or []
            found += page
            # Up to totalResults: SCIMMY answers a page past the end with the first page.
            if not page or len(found) >= int(answer.get("totalResults") or 0):
                return found

    def user(self, user_name: str) -> dict[str, Any] | None:
        found = [u for u in self.users() if u["userName"].lower() == user_name.lower()]
        assert len(found) <= 1, f"{len(found)} users named {user_name}"
        return found[0] if found else None

    def group(self, name: str) -> dict[str, Any]:
        page = self._ok(self.http.get("/Groups", params={"count": 10000}))
        (group,) = [g for g in page.get("Resources") or [] if g["displayName"] == name]
        return dict(group)

    def member_names(self, group: str) -> set[str]:
        names = {u["id"]: u["userName"] for u in self.users()}
        return {names.get(m["value"], m["value"]) for m in self.group(group).get("members") or []}

    def clear(self) -> None:
        """Delete every group and user (a server without tenants, made empty)."""
        groups = self._ok(self.http.get("/Groups", params={"count": 10000}))
        for group in groups.get("Resources") or []:
            self._ok(self.http.delete(f"/Groups/{group['id']}"))
        for user in self.users():
            self._ok(self.http.delete(f"/Users/{user['id']}"))

    def snapshot(self) -> dict[str, Any]:
        """Every user and group, for "nothing changed" (ordered, versions included)."""
        groups = self._ok(self.http.get("/Groups", params={"count": 10000}))["Resources"]
        return {
            "users": sorted(self.users(), key=lambda u: u["id"]),
            "groups": sorted(groups, key=lambda g: g["id"]),
        }


@dataclass
class Fault:
    """What the proxy does to the next ``times`` requests that match."""

    times: int
    method: str = ""  # "" matches any
    path: str = ""  # a substring of the path; "" matches any
    status: int = 0  # answer this instead of forwarding
    retry_after: str = ""
    delay: float = 0.0  # seconds before forwarding
    drop: str = ""  # "before" or "after" forwarding: close the connection, no answer
    swallow: int = 0  # answer this success status, empty, and forward nothing
    rewrite: Callable[[Any], Any] | None = None  # forward this JSON body instead


@dataclass
class FaultProxy:
    """An HTTP proxy on a free loopback port in front of ``upstream`` (a base URL)."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: list[tuple[str, str, Any]] = field(default_factory=list)  # method, path, JSON
    headers: list[dict[str, str]] = field(default_factory=list)  # those of each one sent
    answered: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    injected: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        scheme_host, _, path = self.upstream.partition("//")[2].partition("/")
        self._prefix = "/" + path
        self._client = httpx2.Client(base_url=f"http://{scheme_host}", timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet tests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._prefix}"

    def inject(self, times: int, **what: Any) -> None:
        with self._lock:
            self.faults.append(Fault(times, **what))

    def count(self, method: str = "", path: str = "") -> int:
        """Requests seen (faults included) whose method and path match."""
        with self._lock:
            return sum(
                n
                for (m, p), n in self.requests.items()
                if (not method or m == method) and path in p
            )

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.headers.clear()
            self.answered.clear()
            self.requests.clear()
            self.injected.clear()
            self.faults.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _fault(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Fault | None:
        with self._lock:
            self.requests[(method, path.split("?")[0])] += 1
            self.sent.append((method, path, json.loads(body) if body else None))
            self.headers.append(headers)
            for fault in self.faults:
                if fault.times > 0 and fault.method in ("", method) and fault.path in path:
                    fault.times -= 1
                    kind = fault.drop or str(fault.status or "delay")
                    self.injected[kind] += 1
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        fault = self._fault(method, path, body, {k.lower(): v for k, v in handler.headers.items()})
        if fault and fault.drop == "before":
            handler.close_connection = True
            return
        if fault and fault.status:
            error = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": str(fault.status),
                "detail": "injected by the test proxy",
            }
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._answer(handler, fault.status, json.dumps(error).encode(), headers)
            return
        if fault and fault.swallow:
            self._answer(handler, fault.swallow, b"", {})
            return
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.rewrite:
            body = json.dumps(fault.rewrite(json.loads(body))).encode()
        forwarded = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in ("host", "connection", "content-length")
        }
        answer = self._client.request(method, path, content=body, headers=forwarded)
        with self._lock:
            self.answered.append((method, path, answer.status_code))
        if fault and fault.drop == "after":
            handler.close_connection = True  # the server did it; the client never hears
            return
        keep = {"content-type", "etag", "location", "retry-after"}
        headers = {k: v for k, v in answer.headers.items() if k.lower() in keep}
        self._answer(handler, answer.status_code, answer.content, headers)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        if body and "content-type" not in {k.lower() for k in headers}:
            handler.send_header("Content-Type", "application/scim+json")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
