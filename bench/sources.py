"""Benchmark: 50,000 contracts read through each kind of source, against the raw
library doing the same read in the same run, and the cost of an unchanged poll.

For each kind it times (best of ``--repeat``) and measures the peak traced memory
(``tracemalloc``, in a separate run so that tracing does not slow the timings) of:

* file: syncd's file source on a JSON file, against ``json.loads`` of its bytes;
* http: syncd's HTTP source over loopback (pages of ``--page`` items, ``Link: rel=next``
  from a small server of pre-rendered pages), against an httpx2 loop that gets every
  page, follows the same links and decodes the JSON; both with items in the canonical
  shape, and once more with VMS-style nested items mapped by ``fields:``, ``status_map:``
  and ``roles_from:``;
* sql: syncd's SQL source on SQLite (and PostgreSQL when ``initdb`` is installed,
  a throwaway cluster on loopback), against a plain ``SELECT`` through the driver
  (``sqlite3``, ``psycopg``) fetching every row.

The ratio is syncd's time over the raw read's (the aim: at most 1.3). An unchanged poll
is ``Readers.unchanged`` after a read: one conditional request per page answered 304
for http (the aim: at most 50 ms on loopback), the digest of the rows for sql (and,
marked ", mark", its ``change_query``: ``count(*), max("end")`` over the table), a stat
for the file. Validation is not part of either side: it is the same whatever the kind.

Run: ``python bench/sources.py`` (about a minute; ``--count 5000`` for a smoke run).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.config import FileSource, HttpSource, SqlSource
from syncd.sources.registry import Readers

COLUMNS = ("id", "email", "given_name", "family_name", "roles", "start", "end", "status")


def contracts(count: int) -> list[dict[str, Any]]:
    start = date(2026, 1, 1)
    return [
        {
            "id": f"C-{n:06d}",
            "email": f"person{n}@vendor{n % 40}.test",
            "given_name": "Given",
            "family_name": f"Family{n}",
            "roles": "developer;ops" if n % 3 else "developer",
            "start": (start + timedelta(days=n % 200)).isoformat(),
            "end": (start + timedelta(days=200 + n % 400)).isoformat(),
            "status": "active",
        }
        for n in range(count)
    ]


def nested(item: dict[str, Any]) -> dict[str, Any]:
    """The same contract as a VMS might serve it."""
    return {
        "assignmentId": item["id"],
        "worker": {"contact": {"email": item["email"]}, "name": {
            "first": item["given_name"], "last": item["family_name"]}},
        "skills": [{"code": r.upper()} for r in item["roles"].split(";")],
        "period": {"from": item["start"], "to": item["end"]},
        "state": "Open",
    }  # fmt: skip


VMS = {
    "fields": {
        "id": "assignmentId",
        "email": "worker.contact.email",
        "given_name": "worker.name.first",
        "family_name": "worker.name.last",
        "roles": "skills",
        "start": "period.from",
        "end": "period.to",
        "status": "state",
    },
    "status_map": {"Open": "active"},
    "roles_from": {"key": "code", "map": {"DEVELOPER": "developer", "OPS": "ops"}},
}


@contextmanager
def pages_server(items: list[dict[str, Any]], size: int) -> Iterator[str]:
    """Pre-rendered pages at /c?page=N with Link rel=next and an ETag."""
    rendered: dict[str, tuple[bytes, str, str]] = {}
    count = (len(items) + size - 1) // size
    for page in range(1, count + 1):
        body = json.dumps(items[(page - 1) * size : page * size]).encode()
        etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
        link = f'</c?page={page + 1}>; rel="next"' if page < count else ""
        rendered[str(page)] = (body, etag, link)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            page = self.path.partition("page=")[2] or "1"
            body, etag, link = rendered[page]
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/c?page=1"
    finally:
        server.shutdown()
        server.server_close()


def raw_http(url: str) -> list[Any]:
    """Every item of every page, following Link rel=next: the least any reader does."""
    items: list[Any] = []
    with httpx2.Client() as client:
        next_url: str | None = url
        while next_url:
            response = client.get(next_url)
            items += response.json()
            link = response.links.get("next", {}).get("url")
            next_url = str(response.url.join(link)) if link else None
    return items


def best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def peak_mib(run: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    kept = run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del kept
    return peak / (1 << 20)


def compare(name: str, ours: Callable[[], Any], raw: Callable[[], Any], repeat: int) -> None:
    ours_s, got = best(ours, repeat)
    raw_s, _ = best(raw, repeat)
    ours_m, raw_m = peak_mib(ours), peak_mib(raw)
    print(
        f"{name:<22} syncd {ours_s * 1000:8.1f} ms  raw {raw_s * 1000:8.1f} ms  "
        f"ratio {ours_s / raw_s:5.2f}   peak syncd {ours_m:6.1f} MiB  raw {raw_m:6.1f} MiB  "
        f"({len(got)} records)"
    )


def poll(name: str, readers: Readers, source: Any, repeat: int) -> None:
    readers.read(source)
    seconds, same = best(lambda: readers.unchanged(source), repeat)
    print(f"{name:<22} unchanged poll {seconds * 1000:8.1f} ms  (unchanged: {same})")


def sql_kind(name: str, url: str, raw: Callable[[], Any], repeat: int) -> None:
    source = SqlSource.model_validate({"type": "sql", "url": url, "query": "SELECT * FROM c"})
    readers = Readers()
    compare(name, lambda: readers.read(source), raw, repeat)
    poll(name, readers, source, repeat)
    marked = source.model_copy(update={"change_query": 'SELECT count(*), max("end") FROM c'})
    poll(name + ", mark", readers, marked, repeat)


def fill_sql(execute: Callable[..., Any], items: list[dict[str, Any]], mark: str) -> None:
    execute('CREATE TABLE c (id text, email text, given_name text, family_name text, '
            'roles text, start text, "end" text, status text)')  # fmt: skip
    rows = [tuple(item[c] for c in COLUMNS) for item in items]
    marks = ", ".join([mark] * len(COLUMNS))  # placeholders only: the values are bound
    execute(f"INSERT INTO c VALUES ({marks})", rows)  # noqa: S608


def postgres(items: list[dict[str, Any]], repeat: int) -> None:
    try:
        import psycopg

        from tests.servers.postgres import PostgresError, start_postgres
    except ImportError as exc:
        print(f"postgresql: skipped ({exc})")
        return
    try:
        server = start_postgres()
    except PostgresError as exc:
        print(f"postgresql: skipped ({exc})")
        return
    try:
        dsn = f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            fill_sql(lambda q, rows=None: cur.executemany(q, rows) if rows else cur.execute(q),
                     items, "%s")  # fmt: skip

        def raw() -> list[Any]:
            with psycopg.connect(dsn) as conn, conn.cursor() as cur:
                cur.execute("SELECT * FROM c")
                return cur.fetchall()

        sql_kind("sql (postgresql)", server.url, raw, repeat)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = contracts(args.count)
    print(f"{args.count} contracts, best of {args.repeat}; http pages of {args.page}")
    with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
        folder = Path(tmp)
        path = folder / "contracts.json"
        path.write_text(json.dumps({"contracts": items}))
        file_source = FileSource(path=path)
        readers = Readers()
        compare("file (json)", lambda: readers.read(file_source),
                lambda: json.loads(path.read_bytes())["contracts"], args.repeat)  # fmt: skip
        poll("file (json)", readers, file_source, args.repeat)

        shapes = (("http", items, {}), ("http (mapped)", [nested(i) for i in items], VMS))
        for label, served, mapping in shapes:
            with pages_server(served, args.page) as url:
                source = HttpSource.model_validate({"type": "http", "url": url,
                    "allow_plaintext": True, "max_pages": 100_000, **mapping})  # fmt: skip
                http = Readers()
                compare(label, lambda s=source, r=http: r.read(s),
                        lambda u=url: raw_http(u), args.repeat)  # fmt: skip
                poll(label, http, source, args.repeat)

        db = folder / "hr.db"
        with sqlite3.connect(db) as conn:
            fill_sql(lambda q, rows=None: conn.executemany(q, rows) if rows else conn.execute(q),
                     items, "?")  # fmt: skip
        conn.close()

        def raw_sqlite() -> list[Any]:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT * FROM c").fetchall()
            conn.close()
            return rows

        sql_kind("sql (sqlite)", f"sqlite:///{db}", raw_sqlite, args.repeat)
        postgres(items, args.repeat)


if __name__ == "__main__":
    main()
