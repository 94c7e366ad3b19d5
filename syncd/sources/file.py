"""Contracts from a local file: YAML or JSON (a ``contracts:`` list) or CSV (header row).

Called by ``syncd.engine``. Returns raw records with their origin (file and line, or
record index for JSON) for ``core.contracts.validate``. The file is untrusted input: a
file that cannot be read or parsed as a whole raises ``SourceError`` with a one-line
reason naming the file, so that nothing changes anywhere, whatever went wrong inside
the parser (a syntax error, nesting deep enough to exhaust the stack, an alias bomb,
running out of memory). A file larger than ``source.max_bytes`` is refused unread,
which bounds the time and memory of a read. The formats themselves are in
``syncd.sources.formats``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from syncd.config import FileSource
from syncd.core.contracts import RawRecord
from syncd.errors import SourceError
from syncd.sources import formats
from syncd.sources.mapping import Mapper

_SUFFIXES = {".csv": "csv", ".json": "json"}  # anything else is read as YAML


def read(source: FileSource) -> list[RawRecord]:
    """The records of ``source``; ``SourceError`` when the file is unusable as a whole."""
    path = source.path
    fmt: str = source.format
    if fmt == "auto":
        fmt = _SUFFIXES.get(path.suffix.lower(), "yaml")
    try:
        data = _content(path, source.max_bytes)
        with _collector_paused():
            if fmt == "csv":
                records = formats.csv_records(data, path.name, source.csv_delimiter)
            elif fmt == "json":
                records = formats.json_records(data, path.name)
            else:
                records = formats.yaml_records(data, path.name)
    except SourceError:
        raise
    except formats.ShapeError as exc:
        raise SourceError(f"{path}: {exc}") from exc
    except Exception as exc:  # hostile input makes each parser fail in its own ways
        raise SourceError(f"{path}: cannot parse contracts: {describe(exc)}") from exc
    mapper = Mapper(source)
    if mapper.plain:
        return records
    return [mapper(r.fields, r.origin) for r in records]


def _content(path: Path, limit: int) -> bytes:
    """The file's bytes; more than ``limit`` of them are refused before reading (and
    when the file grows past the limit while it is read)."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise SourceError(_too_large(path, size, limit))
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read contracts: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise SourceError(_too_large(path, len(data), limit))
    return data


def _too_large(path: Path, size: int, limit: int) -> str:
    return (
        f"{path}: the file is {_mib(size)} ({size} bytes), over source.max_bytes "
        f"{_mib(limit)} ({limit} bytes) (fix: raise source.max_bytes or split the source)"
    )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def describe(exc: BaseException) -> str:
    """One line for what a parser raised: the problem and its line, never a traceback."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem
    elif isinstance(exc, RecursionError):
        text = "nested too deeply to parse"
    elif isinstance(exc, MemoryError):
        text = "out of memory while parsing"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # a value quoted in the message cannot start a line


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Parsing builds hundreds of thousands of containers and no reference cycles (an
    alias inside the node it names is refused); the cyclic collector would walk them
    again and again for nothing, doubling the time of a large read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
