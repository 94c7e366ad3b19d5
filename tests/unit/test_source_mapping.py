"""The mapping every source kind shares (``syncd.sources.mapping``) and the source
section of the config (``syncd.config.sources``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import FileSource, HttpSource, SqlSource, load_config
from syncd.errors import ConfigError
from syncd.sources.mapping import Mapper
from tests.sources.common import VMS_MAPPING, checked, config_file, vms_item


def test_a_source_without_mapping_passes_its_items_on_untouched() -> None:
    item = vms_item(1)
    assert Mapper(FileSource(path=Path("x.yaml")))(item, "x").fields is item


def test_dotted_paths_status_map_and_roles_from_objects() -> None:
    mapper = Mapper(HttpSource.model_validate({"type": "http", "url": "https://h/", **VMS_MAPPING}))
    record = mapper(vms_item(3, state="Withdrawn"), "vms page 1 item 1")
    assert record.fields["email"] == "worker3@vendor.test"
    assert record.fields["status"] == "cancelled"
    assert record.fields["roles"] == ["developer", "ops"]
    assert "worker" not in record.fields  # only canonical fields go on
    contracts, invalid = checked([record])
    assert invalid == []
    assert contracts[0].vendor == "Acme"


@pytest.mark.parametrize(
    ("value", "roles_from", "expected"),
    [
        ("DEV | OPS", {"delimiter": "|", "map": {"DEV": "developer"}}, ["developer", "OPS"]),
        (["developer", ""], {"delimiter": ","}, ["developer"]),
        ([{"r": {"n": "ops"}}], {"key": "r.n"}, ["ops"]),
        (7, {"delimiter": ","}, 7),  # left for validation to reject
    ],
)
def test_roles_from_a_delimited_string_or_a_list(
    value: object, roles_from: dict[str, object], expected: object
) -> None:
    source = SqlSource.model_validate(
        {"type": "sql", "url": "sqlite://", "query": "select 1", "roles_from": roles_from}
    )
    assert Mapper(source)({"roles": value}, "row 1").fields["roles"] == expected


def test_an_http_source_over_plaintext_needs_allow_plaintext(tmp_path: Path) -> None:
    source = "source:\n  type: http\n  url: http://vms.example.test/api\n  status_map: {X: gone}"
    with pytest.raises(ConfigError) as err:
        load_config(config_file(tmp_path, source))
    text = str(err.value)
    assert "syncd.yaml:3 source.url: the records would cross the network unencrypted" in text
    assert "source.status_map.X: 'gone' is not a contract status" in text


def test_a_source_without_type_is_a_file(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, "source:\n  path: c.yaml"))
    assert isinstance(config.source, FileSource)
    assert config.source.path == tmp_path / "c.yaml"


def test_a_database_url_with_a_password_belongs_in_a_file(tmp_path: Path) -> None:
    source = "source:\n  type: sql\n  url: postgresql://syncd:hunter2@db/hr\n  query: SELECT 1"
    with pytest.raises(ConfigError, match="the URL carries a password") as err:
        load_config(config_file(tmp_path, source))
    assert "hunter2" not in str(err.value)
    plain = "source:\n  type: sql\n  url: sqlite:////srv/hr.db\n  query: SELECT 1"
    assert isinstance(load_config(config_file(tmp_path, plain)).source, SqlSource)
