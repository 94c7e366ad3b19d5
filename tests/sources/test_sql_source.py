"""The SQL source (``syncd.sources.sql``) on a throwaway PostgreSQL cluster and on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.config import SqlSource
from syncd.core.model import Status
from syncd.errors import SourceError
from syncd.sources import sql
from syncd.sources.registry import Readers
from tests.servers.postgres import Postgres, PostgresError, start_postgres
from tests.sources.common import checked

HR_SCHEMA = """
CREATE TABLE hr_assignment (
    assignment_no text PRIMARY KEY, mail text, first_name text, last_name text,
    role_codes text[], starts date, ends date, state text, agency text);
CREATE VIEW syncd_contracts AS
    SELECT assignment_no AS id, mail AS email, first_name AS given_name,
           last_name AS family_name, role_codes AS roles, starts AS start, ends AS "end",
           state AS status, agency AS vendor FROM hr_assignment;
"""
SPAN = ("2026-01-01", "2027-01-01")
ROWS = [
    ("H-1", "one@vendor.test", "Ona", "One", ["developer"], *SPAN, "active", "Acme"),
    ("H-2", "two@vendor.test", "Tom", "Two", ["developer", "ops"], *SPAN, "left", "Acme"),
    ("H-3", "three@vendor.test", "Tia", "Three", ["pilot"], *SPAN, "active", "Acme"),
]
QUERY = "SELECT * FROM syncd_contracts ORDER BY id"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    try:
        server = start_postgres()
    except PostgresError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    engine = sa.create_engine(server.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(HR_SCHEMA)
    engine.dispose()
    yield server
    server.stop()


@pytest.fixture
def hr(postgres: Postgres) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM hr_assignment")
        for row in ROWS:
            conn.exec_driver_sql(
                "INSERT INTO hr_assignment VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", row
            )
    yield engine
    engine.dispose()


def source(url_file: Path, **settings: Any) -> SqlSource:
    return SqlSource.model_validate(
        {"type": "sql", "url_file": url_file, "query": QUERY, **settings}
    )


@pytest.fixture
def url_file(postgres: Postgres, tmp_path: Path) -> Path:
    path = tmp_path / "db-url"
    path.write_text(postgres.url + "\n")
    return path


def test_a_view_of_canonical_columns_reads_with_arrays_and_a_status_map(
    hr: sa.Engine, url_file: Path
) -> None:
    records, _ = sql.read(source(url_file, status_map={"left": "terminated"}))
    assert [r.origin for r in records] == ["sql row 1", "sql row 2", "sql row 3"]
    contracts, invalid = checked(records)
    assert [(c.id, c.roles, c.status) for c in contracts] == [
        ("H-1", ("developer",), Status.ACTIVE),
        ("H-2", ("developer", "ops"), Status.TERMINATED),
    ]
    [bad] = invalid
    assert (bad.origin, bad.contract_id, bad.field) == ("sql row 3", "H-3", "roles")
    assert "'pilot'" in bad.reason
    assert bad.fix


def test_columns_mapped_with_fields_and_roles_from_a_delimited_string(
    hr: sa.Engine, url_file: Path
) -> None:
    query = (
        "SELECT assignment_no, mail AS email, first_name AS given_name, last_name AS "
        "family_name, array_to_string(role_codes, '|') AS codes, starts AS start, "
        "ends AS \"end\" FROM hr_assignment WHERE assignment_no <> 'H-3' ORDER BY 1"
    )
    settings = {"fields": {"id": "assignment_no", "roles": "codes"}}
    records, _ = sql.read(source(url_file, query=query, roles_from={"delimiter": "|"}, **settings))
    contracts, invalid = checked(records)
    assert invalid == []
    assert [(c.id, c.roles) for c in contracts] == [("H-1", ("developer",)),
                                                    ("H-2", ("developer", "ops"))]  # fmt: skip


def test_the_read_is_one_read_only_repeatable_read_transaction(
    hr: sa.Engine, url_file: Path
) -> None:
    query = (
        "SELECT current_setting('transaction_isolation') AS vendor, "
        "current_setting('transaction_read_only') AS username, "
        "current_setting('statement_timeout') AS sponsor"
    )
    [record], _ = sql.read(source(url_file, query=query, timeout=7))
    assert dict(record.fields) == {
        "vendor": "repeatable read",
        "username": "on",
        "sponsor": "7s",
    }
    with pytest.raises(SourceError, match="read-only transaction"):
        sql.read(source(url_file, query="INSERT INTO hr_assignment (assignment_no) "
                                      "VALUES ('X') RETURNING assignment_no AS id"))  # fmt: skip


def test_a_query_over_its_timeout_fails_the_read(hr: sa.Engine, url_file: Path) -> None:
    with pytest.raises(SourceError, match="statement timeout"):
        sql.read(source(url_file, query="SELECT pg_sleep(5) AS id", timeout=1))


def test_more_rows_than_max_records_fail_the_read(hr: sa.Engine, url_file: Path) -> None:
    with pytest.raises(SourceError, match="more than max_records 2 rows"):
        sql.read(source(url_file, max_records=2))


def test_the_digest_changes_with_the_rows_only(hr: sa.Engine, url_file: Path) -> None:
    _, first = sql.read(source(url_file))  # dates: the digest takes their repr
    assert sql.version(source(url_file)) == first
    with hr.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE hr_assignment SET ends = '2026-06-30' WHERE assignment_no = 'H-1'"
        )
    assert sql.version(source(url_file)) != first


def test_a_change_query_marks_the_version_in_the_read_s_transaction(
    hr: sa.Engine, url_file: Path
) -> None:
    marked = source(url_file, change_query="SELECT count(*), max(ends) FROM hr_assignment")
    records, first = sql.read(marked)
    assert len(records) == 3
    assert sql.version(marked) == first
    assert first != sql.read(source(url_file))[1]  # not the rows' digest
    with hr.begin() as conn:  # a change the mark does not cover goes unseen by the poll
        conn.exec_driver_sql("UPDATE hr_assignment SET mail = 'x@vendor.test' WHERE "
                             "assignment_no = 'H-2'")  # fmt: skip
    assert sql.version(marked) == first
    with hr.begin() as conn:
        conn.exec_driver_sql("UPDATE hr_assignment SET ends = '2027-06-30' WHERE "
                             "assignment_no = 'H-1'")  # fmt: skip
    assert sql.version(marked) != first


def test_a_change_query_that_is_not_a_mark_fails_with_a_fix(hr: sa.Engine, url_file: Path) -> None:
    rows = source(url_file, change_query="SELECT generate_series(1, 101)")
    with pytest.raises(SourceError, match=r"more than 100 rows \(fix: make it an aggregate"):
        sql.version(rows)
    with pytest.raises(SourceError, match="more than 100 rows"):
        sql.read(rows)


def test_an_unreachable_database_fails_without_showing_the_password(
    postgres: Postgres, tmp_path: Path
) -> None:
    path = tmp_path / "db-url"
    path.write_text("postgresql+psycopg://syncd:hunter2@127.0.0.1:1/hr")
    with pytest.raises(SourceError) as err:
        sql.read(source(path))
    assert "hunter2" not in str(err.value)
    assert str(err.value).startswith("sql: ")


def test_kept_engines_follow_a_rotated_url_file(
    hr: sa.Engine, url_file: Path, postgres: Postgres
) -> None:
    readers = Readers()
    settings = source(url_file)
    assert len(readers.read(settings)) == 3
    url_file.write_text("postgresql+psycopg://syncd:rotated@127.0.0.1:1/hr\n")
    with pytest.raises(SourceError, match=r"^sql: ") as err:  # the new URL, not the kept engine
        readers.read(settings)
    assert "rotated" not in str(err.value)
    url_file.unlink()
    with pytest.raises(SourceError, match=r"cannot read url_file .*fix: restore it"):
        readers.read(settings)
    url_file.write_text(postgres.url)
    assert len(readers.read(settings)) == 3
    readers.close()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "hr.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE contracts (id, email, given_name, family_name, roles, start, "
            '"end", status)'
        )
        db.executemany(
            "INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r[0], r[1], r[2], r[3], ";".join(r[4]), r[5], r[6], "active") for r in ROWS[:2]],
        )
    db.close()
    return path


def test_sqlite_is_the_embedded_default(sqlite_db: Path) -> None:
    settings = {"type": "sql", "url": f"sqlite:///{sqlite_db}", "query": "SELECT * FROM contracts"}
    contracts, invalid = checked(sql.read(SqlSource.model_validate(settings))[0])
    assert invalid == []
    assert [(c.id, c.roles) for c in contracts] == [("H-1", ("developer",)),
                                                    ("H-2", ("developer", "ops"))]  # fmt: skip


def test_a_sqlite_poll_sees_a_change_by_digest_or_by_change_query(sqlite_db: Path) -> None:
    plain = {"type": "sql", "url": f"sqlite:///{sqlite_db}", "query": "SELECT * FROM contracts"}
    marked = {**plain, "change_query": 'SELECT count(*), max("end") FROM contracts'}
    readers = Readers()
    for settings in (plain, marked):
        readers.read(SqlSource.model_validate(settings))
        assert readers.unchanged(SqlSource.model_validate(settings))
    with sqlite3.connect(sqlite_db) as db:
        db.execute("INSERT INTO contracts (id, \"end\") VALUES ('H-9', '2028-01-01')")
    db.close()
    for settings in (plain, marked):
        assert not readers.unchanged(SqlSource.model_validate(settings))


def test_a_sqlite_query_over_its_timeout_is_interrupted(sqlite_db: Path) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    settings = {"type": "sql", "url": f"sqlite:///{sqlite_db}", "query": endless, "timeout": 1}
    with pytest.raises(SourceError, match="interrupted"):
        sql.read(SqlSource.model_validate(settings))
