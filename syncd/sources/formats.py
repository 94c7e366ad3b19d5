"""The file source's formats: the bytes of a YAML, JSON or CSV file into raw records.

Called by ``syncd.sources.file``, which reads the bytes (bounded by ``source.max_bytes``)
and turns whatever these functions raise into a ``SourceError``. A record's origin is
``file:line`` (YAML: the line of its list item; CSV: the row's last line) or
``file#N`` for the N-th record of a JSON list.

In CSV, roles are separated by ``;`` and columns named ``attributes.NAME`` fill the free
attributes. Memory stays a small multiple of the file: YAML is built from libyaml's
events without a node tree (``syncd.yamlsrc``), CSV is decoded row by row, and no
format keeps the lines of anything but its records. Records share one object for a text
value they repeat (in CSV, for the first ``SHARED`` distinct values of a column), and the
rows of a CSV file share their keys (``_shared_keys``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from itertools import chain
from operator import call
from typing import Any

from syncd import yamlsrc
from syncd.core.contracts import RawRecord

MAX_DEPTH = yamlsrc.MAX_DEPTH  # a contract needs 3 levels; deeper is refused as a whole
SHARED = 4096  # distinct values of a CSV column that rows share (ids are all distinct)


class ShapeError(ValueError):
    """The file parsed, but is not a list of contract records."""


def yaml_records(data: bytes, name: str) -> list[RawRecord]:
    """A YAML document's records (``syncd.yamlsrc`` bounds its cost)."""
    doc = yamlsrc.parse(data, name, lines_depth=2)
    items = _items(doc.data)
    prefix = ("contracts",) if isinstance(doc.data, dict) else ()
    return [
        RawRecord(f"{name}:{doc.line((*prefix, i))}", item if isinstance(item, dict) else {})
        for i, item in enumerate(items)
    ]


def json_records(data: bytes, name: str) -> list[RawRecord]:
    """A JSON document's records. The decoder's stack bounds nesting (too deep is a
    ``RecursionError``); a record is held to ``MAX_DEPTH`` levels, so that nothing
    after the read runs out of stack on it."""
    items = _items(json.loads(data))
    if _too_deep(items, MAX_DEPTH - 2):
        index = next(i for i, item in enumerate(items) if _deeper(item, MAX_DEPTH - 2))
        raise ShapeError(f"record {index + 1} is nested deeper than {MAX_DEPTH} levels")
    seen: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            _share(item, seen)
            for value in item.values():
                if isinstance(value, dict):
                    _share(value, seen)
    return [
        RawRecord(f"{name}#{i + 1}", item if isinstance(item, dict) else {})
        for i, item in enumerate(items)
    ]


def csv_records(data: bytes, name: str, delimiter: str) -> list[RawRecord]:
    """A CSV file's rows as records, decoded as they are read; ``csv.Error`` names the
    line."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        return _rows(reader, name)
    except csv.Error as exc:
        raise csv.Error(f"line {reader.line_num}: {exc}") from exc


def _rows(reader: Any, name: str) -> list[RawRecord]:
    header = next(reader, None)
    if not header:
        raise ShapeError("empty CSV, expected a header row")
    fields, attributes, indexes = _layout(header)
    width = max(indexes, default=-1) + 1
    seen: list[dict[str, str]] = [{} for _ in indexes]  # one object for a repeated value
    row_fields, row_attributes = _shared_keys(), _shared_keys()
    out = []
    for count, row in enumerate(reader):
        if not count % 1024:  # a column's first SHARED values are shared, no more
            share = [s.setdefault if len(s) < SHARED else s.get for s in seen]
        if not row:
            continue  # a blank line
        if len(row) < width:
            row += [""] * (width - len(row))
        values = list(map(str.strip, [row[index] for index in indexes]))
        values = list(map(call, share, values, values))
        record = row_fields()
        record.update(zip(fields, values, strict=False))  # the attributes follow
        if attributes:
            record["attributes"] = more = row_attributes()
            more.update(zip(attributes, values[len(fields) :], strict=True))
        out.append(RawRecord(f"{name}:{reader.line_num}", record))
    return out


def _layout(header: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], list[int]]:
    """The field names, the attribute names, and the columns that hold them, in order."""
    named = _columns(header)
    fields = tuple(column for _, column, attribute in named if not attribute)
    attributes = tuple(column for _, column, attribute in named if attribute)
    indexes = [index for index, _, attribute in named if not attribute]
    return fields, attributes, indexes + [index for index, _, attribute in named if attribute]


def _shared_keys() -> Callable[[], dict[str, object]]:
    """Empty dictionaries that share their keys with each other, as the attribute
    dictionaries of the instances of one class do (PEP 412): filled with the same keys
    in the same order, each takes less than half the memory of a dictionary of its own.
    A row of a CSV file holds its fields in one of these."""
    holder = type("Row", (), {})
    return lambda: holder().__dict__


def _share(mapping: dict[str, Any], seen: dict[str, str]) -> None:
    """One object for a text value that many records repeat (dates, roles, vendors)."""
    for key, value in mapping.items():
        if type(value) is str:
            mapping[key] = seen.setdefault(value, value)


def _columns(header: list[str]) -> list[tuple[int, str, bool]]:
    """Index, field name and whether it is an attribute, for every named column (a
    column named twice: the last one counts)."""
    named: dict[tuple[str, bool], int] = {}
    for index, raw in enumerate(header):
        column = raw.strip()
        if not column:
            continue
        attribute = column.startswith("attributes.")
        named[(column.removeprefix("attributes.") if attribute else column, attribute)] = index
    return [(index, column, attribute) for (column, attribute), index in named.items()]


def _items(data: Any) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get("contracts"), list):
        return list(data["contracts"])
    if isinstance(data, list):
        return data
    raise ShapeError("expected a top-level 'contracts:' list")


def _deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and mappings more than ``limit`` levels deep."""
    stack = [(value, 0)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _too_deep(items: list[Any], limit: int) -> bool:
    """Whether any of ``items`` nests lists and mappings more than ``limit`` levels
    deep (``_deeper`` of each, level by level for all of them at once)."""
    level = [item for item in items if type(item) is dict or type(item) is list]
    for _ in range(limit + 1):
        if not level:
            return False
        values = chain(
            chain.from_iterable(map(dict.values, [n for n in level if type(n) is dict])),
            chain.from_iterable(n for n in level if type(n) is list),
        )
        level = [child for child in values if type(child) is dict or type(child) is list]
    return bool(level)
