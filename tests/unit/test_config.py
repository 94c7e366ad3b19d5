"""Loading the YAML configuration, with every problem located (``syncd.config``)."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.core.policy import Limit
from syncd.errors import ConfigError, ConfigProblem

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """\
source:
  type: file
  path: contracts.yaml
policy:
  timezone: Europe/Berlin
  lead_time: 1d
roles:
  developer:
    corp-ldap:
      - cn=developers,ou=groups,dc=example,dc=test
      - cn=vpn-users,ou=groups,dc=example,dc=test
  writer:
    corp-ldap:
      - cn=wiki-editors,ou=groups,dc=example,dc=test
targets:
  corp-ldap:
    type: ldap
    urls: ldaps://ldap.example.test:636
    bind_user: cn=syncd,ou=services,dc=example,dc=test
    base_dn: ou=contractors,dc=example,dc=test
    password_file: PASSWORD_FILE
"""


@pytest.fixture(autouse=True)
def _no_credentials_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "bind-password"
    path.parent.mkdir()
    path.write_text("s3cret-value\n", encoding="utf-8")
    return path


def write(folder: Path, text: str, password: Path | None = None) -> Path:
    path = folder / "syncd.yaml"
    if password is not None:
        text = text.replace("PASSWORD_FILE", str(password))
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, start: str) -> int:
    """1-based number of the only line that starts with ``start`` (indentation included)."""
    found = [i for i, line in enumerate(text.splitlines(), 1) if line.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return info.value.problems


def edit(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def test_minimal_config_loads(tmp_path: Path, password_file: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL, password_file))
    assert config.source.path == tmp_path / "contracts.yaml"
    assert config.targets["corp-ldap"].password_file == password_file
    assert config.targets["corp-ldap"].read_secret() == "s3cret-value"
    policy = config.core_policy()
    assert policy.timezone.key == "Europe/Berlin"
    assert policy.lead_time == timedelta(days=1)
    assert policy.roles == frozenset({"developer", "writer"})
    assert policy.delete_after is None
    target = config.target_policy("corp-ldap")
    assert target.name == "corp-ldap"
    assert target.groups_by_role["developer"] == (
        "cn=developers,ou=groups,dc=example,dc=test",
        "cn=vpn-users,ou=groups,dc=example,dc=test",
    )
    assert target.managed_groups == frozenset(
        {
            "cn=developers,ou=groups,dc=example,dc=test",
            "cn=vpn-users,ou=groups,dc=example,dc=test",
            "cn=wiki-editors,ou=groups,dc=example,dc=test",
        }
    )
    assert target.safety.max_orphan_disables == Limit(10)
    assert "cn" in target.attributes
    assert target.native_expiry is True


def test_shipped_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = tmp_path / "syncd.yaml"
    shutil.copy(REPO / "config" / "syncd.yaml", example)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "ldap-bind-password").write_text("x", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(example)
    assert config.source.path == tmp_path / "contracts.yaml"
    assert config.targets


@pytest.mark.parametrize(
    ("old", "new", "field", "needle", "message"),
    [
        pytest.param(
            "      - cn=vpn-users,ou=groups,dc=example,dc=test",
            "      - not a dn",
            "roles.developer.corp-ldap[1]",
            "      - not a dn",
            "group DN is not a valid DN",
            id="bad-group-dn",
        ),
        pytest.param(
            "  writer:\n    corp-ldap:",
            "  writer:\n    corp-ldpa:",
            "roles.writer.corp-ldpa",
            "    corp-ldpa:",
            "no target named 'corp-ldpa'",
            id="unknown-target-in-roles",
        ),
        pytest.param(
            "    password_file: PASSWORD_FILE\n",
            "    password_file: PASSWORD_FILE\n    password: hunter2\n",
            "targets.corp-ldap.password",
            "    password: hunter2",
            "secrets are never read",
            id="inline-password",
        ),
        pytest.param(
            "    password_file: PASSWORD_FILE\n",
            "    password_file: /nonexistent/bind-password\n",
            "targets.corp-ldap.password_file",
            "    password_file:",
            "password_file /nonexistent/bind-password does not exist",
            id="missing-password-file",
        ),
        pytest.param(
            "    password_file: PASSWORD_FILE\n",
            "    password_env: SYNCD_TEST_SURELY_UNSET\n",
            "targets.corp-ldap.password_env",
            "    password_env:",
            "environment variable SYNCD_TEST_SURELY_UNSET is not set",
            id="password-env-unset",
        ),
        pytest.param(
            "    password_file: PASSWORD_FILE\n",
            "",
            "targets.corp-ldap.password_env",
            "  corp-ldap:",
            "no password_file or password_env given",
            id="no-password-at-all",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    starttls: true\n",
            "targets.corp-ldap.starttls",
            "    starttls:",
            "unknown key",
            id="typo-in-target",
        ),
        pytest.param(
            "policy:\n",
            "polcy:\n",
            "polcy",
            "polcy:",
            "unknown key",
            id="typo-at-top-level",
        ),
        pytest.param(
            "  timezone: Europe/Berlin",
            "  timezone: Europe/Berlinn",
            "policy.timezone",
            "  timezone:",
            "unknown IANA timezone 'Europe/Berlinn'",
            id="bad-timezone",
        ),
        pytest.param(
            "  lead_time: 1d",
            "  lead_time: one day",
            "policy.lead_time",
            "  lead_time:",
            "not a duration: 'one day'",
            id="bad-duration",
        ),
        pytest.param(
            "  lead_time: 1d",
            "  lead_time: 1d\n  delete_after: 90 days",
            "policy.delete_after",
            "  delete_after:",
            "not a duration",
            id="bad-delete-after",
        ),
        pytest.param(
            "roles:\n",
            "safety:\n  max_deletes: lots\nroles:\n",
            "safety.max_deletes",
            "  max_deletes:",
            "'lots' is not a count or a percentage",
            id="bad-limit",
        ),
        pytest.param(
            "  lead_time: 1d",
            "  lead_time: 1d\n  username:\n    pattern: '^[a-z'",
            "policy.username.pattern",
            "    pattern:",
            "not a valid regular expression",
            id="bad-username-pattern",
        ),
        pytest.param(
            "    urls: ldaps://ldap.example.test:636",
            "    urls: ldap://ldap.example.test",
            "targets.corp-ldap.urls",
            "    urls:",
            "unencrypted",
            id="plaintext-ldap",
        ),
        pytest.param(
            "    urls: ldaps://ldap.example.test:636",
            "    urls: [ldaps://ldap.example.test:636, https://ldap.example.test]",
            "targets.corp-ldap.urls[1]",
            "    urls:",
            "is not an ldap:// or ldaps:// URL",
            id="not-an-ldap-url",
        ),
        pytest.param(
            "    base_dn: ou=contractors,dc=example,dc=test",
            "    base_dn: contractors",
            "targets.corp-ldap.base_dn",
            "    base_dn:",
            "not a valid DN",
            id="bad-base-dn",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    dn_template: 'cn={given_name},{base_dn}'\n",
            "targets.corp-ldap.dn_template",
            "    dn_template:",
            "must contain {username}",
            id="dn-template-without-username",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    attributes:\n      cn: '{first_name}'\n",
            "targets.corp-ldap.attributes.cn",
            "      cn: '{first_name}'",
            "unknown placeholder {first_name}",
            id="unknown-placeholder",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    disable:\n      method: attribute\n",
            "targets.corp-ldap.disable",
            "    disable:",
            "method attribute needs attribute and disabled_value",
            id="disable-attribute-incomplete",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    member_attribute: memberUid\n",
            "targets.corp-ldap.member_attribute",
            "    member_attribute:",
            "Input should be 'member' or 'uniqueMember'",
            id="bad-literal",
        ),
        pytest.param(
            "    type: ldap\n",
            "    type: ldap\n    page_size: 0\n",
            "targets.corp-ldap.page_size",
            "    page_size:",
            "greater than or equal to 1",
            id="out-of-range",
        ),
        pytest.param(
            "    bind_user: cn=syncd,ou=services,dc=example,dc=test\n",
            "",
            "targets.corp-ldap.bind_user",
            "  corp-ldap:",
            "missing: this field is required",
            id="missing-bind-user",
        ),
        pytest.param(
            "  path: contracts.yaml\n",
            "",
            "source.path",
            "source:",
            "missing: this field is required",
            id="missing-source-path",
        ),
    ],
)
def test_each_problem_names_file_line_and_field(
    tmp_path: Path,
    password_file: Path,
    old: str,
    new: str,
    field: str,
    needle: str,
    message: str,
) -> None:
    text = edit(old, new)
    path = write(tmp_path, text, password_file)
    [problem] = problems_of(path)
    assert problem.file == str(path)
    assert problem.field == field
    assert problem.line == line_of(text, needle)
    assert message in problem.message
    assert problem.fix, "every error comes with a fix"
    assert str(problem).startswith(f"{path}:{problem.line} {field}: ")
    assert "hunter2" not in str(problem)


@pytest.mark.parametrize(
    "change",
    [
        "    urls: ldap://ldap.example.test\n    start_tls: true",
        "    urls: LDAP://ldap.example.test:389\n    start_tls: true",
        "    urls: ldap://ldap.example.test\n    allow_plaintext: true",
        "    urls: ldaps://ldap.example.test",
    ],
)
def test_encrypted_or_explicitly_plaintext_url_is_accepted(
    tmp_path: Path, password_file: Path, change: str
) -> None:
    text = edit("    urls: ldaps://ldap.example.test:636", change)
    config = load_config(write(tmp_path, text, password_file))
    assert config.targets["corp-ldap"].urls == [change.split("urls: ")[1].split("\n")[0]]


def test_several_problems_are_reported_together(tmp_path: Path, password_file: Path) -> None:
    text = (
        edit("  timezone: Europe/Berlin", "  timezone: Nowhere/Town")
        .replace("    bind_user:", "    bindUser:")
        .replace(
            "    password_file: PASSWORD_FILE", "    password_file: PASSWORD_FILE\n    password: x"
        )
    )
    path = write(tmp_path, text, password_file)
    problems = problems_of(path)
    assert {(p.field, p.line) for p in problems} == {
        ("targets.corp-ldap.password", line_of(text, "    password: x")),
        ("policy.timezone", line_of(text, "  timezone:")),
        ("targets.corp-ldap.bindUser", line_of(text, "    bindUser:")),
        ("targets.corp-ldap.bind_user", line_of(text, "  corp-ldap:")),
    }


def test_several_cross_field_problems_are_reported_together(
    tmp_path: Path, password_file: Path
) -> None:
    text = (
        edit("      - cn=vpn-users,ou=groups,dc=example,dc=test", "      - vpn")
        .replace("ldaps://ldap.example.test:636", "ldap://ldap.example.test")
        .replace("    corp-ldap:\n      - cn=wiki", "    elsewhere:\n      - cn=wiki")
    )
    path = write(tmp_path, text, password_file)
    problems = problems_of(path)
    assert [(p.field, p.line) for p in problems] == [
        ("roles.developer.corp-ldap[1]", line_of(text, "      - vpn")),
        ("roles.writer.elsewhere", line_of(text, "    elsewhere:")),
        ("targets.corp-ldap.urls", line_of(text, "    urls:")),
    ]
    assert all(p.fix for p in problems)


def test_relative_password_file_is_read_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "run-credentials"
    credentials.mkdir()
    (credentials / "ldap-bind-password").write_text("from-systemd\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = write(tmp_path, MINIMAL.replace("PASSWORD_FILE", "ldap-bind-password"))
    config = load_config(path)
    assert config.targets["corp-ldap"].read_secret() == "from-systemd"


def test_relative_password_file_missing_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "run-credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    text = MINIMAL.replace("PASSWORD_FILE", "ldap-bind-password")
    [problem] = problems_of(write(tmp_path, text))
    assert problem.field == "targets.corp-ldap.password_file"
    assert problem.line == line_of(text, "    password_file:")
    assert str(credentials / "ldap-bind-password") in problem.message


def test_relative_password_file_without_credentials_directory_is_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "ldap-bind-password").write_text("beside-config\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(write(folder, MINIMAL.replace("PASSWORD_FILE", "ldap-bind-password")))
    assert config.targets["corp-ldap"].read_secret() == "beside-config"


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path, password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    text = (
        edit("  path: contracts.yaml", "  path: data/contracts.csv").replace(
            "    type: ldap\n", "    type: ldap\n    ca_file: tls/ca.pem\n"
        )
        + "audit:\n  path: log/audit.jsonl\n"
    )
    config = load_config(write(folder, text, password_file))
    assert config.source.path == folder / "data" / "contracts.csv"
    assert config.targets["corp-ldap"].ca_file == folder / "tls" / "ca.pem"
    assert config.audit.path == folder / "log" / "audit.jsonl"


def test_absolute_source_path_is_kept(tmp_path: Path, password_file: Path) -> None:
    text = edit("  path: contracts.yaml", "  path: /srv/hr/contracts.yaml")
    config = load_config(write(tmp_path, text, password_file))
    assert config.source.path == Path("/srv/hr/contracts.yaml")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param("source: [unclosed\n", 2, "not valid YAML", id="bad-yaml"),
        pytest.param("", 1, "expected a mapping at the top level", id="empty"),
        pytest.param("- a\n- b\n", 1, "expected a mapping at the top level", id="a-list"),
    ],
)
def test_unusable_file(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    [problem] = problems_of(path)
    assert problem.file == str(path)
    assert problem.line == line
    assert message in problem.message


def test_missing_file(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "absent.yaml")
    assert problem.line is None
    assert "cannot read" in problem.message


def test_targets_that_are_not_a_mapping_are_a_config_error(
    tmp_path: Path, password_file: Path
) -> None:
    text = MINIMAL.split("targets:")[0] + "targets:\n  - corp-ldap\n"
    path = write(tmp_path, text, password_file)
    problems = problems_of(path)
    assert "targets" in {p.field for p in problems}
    assert all(p.file == str(path) for p in problems)
