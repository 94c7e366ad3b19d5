"""What a schema error means to someone editing the file, and how to fix it.

Called by ``syncd.config.loading`` for every error pydantic reports. An unknown key gets
the closest known key at its level, or the place a key of that name lives now; a value
of the wrong shape gets an example of the right one (the field's own ``examples``, the
same ones the JSON Schema offers an editor); a missing field gets an example too. The
keys known where come from ``syncd.config.fields``, computed from the models.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic_core import ErrorDetails

from syncd.config.fields import Place, field_at, kind_of, kinds, model_at, pattern, places

# What to do about pydantic's error types, for the ones with an obvious fix.
_FIXES = {
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "float_parsing": "use a number",
}
# pydantic's error types for a value of the wrong shape, and the shape it wanted
_SHAPES = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_type": "text",
}
# the bounds of a number, or of a list's length
_BOUNDS = {
    "greater_than_equal": "use {ge} or more",
    "greater_than": "use more than {gt}",
    "less_than_equal": "use {le} or less",
    "less_than": "use less than {lt}",
    "too_short": "give at least {min_length}",
    "string_too_short": "write at least {min_length} character(s)",
}
_CLOSE = 0.75  # how alike two keys must be to suggest one for the other (difflib ratio)


def teach(err: ErrorDetails) -> tuple[str, str]:
    """(message, fix) for one pydantic error."""
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        return "unknown key", unknown_key(loc)
    if kind == "missing":
        return "missing: this field is required", _with_example("add it", loc)
    if kind in _SHAPES:
        return _wrong_shape(kind, loc, err["input"])
    if kind in ("union_tag_not_found", "union_tag_invalid", "literal_error"):
        return _choice(err)
    if kind in _BOUNDS:
        return err["msg"], _BOUNDS[kind].format(**(err.get("ctx") or {}))
    message = err["msg"].removeprefix("Value error, ")
    said, _, hint = message.partition(" (use ")
    if hint.endswith(")"):  # a validator's own hint: "not a duration: 'x' (use 30s, ...)"
        return said, "use " + hint[:-1]
    return message, _FIXES.get(kind, "")


def unknown_key(loc: tuple[str | int, ...]) -> str:
    """The fix for the key at ``loc`` that its mapping does not know."""
    key = str(loc[-1])
    model = model_at(loc[:-1])
    known = list(model.model_fields) if model is not None else []
    renamed = dict(model.renamed) if model is not None else {}
    if key in renamed:
        return f"it is the old name of {renamed[key]}, which is given too: remove {key}"
    parent, kind = pattern(loc[:-1]), kind_of(model)
    exact = key in places()  # a key of that very name elsewhere beats a typo here
    if exact and (fix := _elsewhere(key, parent, kind)):
        return fix
    here = _closest(key, [*known, *renamed])
    if here is not None:
        return f"did you mean {renamed.get(here, here)}?"
    if not exact and (fix := _elsewhere(key, parent, kind)):
        return fix
    return "remove it" + (f"; the keys here are: {', '.join(known)}" if known else "")


def _closest(key: str, candidates: Sequence[str]) -> str | None:
    """The candidate most like ``key``, ignoring case, ``_`` and ``-``."""
    by_norm = {_norm(c): c for c in candidates}
    found = difflib.get_close_matches(_norm(key), list(by_norm), n=1, cutoff=_CLOSE)
    return by_norm[found[0]] if found else None


def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _elsewhere(key: str, parent: str, kind: str | None) -> str:
    """Where a key of this name (or one much like it) lives, when not here."""
    known = places()
    name = key if key in known else _closest(key, list(known))
    if name is None:
        return ""
    where: tuple[Place, ...] = known[name]
    siblings = [p.kind for p in where if p.parent == parent and p.kind not in (None, kind)]
    if siblings and kind is not None:
        kinds = " and ".join(dict.fromkeys(str(k) for k in siblings))
        return f"{name} is a key of {kinds} targets, not of {kind} ones: remove it"
    outside = [p.dotted for p in where if p.parent != parent]
    if not outside:
        return ""
    if len(outside) == 1:
        home = outside[0].rpartition(".")[0]
        move = f"move it under {home}:" if home else "move it to the top level"
        return f"did you mean {outside[0]}? {move}"
    return f"did you mean one of {', '.join(outside)}?"


def _example(loc: tuple[str | int, ...]) -> str:
    """``key: value`` for the field at ``loc`` as one line of YAML, from its examples
    (for an entry of a mapping, or an item of a list, that part of the example), or ""."""
    found = field_at(loc)
    examples = found[1].examples if found is not None else None
    if found is None or not examples:
        return ""
    at = found[0]
    key, value = loc[at], examples[0]
    for part in loc[at + 1 :]:
        if part in kinds() and isinstance(examples[0], dict) and "type" in examples[0]:
            continue  # the kind a tagged union chose, not a key of the document
        if isinstance(value, dict) and value:
            key, value = part, next(iter(value.values()))
        elif isinstance(value, list) and value and isinstance(part, int):
            value = value[0]
            key = f"{key}[{part}]"
    text = yaml.safe_dump({key: value}, default_flow_style=True, width=math.inf, sort_keys=False)
    return text.strip()[1:-1]


def _with_example(fix: str, loc: tuple[str | int, ...]) -> str:
    example = _example(loc)
    return f"{fix}, e.g. {example}" if example else fix


def _wrong_shape(kind: str, loc: tuple[str | int, ...], value: Any) -> tuple[str, str]:
    wanted = _SHAPES[kind]
    found = field_at(loc)
    if kind == "dict_type" and found is not None:
        keys = (found[1].description or "").split(" -> ")[:-1]
        depth = len(loc) - 1 - found[0]
        if depth < len(keys):
            wanted = f"a mapping keyed by {keys[depth].lower()}"
    message = f"expected {wanted}, found {_shape_of(value)}"
    if wanted.startswith("a mapping") and isinstance(value, list):
        fix = 'write each entry as KEY: with its value indented below it, not as a "- " item'
    elif wanted.startswith("a mapping"):
        fix = "write its settings as KEY: VALUE lines indented below it"
    elif wanted == "a list":
        fix = 'write [a, b], or one "- " item per line'
    else:
        fix = "write it as text (quote it if YAML reads it as something else)"
    return message, _with_example(fix, loc)


def _shape_of(value: Any) -> str:
    if value is None:
        return "nothing"
    shapes = {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}
    return shapes.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _choice(err: ErrorDetails) -> tuple[str, str]:
    """A missing or unknown target type, or a value not among the allowed ones."""
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_not_found":
        return "no type given", f"add type: with one of {_kinds()}"
    if err["type"] == "union_tag_invalid":
        value, allowed = str(ctx.get("tag")), _kinds().split(", ")
        message = f"unknown type {value!r}"
    else:
        value = str(err["input"])
        allowed = [a.strip().strip("'") for a in str(ctx.get("expected", "")).split(" or ")]
        allowed = [part.strip().strip("'") for a in allowed for part in a.split(",")]
        message = err["msg"]
    close = _closest(value, allowed)
    fix = f"did you mean {close}?" if close else f"use one of: {', '.join(allowed)}"
    return message, fix


def _kinds() -> str:
    """The target kinds, as ``type:`` names them."""
    return ", ".join(p.kind for p in places()["type"] if p.kind and p.parent == "targets.NAME")
