"""Config errors that teach (``syncd.config.teach``, ``syncd.config.loading``): the
closest known key, the place a key lives now, an example of the right shape, every
problem of a file in one run; and the vocabulary ``ldap`` and ``ad`` share, old names
still read with a warning. Messages are asserted verbatim: they are the interface."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import get_origin

import pytest

from syncd.config import AdTarget, DirectoryTarget, LdapTarget, load_config
from syncd.errors import ConfigError
from tests.unit.test_config_models import MODELS

GOOD = """\
source:
  path: contracts.yaml
roles:
  developer:
    corp-ldap: [cn=developers,ou=groups,dc=example,dc=test]
targets:
  corp-ldap:
    type: ldap
    urls: ldaps://ldap.example.test:636
    bind_user: cn=syncd,ou=services,dc=example,dc=test
    base_dn: ou=contractors,dc=example,dc=test
    password_env: SYNCD_TEST_PASSWORD
"""


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PASSWORD", "x")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def errors(tmp_path: Path, text: str) -> list[str]:
    """Every problem ``load_config`` reports, as printed, without the folder."""
    path = tmp_path / "syncd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(problem).removeprefix(f"{tmp_path}/") for problem in info.value.problems]


def edit(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


def test_the_good_config_loads_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_config(path).warnings() == []


def test_targets_written_as_a_list_get_an_example_of_the_mapping(tmp_path: Path) -> None:
    text = GOOD.split("targets:")[0] + (
        "targets:\n  - name: corp-ldap\n    type: ldap\n    urls: ldaps://ldap.example.test:636\n"
    )
    assert errors(tmp_path, text) == [
        "syncd.yaml:6 targets: expected a mapping keyed by target name, found a list (fix: "
        'write each entry as KEY: with its value indented below it, not as a "- " item, '
        "e.g. targets: {corp-ldap: {type: ldap, urls: ['ldaps://ldap.example.com:636'], "
        "bind_user: 'cn=syncd,ou=services,dc=example,dc=com', password_file: "
        "ldap-bind-password, base_dn: 'ou=contractors,dc=example,dc=com'}})"
    ]


def test_a_key_at_the_wrong_level_names_where_it_lives(tmp_path: Path) -> None:
    assert errors(tmp_path, GOOD + "state_dir: /var/lib/syncd\n") == [
        "syncd.yaml:13 state_dir: unknown key "
        "(fix: did you mean daemon.state_dir? move it under daemon:)"
    ]


def test_a_misplaced_key_does_not_hide_a_plaintext_url(tmp_path: Path) -> None:
    text = edit("ldaps://ldap.example.test:636", "ldap://ldap.example.test") + "interval: 5m\n"
    assert errors(tmp_path, text) == [
        "syncd.yaml:13 interval: unknown key "
        "(fix: did you mean daemon.interval? move it under daemon:)",
        "syncd.yaml:9 targets.corp-ldap.urls: the bind password would cross the network "
        "unencrypted (fix: use ldaps://, set start_tls: true, or set allow_plaintext: true "
        "explicitly)",
    ]


def test_unknown_keys_inside_a_target_do_not_hide_its_other_problems(tmp_path: Path) -> None:
    text = edit(
        "    base_dn: ou=contractors,dc=example,dc=test\n",
        "    base_dn: contractors\n    starttls: true\n    token_file: token\n",
    )
    assert errors(tmp_path, text) == [
        "syncd.yaml:12 targets.corp-ldap.starttls: unknown key (fix: did you mean start_tls?)",
        "syncd.yaml:13 targets.corp-ldap.token_file: unknown key "
        "(fix: token_file is a key of scim targets, not of ldap ones: remove it)",
        "syncd.yaml:11 targets.corp-ldap.base_dn: not a valid DN "
        "(fix: write it like ou=contractors,dc=example,dc=com)",
    ]


def test_a_missing_roles_section_says_what_it_looks_like(tmp_path: Path) -> None:
    text = GOOD.replace(
        "roles:\n  developer:\n    corp-ldap: [cn=developers,ou=groups,dc=example,dc=test]\n", ""
    )
    assert errors(tmp_path, text) == [
        "syncd.yaml:1 roles: missing: this field is required (fix: add it, e.g. roles: "
        "{developer: {corp-ldap: ['cn=developers,ou=groups,dc=example,dc=com']}})"
    ]


def test_an_invalid_target_is_not_also_missing_from_the_roles(tmp_path: Path) -> None:
    text = edit("    bind_user: cn=syncd,ou=services,dc=example,dc=test\n", "").replace(
        "[cn=developers,ou=groups,dc=example,dc=test]", "[developers]"
    )
    assert errors(tmp_path, text) == [
        "syncd.yaml:7 targets.corp-ldap.bind_user: missing: this field is required "
        "(fix: add it, e.g. bind_user: 'cn=syncd,ou=services,dc=example,dc=com')"
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "    bind_user:", "    bindUser:",
            [
                "syncd.yaml:7 targets.corp-ldap.bind_user: missing: this field is required "
                "(fix: add it, e.g. bind_user: 'cn=syncd,ou=services,dc=example,dc=com')",
                "syncd.yaml:10 targets.corp-ldap.bindUser: unknown key "
                "(fix: did you mean bind_user?)",
            ],
            id="close-to-the-new-name",
        ),
        pytest.param(
            "    bind_user:", "    bindDN:",
            [
                "syncd.yaml:7 targets.corp-ldap.bind_user: missing: this field is required "
                "(fix: add it, e.g. bind_user: 'cn=syncd,ou=services,dc=example,dc=com')",
                "syncd.yaml:10 targets.corp-ldap.bindDN: unknown key "
                "(fix: did you mean bind_user?)",
            ],
            id="close-to-the-old-name",
        ),
        pytest.param(
            "    type: ldap", "    type: ldpa",
            ["syncd.yaml:7 targets.corp-ldap: unknown type 'ldpa' (fix: did you mean ldap?)"],
            id="target-type",
        ),
        pytest.param(
            "    type: ldap\n", "",
            ["syncd.yaml:7 targets.corp-ldap: no type given "
             "(fix: add type: with one of ldap, ad, scim)"],
            id="no-target-type",
        ),
        pytest.param(
            "    type: ldap\n", "    type: ldap\n    member_attribute: uniquemember\n",
            ["syncd.yaml:9 targets.corp-ldap.member_attribute: Input should be 'member' or "
             "'uniqueMember' (fix: did you mean uniqueMember?)"],
            id="literal",
        ),
        pytest.param(
            "source:\n  path: contracts.yaml\n", "source: contracts.yaml\n",
            ["syncd.yaml:1 source: expected a mapping, found text (fix: write its settings "
             "as KEY: VALUE lines indented below it, e.g. source: {type: file, path: "
             "contracts.yaml})"],
            id="section-as-text",
        ),
        pytest.param(
            "    corp-ldap: [cn=developers,ou=groups,dc=example,dc=test]",
            "    corp-ldap: cn=developers,ou=groups,dc=example,dc=test",
            ["syncd.yaml:5 roles.developer.corp-ldap: expected a list, found text (fix: "
             'write [a, b], or one "- " item per line, e.g. corp-ldap: '
             "['cn=developers,ou=groups,dc=example,dc=com'])"],
            id="groups-as-text",
        ),
        pytest.param(
            "source:\n", "policy:\n  lead_time: one day\nsource:\n",
            ["syncd.yaml:2 policy.lead_time: not a duration: 'one day' "
             "(fix: use e.g. 30s, 15m, 12h, 90d, 2w, 1d12h, or 300 for seconds)"],
            id="duration",
        ),
        pytest.param(
            "    type: ldap\n", "    type: ldap\n    page_size: 0\n",
            ["syncd.yaml:9 targets.corp-ldap.page_size: Input should be greater than or "
             "equal to 1 (fix: use 1 or more)"],
            id="below-the-bound",
        ),
        pytest.param(
            "    urls: ldaps://ldap.example.test:636", "    urls: []",
            ["syncd.yaml:9 targets.corp-ldap.urls: List should have at least 1 item after "
             "validation, not 0 (fix: give at least 1)"],
            id="no-url",
        ),
        pytest.param(
            "source:\n", "daemon:\n  intervall: 5m\nsource:\n",
            ["syncd.yaml:2 daemon.intervall: unknown key (fix: did you mean interval?)"],
            id="typo-in-a-section",
        ),
        pytest.param(
            "  path: contracts.yaml\n", "  path: contracts.yaml\n  roles: {}\n",
            ["syncd.yaml:3 source.roles: unknown key "
             "(fix: did you mean roles? move it to the top level)"],
            id="a-top-level-key-inside-a-section",
        ),
        pytest.param(
            "    type: ldap\n", "    type: ldap\n    upn_suffix: corp.example.test\n",
            ["syncd.yaml:9 targets.corp-ldap.upn_suffix: unknown key "
             "(fix: upn_suffix is a key of ad targets, not of ldap ones: remove it)"],
            id="a-key-of-another-target-kind",
        ),
        pytest.param(
            "source:\n", "daemon:\n  xyzzy: 1\nsource:\n",
            ["syncd.yaml:2 daemon.xyzzy: unknown key (fix: remove it; the keys here are: "
             "interval, state_dir, metrics_address, ready_timeout, backoff_max, "
             "source_debounce, targeted_cycles, trigger_token_file, trigger_min_interval)"],
            id="nothing-alike",
        ),
    ],
)  # fmt: skip
def test_errors_that_teach(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    assert errors(tmp_path, edit(old, new)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("300s", timedelta(seconds=300)),
        ("300", timedelta(seconds=300)),
        ("15m", timedelta(minutes=15)),
        ("12h", timedelta(hours=12)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
    ],
)
def test_every_documented_duration_form_is_read(
    tmp_path: Path, text: str, expected: timedelta
) -> None:
    path = tmp_path / "syncd.yaml"
    path.write_text(GOOD + f"policy:\n  lead_time: {text}\n", encoding="utf-8")
    assert load_config(path).policy.lead_time == expected


def test_a_list_is_no_duration(tmp_path: Path) -> None:
    assert errors(tmp_path, GOOD + "policy:\n  lead_time: [1d]\n") == [
        "syncd.yaml:14 policy.lead_time: not a duration: ['1d'] "
        "(fix: use 30s, 300 (seconds), 15m, 12h, 1d, 2w, or several together: 1h30m, 1d12h)"
    ]


def test_the_old_names_of_the_ldap_target_load_with_a_warning(tmp_path: Path) -> None:
    text = edit("    urls:", "    url:").replace("    bind_user:", "    bind_dn:")
    path = tmp_path / "syncd.yaml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    target = config.targets["corp-ldap"]
    assert isinstance(target, LdapTarget)
    assert target.urls == ["ldaps://ldap.example.test:636"]
    assert target.bind_user == "cn=syncd,ou=services,dc=example,dc=test"
    assert config.warnings() == [
        f"{path}:9 targets.corp-ldap.url: the old name of urls, still read (fix: rename it urls)",
        f"{path}:10 targets.corp-ldap.bind_dn: the old name of bind_user, still read "
        "(fix: rename it bind_user)",
    ]


def test_problems_of_a_field_given_by_its_old_name_point_at_that_name(tmp_path: Path) -> None:
    text = edit("    urls: ldaps://ldap.example.test:636", "    url: ldap://ldap.example.test")
    assert errors(tmp_path, text) == [
        "syncd.yaml:9 targets.corp-ldap.url: the bind password would cross the network "
        "unencrypted (fix: use ldaps://, set start_tls: true, or set allow_plaintext: true "
        "explicitly)"
    ]


def test_an_old_name_next_to_the_new_one_is_refused(tmp_path: Path) -> None:
    text = edit("    urls:", "    url: ldaps://other.example.test\n    urls:")
    assert errors(tmp_path, text) == [
        "syncd.yaml:9 targets.corp-ldap.url: unknown key "
        "(fix: it is the old name of urls, which is given too: remove url)"
    ]


def test_ldap_and_ad_share_one_vocabulary() -> None:
    shared = set(DirectoryTarget.model_fields)
    assert {
        "urls", "bind_user", "password_file", "password_env", "start_tls", "ca_file",
        "tls_verify", "base_dn", "key_attribute", "timeout", "retries",
    } <= shared  # fmt: skip
    for model in (LdapTarget, AdTarget):
        assert shared <= set(model.model_fields)
        assert not {"url", "bind_dn"} & set(model.model_fields)


def test_a_target_moves_from_ldap_to_ad_by_changing_its_type() -> None:
    common = {
        "urls": "ldaps://dc1.corp.example.test",
        "bind_user": "CN=svc-syncd,OU=Services,DC=corp,DC=example,DC=test",
        "base_dn": "OU=Contractors,DC=corp,DC=example,DC=test",
        "password_env": "SYNCD_TEST_PASSWORD",
    }
    ldap = LdapTarget.model_validate({"type": "ldap", **common})
    ad = AdTarget.model_validate({"type": "ad", **common})
    assert ldap.problems() == ad.problems() == []
    assert ldap.urls == ad.urls == ["ldaps://dc1.corp.example.test"]


def test_both_directory_kinds_key_people_by_employee_number() -> None:
    assert LdapTarget.model_fields["key_attribute"].default == "employeeNumber"
    assert AdTarget.model_fields["key_attribute"].default == "employeeNumber"


def test_every_mapping_field_says_what_it_is_keyed_by() -> None:
    """``KEY -> VALUE`` opens the description of every mapping: errors say "a mapping
    keyed by KEY" from it."""
    mappings = [
        (name, field.description or "")
        for model in MODELS.values()
        for name, field in model.model_fields.items()
        if get_origin(field.annotation) is dict
    ]
    assert {name for name, _ in mappings} >= {"roles", "targets", "attributes", "fields"}
    assert [name for name, text in mappings if " -> " not in text.split(";")[0]] == []
