"""The layout's own rules, checked on the code as it is: modules stay small, functions
stay simple outside the pure planner, and every module says what it is for.

Import rules (the pure core, the pipeline layers, one room per target) are checked by
import-linter (``.importlinter``, run by ``make lint``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

PACKAGE = Path(__file__).resolve().parents[2] / "syncd"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400
MAX_COMPLEXITY = 15
# The planner's decision tables read best as one function each; they are pure and
# covered by table and property tests.
COMPLEX_ALLOWED = {PACKAGE / "core" / "plan.py"}


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_name(path)} has {lines} lines; split it by responsibility"


@pytest.mark.parametrize("path", [m for m in MODULES if m not in COMPLEX_ALLOWED], ids=_name)
def test_functions_stay_simple(path: Path) -> None:
    complex_ = [
        f"{block.fullname} ({block.complexity})"
        for block in cc_visit(path.read_text(encoding="utf-8"))
        if block.complexity > MAX_COMPLEXITY
    ]
    assert not complex_, f"{_name(path)}: cyclomatic complexity over {MAX_COMPLEXITY}: {complex_}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_says_what_it_is_for(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not tree.body:
        return  # an empty package marker
    assert ast.get_docstring(tree), f"{_name(path)} has no module docstring"


def test_sibling_targets_are_packages_of_their_own() -> None:
    targets = PACKAGE / "targets"
    rooms = {p.name for p in targets.iterdir() if (p / "__init__.py").is_file()}
    assert {"directory", "ldap", "ad", "scim"} <= rooms
    flat = sorted(p.name for p in targets.glob("*.py"))
    assert flat == ["__init__.py", "base.py", "memory.py"]
