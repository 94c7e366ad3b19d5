"""Fixtures of the tests on SCIMMY, the second SCIM server: one for the session
(``scimmy_server``); for every test, that server emptied and seeded (``scimmy_lab``,
also the shared scenarios' World for "scimmy") and a counting fault proxy in front of
it (``scimmy_proxy``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.scim import ScimLab
from tests.servers.scim import FaultProxy
from tests.servers.scimmy import ScimmyServer, start_scimmy


@pytest.fixture(scope="session", name="scimmy_server")
def scimmy_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimmyServer]:
    """One SCIMMY for the session; it has no tenants, so every lab empties it first."""
    server = start_scimmy(tmp_path_factory.mktemp("scimmy"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="scimmy_lab")
def scimmy_lab_fixture(scimmy_server: ScimmyServer, tmp_path: Path) -> Iterator[ScimLab]:
    lab = ScimLab(scimmy_server, tmp_path)
    try:
        yield lab
    finally:
        lab.directory.close()


@pytest.fixture(name="scimmy_proxy")
def scimmy_proxy_fixture(scimmy_lab: ScimLab) -> Iterator[FaultProxy]:
    """A counting proxy in front of the lab's SCIMMY; syncd talks to it."""
    proxy = FaultProxy(scimmy_lab.tenant)
    scimmy_lab.url = proxy.url
    scimmy_lab.write_config()
    try:
        yield proxy
    finally:
        proxy.close()
