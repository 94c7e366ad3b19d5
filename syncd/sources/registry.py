"""Which reader serves which ``type:`` of source, and the reading of them all.

Called by ``syncd.engine.read_source`` (the CLI and each daemon cycle). ``Readers``
keeps one reader per source that has state between reads (an HTTP source's client and
what it saw of each page), so that the daemon can ask cheaply whether a source changed.
Any source failing fails the read as a whole (``SourceError``).
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.config import FileSource, HttpSource, SourceBase, SqlSource
from syncd.core.contracts import RawRecord
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


def read_all(sources: Sequence[SourceBase], readers: Readers | None = None) -> list[RawRecord]:
    """The records of every source, in order; ``SourceError`` when any one fails."""
    own = readers is None
    readers = readers or Readers()
    try:
        out: list[RawRecord] = []
        for source in sources:
            out += readers.read(source)
        return out
    finally:
        if own:
            readers.close()
