"""Fixtures of the AD tests: one Samba AD DC for the session (``samba_dc``) and, for
every test, its domain reset to the seeded state (``ad_lab``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.labs.ad import AdLab
from tests.servers.samba import SambaDC, start_samba


@pytest.fixture(scope="session", name="samba_dc")
def samba_dc_fixture() -> Iterator[SambaDC]:
    """One Samba AD DC for the session (its ports are fixed), reset before each test."""
    if os.geteuid() != 0:
        pytest.skip("a Samba AD DC listens on ports 389 and 636: run the tests as root")
    dc = start_samba()
    try:
        yield dc
    finally:
        dc.close()


@pytest.fixture(name="ad_lab")
def ad_lab_fixture(samba_dc: SambaDC, tmp_path: Path) -> AdLab:
    samba_dc.reset()
    return AdLab(samba_dc, tmp_path)
