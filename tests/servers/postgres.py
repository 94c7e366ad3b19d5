"""A throwaway PostgreSQL cluster on loopback, for the SQL source's tests.

Debian's ``postgresql`` package (``make test`` installs it) provides ``initdb`` and
``pg_ctl``. ``initdb`` refuses to run as root, so as root both run as the ``postgres``
user on a folder it owns. The cluster listens on a free port of 127.0.0.1 (its socket
in its own folder, never the system's), trusts local connections, and is stopped and
removed with the fixture. No system service is involved.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BIN = Path("/usr/lib/postgresql")


class PostgresError(RuntimeError):
    """PostgreSQL is not installed or did not start."""


def _bin(name: str) -> str:
    found = sorted(BIN.glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        raise PostgresError(f"{name} not found: apt-get install -y postgresql")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Postgres:
    folder: Path
    port: int
    user: list[str]  # the command prefix that runs as the cluster's owner

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database as its superuser."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.user, _bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
             "stop"],
            capture_output=True,
            check=False,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb and pg_ctl start, as ``postgres`` when run as root."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="syncd-pg-"))
    user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    port = _free_port()
    steps = [
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        [pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run([*user, *step], capture_output=True, text=True, check=False)
        if done.returncode:
            server = Postgres(folder, port, user)
            server.stop()
            raise PostgresError(f"{Path(step[0]).name} failed: {done.stderr[-2000:]}")
    return Postgres(folder, port, user)
