"""The shared lifecycle scenarios (``tests.integration.test_shared_scenarios``) with the
contracts coming from each kind of source, into OpenLDAP's slapd: an HTTP API
(json-server, paged by ``Link``), a SQL query on SQLite, and one on a throwaway
PostgreSQL cluster. ``SourcedWorld`` is the scenarios' ``World`` with the contracts
written to that source instead of the contracts file, and the config pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
import yaml

from tests.integration.test_shared_scenarios import *  # noqa: F403  (the scenarios)
from tests.labs.common import Result
from tests.labs.ldap import Lab, LdapWorld
from tests.servers.jsonserver import JsonServer, JsonServerError, start_json_server
from tests.servers.postgres import Postgres, PostgresError, start_postgres

FIELDS = ("id", "email", "given_name", "family_name", "roles", "start", "end", "status",
          "terminated_at", "person", "username", "vendor", "sponsor", "approved_by")  # fmt: skip


class SourcedWorld(LdapWorld):
    """slapd's world, its contracts in an HTTP API or a database."""

    def __init__(self, lab: Lab, source: dict[str, Any], write: Any) -> None:
        super().__init__(lab)
        self.source = source
        self.write = write  # records -> the source holds them

    def contracts(self, *records: dict[str, Any]) -> None:
        self.write(list(records))
        self.write_config()

    def configure(self, **sections: dict[str, Any]) -> None:
        self.lab.overrides.update(sections)
        self.write_config()

    def syncd(self, *args: str) -> Result:
        if not self.lab.config_path.exists():
            self.write_config()
        return self.lab.syncd(*args)

    def write_config(self) -> None:
        path = self.lab.write_config()
        config = yaml.safe_load(path.read_text())
        config["source"] = self.source
        path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServer]:
    try:
        server = start_json_server(tmp_path_factory.mktemp("json-server"), {"contracts": []})
    except JsonServerError as exc:
        pytest.skip(f"json-server unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    try:
        server = start_postgres()
    except PostgresError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    server.stop()


def http_world(lab: Lab, server: JsonServer) -> SourcedWorld:
    def write(records: list[dict[str, Any]]) -> None:
        for old in httpx2.get(f"{server.url}/contracts").json():
            httpx2.delete(f"{server.url}/contracts/{old['id']}").raise_for_status()
        for record in records:
            httpx2.post(f"{server.url}/contracts", json=record).raise_for_status()

    source = {"type": "http", "url": f"{server.url}/contracts?_page=1&_limit=2",
              "allow_plaintext": True, "paging": {"total_header": "X-Total-Count"}}  # fmt: skip
    return SourcedWorld(lab, source, write)


def sql_world(lab: Lab, url: str) -> SourcedWorld:
    engine = sa.create_engine(url)

    def write(records: list[dict[str, Any]]) -> None:
        columns = ", ".join(f'"{name}" text' for name in FIELDS)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS hr_contracts")
            conn.exec_driver_sql(f"CREATE TABLE hr_contracts ({columns})")
            for record in records:
                unknown = set(record) - set(FIELDS)
                assert not unknown, f"no column for {unknown}"
                row = {k: "|".join(v) if k == "roles" else v for k, v in record.items()}
                names = ", ".join(f'"{k}"' for k in row)
                marks = ", ".join(f":{k}" for k in row)
                insert = f"INSERT INTO hr_contracts ({names}) VALUES ({marks})"  # noqa: S608
                conn.execute(sa.text(insert), row)  # the names are FIELDS, the values bound

    url_file = lab.work / "db-url"
    url_file.write_text(url)
    source = {"type": "sql", "url_file": str(url_file), "roles_from": {"delimiter": "|"},
              "query": "SELECT * FROM hr_contracts ORDER BY id"}  # fmt: skip
    write([])
    return SourcedWorld(lab, source, write)


@pytest.fixture(name="world", params=["http", "sql-sqlite", "sql-postgresql"])
def sourced_world(request: pytest.FixtureRequest, lab: Lab, tmp_path: Path) -> SourcedWorld:
    if request.param == "http":
        return http_world(lab, request.getfixturevalue("json_server"))
    if request.param == "sql-sqlite":
        return sql_world(lab, f"sqlite:///{tmp_path / 'hr.db'}")
    server: Postgres = request.getfixturevalue("postgres")
    return sql_world(lab, server.url)
