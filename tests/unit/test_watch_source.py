"""``syncd.watch.SourceWatch`` on a real contracts file: a change is read only once the
file has been still for ``daemon.source_debounce``, so a file rewritten in place is
never read half-written (the issue: cut at a line boundary, it parsed, and the people
of its missing half lost their access)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd import watch
from syncd.config import Config, load_config
from syncd.state import StateDir
from syncd.watch import WATCH_EVERY, Reading, SourceWatch
from tests.sources.common import config_file


def people(count: int) -> list[dict[str, Any]]:
    start = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    end = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    return [
        {
            "id": f"C-{i}",
            "email": f"per{i}@vendor.example",
            "given_name": "Per",
            "family_name": f"Son{i}",
            "username": f"per{i}",
            "roles": ["developer"],
            "start": start,
            "end": end,
        }
        for i in range(count)
    ]


def contracts_text(count: int) -> str:
    return yaml.safe_dump({"contracts": people(count)})


def halves(text: str, first: int) -> tuple[str, str]:
    """``text`` cut at the line where record number ``first`` starts: the first part
    parses on its own, as the half-written file of the issue did."""
    cut = text.index(f"- email: per{first}@")
    return text[:cut], text[cut:]


class Bench:
    def __init__(self, folder: Path, debounce: str) -> None:
        self.folder = folder
        self.path = folder / "contracts.yaml"
        daemon = f"daemon:\n  state_dir: state\n  source_debounce: {debounce}\n"
        source = "source: {type: file, path: contracts.yaml}"
        config_file(folder, source, "audit:\n  path: audit.jsonl\n" + daemon)
        self.config: Config = load_config(folder / "syncd.yaml")
        self.state = StateDir(self.config.daemon.state_dir)
        self.watch = SourceWatch(self.state)

    def read(self) -> Reading:
        return self.watch.read(self.config, datetime.now(UTC))

    def rewrite_in_place(self, first: str, rest: str, pause: float) -> threading.Thread:
        """Truncate the file and write ``first``, then ``rest`` after ``pause``, in a
        thread, through one open file: the same inode all along."""

        def write() -> None:
            with self.path.open("w") as handle:
                handle.write(first)
                handle.flush()
                time.sleep(pause)
                handle.write(rest)

        writer = threading.Thread(target=write)
        writer.start()
        return writer

    def watch_like_the_loop(self, seconds: float) -> list[Reading]:
        """Look at the file as the daemon's loop does; every reading its changes led to."""
        readings = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.watch.changed(self.config):
                readings.append(self.read())
            time.sleep(min(WATCH_EVERY, self.watch.settles_in or WATCH_EVERY))
        return readings


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    monkeypatch.setenv("SYNCD_TEST_BIND_PASSWORD", "unused")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "contracts.yaml").write_text(contracts_text(10))
    made = Bench(tmp_path, "1s")
    yield made
    made.state.close()


def valid(reading: Reading) -> int:
    assert reading.source is not None
    return len(reading.source.contracts)


def test_a_file_rewritten_in_place_in_two_halves_is_read_once_and_whole(bench: Bench) -> None:
    assert valid(bench.read()) == 10
    inode = bench.path.stat().st_ino
    first, rest = halves(contracts_text(20), 17)  # 17 records parse; 3 people would vanish

    writer = bench.rewrite_in_place(first, rest, pause=0.7)  # shorter than the debounce
    readings = bench.watch_like_the_loop(3.5)
    writer.join()

    assert bench.path.stat().st_ino == inode  # rewritten in place, not replaced
    assert [valid(r) for r in readings] == [20]
    assert readings[0].degraded == ""


def test_a_cycle_due_while_the_file_is_written_waits_until_it_is_still(bench: Bench) -> None:
    assert valid(bench.read()) == 10
    first, rest = halves(contracts_text(20), 17)
    writer = bench.rewrite_in_place(first, rest, pause=0.7)
    time.sleep(0.1)  # the first part is there: a boundary or the poll comes now

    started = time.monotonic()
    reading = bench.read()
    waited = time.monotonic() - started
    writer.join()

    assert valid(reading) == 20
    assert 1.0 <= waited < 2.5  # the rest came at 0.7 s, then 1 s of stillness


def test_a_file_that_keeps_changing_is_not_read_and_the_snapshot_is_used(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "SETTLE_FOR", 2)  # give up after 2 s instead of 10
    assert valid(bench.read()) == 10
    stop = threading.Event()

    def append_forever() -> None:
        with bench.path.open("a") as handle:
            while True:
                handle.write("# still writing\n")
                handle.flush()
                if stop.wait(0.3):
                    return

    writer = threading.Thread(target=append_forever)
    writer.start()
    try:
        time.sleep(0.1)
        reading = bench.read()
    finally:
        stop.set()
        writer.join()

    assert valid(reading) == 10  # from the snapshot
    assert "kept changing for 2 s" in reading.degraded
    assert "rename it into place" in reading.degraded


def test_a_file_replaced_by_rename_is_read_once_it_is_still(bench: Bench) -> None:
    assert valid(bench.read()) == 10
    new = bench.folder / "contracts.yaml.new"
    new.write_text(contracts_text(12))
    new.replace(bench.path)
    replaced = time.monotonic()

    readings = bench.watch_like_the_loop(2.0)

    assert [valid(r) for r in readings] == [12]
    assert bench.watch.changed(bench.config) is False  # read: nothing new since
    assert time.monotonic() - replaced >= 1.0


def test_with_no_debounce_a_change_is_read_at_once(tmp_path: Path, bench: Bench) -> None:
    (tmp_path / "eager").mkdir()
    eager = Bench(tmp_path / "eager", "0s")
    eager.path.write_text(contracts_text(3))
    assert valid(eager.read()) == 3
    eager.path.write_text(contracts_text(4))

    assert eager.watch.changed(eager.config)
    assert valid(eager.read()) == 4
    eager.state.close()


def test_times_in_the_future_are_not_trusted_the_watch_waits_itself(bench: Bench) -> None:
    assert valid(bench.read()) == 10
    bench.path.write_text(contracts_text(11))
    ahead = time.time() + 3600  # a file server whose clock is an hour ahead
    os.utime(bench.path, (ahead, ahead))

    assert not bench.watch.changed(bench.config)  # first seen now
    time.sleep(0.6)
    assert not bench.watch.changed(bench.config)
    time.sleep(0.5)
    assert bench.watch.changed(bench.config)  # still for a second of our own clock
    assert valid(bench.read()) == 11


def test_the_snapshot_is_written_when_the_source_changed_and_reset_by_deleting_it(
    bench: Bench,
) -> None:
    assert valid(bench.read()) == 10
    snapshot = bench.state.path / "source-snapshot.json"
    written = snapshot.stat().st_mtime_ns, snapshot.stat().st_ino

    assert valid(bench.read()) == 10
    assert (snapshot.stat().st_mtime_ns, snapshot.stat().st_ino) == written  # same source
    bench.path.write_text(contracts_text(5))
    assert "dropped from 10 to 5" in bench.read().degraded

    snapshot.unlink()  # an operator who checked the smaller source accepts it
    reading = bench.read()

    assert (valid(reading), reading.degraded) == (5, "")
    assert bench.state.load_snapshot() is not None
    assert bench.state.load_snapshot().valid == 5  # type: ignore[union-attr]


def test_a_file_changed_while_it_was_read_is_read_again(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert valid(bench.read()) == 10
    bench.path.write_text(contracts_text(12))
    time.sleep(1.1)  # still for the debounce: about to be read
    calls: list[int] = []
    read_source = watch.read_source

    def a_write_lands_during_the_read(config: Config) -> Any:
        read = read_source(config)
        calls.append(len(read.contracts))
        if len(calls) == 1:  # fault injection: the writer comes back mid-read
            bench.path.write_text(contracts_text(13))
        return read

    monkeypatch.setattr(watch, "read_source", a_write_lands_during_the_read)
    reading = bench.read()

    assert calls == [12, 13]
    assert (valid(reading), reading.degraded) == (13, "")
