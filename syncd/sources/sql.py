"""Contracts from a SQL query (``source.type: sql``): a view HR maintains, a table.

Called through ``syncd.sources.registry``. SQLAlchemy Core runs ``source.query`` with
the driver its URL names: psycopg for PostgreSQL, the standard library's sqlite3 for
SQLite (the embedded default for small setups). The URL comes from ``url_file`` or
``url_env`` (it carries credentials) and never appears in messages.

The query runs in one read-only transaction at a consistent snapshot (PostgreSQL:
``REPEATABLE READ``; SQLite: one statement of one transaction), under a statement
timeout (PostgreSQL: ``statement_timeout``; SQLite: the query is interrupted), and
reads at most ``max_records`` rows: whatever fails, the read fails as a whole
(``SourceError``). Columns are the canonical fields, or mapped with ``fields:``;
each row's origin is the source and the row's number. ``version`` is what the daemon
compares to see whether the source changed: the rows' digest, or the result of the
config's ``change_query`` (a cheap question such as ``max(updated_at)``).
"""

from __future__ import annotations

import hashlib
import marshal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import repeat
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncd.config import SqlSource
from syncd.core.contracts import RawRecord
from syncd.errors import SourceError
from syncd.sources.mapping import Mapper

_CHUNK = 5000  # rows fetched at a time
_MARK_ROWS = 100  # change_query's result is a mark, not data
_MARK_FIX = "make it an aggregate, e.g. SELECT max(updated_at), count(*) FROM the table"


class Engines:
    """One SQLAlchemy engine per source, kept between reads: a new engine asks the server
    for its version and settings at its first connection (PostgreSQL: several round
    trips, about 15 ms on loopback), which every poll would pay again. Engines keep no
    connection open between reads (``NullPool``). A source whose URL changed (a rotated
    password in ``url_file``) gets a new engine."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[str, Engine]] = {}  # by the caller's key: URL, engine

    def get(self, source: SqlSource, key: str) -> Engine:
        try:
            url = source.read_url()
        except OSError as exc:
            raise SourceError(
                f"{source.label}: cannot read url_file {source.url_file} ({exc.strerror}; fix: "
                "restore it, readable by syncd)"
            ) from exc
        kept = self._kept.get(key)
        if kept is not None and kept[0] == url:
            return kept[1]
        try:
            engine = create_engine(make_url(url), poolclass=NullPool)
        except (ArgumentError, ValueError, ImportError) as exc:
            raise SourceError(
                f"{source.label}: unusable database URL ({type(exc).__name__})"
            ) from exc
        self.forget(key)
        self._kept[key] = (url, engine)
        return engine

    def forget(self, key: str) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            kept[1].dispose()

    def known(self) -> list[str]:
        return list(self._kept)

    def close(self) -> None:
        for key in self.known():
            self.forget(key)


def read(
    source: SqlSource, engines: Engines | None = None, key: str = ""
) -> tuple[list[RawRecord], bytes]:
    """The rows of ``source.query`` as records, and the source's version (``version``
    as of this read); ``SourceError`` when it cannot be read. ``engines``: kept engines,
    under ``key`` (without them, an engine for this read alone)."""
    mapper = Mapper(source)
    prefix = f"{source.label} row "
    out: list[RawRecord] = []
    with _rows(source, engines, key) as (mark, keys, chunks):
        hashed = _hashed(keys)
        for chunk in chunks:
            if mark is None:
                _take(hashed, chunk)
            items = list(map(dict, map(zip, repeat(keys), chunk)))  # dict(zip()) without a loop
            out += mapper.many(items, prefix, len(out) + 1)
    return out, hashed.digest() if mark is None else mark


def version(source: SqlSource, engines: Engines | None = None, key: str = "") -> bytes:
    """What tells whether the source changed: the result of ``change_query`` when the
    config has one (a round trip), else a digest of every row the query returns, in its
    order (equal digests, the same rows)."""
    rows = source.change_query is None
    with _rows(source, engines, key, rows) as (mark, keys, chunks):
        if mark is not None:
            return mark
        hashed = _hashed(keys)
        for chunk in chunks:
            _take(hashed, chunk)
    return hashed.digest()


def _hashed(keys: list[str]) -> hashlib.blake2b:
    hashed = hashlib.blake2b(digest_size=16)
    hashed.update(repr(keys).encode())
    return hashed


def _take(hashed: hashlib.blake2b, chunk: list[Any]) -> None:
    """Rows into the digest: marshal's bytes (eight times as fast as their repr) for the
    types it takes (what SQLite returns), their repr for the others (dates, decimals).
    Marshal's bytes decode to the rows, so equal digests mean equal rows; its
    back-references follow which values are one object, so a read that shared them
    otherwise could only make equal rows look changed (a needless cycle), never the
    reverse."""
    try:
        hashed.update(marshal.dumps(chunk, 4))
    except ValueError:
        hashed.update(b"r" + repr(chunk).encode())


def _marked(cursor: Any, source: SqlSource) -> bytes:
    """The result of ``change_query``, as the version it marks."""
    cursor.execute(source.change_query)
    if cursor.description is None:
        raise SourceError(f"{source.label}: change_query returns no rows (fix: use a SELECT)")
    rows = cursor.fetchmany(_MARK_ROWS + 1)
    if len(rows) > _MARK_ROWS:
        raise SourceError(
            f"{source.label}: change_query returns more than {_MARK_ROWS} rows (fix: {_MARK_FIX})"
        )
    return b"q" + repr(rows).encode()


@contextmanager
def _rows(
    source: SqlSource, engines: Engines | None, key: str, rows: bool = True
) -> Iterator[tuple[bytes | None, list[str], Iterator[list[Any]]]]:
    """``change_query``'s mark (None without one), the column names and the rows in
    chunks (plain tuples, from the driver's own cursor: SQLAlchemy's rows would cost
    more than the query), inside one transaction. The mark is taken first: a write
    between the two statements (SQLite has no snapshot across them) then shows as a
    change at the next poll, never hides one."""
    label = source.label
    own = engines is None
    engines = engines or Engines()
    engine = engines.get(source, key)
    driver_error: Any = engine.dialect.loaded_dbapi.Error
    try:
        with engine.connect() as conn, _snapshot(conn, source):
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                mark = _marked(cursor, source) if source.change_query else None
                if not rows:
                    yield mark, [], iter(())
                    return
                cursor.execute(source.query)
                if cursor.description is None:
                    raise SourceError(f"{label}: the query returns no rows (fix: use a SELECT)")
                keys = [str(column[0]) for column in cursor.description]
                yield mark, keys, _chunks(cursor, source)
            finally:
                cursor.close()
    except (SQLAlchemyError, driver_error) as exc:
        raise SourceError(f"{label}: {_reason(exc, source.timeout)}") from exc
    finally:
        if own:
            engines.close()


def _chunks(result: Any, source: SqlSource) -> Iterator[list[Any]]:
    count = 0
    while chunk := result.fetchmany(_CHUNK):
        count += len(chunk)
        if count > source.max_records:
            raise SourceError(
                f"{source.label}: more than max_records {source.max_records} rows (fix: raise "
                "max_records, or narrow the query)"
            )
        yield chunk


@contextmanager
def _snapshot(conn: Connection, source: SqlSource) -> Iterator[None]:
    """One read-only transaction at a consistent snapshot, with a statement timeout."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            conn.execute(text(f"SET LOCAL statement_timeout = {int(source.timeout) * 1000}"))
            yield
        return
    if dialect == "sqlite":
        deadline = time.monotonic() + source.timeout
        raw = conn.connection.driver_connection
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)  # type: ignore[union-attr]
        try:
            with conn.begin():
                yield
        finally:
            raw.set_progress_handler(None, 0)  # type: ignore[union-attr]
        return
    with conn.begin():
        yield


def _reason(exc: Exception, timeout: int) -> str:
    """What went wrong, in one line, without the statement or the URL."""
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    if "interrupted" in first or "statement timeout" in first:
        return f"{first} (over timeout {timeout} s; fix: raise timeout, or speed the query up)"
    return first
