"""A second, independent SCIM 2.0 service provider for syncd's tests: SCIMMY.

SCIMMY (npm ``scimmy``, MIT, github.com/scimmyjs/scimmy) is a JavaScript implementation
of RFC 7643/7644 (schemas, filters, PATCH, bulk, sort, paging); its companion
``scimmy-routers`` serves it as Express middleware. Neither shares code with
scim2-server or scim2-models. They leave storage to the application: ``scimmy/server.mjs``
beside this module is the READMEs' wiring over two in-memory maps, and adds only what a
store has to do (ids, meta dates, 404, 409 ``uniqueness`` for a taken userName,
``User.groups`` read from the groups, members dropped with their user).

The packages are pinned in ``scimmy/package.json`` and ``package-lock.json`` (Node >= 16
by their ``engines``; Debian 12's nodejs 18 runs them) and installed by ``make
scimmy-modules`` (``npm ci`` there; about 6 s, 74 packages). Express must stay 4:
scimmy-routers turns ``startIndex`` and ``count`` into numbers by writing them back to
``req.query``, which Express 5 parses again on every read, so paging would be ignored.

:func:`start_scimmy` runs ``node server.mjs`` on 127.0.0.1 (a port the server picks and
writes to ``folder/port``) with a random bearer token, and waits until
ServiceProviderConfig answers 200 (0.3 to 0.9 s). Output goes to ``folder/scimmy.log``.
Base URL: ``http://127.0.0.1:PORT/scim/v2``. It has one store, no tenants:
:meth:`ScimmyServer.tenant` empties it over SCIM and returns that URL.

What sets it apart from scim2-server (and how syncd deals with each: docs/scim.md):

* pages past the end (``startIndex > totalResults``) return the first page again;
  ``count`` is not capped at ``filter.maxResults`` (200); without ``count`` a page
  holds 20;
* filters compare strings case-sensitively; a filter on a sub-attribute
  (``emails.value``, ``members.value``, the enterprise ``manager.value``) answers 400
  ``invalidValue`` "Cannot convert undefined or null to object" as soon as one
  resource lacks that attribute;
* a PATCH that changes nothing answers 204 with no body; ``add`` of a member already
  there adds it a second time;
* bulk results carry ``bulkId`` only for POST (RFC 7644 requires it only there);
* no ETags of SCIM's own (``etag.supported`` is false; ``If-Match`` is ignored), but
  Express sends a weak ``ETag`` header on every answer, which scim2-client copies into
  ``meta.version``;
* no ``Location`` header on 201; unknown attributes are dropped without error.

``config`` is given to ``SCIMMY.Config.set`` after the routers set theirs (e.g.
``{"filter": 5}`` announces ``filter.maxResults`` 5, ``{"patch": False}``): it changes
what ServiceProviderConfig announces; of these the server only enforces ``bulk`` (501).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from tests.servers.scim import Directory

HOME = Path(__file__).resolve().with_name("scimmy")  # package.json, lock, server.mjs
_READY_TIMEOUT = 15.0


class ScimmyError(RuntimeError):
    """SCIMMY is not installed or did not start; the message carries its output."""


@dataclass
class ScimmyServer:
    """A running (or stopped) SCIMMY server."""

    port: int
    token: str
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}/scim/v2"

    @property
    def log(self) -> Path:
        return self.folder / "scimmy.log"

    def log_tail(self, size: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def tenant(self) -> str:
        """The base URL, every group and user deleted first: what a fresh tenant of
        scim2-server is to its labs."""
        directory = Directory(self.url, self.token)
        try:
            directory.clear()
        finally:
            directory.close()
        return self.url

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


def start_scimmy(folder: Path, *, config: dict[str, Any] | None = None) -> ScimmyServer:
    """Start SCIMMY from the packages installed beside its script; its files go to
    ``folder``."""
    if not all((HOME / "node_modules" / name).is_dir() for name in _packages()):
        raise ScimmyError(f"SCIMMY is not installed in {HOME}: run `make scimmy-modules`")
    node = shutil.which("node")
    if node is None:
        raise ScimmyError("node is not installed (apt-get install -y nodejs npm)")
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    port_file.unlink(missing_ok=True)
    server = ScimmyServer(0, secrets.token_urlsafe(18), folder)
    env = {
        **os.environ,
        "SCIM_TOKEN": server.token,
        "SCIM_PORT_FILE": str(port_file),
        "SCIM_CONFIG": json.dumps(config or {}),
    }
    with server.log.open("ab") as output:
        server.process = subprocess.Popen(
            [node, str(HOME / "server.mjs")],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
        )
    if _ready(server, port_file):
        return server
    server.stop()
    raise ScimmyError(f"SCIMMY did not start:\n{server.log_tail()}")


def _packages() -> list[str]:
    manifest = json.loads((HOME / "package.json").read_text())
    return list(manifest["dependencies"])


def _ready(server: ScimmyServer, port_file: Path) -> bool:
    """Whether ServiceProviderConfig answers 200 before the time is up."""
    assert server.process is not None
    headers = {"Authorization": f"Bearer {server.token}"}
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline and server.process.poll() is None:
        text = port_file.read_text().strip() if port_file.exists() else ""
        if not text.isdigit():
            time.sleep(0.05)
            continue
        server.port = int(text)
        try:
            answer = httpx2.get(f"{server.url}/ServiceProviderConfig", headers=headers)
        except httpx2.TransportError:
            time.sleep(0.05)
            continue
        return answer.status_code == 200
    return False
