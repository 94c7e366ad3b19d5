"""What every source kind shares: a source's own records onto the canonical fields.

Called by each reader in ``syncd.sources`` with the items it read and their origins (a
file's line, an API page and item, a query's row). ``fields:`` says where each canonical
field sits in an item (a key, or a dotted path into nested objects), ``status_map:``
turns the source's status vocabulary into SPEC §2's, and ``roles_from:`` turns a
delimited string or a list (of names, or of objects holding the name) into role names.
Nothing here rejects a record: a value that does not fit is passed on for
``core.contracts.validate`` to reject with its location and fix. A source without any
mapping passes its items on untouched (no copy), so the common case costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from syncd.config import RolesFrom, SourceBase
from syncd.core.contracts import TEXT_FIELDS, RawRecord

CANONICAL = TEXT_FIELDS  # every field a contract reads
_MISSING = object()
Getter = Callable[[Any], Any]


def at_path(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` (keys of objects, indexes of lists), or None."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _getter(path: str) -> Getter:
    """A fast reader of one path: a plain key is one ``dict.get``."""
    if "." not in path:
        return lambda item: item.get(path, _MISSING)
    return lambda item: _present(at_path(item, path))


def _present(value: Any) -> Any:
    return _MISSING if value is None else value


class Mapper:
    """Items of one source into ``RawRecord``s under its ``fields``, ``status_map`` and
    ``roles_from``."""

    def __init__(self, source: SourceBase) -> None:
        self.fields = dict(source.fields)
        self.status_map = dict(source.status_map)
        self.roles = source.roles_from
        self.plain = not self.fields and not self.status_map and self.roles == RolesFrom()
        self._getters = [(canon, _getter(self.fields.get(canon, canon))) for canon in CANONICAL]

    def __call__(self, item: Any, origin: str) -> RawRecord:
        if not isinstance(item, Mapping):
            return RawRecord(origin, {})  # validation says what is missing
        if self.plain:
            return RawRecord(origin, item)
        if self.fields:
            out = {canon: v for canon, get in self._getters if (v := get(item)) is not _MISSING}
        else:
            out = dict(item)
        status = out.get("status")
        if self.status_map and isinstance(status, str | int):
            out["status"] = self.status_map.get(str(status), status)
        if "roles" in out and self.roles != RolesFrom():
            out["roles"] = self.role_names(out["roles"])
        return RawRecord(origin, out)

    def role_names(self, value: Any) -> Any:
        """The role names a roles value holds, through ``roles_from``; a value of another
        shape is passed on for validation to reject."""
        spec = self.roles
        if isinstance(value, str):
            names: list[Any] = [part.strip() for part in value.split(spec.delimiter)]
        elif isinstance(value, list):
            names = [at_path(v, spec.key) for v in value] if spec.key else list(value)
        else:
            return value
        if spec.map:
            names = [spec.map.get(n, n) if isinstance(n, str) else n for n in names]
        return [n for n in names if n not in (None, "")]
