"""``type: scim`` targets in the config file (``syncd.config``): offline, no server.
Every problem names file, line and field; secrets never come from the YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import DEFAULT_SCIM_ATTRIBUTES, ScimTarget, load_config
from syncd.errors import ConfigError

CONFIG = """\
source:
  type: file
  path: contracts.yaml
roles:
  developer:
    app:
      - developers
      - vpn-users
targets:
  app:
    type: scim
    url: https://api.example.test/scim/v2
    token_file: scim-token
"""


@pytest.fixture(autouse=True)
def _token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "scim-token").write_text("t0ken-Value\n")


def load(tmp_path: Path, text: str) -> ScimTarget:
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    target = load_config(path).targets["app"]
    assert isinstance(target, ScimTarget)
    return target


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "syncd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p).replace(str(path), "syncd.yaml") for p in info.value.problems]


def test_a_minimal_scim_target_loads_with_its_defaults(tmp_path: Path) -> None:
    target = load(tmp_path, CONFIG)

    assert target.read_token() == "t0ken-Value"
    assert target.attributes == DEFAULT_SCIM_ATTRIBUTES
    assert (target.external_id_prefix, target.bulk, target.concurrency) == ("syncd:", True, 4)
    config = load_config(tmp_path / "syncd.yaml")
    policy = config.target_policy("app")
    assert policy.native_expiry is False
    assert policy.groups_by_role["developer"] == ("developers", "vpn-users")


def test_a_relative_token_file_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "scim-token").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    assert load(tmp_path, CONFIG).read_token() == "from-systemd"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "url: https://",
            "url: http://",
            "syncd.yaml:12 targets.app.url: the token would cross the network unencrypted "
            "(fix: use https://, or set allow_plaintext: true explicitly)",
            id="plaintext",
        ),
        pytest.param(
            "    token_file: scim-token\n",
            "    token_file: scim-token\n    token: hunter2\n",
            "syncd.yaml:14 targets.app.token: secrets are never read from the config file "
            "(fix: use token_file or token_env)",
            id="inline-token",
        ),
        pytest.param(
            "    token_file: scim-token\n",
            "",
            "syncd.yaml:10 targets.app.token_file: no token_file or token_env given",
            id="no-token",
        ),
        pytest.param(
            "    token_file: scim-token\n",
            "    token_url: https://login.example.test/token\n    client_secret_env: S_UNSET\n",
            "syncd.yaml:10 targets.app.client_id: token_url needs a client_id",
            id="client-credentials-without-client-id",
        ),
        pytest.param(
            "      - vpn-users\n",
            "      - ''\n",
            "syncd.yaml:8 roles.developer.app[1]: empty group name",
            id="empty-group",
        ),
        pytest.param(
            "    token_file: scim-token\n",
            "    token_file: scim-token\n    attributes:\n      phoneNumbers: '{attributes.tel}'\n",
            "syncd.yaml:15 targets.app.attributes.phoneNumbers: not a SCIM attribute syncd can "
            "fill",
            id="unsupported-attribute",
        ),
        pytest.param(
            "    token_file: scim-token\n",
            "    token_file: scim-token\n    attributes:\n      title: '{job}'\n",
            "syncd.yaml:15 targets.app.attributes.title: unknown placeholder {job}",
            id="bad-placeholder",
        ),
        pytest.param(
            "    type: scim\n",
            "    type: scim\n    base_dn: ou=x,dc=example,dc=test\n",
            "syncd.yaml:12 targets.app.base_dn: unknown key "
            "(fix: base_dn is a key of ldap and ad targets, not of scim ones: remove it)",
            id="ldap-field-on-scim",
        ),
    ],
)
def test_each_problem_names_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert CONFIG.count(old) == 1
    found = problems(tmp_path, CONFIG.replace(old, new))

    assert any(p.startswith(expected) for p in found), found
    assert not any("hunter2" in p for p in found)


def test_an_extension_attribute_of_another_schema_is_accepted(tmp_path: Path) -> None:
    custom = "urn:example:params:scim:schemas:extension:acme:2.0:User:badge"
    text = CONFIG + f"    attributes:\n      '{custom}': '{{attributes.badge}}'\n"

    assert list(load(tmp_path, text).attributes) == [custom]
