"""YAML loading that remembers where every value came from (file and line).

Called by ``syncd.config`` (error messages name the line of a bad field) and by the file
source (an invalid contract is reported with its line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (ten times faster on large sources)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocatedYaml:
    """A parsed YAML document plus the 1-based line of every mapping key and list item."""

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


def load(path: Path) -> LocatedYaml:
    """Parse ``path`` safely; raises ``yaml.YAMLError`` (with a mark) or ``OSError``."""
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        if node is None:
            return LocatedYaml(None, {(): 1}, str(path))
        _walk(node, (), lines)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return LocatedYaml(data, lines, str(path))


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines)


def dotted(path: Path_) -> str:
    """``("roles", "dev", "corp", 0)`` → ``roles.dev.corp[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
