"""The file source's formats: the bytes of a YAML, JSON or CSV file into raw records.

Called by ``syncd.sources.file``, which reads the bytes (bounded by ``source.max_bytes``)
and turns whatever these functions raise into a ``SourceError``. A record's origin is
``file:line`` (YAML: the line of its list item; CSV: the row's last line) or
``file#N`` for the N-th record of a JSON list.

In CSV, roles are separated by ``;`` and columns named ``attributes.NAME`` fill the free
attributes. Memory stays a small multiple of the file: YAML is built from libyaml's
events without a node tree (``syncd.yamlsrc``), CSV is decoded row by row, and no
format keeps the lines of anything but its records.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from syncd import yamlsrc
from syncd.core.contracts import RawRecord

MAX_DEPTH = yamlsrc.MAX_DEPTH  # a contract needs 3 levels; deeper is refused as a whole


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
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        if _deeper(item, MAX_DEPTH - 2):
            raise ShapeError(f"record {index + 1} is nested deeper than {MAX_DEPTH} levels")
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
    columns: list[tuple[int, str, bool, dict[str, str]]] = [
        (index, column, attribute, {}) for index, column, attribute in _columns(header)
    ]
    out = []
    for row in reader:
        if not row:
            continue  # a blank line
        fields: dict[str, object] = {}
        attributes: dict[str, str] = {}
        for index, column, attribute, seen in columns:
            value = row[index].strip() if index < len(row) else ""
            value = seen.setdefault(value, value)  # one object for a column's repeated value
            if attribute:
                attributes[column] = value
            else:
                fields[column] = value
        if attributes:
            fields["attributes"] = attributes
        out.append(RawRecord(f"{name}:{reader.line_num}", fields))
    return out


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
