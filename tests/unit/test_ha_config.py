"""The ``ha:`` section (``syncd.config.ha``): absent by default, defaults that fit
together, relative files resolved, and timings or credentials that cannot work refused
with the field named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.config import Config, load_config
from syncd.errors import ConfigError
from tests.unit.test_config import MINIMAL, write


@pytest.fixture(autouse=True)
def _no_credentials_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _load(tmp_path: Path, ha: str) -> Config:
    secret = tmp_path / "bind-password"
    secret.write_text("x")
    return load_config(write(tmp_path, MINIMAL + ha, secret))


def test_without_an_ha_section_there_is_none(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.ha is None


def test_defaults_and_relative_files(tmp_path: Path) -> None:
    (tmp_path / "etcd-ca.pem").write_text("not checked here")
    (tmp_path / "etcd-password").write_text(" pw \n")
    config = _load(
        tmp_path,
        "ha:\n  ca_file: etcd-ca.pem\n  user: syncd\n  password_file: etcd-password\n",
    )
    ha = config.ha
    assert ha is not None
    assert ha.endpoints == ["https://127.0.0.1:2379"]
    assert ha.lease_ttl == timedelta(seconds=10)
    assert ha.margin == timedelta(seconds=2)
    assert ha.ttl_seconds == 10
    assert ha.ca_file == tmp_path / "etcd-ca.pem"
    assert ha.password() == "pw"
    assert ha.leader_key == "/syncd/leader"
    assert ha.member  # the host name when none is given


@pytest.mark.parametrize(
    ("ha", "field"),
    [
        ("ha:\n  lease_ttl: 1s\n  margin: 0s\n  timeout: 0s\n", "lease_ttl"),
        ("ha:\n  lease_ttl: 4s\n  margin: 3s\n", "margin"),
        ("ha:\n  lease_ttl: 3s\n  margin: 1s\n  timeout: 2s\n", "timeout"),
        ("ha:\n  cert_file: /etc/hostname\n", "key_file"),
        ("ha:\n  user: syncd\n", "password_file"),
        ("ha:\n  ca_file: missing.pem\n", "ca_file"),
        ("ha:\n  cert_file: /etc/hostname\n  key_file: missing.key\n", "key_file"),
    ],
)
def test_settings_that_cannot_work_are_refused(tmp_path: Path, ha: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, ha)
    assert f"ha.{field}" in str(caught.value)


def test_sync_refuses_to_write_under_ha(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the elected leader writes: a one-shot sync would be a second writer."""
    secret = tmp_path / "bind-password"
    secret.write_text("x")
    path = write(tmp_path, MINIMAL + "ha:\n  name: idm1\n", secret)
    assert main(["-c", str(path), "sync"]) == 2
    assert "only the elected leader writes" in capsys.readouterr().err
