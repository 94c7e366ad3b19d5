"""Contracts from a local file: YAML or JSON (a ``contracts:`` list) or CSV (header row).

In CSV, roles are separated by ``;`` and columns named ``attributes.NAME`` fill the free
attributes.

Called by ``syncd.engine``. Returns raw records with their origin (file and line, or
record index for JSON) for ``core.contracts.validate``; a file that cannot be read or
parsed as a whole raises ``SourceError`` so that nothing changes anywhere.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from syncd import yamlsrc
from syncd.config import FileSource
from syncd.core.contracts import RawRecord
from syncd.errors import SourceError


def read(source: FileSource) -> list[RawRecord]:
    path = source.path
    fmt: str = source.format
    if fmt == "auto":
        suffix = path.suffix.lower()
        fmt = {".csv": "csv", ".json": "json"}.get(suffix, "yaml")
    try:
        if fmt == "csv":
            records = _csv(path, source.csv_delimiter)
        elif fmt == "json":
            records = _json(path)
        else:
            records = _yaml(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read contracts: {exc.strerror}") from exc
    except (yaml.YAMLError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot parse contracts: {exc}") from exc
    return [_mapped(r, source.fields) for r in records]


def _mapped(record: RawRecord, fields: Mapping[str, str]) -> RawRecord:
    """Rename the source's own column names onto canonical ones (``fields:``)."""
    if not fields:
        return record
    renamed = {src: canon for canon, src in fields.items()}
    out = {renamed.get(k, k): v for k, v in record.fields.items()}
    return RawRecord(record.origin, out)


def _records(data: Any, where: str) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get("contracts"), list):
        return list(data["contracts"])
    if isinstance(data, list):
        return data
    raise SourceError(f"{where}: expected a top-level 'contracts:' list")


def _yaml(path: Path) -> list[RawRecord]:
    doc = yamlsrc.load(path)
    items = _records(doc.data, str(path))
    prefix = ("contracts",) if isinstance(doc.data, dict) else ()
    out = []
    for i, item in enumerate(items):
        origin = f"{path.name}:{doc.line((*prefix, i))}"
        out.append(RawRecord(origin, item if isinstance(item, dict) else {}))
    return out


def _json(path: Path) -> list[RawRecord]:
    items = _records(json.loads(path.read_text(encoding="utf-8")), str(path))
    return [
        RawRecord(f"{path.name}#{i + 1}", item if isinstance(item, dict) else {})
        for i, item in enumerate(items)
    ]


def _csv(path: Path, delimiter: str) -> list[RawRecord]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter, strict=True)
        if not reader.fieldnames:
            raise SourceError(f"{path}: empty CSV, expected a header row")
        out = []
        for row in reader:
            fields: dict[str, object] = {}
            attributes = {}
            for key, value in row.items():
                if not key:
                    continue
                name = key.strip()
                if name.startswith("attributes."):
                    attributes[name.removeprefix("attributes.")] = (value or "").strip()
                else:
                    fields[name] = (value or "").strip()
            if attributes:
                fields["attributes"] = attributes
            out.append(RawRecord(f"{path.name}:{reader.line_num}", fields))
        return out
