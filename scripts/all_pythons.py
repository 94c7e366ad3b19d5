"""The test suite on every other Python of the machine, behind ``make test-all-pythons``.

Run by the default venv's Python (``make test`` covers its version) with pytest's
arguments, e.g. ``python scripts/all_pythons.py -q tests``. It finds every ``python3.X``
on ``PATH`` and, when pyenv is installed, under ``$(pyenv root)/versions/*/bin``; keeps
the first working interpreter of each version the project supports (pyproject's
``requires-python``), other than its own; makes a venv per version (``.venv-3.X``,
re-installed when pyproject.toml changes, as ``make`` does for ``.venv``), runs pytest
in it, prints one summary line per Python and fails if any failed. Finding none is not
a failure. ``DRY_RUN=1`` only lists what it would run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
_NAME = re.compile(r"^python3\.(\d+)$")
_PROBE = "import sys; print(sys.version_info[1], sys.executable)"


@dataclass(frozen=True)
class Python:
    """One interpreter: its minor version (3.X) and where it is."""

    minor: int
    path: str

    @property
    def version(self) -> str:
        return f"3.{self.minor}"

    @property
    def venv(self) -> Path:
        return ROOT / f".venv-{self.version}"


def candidates() -> list[str]:
    """Every ``python3.X`` file on PATH, then in pyenv's versions, in that order."""
    found: list[str] = []
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).is_dir():
            found += sorted(str(p) for p in Path(folder).iterdir() if _NAME.match(p.name))
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        versions = Path(root.stdout.strip()) / "versions"
        if root.returncode == 0 and versions.is_dir():
            found += sorted(str(p) for p in versions.glob("*/bin/python3.*") if _NAME.match(p.name))
    return found


def probe(path: str) -> Python | None:
    """The interpreter behind ``path``, if it runs (a pyenv shim of a version that is
    not selected does not) and is the version its name says."""
    try:
        answer = subprocess.run(
            [path, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _NAME.match(Path(path).name)
    fields = answer.stdout.split(maxsplit=1)
    if answer.returncode != 0 or not match or len(fields) != 2 or fields[0] != match[1]:
        return None
    return Python(int(fields[0]), fields[1].strip())


def lowest_minor() -> int:
    """The lowest 3.X pyproject's ``requires-python`` (``>=3.X``) allows."""
    spec = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    match = re.search(r">=\s*3\.(\d+)", spec)
    return int(match[1]) if match else 0


def pythons() -> tuple[list[Python], list[str]]:
    """The interpreters to test, one per version, and the versions left out and why."""
    lowest, own = lowest_minor(), sys.version_info.minor
    seen: set[int] = set()
    tested: list[Python] = []
    too_old: list[str] = []
    for path in candidates():
        named = _NAME.match(Path(path).name)
        if not named or int(named[1]) in seen:
            continue  # a version's first working interpreter is the one
        python = probe(path)
        if python is None:
            continue
        seen.add(python.minor)
        if python.minor < lowest:
            too_old.append(python.version)
        elif python.minor != own:
            tested.append(python)
    left_out = [f"3.{own}: make test covers it"]
    if too_old:
        versions = ", ".join(sorted(too_old, key=lambda v: int(v.split(".")[1])))
        left_out.append(f"{versions}: the project needs 3.{lowest} or later")
    return sorted(tested, key=lambda p: p.minor), left_out


def install(python: Python) -> bool:
    """Make (or refresh) the version's venv with the project and its test extra."""
    venv_python = python.venv / "bin" / "python"
    stamp = python.venv / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= PYPROJECT.stat().st_mtime:
        return True
    steps = [
        [python.path, "-m", "venv", "--clear", str(python.venv)],
        [str(venv_python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [str(venv_python), "-m", "pip", "install", "-q", "-e", ".[test]"],
    ]
    for step in steps:
        if subprocess.run(step, cwd=ROOT, check=False).returncode != 0:
            return False
    stamp.touch()
    return True


def main(pytest_args: list[str]) -> int:
    tested, left_out = pythons()
    for line in left_out:
        print(f"test-all-pythons: not testing {line}")
    if not tested:
        print("test-all-pythons: no other supported python3.X on this machine; nothing to do")
        return 0
    dry = os.environ.get("DRY_RUN", "") not in ("", "0")
    summary: list[str] = []
    for python in tested:
        command = [str(python.venv / "bin" / "python"), "-m", "pytest", *pytest_args]
        if dry:
            print(f"test-all-pythons: would test {python.version} ({python.path}) in")
            print(f"    {python.venv.name}: {' '.join(command[1:])}")
            continue
        print(f"test-all-pythons: Python {python.version} ({python.path})", flush=True)
        started = time.monotonic()
        if not install(python):
            summary.append(f"Python {python.version}: FAILED to install {python.venv.name}")
            continue
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        took = time.monotonic() - started
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        summary.append(f"Python {python.version}: {verdict} in {took:.0f} s ({python.path})")
    for line in summary:
        print(f"test-all-pythons: {line}")
    return 1 if any("FAILED" in line for line in summary) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
