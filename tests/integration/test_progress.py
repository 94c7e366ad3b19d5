"""``syncd sync`` shows progress per target on a terminal, and nothing of it when its
stderr is a pipe or with ``--quiet``: syncd runs in a real pseudo-terminal here."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.labs.common import people
from tests.labs.ldap import Lab

REPO = Path(__file__).resolve().parents[2]


def sync(lab: Lab, *, tty: bool, quiet: bool = False) -> tuple[int, str, str]:
    """``syncd sync`` in a process of its own: stdout a pipe, stderr a pseudo-terminal
    (``tty``) or a pipe. Returns the exit code, stdout and stderr."""
    argv = [sys.executable, "-m", "syncd", "sync", "-c", str(lab.write_config())]
    argv += ["--quiet"] if quiet else []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if not tty:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = process.stdout.read().decode() if process.stdout else ""
    return process.wait(timeout=120), out, seen.decode()


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_on_a_terminal_unless_quiet(lab: Lab, quiet: bool) -> None:
    lab.contracts(*people(30, ["developer"]))

    code, out, err = sync(lab, tty=True, quiet=quiet)

    assert code == 0, out + err
    if quiet:
        assert err == ""
    else:
        assert "\rcorp: 90/90 actions (100%), " in err
        assert ", done in " in err
    assert "actions (" not in out


def test_no_progress_when_stderr_is_not_a_terminal(lab: Lab) -> None:
    lab.contracts(*people(30, ["developer"]))

    code, out, err = sync(lab, tty=False)

    assert code == 0, out + err
    assert err == ""
    assert "Summary: 30 create, 60 add member" in out
