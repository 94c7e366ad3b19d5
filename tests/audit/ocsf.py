"""A validator of audit records against the compiled OCSF 1.3.0 schema
(``tests/data/ocsf``), offline, with the rules of the OCSF server's validator: every
attribute known to its class or object, attributes of a profile only when the record
declares that profile (``metadata.profiles``), required attributes present, object
constraints held, enum values valid and their captions matching, base types right,
``type_uid`` = ``class_uid`` * 100 + ``activity_id``.

``problems(record)`` lists what is wrong, one line each, with the attribute's path.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "ocsf" / "ocsf-1.3.0-compiled.json.gz"
# base type -> the Python types a JSON value of it decodes to
BASE_TYPES: dict[str, tuple[type, ...]] = {
    "string_t": (str,),
    "integer_t": (int,),
    "long_t": (int,),
    "float_t": (int, float),
    "boolean_t": (bool,),
    "json_t": (object,),
    "object": (dict,),
}


@functools.cache
def schema() -> dict[str, Any]:
    with gzip.open(SCHEMA, "rt", encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def event_class(class_uid: int) -> dict[str, Any]:
    for definition in schema()["classes"].values():
        if definition["uid"] == class_uid:
            return dict(definition)
    raise KeyError(f"no OCSF class {class_uid}")


def problems(record: dict[str, Any], *, profiles_declared: bool = True) -> list[str]:
    """What makes ``record`` invalid for its class. ``profiles_declared=False`` accepts
    an attribute of any profile the class supports without ``metadata.profiles``."""
    try:
        definition = event_class(record["class_uid"])
    except KeyError as exc:
        return [str(exc)]
    declared = frozenset(record.get("metadata", {}).get("profiles", []))
    allowed = declared if profiles_declared else frozenset(definition.get("profiles") or [])
    found = _object(record, definition["attributes"], None, Profiles(declared, allowed), "")
    if record.get("type_uid") != record["class_uid"] * 100 + record.get("activity_id", -1):
        found.append(f"type_uid {record.get('type_uid')} is not class_uid * 100 + activity_id")
    category = schema()["categories"][definition["category"]]["uid"]
    if record.get("category_uid") != category:
        found.append(f"category_uid {record.get('category_uid')}: the class's is {category}")
    return found


@dataclass(frozen=True)
class Profiles:
    declared: frozenset[str]  # their required attributes must be present
    allowed: frozenset[str]  # their attributes may be present


def _object(
    value: dict[str, Any],
    attributes: dict[str, Any],
    constraints: dict[str, list[str]] | None,
    profiles: Profiles,
    path: str,
) -> list[str]:
    found = []
    for name, attribute in attributes.items():
        applies = attribute.get("profile") is None or attribute["profile"] in profiles.declared
        if attribute.get("requirement") == "required" and applies and name not in value:
            found.append(f"{path}{name}: required, missing")
    for name, item in value.items():
        attribute = attributes.get(name)
        if attribute is None:
            found.append(f"{path}{name}: not an attribute of this class or object")
            continue
        profile = attribute.get("profile")
        if profile is not None and profile not in profiles.allowed | profiles.declared:
            found.append(f"{path}{name}: of profile {profile}, not declared")
        items = item if attribute.get("is_array") else [item]
        if attribute.get("is_array") and not isinstance(item, list):
            found.append(f"{path}{name}: expected an array")
            continue
        for one in items:
            found += _value(one, attribute, value, profiles, f"{path}{name}")
    for rule, names in (constraints or {}).items():
        present = [n for n in names if n in value]
        if rule == "at_least_one" and not present:
            found.append(f"{path or 'record'}: needs at least one of {names}")
        if rule == "just_one" and len(present) != 1:
            found.append(f"{path or 'record'}: needs exactly one of {names}")
    return found


def _value(
    value: Any, attribute: dict[str, Any], parent: dict[str, Any], profiles: Profiles, path: str
) -> list[str]:
    kind = attribute["type"]
    objects = schema()["objects"]
    if kind != "object" and kind in objects:  # "object" is free-form (``unmapped``)
        if not isinstance(value, dict):
            return [f"{path}: expected an object {kind}"]
        definition = objects[kind]
        return _object(
            value, definition["attributes"], definition.get("constraints"), profiles, f"{path}."
        )
    found = _typed(value, kind, path)
    enum = attribute.get("enum")
    if enum and not found:
        if str(value) not in enum:
            found.append(f"{path}: {value!r} is not one of {sorted(enum)}")
        elif attribute.get("sibling") in parent and str(value) != "99":
            caption = enum[str(value)]["caption"]
            sibling = attribute["sibling"]
            if parent[sibling] != caption:
                found.append(f"{path}: {sibling} {parent[sibling]!r} is not {caption!r}")
    return found


def _typed(value: Any, kind: str, path: str) -> list[str]:
    definition = schema()["types"].get(kind, {})
    base = definition.get("type") or kind
    if base in schema()["types"] and base not in BASE_TYPES:
        base = schema()["types"][base].get("type") or base
    expected = BASE_TYPES.get(base)
    if expected is None:
        return [f"{path}: unknown type {kind}"]
    if isinstance(value, bool) and bool not in expected and object not in expected:
        return [f"{path}: {value!r} is not a {kind}"]
    if not isinstance(value, expected):
        return [f"{path}: {value!r} is not a {kind}"]
    regex = definition.get("regex")
    if regex and isinstance(value, str) and not re.fullmatch(regex, value):
        return [f"{path}: {value!r} does not match {kind}"]
    return []
