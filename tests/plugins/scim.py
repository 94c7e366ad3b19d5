"""Fixtures of the SCIM tests: one scim2-server for the session (``scim_server``), a
fresh tenant of it for every test (``scim_lab``) and a counting fault proxy in front of
that tenant (``proxy``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.scim import ScimLab
from tests.servers.scim import FaultProxy, ScimServer, start_scim


@pytest.fixture(scope="session", name="scim_server")
def scim_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScimServer]:
    """One scim2-server for the session; every test gets its own tenant."""
    server = start_scim(tmp_path_factory.mktemp("scim2-server"), tenants=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="scim_lab")
def scim_lab_fixture(scim_server: ScimServer, tmp_path: Path) -> Iterator[ScimLab]:
    lab = ScimLab(scim_server, tmp_path)
    try:
        yield lab
    finally:
        lab.directory.close()


@pytest.fixture(name="proxy")
def proxy_fixture(scim_lab: ScimLab) -> Iterator[FaultProxy]:
    """A counting proxy in front of the lab's tenant; syncd talks to it."""
    proxy = FaultProxy(scim_lab.tenant)
    scim_lab.url = proxy.url
    scim_lab.write_config()
    try:
        yield proxy
    finally:
        proxy.close()
