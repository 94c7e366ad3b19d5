"""The command line's surface: the user-facing ``--help`` (a summary per verb, examples,
exit codes), ``-c/--config`` before or after the verb, and progress lines only on a
terminal (``syncd.progress``; shown on a real pseudo-terminal in
``tests/integration/test_progress.py``)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.progress import Progress, line
from syncd.usage import VERBS

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # --help and usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(name="example")
def example_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped example config, with its bind password in a credentials folder."""
    config = tmp_path / "syncd.yaml"
    shutil.copy(REPO / "config" / "syncd.yaml", config)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "ldap-bind-password").write_text("x", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    return config


def test_help_is_for_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run("--help")
    assert code == 0
    assert out.startswith("usage: syncd [-h] [-c FILE] [-v] [--version] COMMAND ...\n")
    assert "SPEC" not in out
    assert "``" not in out
    assert "Entry point" not in out
    # argparse's column widths and wrapping differ between Python versions: compare
    # the words, not the spaces
    words = " ".join(out.split())
    for verb, (summary, _) in VERBS.items():
        assert f" {verb} {summary} " in words
    assert "  syncd explain ana.lopez@vendor.example    why a person has (or lacks)" in out
    assert "-c/--config may stand before or after the command." in out
    assert "  1  a change failed, a conflict stands, a target could not be read\n" in out


def test_each_verb_has_a_summary_and_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run("explain", "--help")
    assert code == 0
    assert out.startswith(
        "usage: syncd explain [-h] [-c FILE] [-v] [--at TIME] [--json] [--target NAME] PERSON\n"
    )
    assert "\nWhy a person has (or lacks) each account and group.\n" in out
    assert "examples:\n  syncd explain ana.lopez@vendor.example\n" in out
    assert "--json" in out
    assert "format syncd.explain/1" in out
    assert "-q, --quiet" in run("sync", "--help")[1]


@pytest.mark.parametrize(
    "where",
    [
        ["-c", "{}", "check-config"],
        ["check-config", "-c", "{}"],
        ["--config", "{}", "check-config"],
        ["check-config", "--config={}"],
    ],
)
def test_the_config_option_before_or_after_the_verb(example: Path, where: list[str]) -> None:
    code, out, err = run(*(part.format(example) for part in where))
    assert (code, err) == (0, "")
    assert out == f"{example}: valid (1 targets, 3 roles)\n"


def test_a_config_after_the_verb_wins_over_one_before(example: Path, tmp_path: Path) -> None:
    code, out, _ = run("-c", str(tmp_path / "missing.yaml"), "check-config", "-c", str(example))
    assert (code, out) == (0, f"{example}: valid (1 targets, 3 roles)\n")


def test_verbosity_on_either_side_of_the_verb(example: Path) -> None:
    assert run("-v", "check-config", "-v", "-c", str(example))[0] == 0


def test_no_progress_unless_the_stream_is_a_terminal() -> None:
    assert Progress.on(io.StringIO()) is None


def test_progress_lines_redraw_in_place_and_end_with_the_total() -> None:
    ticks = iter([0.0, 0.1, 1.0, 2.0])
    stream = io.StringIO()
    progress = Progress(stream, clock=lambda: next(ticks))
    advance = progress("corp", 100)
    assert advance is not None
    advance(10)  # 0.1 s: too soon to draw
    advance(40)  # 1.0 s
    advance(50)  # 2.0 s: done
    assert stream.getvalue() == (
        "\rcorp: 50/100 actions (50%), 50/s, 1.0s left\x1b[K"
        "\rcorp: 100/100 actions (100%), 50/s, done in 2.0s\x1b[K\n"
    )
    assert progress("corp", 0) is None


def test_progress_line_of_a_long_apply() -> None:
    assert line("corp", 1200, 10000, 60.0) == "corp: 1200/10000 actions (12%), 20/s, 7m20s left"


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """``syncd config schema | head``: the pipe closes before the schema is written."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        done = subprocess.run(
            [sys.executable, "-m", "syncd", "config", "schema"],
            stdout=closed,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stderr) == (1, "")
