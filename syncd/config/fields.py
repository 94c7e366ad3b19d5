"""The map of the config's keys, computed from the models: what is known where.

Called by ``syncd.config.teach`` (the closest known key, the place a key lives now, the
field behind an error) and by ``syncd.config.loading`` (old names still in use). Nothing
here is a hand-kept list: it walks ``Config`` and the models its fields hold, so a new
field is known as soon as it is declared.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from functools import cache
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from syncd.config.common import FieldPath, Model, Problem
from syncd.config.model import Config

NAME = "NAME"  # a mapping's key (a target's or a role's name) in a place's dotted path


class Place(NamedTuple):
    """Where a key is known: its dotted path (``targets.NAME.urls``) and, inside one
    kind of target, that kind (``ldap``)."""

    dotted: str
    kind: str | None = None

    @property
    def parent(self) -> str:
        """The dotted path of the mapping that holds the key ("" at the top level)."""
        return self.dotted.rpartition(".")[0]


def _unwrap(annotation: Any) -> Any:
    """The type behind ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def kind_of(model: Any) -> str | None:
    """The ``type:`` value of a tagged model (a target kind), else None."""
    field = model.model_fields.get("type") if _is_model(model) else None
    if field is None or get_origin(field.annotation) is not Literal:
        return None
    return str(get_args(field.annotation)[0])


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Model)


def _tagged(annotation: Any) -> dict[str, type[Model]]:
    """The models of a tagged union by their ``type:`` value (empty if it is none)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    args = [get_args(a)[0] if get_origin(a) is Annotated else a for a in get_args(annotation)]
    models = [arg for arg in args if _is_model(arg)]
    return {kind: model for model in models if (kind := kind_of(model)) is not None}


def step(node: Any, part: str | int) -> Any:
    """One step of a pydantic error location: from a model to a field's annotation, from
    a mapping or list to its values, from a tagged union to the kind ``part`` names.
    None when the location leaves the models."""
    if _is_model(node):
        field = node.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    node = _unwrap(node)
    tagged = _tagged(node)
    if tagged:
        return tagged.get(str(part))
    origin = get_origin(node)
    if origin is dict or origin is list:
        return get_args(node)[-1]
    if _is_model(node):
        return step(node, part)
    return None


def model_at(loc: tuple[str | int, ...]) -> type[Model] | None:
    """The model whose keys are valid at ``loc`` (a pydantic location), if one is."""
    node: Any = Config
    for part in loc:
        node = step(node, part)
        if node is None:
            return None
    node = _unwrap(node)
    return node if _is_model(node) else None


def field_at(loc: tuple[str | int, ...]) -> tuple[int, FieldInfo] | None:
    """The field a location ends on, or the one whose value holds it (a mapping's key,
    a list's item): where its name is in ``loc``, and its declaration."""
    for end in range(len(loc), 0, -1):
        model = model_at(loc[: end - 1])
        name = loc[end - 1]
        if model is not None and isinstance(name, str) and name in model.model_fields:
            return end - 1, model.model_fields[name]
    return None


def pattern(loc: tuple[str | int, ...]) -> str:
    """A location as a place's dotted path: a mapping's keys become NAME, a tagged
    union's kind is dropped (``targets.corp.ldap`` -> ``targets.NAME``)."""
    parts: list[str] = []
    node: Any = Config
    for part in loc:
        unwrapped = _unwrap(node)
        if _is_model(unwrapped):
            parts.append(str(part))
        elif not _tagged(unwrapped):
            parts.append(NAME)
        node = step(node, part)
        if node is None:
            break
    return ".".join(parts)


def _models(annotation: Any, prefix: str) -> Iterator[tuple[str, type[Model]]]:
    """The models a field's value holds, each at its dotted path."""
    annotation = _unwrap(annotation)
    if _is_model(annotation):
        yield prefix, annotation
        return
    for model in _tagged(annotation).values():
        yield prefix, model
    if get_origin(annotation) in (dict, list):
        yield from _models(get_args(annotation)[-1], f"{prefix}.{NAME}")


@cache
def places() -> dict[str, tuple[Place, ...]]:
    """Every key of the config, and every place it is known at."""
    found: dict[str, list[Place]] = {}
    for prefix, model in _all_models():
        for name in model.model_fields:
            dotted = f"{prefix}.{name}" if prefix else name
            found.setdefault(name, []).append(Place(dotted, kind_of(model)))
    return {name: tuple(dict.fromkeys(where)) for name, where in found.items()}


@cache
def old_names() -> dict[str, str]:
    """The new name of every renamed field, with its old name."""
    models = {model for prefix, model in _all_models()}
    return {new: old for model in models for old, new in model.renamed.items()}


@cache
def kinds() -> frozenset[str]:
    """The ``type:`` values of tagged models (the target kinds, the source's)."""
    return frozenset(k for prefix, model in _all_models() if (k := kind_of(model)) is not None)


def _all_models() -> list[tuple[str, type[Model]]]:
    """Every model of the config, at its dotted path."""
    out: list[tuple[str, type[Model]]] = []
    pending: list[tuple[str, type[Model]]] = [("", Config)]
    while pending:
        prefix, model = pending.pop(0)
        out.append((prefix, model))
        for name, field in model.model_fields.items():
            pending += _models(field.annotation, f"{prefix}.{name}" if prefix else name)
    return out


def renamed_in(data: Any) -> list[Problem]:
    """The old names of fields still used in the document, each with its new name."""
    return [
        Problem((*path, old), f"the old name of {new}, still read", f"rename it {new}")
        for path, model, mapping in _mappings(data, Config, ())
        for old, new in model.renamed.items()
        if old in mapping and new not in mapping
    ]


def _mappings(
    value: Any, node: Any, path: FieldPath
) -> Iterator[tuple[FieldPath, Any, dict[Any, Any]]]:
    """Each mapping of the document that a model reads, with that model."""
    node = _unwrap(node)
    tagged = _tagged(node)
    if tagged and isinstance(value, dict):
        node = tagged.get(str(value.get("type")))
    if _is_model(node) and isinstance(value, dict):
        yield path, node, value
        for key, child in value.items():
            name = node.renamed.get(key, key)
            if name in node.model_fields:
                yield from _mappings(child, node.model_fields[name].annotation, (*path, key))
    elif get_origin(node) is dict and isinstance(value, dict):
        for key, child in value.items():
            yield from _mappings(child, get_args(node)[1], (*path, key))
