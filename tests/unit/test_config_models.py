"""The config models themselves (``syncd.config``): documented, re-exported, and each
target kind's own checks, located relative to the target."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

import syncd.config
from syncd.config import AdTarget, Config, LdapTarget, Problem, ScimTarget, load_config
from syncd.errors import ConfigError


def _modules() -> list[ModuleType]:
    names = [info.name for info in pkgutil.iter_modules(syncd.config.__path__)]
    return [syncd.config, *(importlib.import_module(f"syncd.config.{n}") for n in names)]


def _classes() -> dict[str, type]:
    return {
        f"{module.__name__}.{name}": cls
        for module in _modules()
        for name, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
    }


MODELS = {name: cls for name, cls in _classes().items() if issubclass(cls, BaseModel)}


def test_the_walk_finds_every_model() -> None:
    names = {cls.__name__ for cls in MODELS.values()}
    assert {"Config", "LdapTarget", "AdTarget", "ScimTarget", "AuditConfig"} <= names


@pytest.mark.parametrize("cls", list(_classes().values()), ids=list(_classes()))
def test_every_class_has_a_docstring(cls: type) -> None:
    assert (cls.__dict__.get("__doc__") or "").strip()


@pytest.mark.parametrize("model", list(MODELS.values()), ids=list(MODELS))
def test_every_field_is_described(model: type[BaseModel]) -> None:
    undocumented = [
        name for name, field in model.model_fields.items() if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_the_json_schema_carries_the_descriptions() -> None:
    schema = Config.model_json_schema()
    ldap = schema["$defs"]["LdapTarget"]["properties"]
    assert "StartTLS" in ldap["start_tls"]["description"]
    assert ldap["page_size"]["default"] == 500


@pytest.mark.parametrize(
    "name",
    [
        "AD_OWN_ATTRIBUTES",
        "DEFAULT_SCIM_ATTRIBUTES",
        "ENTERPRISE_USER",
        "AdTarget",
        "AuditConfig",
        "Config",
        "DaemonConfig",
        "FileSource",
        "LdapTarget",
        "ScimTarget",
        "TargetConfig",
        "config_path",
        "load_config",
        "read_secret",
        "secret_problem",
    ],
)
def test_names_used_elsewhere_are_exported_by_the_package(name: str) -> None:
    assert name in syncd.config.__all__
    assert getattr(syncd.config, name) is not None


def test_everything_in_all_exists() -> None:
    assert sorted(set(syncd.config.__all__)) == sorted(syncd.config.__all__)
    for name in syncd.config.__all__:
        assert hasattr(syncd.config, name), name


LDAP: dict[str, Any] = {
    "type": "ldap",
    "urls": "ldaps://ldap.example.test",
    "bind_user": "cn=syncd,dc=example,dc=test",
    "base_dn": "ou=contractors,dc=example,dc=test",
    "password_env": "SYNCD_TEST_PASSWORD",
}
AD: dict[str, Any] = {
    "type": "ad",
    "urls": ["ldaps://dc1.corp.example.test"],
    "bind_user": "svc-syncd@corp.example.test",
    "base_dn": "OU=Contractors,DC=corp,DC=example,DC=test",
    "password_env": "SYNCD_TEST_PASSWORD",
}
SCIM: dict[str, Any] = {
    "type": "scim",
    "url": "https://app.example.test/scim/v2",
    "token_env": "SYNCD_TEST_TOKEN",
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PASSWORD", "x")
    monkeypatch.setenv("SYNCD_TEST_TOKEN", "x")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.mark.parametrize(
    ("cls", "data", "group", "expected"),
    [
        pytest.param(LdapTarget, LDAP, "cn=devs,ou=groups,dc=example,dc=test", None, id="ldap-dn"),
        pytest.param(LdapTarget, LDAP, "devs", "group DN is not a valid DN", id="ldap-name"),
        pytest.param(LdapTarget, LDAP, "", "group DN is not a valid DN", id="ldap-empty"),
        pytest.param(AdTarget, AD, "CN=Devs,OU=Groups,DC=corp,DC=com", None, id="ad-dn"),
        pytest.param(AdTarget, AD, "Devs", "group DN is not a valid DN", id="ad-name"),
        pytest.param(ScimTarget, SCIM, "developers", None, id="scim-name"),
        pytest.param(ScimTarget, SCIM, "cn=devs,dc=x", None, id="scim-dn-is-a-name-too"),
        pytest.param(ScimTarget, SCIM, "  ", "empty group name", id="scim-blank"),
    ],
)
def test_group_problem_per_target_kind(
    cls: type[LdapTarget | AdTarget | ScimTarget],
    data: dict[str, Any],
    group: str,
    expected: str | None,
) -> None:
    problem = cls.model_validate(data).group_problem(group)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        message, fix = problem
        assert message == expected
        assert fix


@pytest.mark.parametrize(
    ("cls", "data"),
    [(LdapTarget, LDAP), (AdTarget, AD), (ScimTarget, SCIM)],
    ids=["ldap", "ad", "scim"],
)
def test_a_sound_target_has_no_problems(
    cls: type[LdapTarget | AdTarget | ScimTarget], data: dict[str, Any]
) -> None:
    assert cls.model_validate(data).problems() == []


@pytest.mark.parametrize(
    ("cls", "data", "change", "path", "needle"),
    [
        pytest.param(
            LdapTarget, LDAP, {"disable": {"method": "attribute"}}, ("disable",), "disabled_value",
            id="ldap-disable",
        ),
        pytest.param(
            LdapTarget, LDAP, {"attributes": {"cn": "{nope}"}}, ("attributes", "cn"), "{nope}",
            id="ldap-template",
        ),
        pytest.param(
            LdapTarget, LDAP, {"password_env": "SYNCD_TEST_SURELY_UNSET"}, ("password_env",),
            "SYNCD_TEST_SURELY_UNSET", id="ldap-password",
        ),
        pytest.param(
            AdTarget, AD, {"urls": ["ldaps://dc1", "ldap://dc2"]}, ("urls", 1), "encrypted",
            id="ad-plain-url",
        ),
        pytest.param(
            AdTarget, AD, {"attributes": {"sAMAccountName": "{username}"}},
            ("attributes", "sAMAccountName"), "syncd sets this attribute itself",
            id="ad-own-attribute",
        ),
        pytest.param(
            AdTarget, AD, {"bind_user": "svc-syncd"}, ("bind_user",), "neither a UPN nor a DN",
            id="ad-bind-user",
        ),
        pytest.param(
            ScimTarget, SCIM, {"attributes": {"name.givenName": "{x}"}},
            ("attributes", "name.givenName"), "unknown placeholder {x}", id="scim-dotted-path",
        ),
        pytest.param(
            ScimTarget, SCIM, {"token_url": "https://login.example.test/token"}, ("token_url",),
            "not both", id="scim-token-and-token-url",
        ),
    ],
)  # fmt: skip
def test_target_problems_are_located_relative_to_the_target(
    cls: type[LdapTarget | AdTarget | ScimTarget],
    data: dict[str, Any],
    change: dict[str, Any],
    path: tuple[str | int, ...],
    needle: str,
) -> None:
    problems = cls.model_validate({**data, **change}).problems()
    assert [p.path for p in problems if needle in p.message] == [path]


def test_problem_within_prefixes_its_path() -> None:
    problem = Problem(("urls", 0), "bad", "fix it")
    assert problem.within("targets", "corp-ad") == Problem(
        ("targets", "corp-ad", "urls", 0), "bad", "fix it"
    )


MIXED = """\
source:
  type: file
  path: contracts.yaml
roles:
  developer:
    corp-ldap:
      - nodn
    corp-ad:
      - Developers
    app:
      - ""
      - developers
targets:
  corp-ldap:
    type: ldap
    urls: ldaps://ldap.example.test
    bind_user: cn=syncd,dc=example,dc=test
    base_dn: ou=contractors,dc=example,dc=test
    password_env: SYNCD_TEST_PASSWORD
  corp-ad:
    type: ad
    urls: [ldaps://dc1.corp.example.test]
    bind_user: svc-syncd@corp.example.test
    base_dn: OU=Contractors,DC=corp,DC=example,DC=test
    password_env: SYNCD_TEST_PASSWORD
  app:
    type: scim
    url: http://app.example.test/scim/v2
    token_env: SYNCD_TEST_TOKEN
audit:
  hmac_key_file: /nonexistent/audit-key
"""


def test_roles_then_audit_then_targets_each_checked_by_its_own_kind(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text(MIXED, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert all(problem.fix for problem in info.value.problems)
    lines = MIXED.splitlines()
    found = [(p.field, lines[(p.line or 0) - 1].strip(), p.message) for p in info.value.problems]
    assert found == [
        ("roles.developer.corp-ldap[0]", "- nodn", "group DN is not a valid DN"),
        ("roles.developer.corp-ad[0]", "- Developers", "group DN is not a valid DN"),
        ("roles.developer.app[0]", '- ""', "empty group name"),
        ("audit.hmac_key_file", "hmac_key_file: /nonexistent/audit-key",
         "/nonexistent/audit-key does not exist"),
        ("audit.key_id", "audit:", "an HMAC key needs a key_id"),
        ("targets.app.url", "url: http://app.example.test/scim/v2",
         "the token would cross the network unencrypted"),
    ]  # fmt: skip
