"""YAML loading that remembers where values came from, in bounded time and memory.

Called by ``syncd.config`` (error messages name the line of a bad field) and by the file
source (an invalid contract is reported with its line). Both read files that someone
else writes, so a document is built straight from libyaml's event stream, without the
node tree PyYAML composes first (several times the document's size, and most of the
time of a large read), and whatever would make it costly is refused while it is read,
as ``YamlLimitError``: more bytes than ``max_bytes``, nesting deeper than ``MAX_DEPTH``,
aliases that together repeat more of the document than it holds, plus
``ALIAS_ALLOWANCE`` characters (nine levels of nine aliases stand for 387 million
strings in a few hundred bytes), and an alias inside the node it names.

Values are what PyYAML's safe loader makes of them: YAML 1.1 implicit types, the
standard scalar tags, merge keys (``<<``), an anchored value shared by its aliases, not
copied. Collection tags other than ``!!map`` and ``!!seq`` (``!!set``, ``!!omap``) are
refused.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

Path_ = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (ten times faster on large sources)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_BYTES = 16 << 20  # a config file; the file source passes its own limit
MAX_DEPTH = 64  # nesting levels; a config needs about 8, a contract 3
ALIAS_ALLOWANCE = 100_000  # characters aliases may repeat beyond the document's own

_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _MERGE = (_TAG + kind for kind in ("map", "seq", "str", "merge"))
_SCALAR_TAGS = frozenset(
    _TAG + kind for kind in ("null", "bool", "int", "float", "binary", "timestamp", "str")
)
_MERGE_KEY = object()  # the key ``<<`` of a merge, until its mapping is complete


class YamlLimitError(yaml.MarkedYAMLError):
    """A document refused for what it would cost (size, depth, aliases), not its syntax."""


class LocatedYaml:
    """A parsed YAML document plus the 1-based line of its mapping keys and list items."""

    def __init__(self, data: Any, lines: dict[Path_, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest located ancestor."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def load(path: Path, max_bytes: int = MAX_BYTES) -> LocatedYaml:
    """Parse ``path`` safely; raises ``yaml.YAMLError`` (with a mark where there is
    one; ``YamlLimitError`` for a document too costly to build) or ``OSError``."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YamlLimitError(problem=f"{path} is larger than the limit of {max_bytes} bytes")
    return parse(data, str(path))


def parse(data: bytes | str, file: str, lines_depth: int | None = None) -> LocatedYaml:
    """The single document in ``data``, with the lines of its keys and items down to
    ``lines_depth`` levels (all when None; a large source needs only its records')."""
    stream = io.BytesIO(data.encode() if isinstance(data, str) else data)
    stream.name = file  # marks in error messages name the file
    loader = _Loader(stream)
    try:
        return _Builder(loader, file, lines_depth).document()
    finally:
        loader.dispose()


class _Builder:
    """Python values from one document's events, nesting bounded by ``MAX_DEPTH``.

    Aliases are measured in characters of the document: an anchored node counts for
    its own text plus what aliases inside it repeat, and all aliases together may repeat
    no more than the document read so far plus ``ALIAS_ALLOWANCE``."""

    def __init__(self, loader: Any, file: str, lines_depth: int | None) -> None:
        self.loader = loader
        self.get = loader.get_event
        self.file = file
        self.depth = MAX_DEPTH if lines_depth is None else lines_depth
        self.lines: dict[Path_, int] = {}
        self.anchors: dict[str, tuple[Any, int]] = {}  # value, characters it stands for
        self.open_anchors: set[str] = set()
        # first characters of scalars YAML may read as something else than text ("": null)
        self.resolvable = frozenset(k for k in loader.yaml_implicit_resolvers if k is not None)
        # Keys repeat in every record, and so do many values (dates, roles, vendors):
        # one object each.
        self.keys: dict[str, str] = {}  # text keys by their text
        self.texts: dict[str, str] = {}
        self.typed_values: dict[str, Any] = {}
        self.aliased = 0  # characters that aliases repeat
        self.end = 0  # where the last collection ended

    def document(self) -> LocatedYaml:
        """The stream's only document (``None`` for an empty stream)."""
        loader = self.loader
        loader.get_event()  # stream start
        if loader.check_event(StreamEndEvent):
            return LocatedYaml(None, {(): 1}, self.file)
        loader.get_event()  # document start
        event = self.get()
        self.lines[()] = event.start_mark.line + 1
        data = self.node(event, (), 0)
        loader.get_event()  # document end
        if not loader.check_event(StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream",
                None,
                "but found another document",
                loader.get_event().start_mark,
            )
        return LocatedYaml(data, self.lines, self.file)

    def node(self, event: Any, path: Path_ | None, depth: int) -> Any:
        """The node that starts with ``event``; ``path``: where it is, while lines are kept."""
        kind = type(event)
        if kind is ScalarEvent:
            return self.scalar(event)
        if kind is AliasEvent:
            return self.alias(event)
        if depth >= MAX_DEPTH:
            raise YamlLimitError(
                problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark
            )
        mapping = kind is MappingStartEvent
        if event.tag not in (None, "!", _MAP if mapping else _SEQ):
            raise yaml.constructor.ConstructorError(
                None, None, f"the tag {event.tag} is not supported here", event.start_mark
            )
        anchor = event.anchor
        if anchor is not None:
            self.open_anchors.add(anchor)
        start, aliased = event.start_mark.index, self.aliased
        if path is not None and len(path) >= self.depth:
            path = None
        value = self.mapping(path, depth + 1) if mapping else self.sequence(path, depth + 1)
        if anchor is not None:
            self.open_anchors.discard(anchor)
            self.anchors[anchor] = (value, self.end - start + self.aliased - aliased)
        return value

    def mapping(self, path: Path_ | None, depth: int) -> dict[Any, Any]:
        """A mapping whose keys' lines are kept (at ``path``), or below that depth."""
        if path is None:
            return self.fast_mapping(depth)
        out: dict[Any, Any] = {}
        merges: list[dict[Any, Any]] = []
        while type(event := self.get()) is not MappingEndEvent:
            key = self.key(event, depth)
            child = None if key is _MERGE_KEY else (*path, _part(key))
            if child is not None:
                self.lines[child] = event.start_mark.line + 1
            event = self.get()
            value = self.node(event, child, depth)
            if key is _MERGE_KEY:
                merges.extend(_merged(value, event))
            else:
                out[key] = value
        self.end = _end(event)
        return _with_merges(out, merges)

    def fast_mapping(self, depth: int) -> dict[Any, Any]:
        """A mapping below the lines kept, as fast as the events come: a key or value
        that starts with no character YAML could read as anything but text (the most
        of them) skips resolution."""
        out: dict[Any, Any] = {}
        merges: list[dict[Any, Any]] = []
        get, keys, typed, share = self.get, self.keys, self.resolvable, self.texts.setdefault
        while True:
            event = get()
            if type(event) is MappingEndEvent:
                break
            if type(event) is ScalarEvent and event.tag is None and event.anchor is None:
                key = keys.get(event.value) or self.text_key(event, depth)
            else:
                key = self.key(event, depth)
            event = get()
            if type(event) is ScalarEvent and event.tag is None and event.anchor is None:
                value = event.value
                value = share(value, value) if value[:1] not in typed else self.scalar(event)
            else:
                value = self.node(event, None, depth)
            if key is _MERGE_KEY:
                merges.extend(_merged(value, event))
            else:
                out[key] = value
        self.end = _end(event)
        return _with_merges(out, merges)

    def text_key(self, event: Any, depth: int) -> Any:
        """A key without tag or anchor, seen for the first time: if it is text however
        it is written, later ones with the same text share it."""
        key = self.key(event, depth)
        if type(key) is str and (event.implicit[0] or key[:1] not in self.resolvable):
            self.keys[key] = key
        return key

    def key(self, event: Any, depth: int) -> Any:
        """A mapping key: hashable, or the merge key."""
        key = self.node(event, None, depth)
        if type(key) is not str and key is not _MERGE_KEY:
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", None, "found unhashable key", event.start_mark
                ) from None
        return key

    def sequence(self, path: Path_ | None, depth: int) -> list[Any]:
        """A sequence, with the lines of its items when ``path`` is given."""
        out: list[Any] = []
        get, node, typed, share = self.get, self.node, self.resolvable, self.texts.setdefault
        while type(event := get()) is not SequenceEndEvent:
            child = None if path is None else (*path, len(out))
            if child is not None:
                self.lines[child] = event.start_mark.line + 1
            elif type(event) is ScalarEvent and event.tag is None and event.anchor is None:
                value = event.value  # as in fast_mapping
                out.append(share(value, value) if value[:1] not in typed else self.scalar(event))
                continue
            out.append(node(event, child, depth))
        self.end = _end(event)
        return out

    def scalar(self, event: Any) -> Any:
        """A scalar's value, typed as the safe loader types it."""
        value = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if event.implicit[0] and value[:1] in self.resolvable:
                value = self.implicit(event)
        else:
            value = self.typed(tag, event)
        if type(value) is str:
            value = self.texts.setdefault(value, value)
        if event.anchor is not None:
            size = max(1, event.end_mark.index - event.start_mark.index)
            self.anchors[event.anchor] = (value, size)
        return value

    def implicit(self, event: Any) -> Any:
        """A plain scalar that may be a number, date, boolean or null (YAML 1.1)."""
        value = event.value
        if value in self.typed_values:
            return self.typed_values[value]
        tag = self.loader.resolve(yaml.ScalarNode, value, event.implicit)
        typed = self.typed(tag, event)
        if tag not in (_STR, _MERGE) and len(self.typed_values) < 10_000:
            self.typed_values[value] = typed  # immutable: int, float, bool, date, None
        return typed

    def typed(self, tag: str, event: Any) -> Any:
        """A scalar with a known tag, made by the safe loader's own constructor."""
        if tag == _STR:
            return event.value
        if tag == _MERGE:
            return _MERGE_KEY
        if tag not in _SCALAR_TAGS:
            raise yaml.constructor.ConstructorError(
                None, None, f"no constructor for the tag {tag!r}", event.start_mark
            )
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return self.loader.yaml_constructors[tag](self.loader, node)

    def alias(self, event: Any) -> Any:
        """The anchored value again (shared, as PyYAML does), counted for the characters
        it stands for: what an alias bomb multiplies."""
        name = event.anchor
        if name in self.open_anchors:
            raise YamlLimitError(
                problem=f"alias *{name} is inside the node it names", problem_mark=event.start_mark
            )
        if name not in self.anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {name!r}", event.start_mark
            )
        value, size = self.anchors[name]
        self.aliased += size
        if self.aliased > event.start_mark.index + ALIAS_ALLOWANCE:
            raise YamlLimitError(
                problem=f"aliases repeat more than the document's own {event.start_mark.index} "
                f"characters plus {ALIAS_ALLOWANCE} (an alias bomb?); write the values out",
                problem_mark=event.start_mark,
            )
        return value


def _end(event: Any) -> int:
    """Where the collection that ``event`` closes ends in the document."""
    return int(event.end_mark.index)


def _part(key: Any) -> str:
    """A mapping key as a part of a ``Path_`` (a key that is no string by its text)."""
    return key if type(key) is str else str(key)


def _merged(value: Any, event: Any) -> list[dict[Any, Any]]:
    """The mappings a merge key (``<<``) brings in, first one winning."""
    sources = value if isinstance(value, list) else [value]
    if not all(isinstance(source, dict) for source in sources):
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping",
            None,
            "expected a mapping or list of mappings for merging",
            event.start_mark,
        )
    return sources


def _with_merges(out: dict[Any, Any], merges: list[dict[Any, Any]]) -> dict[Any, Any]:
    """A mapping with what its merge keys bring in; its own keys win."""
    if not merges:
        return out
    merged: dict[Any, Any] = {}
    for source in reversed(merges):
        merged.update(source)
    return merged | out


def dotted(path: Path_) -> str:
    """``("roles", "dev", "corp", 0)`` → ``roles.dev.corp[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
