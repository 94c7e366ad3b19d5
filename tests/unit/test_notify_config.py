"""The ``notify:`` section as ``load_config`` reads it, and the shipped templates as
the renderer fills them (a real Jinja2 environment over the real files)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.notify.message import Notice, NotifyError, Renderer

BASE: dict[str, Any] = {
    "source": {"type": "file", "path": "contracts.yaml"},
    "roles": {"developer": {"corp": ["cn=devs,dc=example,dc=test"]}},
    "targets": {
        "corp": {
            "type": "ldap",
            "urls": "ldaps://127.0.0.1:1",
            "bind_user": "cn=syncd,dc=example,dc=test",
            "base_dn": "ou=people,dc=example,dc=test",
            "password_env": "HOME",
        }
    },
}


def write(tmp_path: Path, notify: dict[str, Any]) -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(yaml.safe_dump({**BASE, "notify": notify}), encoding="utf-8")
    return path


def test_defaults_send_nothing_and_warn_at_14_3_and_1_days(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {}))
    assert config.notify.channels == []
    assert config.notify.warn_before == [timedelta(days=14), timedelta(days=3), timedelta(days=1)]
    assert config.notify.digest.every == "weekly"


def test_channels_and_their_files_resolve_as_other_paths_do(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("s3cret\n")
    (tmp_path / "hook-headers").write_text("Authorization: Bearer x\n")
    (tmp_path / "templates").mkdir()
    config = load_config(
        write(
            tmp_path,
            {
                "smtp": {
                    "host": "mail.example.com",
                    "from_address": "syncd@example.com",
                    "username": "syncd",
                    "password_file": "smtp-password",
                    "ca_file": "ca.pem",
                },
                "webhook": {"url": "https://hooks.example.com/x", "headers_file": "hook-headers"},
                "warn_before": ["7d", "12h"],
                "templates_dir": "templates",
            },
        )
    )
    assert config.notify.channels == ["smtp", "webhook"]
    assert config.notify.smtp is not None
    assert config.notify.webhook is not None
    assert config.notify.smtp.password_file == tmp_path / "smtp-password"
    assert config.notify.smtp.ca_file == tmp_path / "ca.pem"
    assert config.notify.webhook.headers_file == tmp_path / "hook-headers"
    assert config.notify.templates_dir == tmp_path / "templates"
    assert config.notify.warn_before == [timedelta(days=7), timedelta(hours=12)]


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ({"webhook": {"url": "http://hooks.example.com/x"}}, "is not an https:// URL"),
        (
            {
                "smtp": {
                    "host": "localhost",
                    "from_address": "a@b.c",
                    "tls": "none",
                    "username": "u",
                    "password_env": "HOME",
                }
            },
            "never sent over an unencrypted connection",
        ),
        (
            {"smtp": {"host": "m", "from_address": "a@b.c", "username": "u"}},
            "a username needs a password",
        ),
        ({"templates_dir": "missing"}, "is not a folder"),
        ({"warn_before": ["0s"]}, "thresholds must be positive"),
        ({"kinds": {"warnings": False}}, "warnings"),
    ],
)
def test_problems_are_located_under_notify(
    tmp_path: Path, notify: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, notify))
    assert expected in str(caught.value)
    assert "notify." in str(caught.value)


def notice(**values: Any) -> Notice:
    person = {"name": "Ana <b>Lopez</b>", "email": "ana@vendor.example", "vendor": "", "key": "k"}
    end = {"date": "Monday 01 March 2027", "time": "23:59", "zone": "CET", "utc": "x"}
    base = {
        "person": person,
        "end": end,
        "left": "3d",
        "stops": {"corp": ["cn=devs"]},
        "extend_text": "Ask the vendor desk.",
        "extend_link": "https://desk.example.com/extend?a=1&b=2",
    }
    return Notice(
        "warning",
        "warning:k:x:3d",
        ("sponsor@corp.example",),
        ("C-1",),
        "3d",
        False,
        MappingProxyType({**base, **values}),
    )


def test_the_shipped_warning_says_who_when_what_and_how_to_extend() -> None:
    rendered = Renderer().message(notice())
    assert rendered.subject == "Access of Ana <b>Lopez</b> ends Monday 01 March 2027"
    assert "ends on Monday 01 March 2027 at 23:59 CET" in rendered.text
    assert "C-1" in rendered.text
    assert "corp: cn=devs" in rendered.text
    assert "Ask the vendor desk." in rendered.text
    # HTML is escaped: a name cannot inject markup
    assert "Ana &lt;b&gt;Lopez&lt;/b&gt;" in rendered.html
    assert "<b>Lopez" not in rendered.html
    assert 'href="https://desk.example.com/extend?a=1&amp;b=2"' in rendered.html


def test_a_template_folder_replaces_a_shipped_template_by_name(tmp_path: Path) -> None:
    (tmp_path / "warning.txt").write_text("Subject: Heads up {{ person.name }}\n\nbye\n")
    rendered = Renderer(tmp_path).message(notice())
    assert rendered.subject == "Heads up Ana <b>Lopez</b>"
    assert rendered.text == "bye\n"
    assert "<html>" in rendered.html  # the shipped HTML still serves


def test_a_broken_template_is_a_permanent_error(tmp_path: Path) -> None:
    (tmp_path / "warning.txt").write_text("Subject: {{ nobody.knows }}\n")
    with pytest.raises(NotifyError) as caught:
        Renderer(tmp_path).message(notice())
    assert not caught.value.temporary
    assert "warning.txt" in str(caught.value)


def test_the_webhook_body_is_json_whatever_the_values() -> None:
    body = Renderer().webhook_body(notice(left='3d "quoted"\n'), "webhook.json")
    assert body["kind"] == "warning"
    assert body["to"] == ["sponsor@corp.example"]
    assert body["contract_ids"] == ["C-1"]
    assert body["text"].startswith("Access of Ana <b>Lopez</b> ends")
