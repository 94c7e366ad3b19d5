"""Fixture of the LDAP tests: ``lab``, a slapd of its own for every test (a slapd
starts in well under a second, and a fresh one leaves nothing behind)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.ldap import Lab
from tests.servers.slapd import start_slapd


@pytest.fixture(name="lab")
def lab_fixture(tmp_path: Path) -> Iterator[Lab]:
    server = start_slapd(tmp_path / "slapd")
    try:
        yield Lab(server, tmp_path)
    finally:
        server.stop()
