"""The core neither reads the clock nor does I/O: checked on its source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import syncd.core

CORE = Path(syncd.core.__file__).parent
MODULES = sorted(CORE.glob("*.py"))

FORBIDDEN_MODULES = frozenset(
    {"time", "os", "socket", "ldap3", "httpx", "httpx2", "prometheus_client", "subprocess"}
)
CLOCK_CALLS = frozenset(
    {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("time", "time"),
        ("time", "monotonic"),
    }
)
FORBIDDEN_BUILTINS = frozenset({"open", "input", "print"})
FILE_METHODS = frozenset({"open", "read_text", "read_bytes", "write_text", "write_bytes"})


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def impurities(source: str) -> list[str]:
    """Every clock read, I/O import or file opening in ``source``, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            parts = tuple(name.split("."))
            if parts[-2:] in CLOCK_CALLS or name in FORBIDDEN_BUILTINS or parts[-1] in FILE_METHODS:
                found.append(f"{node.lineno}: {name}()")
    return found


def test_core_modules_are_found() -> None:
    names = {m.name for m in MODULES}
    assert {"model.py", "plan.py", "desired.py", "contracts.py", "timeutil.py"} <= names


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_core_module_is_pure(module: Path) -> None:
    assert impurities(module.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from datetime import datetime\nx = datetime.now()", ["2: datetime.now()"]),
        ("import datetime\nx = datetime.datetime.now(tz=None)", ["2: datetime.datetime.now()"]),
        ("from datetime import datetime\nx = datetime.utcnow()", ["2: datetime.utcnow()"]),
        ("from datetime import date\nx = date.today()", ["2: date.today()"]),
        ("import time\nx = time.time()", ["1: import time", "2: time.time()"]),
        ("from time import monotonic", ["1: from time import ..."]),
        ("import os.path", ["1: import os.path"]),
        ("import socket", ["1: import socket"]),
        ("import ldap3", ["1: import ldap3"]),
        ("from ldap3.utils.dn import parse_dn", ["1: from ldap3.utils.dn import ..."]),
        ("import httpx2", ["1: import httpx2"]),
        ("from prometheus_client import Counter", ["1: from prometheus_client import ..."]),
        ("data = open('x').read()", ["1: open()"]),
        ("from pathlib import Path\nPath('x').read_text()", ["2: ?.read_text()"]),
        ("def f(p):\n    return p.open()", ["2: p.open()"]),
        ("from datetime import time\nmidnight = time(0)", []),
        ("from . import model\nfrom .timeutil import iso_utc", []),
        ("x = {'now': 1}.get('now')", []),
    ],
)
def test_impurity_detector(source: str, expected: list[str]) -> None:
    assert impurities(source) == expected
