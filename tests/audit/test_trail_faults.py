"""The trail under faults, on real files: intents left open across a rotation at start,
writes that fail for want of space (a real tmpfs, a file size limit, a short write),
the active file deleted or replaced under the writer, and a trail that may not be
written. The LDAP-backed counterparts (the CLI and the daemon) are in
``test_trail_ldap``."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.apply import apply_plan
from syncd.audit import AuditError, AuditWriter
from syncd.audit.settle import settle_pending
from syncd.audit.verify import verify
from syncd.audit.writer import WriterOptions, rotated_files
from syncd.cli import main
from syncd.core.model import Action, ActionKind, Outcome, TargetPlan
from syncd.errors import TargetError
from syncd.targets.memory import MemoryTarget
from tests.audit.ocsf import problems

ROOT = os.geteuid() == 0


def action(i: int, target: str = "corp") -> Action:
    return Action(
        target, ActionKind.CREATE, f"p{i}@v.example", f"user{i}", None, "load", (f"C-{i}",)
    )


def batch(audit: AuditWriter, *actions: Action) -> None:
    """One batch as ``syncd.apply`` writes it: intents, sync, (send), outcomes."""
    for a in actions:
        audit.intent(a, "run")
    audit.sync()
    for a in actions:
        audit.outcome(Outcome(a, True, "", f"uid={a.username}"), "run")


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def trail_records(trail: Path) -> list[dict[str, Any]]:
    """Every record of the trail, sealed files first."""
    return [r for f in [*rotated_files(trail), trail] for r in records(f)]


def intact(trail: Path) -> None:
    """Every file ends with a whole line and the chain verifies."""
    for file in [*rotated_files(trail), trail]:
        assert file.read_bytes().endswith(b"\n"), file
    result = verify([trail.parent])
    assert result.ok, result.problem


# -- intents open across a rotation at start -----------------------------------------
STAGES = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from syncd.audit import AuditWriter
    from syncd.audit.writer import WriterOptions
    from syncd.core.model import Action, ActionKind
    trail, stage = Path(sys.argv[1]), sys.argv[2]
    if stage == "load":  # 200 intents on disk, no outcome: killed mid-batch
        audit = AuditWriter(trail)
        for i in range(200):
            audit.intent(Action("corp", ActionKind.CREATE, f"p{i}@v.example", f"user{i}",
                                None, "load", (f"C-{i}",)), "load")
        audit.sync()
    else:  # a restart: the file is due for rotation, rotated at once, then killed
        audit = AuditWriter(trail, WriterOptions(rotate_bytes=100))
        print(len(audit.pending), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def stage(trail: Path, name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", STAGES, str(trail), name], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("restarts", [1, 3])
def test_intents_left_open_across_rotations_at_start_are_all_settled(
    tmp_path: Path, restarts: int
) -> None:
    trail = tmp_path / "audit.jsonl"
    stage(trail, "load")
    for _ in range(restarts):
        assert stage(trail, "rotate") == "200"

    sealed = rotated_files(trail)
    assert len(sealed) == restarts
    assert records(trail)[0]["unmapped"]["open_intents"] == 200
    assert not any(r["unmapped"].get("phase") == "intent" for r in records(trail))
    with AuditWriter(trail, WriterOptions(rotate_bytes=4000)) as audit:
        assert len(audit.pending) == 200
        assert settle_pending(audit, {"corp": {}}, "settle") == 200
    with AuditWriter(trail, WriterOptions(rotate_bytes=4000)) as audit:
        assert audit.pending == []

    everything = trail_records(trail)
    intents = {r["metadata"]["uid"] for r in everything if r["unmapped"].get("phase") == "intent"}
    closing = [r["unmapped"]["intent_uid"] for r in everything if "intent_uid" in r["unmapped"]]
    assert len(intents) == 200
    assert sorted(closing) == sorted(intents)  # each exactly once
    assert all(
        r["status_detail"].startswith("observed after restart")
        for r in everything
        if r["unmapped"].get("observed")
    )
    intact(trail)
    for record in everything:
        assert problems(record) == [], record


def test_settling_does_not_read_back_past_a_file_that_started_with_nothing_open(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, WriterOptions(rotate_bytes=3000)) as audit:
        for i in range(30):
            batch(audit, action(i))
    assert len(rotated_files(trail)) >= 3
    oldest = rotated_files(trail)[0]
    oldest.write_text("not read\n")  # would fail the start if it were read

    with AuditWriter(trail) as audit:
        assert audit.pending == []


# -- a full disk ----------------------------------------------------------------------
def test_a_short_write_is_cut_off_and_the_trail_goes_on_after_a_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = tmp_path / "audit.jsonl"
    audit = AuditWriter(trail)
    batch(audit, action(0))
    real_write = os.write
    full = False

    def full_within_user2(fd: int, data: bytes) -> int:
        """What a disk that fills up does: part of the write, then ENOSPC."""
        nonlocal full
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if b'"user2"' in data:
            full = True
            return real_write(fd, data[: len(data) // 3])
        return real_write(fd, data)

    monkeypatch.setattr("syncd.audit.active.os.write", full_within_user2)
    audit.intent(action(1), "run")
    with pytest.raises(AuditError) as raised:
        audit.intent(action(2), "run")

    assert re.fullmatch(
        rf"audit trail {trail}: cannot write to it: No space left on device \(after \d+ of "
        r"\d+ bytes\); the file system is full: free space; syncd writes again by itself; "
        r"the partial record was cut off \(\d+ bytes\), nothing more is sent to a target "
        r"until the trail can be written",
        str(raised.value),
    ), raised.value

    assert trail.read_bytes().endswith(b"\n")
    assert verify([trail]).ok
    assert [i["user"]["name"] for i in audit.pending] == ["user1"]  # written, not sent
    monkeypatch.undo()
    settle_pending(audit, {"corp": {}}, "next")
    batch(audit, action(3))
    audit.close()

    note, settled, *after = records(trail)[-4:]
    assert [r["unmapped"]["phase"] for r in after] == ["intent", "outcome"]
    assert note["unmapped"]["phase"] == "recovery"
    assert note["unmapped"]["failures"] == 1
    assert note["unmapped"]["left_open"] == 1
    assert note["unmapped"]["cut_bytes"] > 0
    assert "No space left on device (after" in note["message"]
    assert settled["unmapped"]["observed"] is True
    assert settled["status_detail"] == (
        "observed after the trail could not be written: the change is not in place; planned again"
    )
    assert [r["metadata"]["sequence"] for r in records(trail)] == list(
        range(1, len(records(trail)) + 1)
    )
    intact(trail)
    for record in records(trail):
        assert problems(record) == [], record


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 256 KiB: a real file system that fills up."""
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root (the file size limit test runs without)")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s file system; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 64, 1):
            try:
                while os.write(fd, b"x" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_full_file_system_stops_the_trail_cleanly_and_it_resumes_when_space_returns(
    small_fs: Path,
) -> None:
    trail = small_fs / "audit" / "audit.jsonl"
    audit = AuditWriter(trail, WriterOptions(checkpoint_records=5))
    for i in range(5):
        batch(audit, action(i))
    filler = fill(small_fs)

    written, failure = 5, None
    while failure is None and written < 10_000:
        try:
            batch(audit, action(written))
            written += 1
        except AuditError as exc:
            failure = exc

    assert failure is not None
    assert "No space left on device" in str(failure) or "short write" in str(failure)
    assert "free space" in str(failure) or "disk full" in str(failure)
    intact(trail)
    with pytest.raises(AuditError):  # still full: refused again, still intact
        audit.intent(action(written + 1), "run")
    intact(trail)

    filler.unlink()
    settle_pending(audit, {"corp": {}}, "next")
    for i in range(3):
        batch(audit, action(20_000 + i))
    audit.close()

    intact(trail)
    (note,) = [r for r in records(trail) if "failed_since" in r["unmapped"]]
    assert note["unmapped"]["failures"] >= 2
    names = {r["user"]["name"] for r in records(trail) if r["unmapped"].get("phase") == "outcome"}
    assert {f"user{20_000 + i}" for i in range(3)} <= names


FSIZE = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from syncd.audit import AuditError, AuditWriter
    from syncd.audit.settle import settle_pending
    from syncd.core.model import Action, ActionKind, Outcome
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
    trail = Path(sys.argv[1])
    def act(i):
        return Action("corp", ActionKind.CREATE, f"p{i}@v.example", f"user{i}", None,
                      "load", (f"C-{i}",))
    def batch(audit, a):
        audit.intent(a, "run"); audit.sync(); audit.outcome(Outcome(a, True), "run")
    audit = AuditWriter(trail)
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (trail.stat().st_size + 5000, hard))
    errors, i = [], 0
    while len(errors) < 2 and i < 1000:
        try:
            batch(audit, act(i))
        except AuditError as exc:
            errors.append(str(exc))
        i += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    settle_pending(audit, {"corp": {}}, "next")
    for j in range(3):
        batch(audit, act(5000 + j))
    audit.close()
    print(json.dumps(errors))
    """
)


def test_a_file_size_limit_fails_writes_cleanly_and_they_resume_when_it_is_raised(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", FSIZE, str(trail)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr

    first, second = json.loads(done.stdout)
    # the write that crossed the limit got part of its bytes, the rest was refused
    assert re.search(r"File too large \(after \d+ of \d+ bytes\); the file size limit", first)
    assert "ulimit -f" in second
    intact(trail)
    (note,) = [r for r in records(trail) if "failed_since" in r["unmapped"]]
    assert note["unmapped"]["failures"] == 2
    assert {f"user{5000 + j}" for j in range(3)} <= {
        r["user"]["name"] for r in records(trail) if r["unmapped"].get("phase") == "outcome"
    }


def test_apply_sends_nothing_of_a_chunk_whose_intents_could_not_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = tmp_path / "audit.jsonl"
    real_write = os.write

    def no_space_for_user3(fd: int, data: bytes) -> int:
        if b'"phase":"intent"' in data and b'"user3"' in data:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr("syncd.audit.active.os.write", no_space_for_user3)
    target = MemoryTarget("corp", batch_size=2)
    plan = TargetPlan("corp", tuple(action(i) for i in range(6)))
    with AuditWriter(trail) as audit:
        with pytest.raises(AuditError, match=r"No space left on device.*free space"):
            apply_plan(plan, target, audit, "c1")
        assert set(target.accounts) == {"p0@v.example", "p1@v.example"}  # chunk 2 not sent
        assert [i["user"]["name"] for i in audit.pending] == ["user2"]
        monkeypatch.undo()
        settle_pending(audit, {"corp": dict(target.observe().accounts)}, "c2")
        report = apply_plan(TargetPlan("corp", plan.actions[2:]), target, audit, "c2")

    assert report.ok
    assert len(target.accounts) == 6
    intact(trail)


# -- the active file deleted or replaced under the writer -----------------------------
def test_a_deleted_active_file_is_replaced_before_the_next_batch_with_a_record_of_the_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
        lost_head = records(trail)[-1]
        trail.unlink()
        for i in range(1, 6):
            batch(audit, action(i))

    header, recovery, *rest = records(trail)
    assert header["unmapped"]["previous_file"] == "audit.jsonl"
    assert header["unmapped"]["previous_hash"] == lost_head["unmapped"]["chain"]["hash"]
    assert recovery["unmapped"] | {"chain": None} == {
        "phase": "recovery",
        "lost_file": "audit.jsonl",
        "lost_how": "deleted",
        "lost_first_sequence": 1,
        "lost_last_sequence": 3,
        "lost_records": 3,
        "lost_previous_file": None,
        "lost_previous_hash": "0" * 64,
        "reopened_intents": 0,
        "chain": None,
    }
    assert recovery["severity"] == "High"
    assert [(r["unmapped"]["phase"], r["user"]["name"]) for r in rest] == [
        (phase, f"user{i}") for i in range(1, 6) for phase in ("intent", "outcome")
    ]
    for record in records(trail):
        assert problems(record) == [], record

    result = verify([tmp_path])
    assert result.problem is not None
    assert result.problem.kind == "lost"
    assert result.problem.message.startswith(
        "sequence 1 to 3 were in audit.jsonl, which was deleted while syncd wrote it"
    )
    assert result.records == len(records(trail))
    assert main(["audit", "verify", str(tmp_path)]) == 4
    assert "lost: sequence 1 to 3" in capsys.readouterr().out


def test_a_file_deleted_between_the_intents_and_the_send_gets_them_written_again(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
        a, b = action(1), action(2)
        audit.intent(a, "run")
        audit.intent(b, "run")
        trail.unlink()
        audit.sync()  # before the chunk is sent
        on_disk = records(trail)
        audit.outcome(Outcome(a, True), "run")
        audit.outcome(Outcome(b, False, "refused"), "run")

    assert [r["unmapped"]["phase"] for r in on_disk] == ["header", "recovery", "intent", "intent"]
    assert on_disk[1]["unmapped"]["reopened_intents"] == 2
    assert on_disk[1]["unmapped"]["lost_last_sequence"] == 5
    outcomes = [r for r in records(trail) if r["unmapped"]["phase"] == "outcome"]
    assert [o["unmapped"]["intent_uid"] for o in outcomes] == [
        r["metadata"]["uid"] for r in on_disk[2:]
    ]


def test_no_chunk_is_sent_unless_its_intents_are_in_the_file_the_trail_names(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    sent: list[tuple[str, bool]] = []

    def look(a: Action) -> TargetError | None:
        in_trail = trail.exists() and any(
            r["unmapped"].get("phase") == "intent" and r["user"]["name"] == a.username
            for r in records(trail)
        )
        sent.append((a.username, in_trail))
        if a.username == "user1":  # the last of the first chunk: the trail goes away
            trail.unlink()
        return None

    target = MemoryTarget("corp", batch_size=2, fault=look)
    with AuditWriter(trail) as audit:
        report = apply_plan(
            TargetPlan("corp", tuple(action(i) for i in range(6))), target, audit, "c"
        )

    assert report.ok
    assert sent == [(f"user{i}", True) for i in range(6)]
    recovery = records(trail)[1]["unmapped"]
    assert recovery["lost_how"] == "deleted"
    assert verify([tmp_path]).problem.kind == "lost"  # type: ignore[union-attr]


def test_a_replaced_active_file_is_moved_aside_and_the_trail_goes_on_beside_it(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, WriterOptions(rotate_bytes=3000)) as audit:
        for i in range(12):
            batch(audit, action(i))
        sealed = rotated_files(trail)
        assert sealed
        impostor = tmp_path / "impostor"
        impostor.write_text('{"not": "ours"}\n')
        impostor.rename(trail)  # write-then-rename over the active file
        for i in range(12, 15):
            batch(audit, action(i))

    (foreign,) = tmp_path.glob("audit.jsonl.foreign-*")
    assert foreign.read_text() == '{"not": "ours"}\n'
    (recovery,) = [r["unmapped"] for r in trail_records(trail) if "lost_file" in r["unmapped"]]
    assert recovery["lost_how"] == "deleted"
    assert recovery["foreign_file"] == foreign.name
    assert recovery["lost_previous_file"] == sealed[-1].name

    result = verify([tmp_path])
    assert result.problem is not None
    assert result.problem.kind == "lost"  # the chain checks out on both sides of the gap
    rows = trail.read_text().splitlines(keepends=True)
    rows[-1] = rows[-1].replace('"time":1', '"time":2', 1)
    trail.write_text("".join(rows))
    edited = verify([tmp_path])
    assert edited.problem is not None
    assert edited.problem.kind == "edited"  # a gap does not stop the check
    assert any("lost: sequence" in note for note in edited.notes)


def test_a_file_moved_away_is_reported_so(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
        trail.rename(tmp_path / "elsewhere.log")
        batch(audit, action(1))

    assert records(trail)[1]["unmapped"]["lost_how"] == "moved away"


def test_a_whole_folder_removed_is_made_again(tmp_path: Path) -> None:
    trail = tmp_path / "logs" / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
        for file in trail.parent.iterdir():
            file.unlink()
        trail.parent.rmdir()
        batch(audit, action(1))

        with pytest.raises(AuditError, match=f"another syncd \\(pid {os.getpid()}\\)"):
            AuditWriter(trail)  # the lock was taken again with the folder

    assert records(trail)[1]["unmapped"]["phase"] == "recovery"
    assert oct(trail.parent.stat().st_mode & 0o777) == "0o750"


def test_a_gap_that_the_trail_does_not_report_is_still_a_missing_file(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail, WriterOptions(rotate_bytes=3000)) as audit:
        for i in range(30):
            batch(audit, action(i))
    sealed = rotated_files(trail)
    sealed[1].unlink()

    result = verify([tmp_path])

    assert result.problem is not None
    assert result.problem.kind == "missing file"


# -- permissions, and a trail that may not be written -------------------------------
def test_the_folder_is_created_0750_and_the_files_0640(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        trail = tmp_path / "var" / "log" / "syncd" / "audit.jsonl"
        with AuditWriter(trail) as audit:
            batch(audit, action(0))
    finally:
        os.umask(old)

    for folder in (trail.parent, trail.parent.parent, trail.parent.parent.parent):
        assert oct(folder.stat().st_mode & 0o777) == "0o750", folder
    for file in (trail, trail.with_name("audit.jsonl.lock")):
        assert oct(file.stat().st_mode & 0o777) == "0o640", file


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """An existing trail whose active file carries the immutable attribute."""
    if not ROOT:
        pytest.skip("chattr +i needs root")
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
    flagged = subprocess.run(["chattr", "+i", str(trail)], capture_output=True, text=True)
    if flagged.returncode:
        pytest.skip(f"chattr +i is not available here: {flagged.stderr.strip()}")
    try:
        yield trail
    finally:
        subprocess.run(["chattr", "-i", str(trail)], check=False)


def test_an_immutable_active_file_is_a_clear_error(immutable: Path) -> None:
    with pytest.raises(AuditError) as raised:
        AuditWriter(immutable)

    assert str(raised.value) == (
        f"audit trail {immutable}: cannot open it for writing: Operation not permitted; an "
        "immutable or append-only attribute forbids it (see `lsattr`): remove it with "
        "`chattr -i` or `chattr -a` (syncd appends, and renames files to rotate them)"
    )
    assert verify([immutable]).ok


def test_a_read_only_file_is_a_clear_error(tmp_path: Path) -> None:
    if ROOT:
        pytest.skip("root writes read-only files; the immutable and read-only mount tests apply")
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
    trail.chmod(0o440)

    with pytest.raises(AuditError, match="Permission denied; the user syncd runs as"):
        AuditWriter(trail)


def test_a_read_only_file_system_is_a_clear_error(small_fs: Path) -> None:
    trail = small_fs / "audit.jsonl"
    with AuditWriter(trail) as audit:
        batch(audit, action(0))
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)

    with pytest.raises(AuditError) as raised:
        AuditWriter(trail)

    assert str(raised.value).startswith(f"audit trail {trail}.lock: cannot open it for writing")
    assert "Read-only file system; the file system is mounted read-only" in str(raised.value)


def test_a_folder_that_forbids_rotation_fails_one_batch_and_the_trail_goes_on(
    tmp_path: Path,
) -> None:
    if not ROOT:
        pytest.skip("chattr +i needs root")
    trail = tmp_path / "logs" / "audit.jsonl"
    audit = AuditWriter(trail, WriterOptions(rotate_bytes=2500))
    batch(audit, action(0))
    flagged = subprocess.run(["chattr", "+i", str(trail.parent)], capture_output=True, text=True)
    if flagged.returncode:
        pytest.skip(f"chattr +i is not available here: {flagged.stderr.strip()}")
    errors = []
    try:
        for i in range(1, 13):
            try:
                batch(audit, action(i))
            except AuditError as exc:
                errors.append(str(exc))
        audit.close()
    finally:
        subprocess.run(["chattr", "-i", str(trail.parent)], check=False)

    assert len(errors) == 1  # one failed batch, then on in the same file
    assert "cannot rotate it: Operation not permitted; an immutable" in errors[0]
    assert rotated_files(trail) == []
    assert sum(r["unmapped"].get("phase") == "seal" for r in records(trail)) == 1
    intact(trail)
