"""Which reader serves which ``type:`` of source, and the reading of them all.

Called by ``syncd.engine.read_source`` (the CLI and each daemon cycle). ``Readers``
keeps one reader per source that has state between reads (an HTTP source's client and
what it saw of each page), so that the daemon can ask cheaply whether a source changed.
Any source failing fails the read as a whole (``SourceError``). A contract id that
several sources hold makes every copy invalid, and ``named`` says which sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from syncd.config import FileSource, HttpSource, SourceBase, SqlSource
from syncd.core.contracts import RawRecord
from syncd.core.model import InvalidRecord
from syncd.core.rules import as_text
from syncd.errors import SourceError
from syncd.sources import file as file_source
from syncd.sources import sql as sql_source
from syncd.sources.http import HttpReader

log = logging.getLogger(__name__)


class Readers:
    """The readers of the sources and what each last read saw, by source (a changed
    config gets new ones): an HTTP source's client and pages, a SQL source's version
    (its rows' digest, or its change_query's result), a file's size and times."""

    def __init__(self) -> None:
        self._http: dict[str, HttpReader] = {}  # by key()
        self._engines = sql_source.Engines()  # by key()
        self._versions: dict[str, bytes] = {}  # sql: rows' digest or change_query's result
        self._stats: dict[str, tuple[int, int, int] | None] = {}

    def http(self, source: HttpSource) -> HttpReader:
        reader = self._http.get(key(source))
        if reader is None:
            reader = self._http[key(source)] = HttpReader(source)
        return reader

    def read(self, source: SourceBase) -> list[RawRecord]:
        """The records of one source; ``SourceError`` when it cannot be read as a whole."""
        if isinstance(source, FileSource):
            before = _stat(source.path)
            records = file_source.read(source)
            self._stats[key(source)] = before if _stat(source.path) == before else None
            return records
        if isinstance(source, HttpSource):
            return self.http(source).read()
        if isinstance(source, SqlSource):
            records, version = sql_source.read(source, self._engines, key(source))
            self._versions[key(source)] = version
            return records
        raise SourceError(f"{source.label}: no reader for {type(source).__name__}")

    def unchanged(self, source: SourceBase) -> bool:
        """Whether ``source`` is as its last read found it: file by its size and times,
        http by ETag / Last-Modified or each page's digest, sql by the rows' digest or
        its change_query's result.
        True when there is nothing to compare with, or the source cannot be asked: the
        daemon's regular poll then reads it, and falls back when it must."""
        known = key(source)
        if isinstance(source, FileSource):
            return known not in self._stats or _stat(source.path) == self._stats[known]
        if isinstance(source, HttpSource):
            reader = self._http.get(known)
            return reader is None or not reader.pages or reader.unchanged()
        if isinstance(source, SqlSource) and known in self._versions:
            try:
                return sql_source.version(source, self._engines, known) == self._versions[known]
            except SourceError as exc:
                log.info("%s: cannot ask whether it changed: %s", source.label, exc)
        return True

    def retain(self, sources: Sequence[SourceBase]) -> None:
        """Forget (and close) what is kept for sources no longer configured (a reload)."""
        keep = {key(source) for source in sources}
        for known in [k for k in self._http if k not in keep]:
            self._http.pop(known).close()
        for kept in (self._versions, self._stats):
            for known in [k for k in kept if k not in keep]:
                del kept[known]
        for known in [k for k in self._engines.known() if k not in keep]:
            self._engines.forget(known)

    def close(self) -> None:
        for reader in self._http.values():
            reader.close()
        self._http.clear()
        self._engines.close()


def key(source: SourceBase) -> str:
    """What tells one source's settings from another's (config models hold dicts, so
    they cannot be dictionary keys themselves)."""
    return source.model_dump_json()


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


@dataclass(frozen=True)
class Records:
    """The records of every source, and the contract ids more than one source holds
    (with the names of those sources)."""

    records: list[RawRecord]
    clashes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def read_all(sources: Sequence[SourceBase], readers: Readers | None = None) -> Records:
    """The records of every source, in order; ``SourceError`` when any one fails."""
    own = readers is None
    readers = readers or Readers()
    try:
        parts = [(source.label, readers.read(source)) for source in sources]
    finally:
        if own:
            readers.close()
    records = [record for _, part in parts for record in part]
    if len(parts) < 2:
        return Records(records)
    held: dict[str, list[str]] = {}
    for label, part in parts:
        for cid in {as_text(r.fields.get("id")) for r in part}:
            held.setdefault(cid, []).append(label)
    clashes = {cid: tuple(labels) for cid, labels in held.items() if cid and len(labels) > 1}
    return Records(records, clashes)


def named(invalid: list[InvalidRecord], clashes: Mapping[str, tuple[str, ...]]) -> None:
    """Say which sources hold a contract id that more than one of them has (in place)."""
    if not clashes:
        return
    for index, record in enumerate(invalid):
        labels = clashes.get(record.contract_id)
        if labels and record.field == "id":
            invalid[index] = replace(
                record,
                reason=f"contract id {record.contract_id!r} is in sources {' and '.join(labels)}",
                fix="keep each contract in one source; every copy is ignored until then",
            )
