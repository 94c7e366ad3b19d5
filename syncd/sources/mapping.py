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
    """A fast reader of one path: a plain key is one ``dict.get``, a dotted path one
    subscript a level (``at_path`` for what that cannot walk: list indexes, gaps)."""
    if "." not in path:
        return lambda item: item.get(path, _MISSING)
    parts = tuple(path.split("."))

    def get(item: Any) -> Any:
        value = item
        try:
            for part in parts:
                value = value[part]
        except (KeyError, TypeError, IndexError):
            value = at_path(item, path)
        return _MISSING if value is None else value

    return get


class Mapper:
    """Items of one source into ``RawRecord``s under its ``fields``, ``status_map`` and
    ``roles_from``."""

    def __init__(self, source: SourceBase) -> None:
        self.fields = dict(source.fields)
        self.status_map = dict(source.status_map)
        self.roles = source.roles_from
        self._roles = self.roles != RolesFrom()
        self._role_key = _getter(self.roles.key) if self.roles.key else None
        self.plain = not self.fields and not self.status_map and not self._roles
        self._getters = [(canon, _getter(path)) for canon, path in self.fields.items()]
        self._unmapped = frozenset(CANONICAL) - set(self.fields)  # read under their own names

    def __call__(self, item: Any, origin: str) -> RawRecord:
        if type(item) is not dict and not isinstance(item, Mapping):
            return RawRecord(origin, {})  # validation says what is missing
        if self.plain:
            return RawRecord(origin, item)
        if self.fields:
            out = {canon: v for canon, get in self._getters if (v := get(item)) is not _MISSING}
            for canon in self._unmapped.intersection(item):
                out[canon] = item[canon]
        else:
            out = dict(item)
        status = out.get("status")
        if self.status_map and type(status) in (str, int):
            out["status"] = self.status_map.get(str(status), status)
        if self._roles and "roles" in out:
            out["roles"] = self.role_names(out["roles"])
        return RawRecord(origin, out)

    def many(self, items: list[Any], prefix: str, first: int = 1) -> list[RawRecord]:
        """Records of ``items`` whose origins are ``prefix`` and their numbers from
        ``first``; without a mapping, in a few calls for them all."""
        origins = [prefix + str(n) for n in range(first, first + len(items))]
        if self.plain and set(map(type, items)) <= {dict}:  # every item a dict, in C
            return list(map(RawRecord, origins, items))
        return list(map(self, items, origins))

    def role_names(self, value: Any) -> Any:
        """The role names a roles value holds, through ``roles_from``; a value of another
        shape is passed on for validation to reject."""
        spec = self.roles
        if isinstance(value, str):
            names: list[Any] = [part.strip() for part in value.split(spec.delimiter)]
        elif isinstance(value, list):
            key = self._role_key
            names = [_unset(key(v)) for v in value] if key else list(value)
        else:
            return value
        if spec.map:
            names = [spec.map.get(n, n) if isinstance(n, str) else n for n in names]
        return [n for n in names if n not in (None, "")]


def _unset(value: Any) -> Any:
    return None if value is _MISSING else value
