"""json-server: an off-the-shelf REST server for the HTTP source, run on loopback.

json-server (npm ``json-server``, MIT, github.com/typicode/json-server) serves the
collections of a JSON data file as a REST API. Version 0.17 pages a collection with
``?_page=N&_limit=M`` and answers with a ``Link`` header (rel first, next, last) and
``X-Total-Count``, and Express gives each answer an ``ETag`` that ``If-None-Match``
turns into 304: the pagination and validators syncd's ``type: http`` source follows. It
shares no code with syncd. It is pinned in ``jsonserver/package.json`` and
``package-lock.json``, and installed there by ``make json-server-modules`` (``npm ci``).

``start_json_server`` writes the data file into ``folder``, runs the server on a free
port of 127.0.0.1 and waits until it answers; ``JsonServerError`` says why when it is
not installed (a test skips then) or does not start.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

HOME = Path(__file__).resolve().with_name("jsonserver")
CLI = HOME / "node_modules" / "json-server" / "lib" / "cli" / "bin.js"


class JsonServerError(RuntimeError):
    """json-server is not installed or did not start."""


@dataclass
class JsonServer:
    port: int
    data: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_json_server(folder: Path, data: dict[str, Any]) -> JsonServer:
    """json-server over ``data`` (collections by name), answering on loopback."""
    node = shutil.which("node")
    if not CLI.is_file() or node is None:
        raise JsonServerError(
            f"json-server is not installed in {HOME}: run `make json-server-modules`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "db.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    port = _free_port()
    log = (folder / "json-server.log").open("ab")
    process = subprocess.Popen(
        [node, str(CLI), str(path), "--port", str(port), "--host", "127.0.0.1", "--quiet"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    server = JsonServer(port, path, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{server.url}/db", timeout=1).status_code == 200:
                return server
        except httpx2.HTTPError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    server.stop()
    raise JsonServerError((folder / "json-server.log").read_text(errors="replace")[-2000:])
