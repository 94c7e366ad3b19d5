"""A server's subschema (RFC 4512 §4.2): which attribute types and object classes it
defines, and which attributes a set of object classes lets an entry hold.

Pure: ``Subschema.parse`` takes the ``attributeTypes`` and ``objectClasses`` values
of the subschema subentry as read by ``targets.ldap.target`` (for ``check-config
--online``); ``targets.ldap.checks`` asks it questions. Names and OIDs are compared
case-insensitively. An operational attribute (``USAGE`` other than
userApplications: nsAccountLock, pwdEndTime, pwdAccountLockedTime) may sit on any
entry; ``extensibleObject`` allows every attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# one token of a definition: a bracket, a quoted string or a bare word (OIDs, keywords,
# names, "$" between the members of a list)
_TOKEN = re.compile(r"\(|\)|'(?:[^'\\]|\\.)*'|[^\s()']+")
# keywords that stand alone, without a value
_FLAGS = frozenset(
    {
        "OBSOLETE",
        "SINGLE-VALUE",
        "COLLECTIVE",
        "NO-USER-MODIFICATION",
        "ABSTRACT",
        "STRUCTURAL",
        "AUXILIARY",
    }
)
Fields = dict[str, tuple[str, ...]]


def parse_definition(text: str) -> tuple[str, Fields]:
    """An RFC 4512 definition ``( OID NAME 'a' MAY ( b $ c ) ... )`` as its OID and
    keyword -> values (quotes removed, names as written); ValueError if malformed."""
    tokens = _TOKEN.findall(text)
    if len(tokens) < 3 or tokens[0] != "(" or tokens[-1] != ")":
        raise ValueError(f"not a schema definition: {text[:80]!r}")
    oid, rest = tokens[1], tokens[2:-1]
    fields: Fields = {}
    i = 0
    while i < len(rest):
        keyword = rest[i].upper()
        i += 1
        if keyword in _FLAGS:
            fields[keyword] = ()
            continue
        if i >= len(rest):
            raise ValueError(f"{keyword} without a value in {text[:80]!r}")
        if rest[i] == "(":
            if ")" not in rest[i:]:
                raise ValueError(f"unclosed list after {keyword} in {text[:80]!r}")
            end = rest.index(")", i)
            values, i = rest[i + 1 : end], end + 1
        else:
            values, i = [rest[i]], i + 1
        fields[keyword] = tuple(v.strip("'") for v in values if v != "$")
    return oid, fields


@dataclass(frozen=True)
class AttributeType:
    oid: str
    names: tuple[str, ...]
    operational: bool  # USAGE directoryOperation, dSAOperation or distributedOperation


@dataclass(frozen=True)
class ObjectClass:
    oid: str
    names: tuple[str, ...]
    superior: tuple[str, ...]
    attributes: frozenset[str]  # MUST and MAY, lower-cased as written (names or OIDs)


def _index(items: Iterable[AttributeType | ObjectClass]) -> dict[str, AttributeType | ObjectClass]:
    found: dict[str, AttributeType | ObjectClass] = {}
    for item in items:
        for key in (item.oid, *item.names):
            found.setdefault(key.lower(), item)
    return found


@dataclass(frozen=True)
class Subschema:
    """The attribute types and object classes a server defines."""

    dn: str
    attribute_types: Mapping[str, AttributeType]  # by lower-cased name and OID
    object_classes: Mapping[str, ObjectClass]  # by lower-cased name and OID

    @classmethod
    def parse(
        cls, dn: str, attribute_types: Sequence[str], object_classes: Sequence[str]
    ) -> Subschema:
        """From the subschema subentry's values; a malformed definition is skipped (a
        check must not fail on a server's odd extension)."""
        types, classes = [], []
        for text in attribute_types:
            try:
                oid, fields = parse_definition(text)
            except ValueError:
                continue
            usage = (fields.get("USAGE") or ("userApplications",))[0]
            types.append(
                AttributeType(oid, fields.get("NAME", ()), usage.lower() != "userapplications")
            )
        for text in object_classes:
            try:
                oid, fields = parse_definition(text)
            except ValueError:
                continue
            allowed = {a.lower() for a in (*fields.get("MUST", ()), *fields.get("MAY", ()))}
            classes.append(
                ObjectClass(oid, fields.get("NAME", ()), fields.get("SUP", ()), frozenset(allowed))
            )
        at = {k: v for k, v in _index(types).items() if isinstance(v, AttributeType)}
        oc = {k: v for k, v in _index(classes).items() if isinstance(v, ObjectClass)}
        return cls(dn, at, oc)

    def attribute(self, name: str) -> AttributeType | None:
        return self.attribute_types.get(name.lower())

    def object_class(self, name: str) -> ObjectClass | None:
        return self.object_classes.get(name.lower())

    def allowed(self, object_classes: Sequence[str]) -> frozenset[str]:
        """The attributes (lower-cased names and OIDs, as the classes list them) that
        entries of ``object_classes`` may hold, through every superior class."""
        allowed: set[str] = set()
        seen: set[str] = set()
        todo = [c.lower() for c in object_classes]
        while todo:
            found = self.object_classes.get(todo.pop())
            if found is None or found.oid in seen:
                continue
            seen.add(found.oid)
            allowed |= found.attributes
            todo += [s.lower() for s in found.superior]
        return frozenset(allowed)

    def may_hold(self, object_classes: Sequence[str], attribute: str) -> bool:
        """Whether an entry of ``object_classes`` may hold ``attribute``."""
        found = self.attribute(attribute)
        if found is None:
            return False
        if found.operational or "extensibleobject" in {c.lower() for c in object_classes}:
            return True
        keys = {found.oid.lower(), *(n.lower() for n in found.names)}
        return bool(keys & self.allowed(object_classes))
