"""Several sources at once (``sources:``): one read of them all, unique ids across them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.engine import read_source
from syncd.errors import ConfigError, SourceError
from tests.sources.common import config_file

SOURCES = """\
sources:
  - name: hr-file
    path: contracts.csv
  - name: hr-db
    type: sql
    url: sqlite:///{db}
    query: SELECT * FROM contracts
"""
HEADER = "id,email,given_name,family_name,roles,start,end\n"


def contract_row(cid: str, n: int) -> tuple[str, ...]:
    return (cid, f"p{n}@vendor.test", "Pat", f"Person{n}", "developer", "2026-01-01", "2027-01-01")


def setup(tmp_path: Path, rows: list[tuple[str, ...]], text: str = SOURCES) -> Path:
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            'CREATE TABLE contracts (id, email, given_name, family_name, roles, start, "end")'
        )
        conn.executemany("INSERT INTO contracts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    (tmp_path / "contracts.csv").write_text(
        HEADER + "".join(",".join(contract_row(c, n)) + "\n" for n, c in enumerate(["F-1", "X-1"]))
    )
    return config_file(tmp_path, text.format(db=db))


def test_a_contract_id_in_two_sources_is_invalid_in_both_naming_them(tmp_path: Path) -> None:
    config = load_config(setup(tmp_path, [contract_row("D-1", 5), contract_row("X-1", 6)]))
    read = read_source(config)
    assert sorted(c.id for c in read.contracts) == ["D-1", "F-1"]
    assert [(r.origin, r.contract_id, r.field) for r in read.invalid] == [
        ("contracts.csv:3", "X-1", "id"),
        ("hr-db row 2", "X-1", "id"),
    ]
    assert {r.reason for r in read.invalid} == {"contract id 'X-1' is in sources hr-file and hr-db"}


def test_any_source_failing_fails_the_whole_read(tmp_path: Path) -> None:
    config = load_config(setup(tmp_path, [contract_row("D-1", 5)]))
    (tmp_path / "contracts.csv").unlink()
    with pytest.raises(SourceError, match=r"contracts\.csv"):
        read_source(config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SOURCES.replace("  - name: hr-db\n", "  -\n"), "syncd.yaml:5 sources[1]: no name:"),
        (SOURCES.replace("hr-db", "hr-file"), "sources[1].name: 'hr-file' again"),
        ("source:\n  path: c.csv\n" + SOURCES, "sources: give either source: (one) or sources:"),
        ("", "source: give either source: (one) or sources: (several)"),
    ],
    ids=["unnamed", "same-name", "both", "neither"],
)
def test_sources_need_names_and_exclude_source(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(setup(tmp_path, [], text))
    assert expected in str(err.value)
