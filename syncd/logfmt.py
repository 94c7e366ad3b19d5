"""Log output for journald and log shippers: plain text or one JSON object per line.

Called by the CLI: ``setup`` for ``syncd run --log-format``, ``plain_handler`` for the
stderr log of every other command. Context that ``syncd.apply``, ``syncd.engine`` and
the targets pass with ``extra={"target": ..., "account": ..., "cycle": ...}`` becomes
fields of the JSON line (plain text already names them in the message).

Log messages carry values from the source and the targets (contract ids, names, server
answers): none of them may forge a line. Plain text (``PlainFormatter``) writes the
arguments of a message with their control, separator and bidirectional characters
escaped (``syncd.core.text.shown``), and every further line of a record (a multi-line
message, a traceback) indented, so that only syncd starts a line. JSON lines escape
what JSON leaves raw of these characters (``syncd.core.text.json_safe``).
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.core.text import json_safe, shown

_CONTEXT = ("target", "account", "cycle")
PLAIN = "%(levelname)s %(name)s: %(message)s"
_CONTINUED = "\n    "  # how the further lines of one record start


def _shown_arg(value: Any) -> Any:
    """A message argument as it may appear in a plain line: numbers stay numbers (for
    ``%d`` and ``%.1f``), anything else becomes its escaped text."""
    if isinstance(value, int | float):
        return value
    return _Shown(value)


class _Shown:
    """An argument that formats escaped under ``%s`` and ``%r`` alike."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return shown(self.value)

    def __repr__(self) -> str:
        return shown(repr(self.value))


def _one_record(text: str) -> str:
    """Text of one record: line breaks syncd wrote continue on indented lines, every
    other forbidden character is escaped."""
    return _CONTINUED.join(shown(line) for line in text.split("\n"))


class PlainFormatter(logging.Formatter):
    """``LEVEL logger: message``, with untrusted values unable to start a line."""

    def __init__(self) -> None:
        super().__init__(PLAIN)

    def format(self, record: logging.LogRecord) -> str:
        safe = copy.copy(record)
        if isinstance(record.args, Mapping):
            safe.args = {k: _shown_arg(v) for k, v in record.args.items()}
        elif record.args:
            safe.args = tuple(_shown_arg(v) for v in record.args)
        safe.exc_text = None  # formatted afresh below, never another formatter's text
        return _one_record(super().format(safe))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json_safe(json.dumps(data, ensure_ascii=False, default=str))


def plain_handler() -> logging.Handler:
    """A stderr handler writing plain, escaped lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter())
    return handler


def setup(level: int, fmt: str) -> None:
    if fmt == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = plain_handler()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
