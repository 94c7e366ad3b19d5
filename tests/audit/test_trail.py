"""The audit trail on disk: chain, rotation, recovery, one writer, and verify's verdicts."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.audit import AuditError, AuditWriter
from syncd.audit.chain import GENESIS, Sealer, canonical
from syncd.audit.verify import verify
from syncd.audit.writer import WriterOptions, rotated_files
from syncd.cli import main
from syncd.core.model import Action, ActionKind, Outcome

KEY = b"k" * 32


def action(i: int, kind: ActionKind = ActionKind.CREATE) -> Action:
    return Action("corp", kind, f"p{i}@v.example", f"user{i}", None, f"contract C-{i}", (f"C-{i}",))


def write_trail(path: Path, count: int, **options: Any) -> None:
    with AuditWriter(path, WriterOptions(**options)) as audit:
        for i in range(count):
            a = action(i)
            audit.intent(a, "run")
            audit.sync()
            audit.outcome(Outcome(a, True, "", f"uid=user{i}"), "run")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def test_each_record_links_to_the_one_before(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 3)

    chain = [r["unmapped"]["chain"] for r in records(trail)]

    assert chain[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(chain))
    assert [r["metadata"]["sequence"] for r in records(trail)] == list(range(1, 8))
    assert verify([trail]).ok
    assert oct(trail.stat().st_mode & 0o777) == "0o640"


def test_lines_are_canonical_json_and_the_hash_covers_everything_but_itself(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 1)
    for line in lines(trail):
        record = json.loads(line)
        assert line == canonical(record) + "\n"
        chain = record["unmapped"]["chain"]
        stored = chain.pop("hash")
        assert stored == Sealer().digest(canonical(record))


def test_sequences_continue_across_writers(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 2)
    write_trail(trail, 2)

    assert [r["metadata"]["sequence"] for r in records(trail)] == list(range(1, 10))
    assert verify([trail]).ok


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail), pytest.raises(AuditError, match=f"pid {os.getpid()}"):
        AuditWriter(trail)
    with AuditWriter(trail):
        pass  # the lock is released on close


def test_rotation_seals_and_links_files(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 40, rotate_bytes=4000)

    sealed = rotated_files(trail)
    assert len(sealed) >= 3
    first = records(sealed[0])
    assert first[0]["unmapped"]["phase"] == "header"
    assert first[-1]["unmapped"]["phase"] == "seal"
    assert first[-1]["unmapped"]["records"] == len(first)
    header = records(sealed[1])[0]["unmapped"]
    assert header["previous_file"] == sealed[0].name
    assert header["previous_hash"] == first[-1]["unmapped"]["chain"]["hash"]
    result = verify([tmp_path])
    assert result.ok, result.problem
    assert result.records == sum(len(lines(f)) for f in [*sealed, trail])


def test_rotation_by_age(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 1)
    time.sleep(0.05)
    write_trail(trail, 1, rotate_age=timedelta(milliseconds=10))

    assert len(rotated_files(trail)) >= 1
    assert verify([tmp_path]).ok


def test_checkpoints_carry_the_head(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 10, checkpoint_records=5)

    all_records = records(trail)
    checkpoints = [r for r in all_records if r["unmapped"].get("phase") == "checkpoint"]
    assert checkpoints
    point = checkpoints[0]["unmapped"]
    by_seq = {r["metadata"]["sequence"]: r for r in all_records}
    assert by_seq[point["head_sequence"]]["unmapped"]["chain"]["hash"] == point["head_hash"]


def test_a_torn_last_line_is_kept_aside_and_acknowledged(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 2)
    with trail.open("a") as handle:
        handle.write('{"class_uid":3001,"half a rec')

    write_trail(trail, 1)

    torn = list(tmp_path.glob("audit.jsonl.torn-*"))
    assert len(torn) == 1
    assert torn[0].read_text() == '{"class_uid":3001,"half a rec'
    recovery = [r for r in records(trail) if r["unmapped"].get("phase") == "recovery"]
    assert recovery[0]["unmapped"]["torn_file"] == torn[0].name
    assert recovery[0]["unmapped"]["torn_bytes"] == len('{"class_uid":3001,"half a rec')
    assert verify([trail]).ok


def test_open_intents_are_offered_for_settling(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    with AuditWriter(trail) as audit:
        done, lost = action(1), action(2)
        audit.intent(done, "run")
        audit.intent(lost, "run")
        audit.outcome(Outcome(done, True), "run")

    with AuditWriter(trail) as audit:
        assert [r["user"]["name"] for r in audit.pending] == ["user2"]
        audit.settle(audit.pending[0], True, "observed after restart", "next")
    with AuditWriter(trail) as audit:
        assert audit.pending == []
    (closing,) = [r for r in records(trail) if r["unmapped"].get("observed")]
    assert closing["unmapped"]["intent_uid"] == records(trail)[2]["metadata"]["uid"]
    assert closing["status"] == "Success"


# -- the tamper matrix ------------------------------------------------------------------
def _edit(trail: Path) -> None:
    rows = lines(trail)
    rows[4] = rows[4].replace("user1", "user9")
    trail.write_text("".join(rows))


def _delete(trail: Path) -> None:
    rows = lines(trail)
    del rows[4]
    trail.write_text("".join(rows))


def _insert_forged(trail: Path) -> None:
    rows = lines(trail)
    before = json.loads(rows[3])
    forged = json.loads(rows[4])
    forged["user"]["name"] = "intruder"
    forged["metadata"]["sequence"] = before["metadata"]["sequence"] + 1
    line, _ = Sealer().seal(forged, before["unmapped"]["chain"]["hash"])
    rows.insert(4, line + "\n")
    trail.write_text("".join(rows))


def _swap(trail: Path) -> None:
    rows = lines(trail)
    rows[4], rows[5] = rows[5], rows[4]
    trail.write_text("".join(rows))


def _truncate_mid_line(trail: Path) -> None:
    data = trail.read_bytes()
    trail.write_bytes(data[:-40])


def _rewrite_without_key(trail: Path) -> None:
    prev = GENESIS
    out = []
    for record in records(trail):
        record["unmapped"].pop("chain")
        record["user"] = {**record.get("user", {}), "name": "rewritten"}
        line, prev = Sealer().seal(record, prev)
        out.append(line + "\n")
    trail.write_text("".join(out))


@pytest.mark.parametrize(
    ("tamper", "kind", "line"),
    [
        (_edit, "edited", 5),
        (_delete, "deleted", 5),
        (_insert_forged, "inserted", 5),
        (_swap, "reordered", 5),
        (_truncate_mid_line, "truncated", None),
    ],
    ids=["edit", "delete", "insert-forged", "swap", "truncate"],
)
def test_tampering_is_found_with_its_kind_and_place(
    tmp_path: Path, tamper: Any, kind: str, line: int | None
) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 6)
    tamper(trail)

    result = verify([trail])

    assert result.problem is not None
    assert result.problem.kind == kind, result.problem
    assert result.problem.file == "audit.jsonl"
    if line is not None:
        assert result.problem.line == line


def test_a_repeated_sequence_names_the_line_of_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 3)
    rows = lines(trail)
    again = json.loads(rows[2])  # sequence 3, linked anew after sequence 4
    again["unmapped"].pop("chain")
    line, _ = Sealer().seal(again, json.loads(rows[3])["unmapped"]["chain"]["hash"])
    rows.insert(4, line + "\n")
    trail.write_text("".join(rows))

    code = main(["audit", "verify", str(trail)])

    assert code == 4
    assert capsys.readouterr().out == (
        "TAMPERED: audit.jsonl line 5, sequence 3: inserted: sequence 3 appears twice "
        "(first at line 3); one of the two does not belong\n"
    )


def test_a_cut_tail_is_found_against_the_siem_anchor(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 6)
    anchor = records(trail)[-1]["unmapped"]["chain"]["hash"]
    assert verify([trail], expect_head=anchor).ok
    trail.write_text("".join(lines(trail)[:-3]))

    result = verify([trail], expect_head=anchor)

    assert result.problem is not None
    assert result.problem.kind == "truncated"


def test_a_missing_middle_file_is_found(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 40, rotate_bytes=4000)
    sealed = rotated_files(trail)
    sealed[1].unlink()

    result = verify([tmp_path])

    assert result.problem is not None
    assert result.problem.kind == "missing file"
    assert result.problem.file == sealed[2].name


def test_a_sealed_file_cut_short_is_truncated(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 40, rotate_bytes=4000)
    first = rotated_files(trail)[0]
    first.write_text("".join(lines(first)[:-2]))

    result = verify([tmp_path])

    assert result.problem is not None
    assert result.problem.kind == "truncated"
    assert result.problem.file == first.name


def test_hmac_chain_rewritten_without_the_key_is_forged(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 3, sealer=Sealer(KEY, "k1"))
    assert verify([trail], sealer=Sealer(KEY, "k1")).ok
    _rewrite_without_key(trail)

    assert verify([trail]).ok  # without the key, a consistent rewrite looks fine
    result = verify([trail], sealer=Sealer(KEY, "k1"))

    assert result.problem is not None
    assert result.problem.kind == "forged"
    assert result.problem.line == 1


def test_hmac_with_another_key_is_forged(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 2, sealer=Sealer(b"x" * 32, "k1"))

    result = verify([trail], sealer=Sealer(KEY, "k1"))

    assert result.problem is not None
    assert result.problem.kind == "forged"


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from syncd.audit import AuditWriter
    from syncd.audit.writer import WriterOptions
    from syncd.core.model import Action, ActionKind, Outcome
    audit = AuditWriter(Path(sys.argv[1]), WriterOptions(fsync="record"))
    i = 0
    while True:
        a = Action("corp", ActionKind.CREATE, f"p{i}", f"u{i}", None, "load", ("C",))
        audit.intent(a, "load")
        audit.outcome(Outcome(a, True), "load")
        print(i, flush=True)  # acknowledged: both records are on disk
        i += 1
    """
)


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(trail)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = -1
    deadline = time.monotonic() + 30
    while acknowledged < 200 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    with AuditWriter(trail) as audit:
        assert len(audit.pending) <= 1  # at most the intent in flight
    result = verify([trail])

    assert result.ok, result.problem
    names = {
        r.get("user", {}).get("name")
        for r in records(trail)
        if r["unmapped"].get("phase") == "outcome"
    }
    assert {f"u{i}" for i in range(acknowledged + 1)} <= names


def test_the_command_line_reports_tampering_with_exit_code_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 3)
    assert main(["audit", "verify", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("OK: 1 files, 7 records")
    _delete(trail)

    code = main(["audit", "verify", str(trail), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 4
    assert report["ok"] is False
    assert report["problem"]["kind"] == "deleted"
    assert report["problem"]["line"] == 5


def test_an_emptied_active_file_gets_a_new_header(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    write_trail(trail, 2)
    trail.write_text("")  # what copytruncate leaves behind

    write_trail(trail, 1)

    assert records(trail)[0]["unmapped"]["phase"] == "header"
