"""Which reader serves which ``type:`` of source, and the reading of them all.

Called by ``syncd.engine.read_source`` (the CLI and each daemon cycle). ``Readers``
keeps one reader per source that has state between reads (an HTTP source's client and
what it saw of each page), so that the daemon can ask cheaply whether a source changed.
Any source failing fails the read as a whole (``SourceError``). A contract id that
several sources hold makes every copy invalid, and ``named`` says which sources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from syncd.config import FileSource, HttpSource, SourceBase, SqlSource
from syncd.core.contracts import RawRecord
from syncd.core.model import InvalidRecord
from syncd.core.rules import as_text
from syncd.errors import SourceError
from syncd.sources import file as file_source
from syncd.sources import sql as sql_source
from syncd.sources.http import HttpReader


class Readers:
    """The stateful readers of the sources, by source (a changed config gets new ones)."""

    def __init__(self) -> None:
        self._http: dict[HttpSource, HttpReader] = {}

    def http(self, source: HttpSource) -> HttpReader:
        reader = self._http.get(source)
        if reader is None:
            reader = self._http[source] = HttpReader(source)
        return reader

    def read(self, source: SourceBase) -> list[RawRecord]:
        """The records of one source; ``SourceError`` when it cannot be read as a whole."""
        if isinstance(source, FileSource):
            return file_source.read(source)
        if isinstance(source, HttpSource):
            return self.http(source).read()
        if isinstance(source, SqlSource):
            return sql_source.read(source)
        raise SourceError(f"{source.label}: no reader for {type(source).__name__}")

    def close(self) -> None:
        for reader in self._http.values():
            reader.close()
        self._http.clear()


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
