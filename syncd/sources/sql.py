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
each row's origin is the source and the row's number. ``digest`` is the content digest
of the rows, by which the daemon sees whether the source changed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncd.config import SqlSource
from syncd.core.contracts import RawRecord
from syncd.errors import SourceError
from syncd.sources.mapping import Mapper

_CHUNK = 5000  # rows fetched at a time


def read(source: SqlSource, hashed: hashlib.blake2b | None = None) -> list[RawRecord]:
    """The rows of ``source.query`` as records; ``SourceError`` when it cannot be read.
    ``hashed``: a ``hashlib`` object that takes in the rows as ``digest`` does."""
    mapper = Mapper(source)
    prefix = f"{source.label} row "
    out: list[RawRecord] = []
    with _rows(source) as (keys, chunks):
        if hashed is not None:
            hashed.update(repr(keys).encode())
        for chunk in chunks:
            if hashed is not None:
                hashed.update(repr(chunk).encode())
            out += mapper.many(
                [dict(zip(keys, row, strict=True)) for row in chunk], prefix, len(out) + 1
            )
    return out


def digest(source: SqlSource) -> bytes:
    """A digest of everything the query returns, in its order: equal digests, the same
    rows (the daemon's cheap check of whether the source changed)."""
    hashed = new_digest()
    with _rows(source) as (keys, chunks):
        hashed.update(repr(keys).encode())
        for chunk in chunks:
            hashed.update(repr(chunk).encode())
    return hashed.digest()


def new_digest() -> hashlib.blake2b:
    """The hash ``digest`` and ``read`` take the rows into."""
    return hashlib.blake2b(digest_size=16)


@contextmanager
def _rows(source: SqlSource) -> Iterator[tuple[list[str], Iterator[list[Any]]]]:
    """The column names and the rows in chunks (plain tuples, from the driver's own
    cursor: SQLAlchemy's rows would cost more than the query), inside the read's
    transaction."""
    label = source.label
    try:
        engine = create_engine(make_url(source.read_url()), poolclass=NullPool)
    except (ArgumentError, ValueError, ImportError) as exc:
        raise SourceError(f"{label}: unusable database URL ({type(exc).__name__})") from exc
    driver_error: Any = engine.dialect.loaded_dbapi.Error
    try:
        with engine.connect() as conn, _snapshot(conn, source):
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(source.query)
                if cursor.description is None:
                    raise SourceError(f"{label}: the query returns no rows (fix: use a SELECT)")
                yield [str(column[0]) for column in cursor.description], _chunks(cursor, source)
            finally:
                cursor.close()
    except (SQLAlchemyError, driver_error) as exc:
        raise SourceError(f"{label}: {_reason(exc, source.timeout)}") from exc
    finally:
        engine.dispose()


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
