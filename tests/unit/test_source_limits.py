"""The file source against hostile and oversized files: whatever a parser raises is a
``SourceError`` (``syncd plan`` exits 2 with one line, the daemon plans from its snapshot
and reports degraded), YAML alias bombs and deep nesting are refused in bounded memory,
and ``source.max_bytes`` refuses a file before reading it. Also: the YAML loader builds
what PyYAML's safe loader builds, with the lines of the records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd import yamlsrc
from syncd.config import FileSource, load_config
from syncd.errors import ConfigError, SourceError
from syncd.sources import file as file_source
from syncd.sources import formats
from tests.unit.test_daemon import Bench, contract, in_days, wait_for

DEEP_JSON = '{"contracts": [' + "[" * 200_000 + "]" * 200_000 + "]}"


def bomb(indent: str = "") -> str:
    """Nine levels of nine aliases: 387,420,489 strings from about 400 bytes."""
    lines = [f'{indent}l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        items = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"{indent}l{level}: &l{level} [{items}]")
    return "\n".join(lines) + "\n"


BOMB_BESIDE = bomb() + "contracts: []\n"
BOMB_INSIDE = (
    "contracts:\n"
    "  - id: C-1\n"
    "    email: ana@vendor.example\n"
    "    given_name: Ana\n"
    "    family_name: Lima\n"
    "    roles: [developer]\n"
    "    start: 2026-01-01\n"
    "    end: 2026-12-31\n"
    "    attributes:\n" + bomb(indent="      ")
)


def source(path: Path, **settings: Any) -> FileSource:
    return FileSource(path=path, **settings)


def read(path: Path, text: str | bytes, **settings: Any) -> list[Any]:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return file_source.read(source(path, **settings))


# --- any parser error is a source error, on one line ---------------------------------


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("deep.json", DEEP_JSON, "nested too deeply"),
        ("deep.yaml", "contracts: " + "[" * 200_000 + "]" * 200_000, "nesting depth"),
        ("nested.yaml", "contracts: " + "[" * 100 + "]" * 100, "deeper than 64 levels"),
        ("deep-record.json", '{"contracts": [' + "[" * 100 + "]" * 100 + "]}", "deeper than"),
        ("broken.json", '{"contracts": [{"id": "C-1",]}', "Expecting property name"),
        ("broken.yaml", "contracts: [ {id: C-2, broken\n", "line 2"),
        ("latin1.json", b'{"contracts": [{"given_name": "Jos\xe9"}]}', "utf-8"),
        ("latin1.yaml", b"contracts:\n  - given_name: Jos\xe9\n", "UTF-8"),
        ("latin1.csv", b"id,given_name\nC-1,Jos\xe9\n", "utf-8"),
        ("quote.csv", b'id,given_name\nC-1,"Ana\n', "line 2: unexpected end of data"),
        ("bomb.yaml", BOMB_BESIDE, "alias bomb"),
        ("recursive.yaml", "contracts: &c [*c]\n", "inside the node it names"),
        ("tagged.yaml", "contracts: !!python/object:os.system {}\n", "not supported"),
        ("two.yaml", "contracts: []\n---\ncontracts: []\n", "single document"),
        ("scalar.yaml", "just text\n", "expected a top-level 'contracts:' list"),
        ("empty.csv", b"", "empty CSV"),
    ],
)
def test_every_parse_failure_is_a_one_line_source_error_naming_the_file(
    tmp_path: Path, name: str, content: str | bytes, says: str
) -> None:
    with pytest.raises(SourceError) as caught:
        read(tmp_path / name, content)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / name))
    assert says in message
    assert "\n" not in message


@pytest.mark.parametrize("fault", [MemoryError(), RecursionError("maximum recursion depth")])
def test_the_parser_running_out_of_memory_or_stack_is_a_source_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: BaseException
) -> None:
    def fail(*_args: object) -> list[Any]:
        raise fault

    monkeypatch.setattr(formats, "json_records", fail)
    with pytest.raises(SourceError, match=r"cannot parse contracts: (out of memory|nested too)"):
        read(tmp_path / "contracts.json", '{"contracts": []}')


def test_an_unreadable_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read contracts"):
        file_source.read(source(tmp_path / "missing.yaml"))


# --- size ------------------------------------------------------------------------------


def test_a_file_over_max_bytes_is_refused_naming_its_size_and_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "contracts.csv"
    path.write_bytes(b"id,email\n" + b"C-1,ana@vendor.example\n" * 100)

    with pytest.raises(SourceError) as caught:
        file_source.read(source(path, max_bytes=1000))

    message = str(caught.value)
    assert message.startswith(f"{path}: the file is ")
    assert f"({path.stat().st_size} bytes), over source.max_bytes" in message
    assert "(1000 bytes)" in message
    assert len(file_source.read(source(path, max_bytes=path.stat().st_size))) == 100


def test_max_bytes_takes_units_and_defaults_to_64_mib(tmp_path: Path) -> None:
    assert source(tmp_path / "c.yaml").max_bytes == 64 << 20
    assert source(tmp_path / "c.yaml", max_bytes="2MiB").max_bytes == 2 << 20
    with pytest.raises(ValueError, match="greater than 0"):
        source(tmp_path / "c.yaml", max_bytes=0)


def test_the_config_loader_refuses_a_huge_config_and_an_alias_bomb(tmp_path: Path) -> None:
    config = tmp_path / "syncd.yaml"
    config.write_text(bomb() + "source: {path: contracts.yaml}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"syncd.yaml:\d+.*alias bomb"):
        load_config(config)

    config.write_text("#" * (yamlsrc.MAX_BYTES + 1), encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than the limit"):
        load_config(config)


# --- what the formats read, and where it came from -------------------------------------


def test_yaml_records_carry_the_line_of_their_list_item(tmp_path: Path) -> None:
    text = (
        "# contractors\n"
        "defaults: &defaults {vendor: Acme, roles: [developer]}\n"
        "contracts:\n"
        "  - id: C-1\n"
        "    <<: *defaults\n"
        "    start: 2026-01-01\n"
        "\n"
        "  - {id: C-2, vendor: Other, attributes: {floor: 3}}\n"
        "  - just text\n"
    )
    records = read(tmp_path / "contracts.yml", text)

    assert [r.origin for r in records] == ["contracts.yml:4", "contracts.yml:8", "contracts.yml:9"]
    assert records[0].fields == {
        "vendor": "Acme",
        "roles": ["developer"],
        "id": "C-1",
        "start": date(2026, 1, 1),
    }
    assert records[1].fields["attributes"] == {"floor": 3}
    assert records[2].fields == {}  # not a mapping: an invalid record, not a failed source


def test_csv_rows_keep_their_line_attributes_and_blank_cells(tmp_path: Path) -> None:
    text = (
        "\ufeffid, email ,roles,attributes.floor,\n"
        "C-1,ana@vendor.example,developer;ops,3,extra\n"
        "\n"
        'C-2,"bo@vendor.example","developer\n",\n'
        "C-3\n"
    )
    records = read(tmp_path / "contracts.csv", text.encode("utf-8"))

    assert [r.origin for r in records] == ["contracts.csv:2", "contracts.csv:5", "contracts.csv:6"]
    assert records[0].fields == {
        "id": "C-1",
        "email": "ana@vendor.example",
        "roles": "developer;ops",
        "attributes": {"floor": "3"},
    }
    assert records[1].fields["roles"] == "developer"
    assert records[2].fields == {"id": "C-3", "email": "", "roles": "", "attributes": {"floor": ""}}


def test_json_records_are_numbered_and_fields_are_renamed(tmp_path: Path) -> None:
    text = json.dumps([{"cid": "C-1", "mail": "ana@vendor.example"}, "junk"])
    records = read(tmp_path / "hr.json", text, fields={"id": "cid", "email": "mail"})

    assert [(r.origin, r.fields) for r in records] == [
        ("hr.json#1", {"id": "C-1", "email": "ana@vendor.example"}),
        ("hr.json#2", {}),
    ]


def test_yaml_shares_an_anchor_and_keeps_the_lines_of_the_whole_config() -> None:
    doc = yamlsrc.parse(b"a: &x [1, 2]\nb:\n  c: *x\n  d:\n    - e\n", "syncd.yaml")

    assert doc.data["b"]["c"] is doc.data["a"]
    assert doc.line(("b", "d", 0)) == 5
    assert doc.line(("b", "c")) == 3
    assert doc.line(("b", "nothing", "here")) == 2


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.dates(),
    st.datetimes(),
    st.text(),
    st.sampled_from(["yes", "No", "~", "null", "0x1F", "1_000", "2026-01-01", "<<", "=", "+1"]),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.booleans()), inner, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=DOCUMENTS, flow=st.sampled_from([None, True, False]))
def test_yaml_is_read_as_the_pyyaml_safe_loader_reads_it(data: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)

    assert yamlsrc.parse(text.encode("utf-8"), "t.yaml").data == yaml.safe_load(text)


# --- bounded memory, end to end ---------------------------------------------------------


def write_config(folder: Path, source_name: str) -> Path:
    config = folder / "syncd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "source": {"type": "file", "path": source_name},
                "roles": {"developer": {"corp": ["cn=devs,dc=example,dc=test"]}},
                "targets": {
                    "corp": {
                        "type": "ldap",
                        "urls": "ldaps://127.0.0.1:1",
                        "bind_user": "cn=syncd,dc=example,dc=test",
                        "base_dn": "ou=people,dc=example,dc=test",
                        "password_env": "SYNCD_TEST_BIND_PASSWORD",
                    }
                },
                "audit": {"path": "audit.jsonl"},
                "daemon": {"state_dir": "state"},
            }
        ),
        encoding="utf-8",
    )
    return config


# ``python -m syncd`` that also writes its peak RSS (VmHWM, kB) to a file. The kernel's
# ru_maxrss of a child would count the forked test process too.
MEASURED_SYNCD = """
import sys
from pathlib import Path
from syncd.cli import main
peak = Path(sys.argv[1])
try:
    code = main(sys.argv[2:])
finally:
    status = Path("/proc/self/status").read_text().splitlines()
    peak.write_text(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
raise SystemExit(code)
"""


def plan(folder: Path, source_name: str, content: str) -> tuple[int, str, float]:
    """``syncd plan`` in a subprocess: exit code, stderr, and its peak RSS in MB."""
    (folder / source_name).write_text(content, encoding="utf-8")
    config = write_config(folder, source_name)
    peak = folder / "peak"
    done = subprocess.run(
        [sys.executable, "-c", MEASURED_SYNCD, str(peak), "-c", str(config), "plan"],
        capture_output=True,
        text=True,
        env={**os.environ, "SYNCD_TEST_BIND_PASSWORD": "unused"},
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr, int(peak.read_text()) / 1024


def test_plan_on_a_deeply_nested_json_source_exits_2_with_one_line(tmp_path: Path) -> None:
    code, stderr, _ = plan(tmp_path, "contracts.json", DEEP_JSON)

    assert code == 2
    assert stderr.splitlines() == [
        f"source error, nothing changed: {tmp_path / 'contracts.json'}: cannot parse "
        "contracts: nested too deeply to parse"
    ]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("content", [BOMB_BESIDE, BOMB_INSIDE], ids=["beside", "inside"])
def test_plan_on_an_alias_bomb_is_a_source_error_in_bounded_memory(
    tmp_path: Path, content: str
) -> None:
    code, stderr, peak_mb = plan(tmp_path, "contracts.yaml", content)

    assert code == 2
    [line] = stderr.splitlines()
    assert line.startswith("source error, nothing changed: ")
    assert "alias bomb" in line
    assert peak_mb < 200, f"syncd plan peaked at {peak_mb:.0f} MB"


# --- the daemon keeps running --------------------------------------------------------


@pytest.fixture
def daemon_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    monkeypatch.setenv("SYNCD_TEST_BIND_PASSWORD", "unused")
    for name in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(name, raising=False)
    bench = Bench(tmp_path)
    bench.write_config()
    yield bench
    for running in bench.running:
        if running.thread.is_alive():
            running.controls.request_stop()
            running.thread.join(10)


@pytest.mark.parametrize(
    ("name", "hostile"),
    [("contracts.json", DEEP_JSON), ("contracts.yaml", BOMB_INSIDE)],
    ids=["deep-json", "alias-bomb"],
)
def test_the_daemon_stays_up_on_a_hostile_source_and_reports_degraded(
    daemon_bench: Bench, name: str, hostile: str
) -> None:
    bench = daemon_bench
    config = yaml.safe_load(bench.config_path.read_text(encoding="utf-8"))
    config["source"]["path"] = name
    bench.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    good = {"contracts": [contract("C-1", "ana", in_days(10))]}
    path = bench.folder / name
    path.write_text(json.dumps(good, default=str), encoding="utf-8")
    running = bench.started()
    assert running.daemon.health.answer()[0] == 200

    replacement = bench.folder / (name + ".new")
    replacement.write_text(hostile, encoding="utf-8")
    replacement.replace(path)
    wait_for(lambda: running.daemon.health.status != "ok", 5)

    code, body = running.daemon.health.answer()
    assert (code, body["status"]) == (503, "degraded")
    assert body["reason"].startswith(f"source unreadable: {path}: cannot parse contracts")
    assert running.thread.is_alive()
    assert bench.corp.accounts["ana@vendor.example"].enabled  # planned from the snapshot
    assert running.stop() < 5


def test_timestamps_stay_what_pyyaml_makes_of_them() -> None:
    doc = yamlsrc.parse(b"- 2026-01-01\n- 2026-01-01T10:00:00+01:00\n- '2026-01-01'\n", "t")

    assert type(doc.data[0]) is date
    assert type(doc.data[1]) is datetime
    assert doc.data[2] == "2026-01-01"
