"""``syncd audit verify``: recompute a trail's hashes and check every link.

Called by the CLI (``syncd audit verify``). Reads one file, a directory (sealed files
oldest first, then the active file) or a list of files, and reports the first problem
precisely: which file, line and sequence, and what kind it is:

* ``edited``: a record's content no longer matches its hash (or a malformed line);
* ``deleted``: a sequence number is missing;
* ``inserted``: a record that does not belong (a sequence appears twice, or a record
  whose hash was recomputed does not link to its neighbours);
* ``reordered``: a record appears out of its place;
* ``truncated``: the end of a file is gone (a cut line, a sealed file without its
  seal, or the anchor given with ``--expect-head`` not in the trail);
* ``missing file``: a sealed file between two others is absent;
* ``forged``: with ``--key-file``, a record without a valid HMAC under that key;
* ``lost``: records syncd itself reported lost: its active file was deleted, moved
  away or replaced while it wrote, and the file it opened next starts with a recovery
  record naming the records gone (their sequences, and the hash they followed). The
  chain is checked on both sides of such a gap, and the verdict is never OK: the
  records are gone, whoever removed them. Reported after the rest of the trail
  verified, unless a worse problem comes first (then the gaps are notes).

Files are streamed, so memory is bounded however long the trail: besides the current
line, only the last ``_WINDOW`` sequences of the current file are kept (their line and
link, to tell an inserted record from a reordered one), and the ``--expect-head``
anchor is compared as records go by rather than looked up in a set of every hash.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from syncd.audit.chain import GENESIS, Sealer, recompute

_WINDOW = 100_000  # recent sequences kept to tell an inserted record from a reordered one
_SEALED = re.compile(r".+-\d{8}T\d{6}\d*Z-\d{12}\.[^.]+$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    sequence: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        seq = f", sequence {self.sequence}" if self.sequence is not None else ""
        return f"{self.file} line {self.line}{seq}: {self.kind}: {self.message}"


@dataclass
class Result:
    files: list[str] = field(default_factory=list)
    records: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    head: str | None = None
    problem: Problem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def trail_files(paths: Iterable[Path]) -> list[Path]:
    """Files to verify in chain order: sealed files by name, then active files."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [p for p in path.iterdir() if p.is_file() and p.suffix == ".jsonl"]
        else:
            files.append(path)
    return sorted(set(files), key=lambda p: (not _SEALED.match(p.name), p.name))


class _Verifier:
    def __init__(self, sealer: Sealer | None, anchor: str | None = None) -> None:
        self.sealer = sealer
        self.result = Result()
        self.prev: str | None = None  # hash of the last good record
        self.expected: int | None = None  # next sequence number
        self.anchor = anchor  # a hash the trail must hold (--expect-head)
        self.anchor_found = False
        self.hmac_unchecked = False
        self.gaps: list[Problem] = []  # records syncd reported lost, in trail order

    def fail(self, file: Path, line: int, sequence: int | None, kind: str, message: str) -> None:
        self.result.problem = Problem(file.name, line, sequence, kind, message)

    def run(self, files: list[Path]) -> Result:
        for index, file in enumerate(files):
            self.result.files.append(file.name)
            self.file(file, files[index - 1].name if index else None, index == len(files) - 1)
            if self.result.problem:
                break
        if self.hmac_unchecked:
            self.result.notes.append(
                "HMAC records were not recomputed (no --key-file); links and sequences were checked"
            )
        gaps = self.gaps
        if gaps and self.result.problem is None:
            self.result.problem, gaps = gaps[0], gaps[1:]
        self.result.notes += [str(gap) for gap in gaps]
        return self.result

    def file(self, file: Path, previous: str | None, last: bool) -> None:
        """Check one file, streaming: memory is bounded however long the file."""
        # sequence -> (line, prev) of the last _WINDOW records; OrderedDict drops the
        # oldest in O(1)
        seen: OrderedDict[int, tuple[int, str]] = OrderedDict()
        number, seq, phase = 0, None, None
        with file.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.endswith(b"\n"):
                    self.fail(
                        file, number, None, "truncated", "the last line is cut short (no newline)"
                    )
                    return
                text = raw[:-1].decode("utf-8", errors="replace")
                try:
                    record = json.loads(text)
                    seq = int(record["metadata"]["sequence"])
                    chain = record["unmapped"]["chain"]
                    str(chain["hash"]), str(chain["prev"])
                except (ValueError, KeyError, TypeError):
                    self.fail(file, number, None, "edited", "not a syncd audit record")
                    return
                if number == 1 and not self.header(file, record, previous):
                    return
                if not self.record(file, number, seq, record, text, seen):
                    return
                seen[seq] = (number, chain["prev"])
                if len(seen) > _WINDOW:
                    seen.popitem(last=False)
                phase = record["unmapped"].get("phase")
        if number == 0:
            self.fail(file, 1, None, "truncated", "the file is empty")
        elif not last and phase != "seal":
            self.fail(file, number, seq, "truncated", "a sealed file must end with its seal record")

    def header(self, file: Path, record: dict[str, Any], previous: str | None) -> bool:
        unmapped = record["unmapped"]
        if unmapped.get("phase") != "header":
            self.fail(
                file,
                1,
                record["metadata"]["sequence"],
                "truncated",
                "the file does not start with its header record",
            )
            return False
        named = unmapped.get("previous_file")
        loss = _reported_loss(file)
        if self.prev is None:  # the first file given: where does the chain start?
            if named is None and unmapped.get("previous_hash") == GENESIS:
                self.prev, self.expected = GENESIS, 1
            else:
                self.prev = str(unmapped.get("previous_hash"))
                self.expected = int(unmapped.get("previous_sequence", 0)) + 1
                if loss is None:
                    self.result.notes.append(f"the chain starts after {named} (not given)")
                else:  # the records before this file are gone, as syncd reported
                    self.gap(file, record, loss)
            return True
        if loss is not None and self.bridges(loss[0], unmapped, previous):
            self.gap(file, record, loss)
            self.prev = str(unmapped.get("previous_hash"))
            self.expected = int(unmapped.get("previous_sequence", 0)) + 1
            return True
        if named != previous:
            self.fail(
                file,
                1,
                record["metadata"]["sequence"],
                "missing file",
                f"the header continues {named}, but the file before it is {previous}",
            )
            return False
        return True

    def bridges(self, lost: dict[str, Any], header: dict[str, Any], previous: str | None) -> bool:
        """Whether a reported loss fits the gap before this file exactly: the records
        lost follow the last one checked, and the header continues the last one lost."""
        return (
            lost.get("lost_first_sequence") == self.expected
            and lost.get("lost_previous_hash") == self.prev
            and lost.get("lost_previous_file") == previous
            and lost.get("lost_last_sequence") == header.get("previous_sequence")
        )

    def gap(self, file: Path, header: dict[str, Any], loss: tuple[dict[str, Any], int]) -> None:
        lost, at = loss
        first, last = lost.get("lost_first_sequence"), lost.get("lost_last_sequence")
        self.gaps.append(
            Problem(
                file.name,
                1,
                header["metadata"]["sequence"],
                "lost",
                f"sequence {first} to {last} were in {lost.get('lost_file')}, which was "
                f"{lost.get('lost_how')} while syncd wrote it: syncd reported the loss at "
                f"sequence {at}; the chain is checked on both sides of the gap",
            )
        )

    def record(
        self,
        file: Path,
        number: int,
        seq: int,
        record: dict[str, Any],
        text: str,
        seen: dict[int, tuple[int, str]],
    ) -> bool:
        """Check a record's hash, then its place in the chain; count it if both hold."""
        chain = record["unmapped"]["chain"]
        stored = str(chain["hash"])
        if not self.sealed(file, number, seq, chain, text):
            return False
        assert self.expected is not None
        if seq != self.expected or chain["prev"] != self.prev:
            if seq in seen and seen[seq][1] == chain["prev"]:
                # Same place in the chain as an earlier record: that one is the intruder.
                self.fail(
                    file,
                    seen[seq][0],
                    seq,
                    "inserted",
                    f"this record was inserted before the genuine sequence {seq} at line {number}",
                )
            else:
                self.fail(file, number, seq, *self.break_kind(file, number, seq, seen))
            return False
        if stored == self.anchor:
            self.anchor_found = True
        self.prev, self.expected = stored, seq + 1
        result = self.result
        result.records += 1
        result.first_sequence = result.first_sequence or seq
        result.last_sequence, result.head = seq, stored
        return True

    def sealed(self, file: Path, number: int, seq: int, chain: dict[str, Any], text: str) -> bool:
        """Whether the line matches its hash (and, with a key, carries a valid HMAC)."""
        if (
            self.sealer is not None
            and self.sealer.key
            and (chain.get("alg") != "hmac-sha256" or chain.get("key_id") != self.sealer.key_id)
        ):
            self.fail(
                file,
                number,
                seq,
                "forged",
                f"no HMAC under key {self.sealer.key_id!r} (alg {chain.get('alg')})",
            )
            return False
        computed = recompute(text, chain, self.sealer)
        if computed is None:
            self.hmac_unchecked = True
        elif computed != str(chain["hash"]):
            kind = "forged" if chain.get("alg") == "hmac-sha256" else "edited"
            self.fail(file, number, seq, kind, "the record does not match its hash")
            return False
        return True

    def break_kind(
        self, file: Path, number: int, seq: int, seen: dict[int, tuple[int, str]]
    ) -> tuple[str, str]:
        expected = self.expected
        assert expected is not None
        if seq in seen:
            first_line = seen[seq][0]  # the window holds the same file's records only
            return (
                "inserted",
                f"sequence {seq} appears twice (first at line {first_line}); "
                "one of the two does not belong",
            )
        if seq > expected:
            if _appears_after(file, number, expected):
                return ("reordered", f"sequence {seq} comes before {expected}")
            missing = f"{expected}" if seq == expected + 1 else f"{expected} to {seq - 1}"
            return ("deleted", f"sequence {missing} is missing")
        if seq < expected:
            return ("reordered", f"sequence {seq} comes after {expected - 1}")
        return (
            "inserted",
            "the record does not link to the one before it (its hash was "
            "recomputed, or the one before was replaced)",
        )


def _reported_loss(file: Path) -> tuple[dict[str, Any], int] | None:
    """The loss a file's second record reports (``unmapped`` and its sequence), if it
    is the recovery record syncd writes after losing its active file. Its hash is
    checked with the rest when its line comes."""
    with file.open("rb") as handle:
        handle.readline()
        line = handle.readline()
    try:
        record = json.loads(line)
        unmapped = record["unmapped"]
        if unmapped.get("phase") != "recovery" or "lost_first_sequence" not in unmapped:
            return None
        return dict(unmapped), int(record["metadata"]["sequence"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _appears_after(file: Path, number: int, seq: int) -> bool:
    """Whether a record with sequence ``seq`` comes after line ``number`` (on failure only)."""
    needle = f'"sequence":{seq},'.encode()
    with file.open("rb") as handle:
        return any(needle in raw for index, raw in enumerate(handle, 1) if index > number)


def verify(
    paths: Iterable[Path], *, sealer: Sealer | None = None, expect_head: str | None = None
) -> Result:
    """Check the trail made of ``paths`` (files or folders); stop at the first problem.

    ``sealer`` recomputes HMAC records; ``expect_head`` is a hash kept elsewhere (a
    SIEM's copy of a checkpoint) that the trail must still hold."""
    files = trail_files(paths)
    checker = _Verifier(sealer, expect_head)
    result = checker.run(files)
    if result.problem is None and expect_head and not checker.anchor_found:
        last = files[-1].name if files else ""
        result.problem = Problem(
            last,
            0,
            result.last_sequence,
            "truncated",
            f"the anchor {expect_head[:16]}… is not in the trail: records "
            "were removed or the chain was rewritten",
        )
    return result
