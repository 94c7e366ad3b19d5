"""The config's JSON Schema (``syncd config schema``, ``config/syncd.schema.json``):
generated from the models, every field described with its default, the shipped copy
current, and a real validator (jsonschema) agreeing with syncd on good and broken files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from syncd.config import config_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "syncd.schema.json"
EXAMPLE = REPO / "config" / "syncd.yaml"


def _properties(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(model, key, property schema) for every key of every object in the schema."""
    yield from (("Config", k, v) for k, v in schema["properties"].items())
    for name, definition in schema["$defs"].items():
        yield from ((name, k, v) for k, v in definition.get("properties", {}).items())


def _required(schema: dict[str, Any], model: str) -> set[str]:
    """The keys an object must have, also those an old name may stand in for."""
    definition = schema if model == "Config" else schema["$defs"][model]
    either = {
        needed[0]
        for rule in definition.get("allOf", [])
        for alternative in rule["anyOf"][:1]
        for needed in [alternative["required"]]
    }
    return set(definition.get("required", [])) | either


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SHIPPED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_field_has_a_description() -> None:
    schema = config_schema()
    undescribed = [
        f"{model}.{key}"
        for model, key, prop in _properties(schema)
        if not prop.get("description", "").strip()
    ]
    assert undescribed == []


def test_every_optional_field_has_its_default() -> None:
    schema = config_schema()
    without = [
        f"{model}.{key}"
        for model, key, prop in _properties(schema)
        if "default" not in prop
        and key not in _required(schema, model)
        and not prop.get("deprecated")
    ]
    assert without == []


def test_defaults_are_written_as_the_file_writes_them() -> None:
    defs = config_schema()["$defs"]
    assert defs["PolicyConfig"]["properties"]["orphan_grace"]["default"] == "1h"
    assert defs["PolicyConfig"]["properties"]["lead_time"]["default"] == "0s"
    assert defs["SafetyConfig"]["properties"]["max_deletes"]["default"] == 10
    assert defs["SafetyConfig"]["properties"]["max_source_drop"]["default"] == "20%"
    assert defs["AdTarget"]["properties"]["key_attribute"]["default"] == "employeeNumber"
    assert config_schema()["properties"]["daemon"]["default"] == {}


def test_the_old_names_are_in_the_schema_as_deprecated() -> None:
    ldap = config_schema()["$defs"]["LdapTarget"]["properties"]
    assert ldap["url"]["deprecated"] is True
    assert ldap["url"]["description"] == "Deprecated: the old name of urls."
    assert ldap["bind_dn"]["deprecated"] is True


def test_the_shipped_schema_is_the_generated_one() -> None:
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert shipped == config_schema(), "run: syncd config schema > config/syncd.schema.json"


def test_syncd_config_schema_prints_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "config", "schema"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == config_schema()


def test_the_example_config_names_the_schema_on_its_first_line() -> None:
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=./syncd.schema.json"
    assert (EXAMPLE.parent / "syncd.schema.json").is_file()


@pytest.mark.parametrize(
    "path", [EXAMPLE, REPO / "docker" / "syncd.yaml"], ids=["example", "docker"]
)
def test_the_shipped_configs_are_valid(path: Path) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [error.message for error in _validator().iter_errors(document)] == []


def _broken(change: str) -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    if change == "targets-as-a-list":
        document["targets"] = [{"name": name, **t} for name, t in document["targets"].items()]
    elif change == "misplaced-key":
        document["state_dir"] = "/var/lib/syncd"
    elif change == "no-roles":
        del document["roles"]
    elif change == "bad-duration":
        document["policy"]["lead_time"] = "one day"
    elif change == "unknown-target-type":
        document["targets"]["corp-ldap"]["type"] = "ldpa"
    return document


@pytest.mark.parametrize(
    ("change", "where", "needle"),
    [
        ("targets-as-a-list", ["targets"], "is not of type 'object'"),
        ("misplaced-key", [], "'state_dir' was unexpected"),
        ("no-roles", [], "'roles' is a required property"),
        ("bad-duration", ["policy", "lead_time"], "is not valid under any of the given schemas"),
        ("unknown-target-type", ["targets", "corp-ldap"], "is not valid under any"),
    ],
)
def test_a_broken_config_fails_the_schema(change: str, where: list[str], needle: str) -> None:
    found = [(list(e.absolute_path), e.message) for e in _validator().iter_errors(_broken(change))]
    assert [path for path, message in found if needle in message] == [where], found


def test_a_config_with_the_old_names_passes_the_schema() -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    target = document["targets"]["corp-ldap"]
    target["url"] = target.pop("urls")
    target["bind_dn"] = target.pop("bind_user")
    assert [error.message for error in _validator().iter_errors(document)] == []
