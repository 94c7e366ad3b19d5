"""Fixtures of the 389-ds tests: one throwaway 389 Directory Server for the session
(``dirsrv_server``; its first start on a machine also builds a cached template, 6-12 s)
and, for every test, that server reset to its seeded tree (``dirsrv_lab``, which is also
the shared scenarios' World)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.dirsrv import DirsrvLab
from tests.servers.dirsrv import Dirsrv, start_dirsrv


@pytest.fixture(scope="session", name="dirsrv_server")
def dirsrv_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dirsrv]:
    if not os.access("/etc/dirsrv", os.R_OK | os.X_OK):
        pytest.skip(
            "389-ds: /etc/dirsrv missing or unreadable (apt-get install 389-ds-base; run as "
            "root or in the dirsrv group)"
        )
    server = start_dirsrv(tmp_path_factory.mktemp("dirsrv"), nosync=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="dirsrv_lab")
def dirsrv_lab_fixture(dirsrv_server: Dirsrv, tmp_path: Path) -> DirsrvLab:
    dirsrv_server.reset()
    return DirsrvLab(dirsrv_server, tmp_path)
