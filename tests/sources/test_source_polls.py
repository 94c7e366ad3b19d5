"""The daemon's question to a source between reads (``SourceWatch.changed`` through
``syncd.sources.polls``): asked at ``source.poll``, answered by ETag or digest, and a
source unchanged since its last read leads to no read and no planning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.config import Config, load_config
from syncd.sources.polls import Polls
from syncd.state import StateDir
from syncd.watch import SourceWatch
from tests.servers.faultapi import FaultApi, serving
from tests.sources.common import VMS_MAPPING, config_file, vms_item


def config_with(folder: Path, source: dict[str, Any]) -> Config:
    daemon = "audit:\n  path: audit.jsonl\ndaemon:\n  state_dir: state\n"
    return load_config(config_file(folder, yaml.safe_dump({"source": source}), daemon))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def bind_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_BIND_PASSWORD", "x")


@pytest.fixture
def api() -> Iterator[FaultApi]:
    with serving(FaultApi(items=[vms_item(n) for n in range(1, 6)], size=2)) as running:
        yield running


def watched(config: Config, tmp_path: Path) -> tuple[SourceWatch, Clock]:
    watch = SourceWatch(StateDir(tmp_path / "state"))
    clock = Clock()
    watch.polls = Polls(watch.readers, clock)
    return watch, clock


def test_an_http_source_is_asked_at_its_poll_and_a_304_is_no_change(
    api: FaultApi, tmp_path: Path
) -> None:
    source = {"type": "http", "url": f"{api.url}/items", "allow_plaintext": True,
              "records": "data.items", "paging": {"style": "next"}, "poll": "1m",
              **VMS_MAPPING}  # fmt: skip
    config = config_with(tmp_path, source)
    watch, clock = watched(config, tmp_path)
    reading = watch.read(config, datetime.now(UTC))
    assert reading.source is not None
    assert len(reading.source.contracts) == 5
    api.hits.clear()
    clock.now += 30
    assert not watch.changed(config)
    assert sum(api.hits.values()) == 0  # not asked before its poll
    clock.now += 31
    assert not watch.changed(config)
    assert sorted(api.hits.items()) == [(1, 1), (2, 1), (3, 1)]  # each page once, 304
    api.items[4] = vms_item(5, state="Closed")
    assert not watch.changed(config)  # its poll has not come again
    clock.now += 60
    assert watch.changed(config)


def test_a_sql_source_is_asked_by_the_digest_of_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "hr.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE c (id, email, given_name, family_name, roles, start, "end")')
        conn.execute("INSERT INTO c VALUES ('H-1', 'a@b.test', 'A', 'B', 'developer', "
                     "'2026-01-01', '2027-01-01')")  # fmt: skip
    conn.close()
    source = {"type": "sql", "url": f"sqlite:///{db}", "query": "SELECT * FROM c", "poll": "10s"}
    config = config_with(tmp_path, source)
    watch, clock = watched(config, tmp_path)
    watch.read(config, datetime.now(UTC))
    clock.now += 10
    assert not watch.changed(config)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE c SET \"end\" = '2026-06-30'")
    conn.close()
    assert not watch.changed(config)  # asked 10 s ago
    clock.now += 10
    assert watch.changed(config)
    assert watch.polls.asked == 2


def test_a_source_that_cannot_be_asked_counts_as_unchanged(api: FaultApi, tmp_path: Path) -> None:
    source = {"type": "http", "url": f"{api.url}/items", "allow_plaintext": True,
              "records": "data.items", "paging": {"style": "next"}, "poll": "1s"}  # fmt: skip
    config = config_with(tmp_path, source)
    watch, clock = watched(config, tmp_path)
    watch.read(config, datetime.now(UTC))
    api.faults.add("500")
    clock.now += 1
    assert not watch.changed(config)  # the regular poll reads it, and falls back


def test_a_reload_closes_what_was_kept_for_a_source_no_longer_configured(
    api: FaultApi, tmp_path: Path
) -> None:
    source = {"type": "http", "url": f"{api.url}/items", "allow_plaintext": True,
              "records": "data.items", "paging": {"style": "next"}}  # fmt: skip
    first = config_with(tmp_path, source)
    watch, _ = watched(first, tmp_path)
    watch.read(first, datetime.now(UTC))
    reader = watch.readers.http(first.all_sources[0])  # type: ignore[arg-type]
    assert reader.pages
    second = config_with(tmp_path, {**source, "url": f"{api.url}/items?page=1"})
    watch.read(second, datetime.now(UTC))
    assert reader.http.is_closed
    assert watch.readers.http(second.all_sources[0]) is not reader  # type: ignore[arg-type]
