"""The pure parts of the SCIM target, as tables: payloads from actions, observed values
from resources, filters, ``Retry-After`` (``syncd.targets.scim.mapping``, ``.session``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import MappingProxyType
from typing import Any

import pytest
from scim2_models import ScimFilter

from syncd.core.model import Action, ActionKind
from syncd.targets.scim import mapping
from syncd.targets.scim.session import retry_after

E = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ANA = {
    "id": "u1",
    "userName": "ana.lopez",
    "name": {"givenName": "Ana", "familyName": "Lopez"},
    "DisplayName": "Ana Lopez",  # attribute names are case-insensitive
    "active": True,
    "emails": [
        {"value": "home@example.test", "type": "home"},
        {"value": "ana@vendor.example", "type": "work", "primary": True},
    ],
    E: {"organization": "Acme", "manager": {"value": "m1"}},
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("name.givenName", ("Ana",)),
        ("displayName", ("Ana Lopez",)),
        ("emails", ("ana@vendor.example",)),
        (f"{E}:organization", ("Acme",)),
        (f"{E}:manager", ("jdoe@example.test",)),
        (f"{E}:department", ()),
        ("title", ()),
        ("active", ("true",)),
    ],
)
def test_observed_values_are_what_templates_render(path: str, expected: tuple[str, ...]) -> None:
    assert mapping.observed(ANA, path, {"m1": "jdoe@example.test"}) == expected


@pytest.mark.parametrize(
    ("emails", "expected"),
    [
        ([{"value": "a@x", "type": "work"}, {"value": "b@x", "primary": True}], ("b@x",)),
        ([{"value": "a@x", "type": "home"}, {"value": "b@x", "type": "work"}], ("b@x",)),
        ([{"value": "a@x"}], ("a@x",)),
        ([], ()),
        (None, ()),
    ],
)
def test_the_primary_email_else_the_work_one_else_the_first(
    emails: Any, expected: tuple[str, ...]
) -> None:
    assert mapping.primary_email(emails) == expected


def test_an_unknown_manager_id_is_observed_as_itself_so_it_gets_fixed() -> None:
    assert mapping.observed(ANA, f"{E}:manager", {}) == ("m1",)


def action(kind: ActionKind, changes: dict[str, tuple[str, ...]]) -> Action:
    return Action(
        "app",
        kind,
        "ana@vendor.example",
        "ana.lopez",
        None,
        "test",
        changes=MappingProxyType(changes),
    )


def test_a_new_user_carries_the_key_and_declares_the_extensions_it_uses() -> None:
    changes = {
        "name.givenName": ("Ana",),
        "emails": ("ana@vendor.example",),
        f"{E}:manager": ("jdoe@example.test",),
        f"{E}:organization": ("Acme",),
    }

    user = mapping.new_user(action(ActionKind.CREATE, changes), "syncd:", "m1")

    assert user == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", E],
        "userName": "ana.lopez",
        "externalId": "syncd:ana@vendor.example",
        "active": True,
        "name": {"givenName": "Ana"},
        "emails": [{"value": "ana@vendor.example", "type": "work", "primary": True}],
        E: {"manager": {"value": "m1"}, "organization": "Acme"},
    }


def test_a_new_user_without_a_known_sponsor_has_no_manager() -> None:
    user = mapping.new_user(action(ActionKind.CREATE, {f"{E}:manager": ("x@y",)}), "s:", None)

    assert E not in user
    assert user["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]


@pytest.mark.parametrize(
    ("changes", "manager", "has_manager", "expected"),
    [
        (
            {"displayName": ("Ana L",), "title": ()},
            None,
            False,
            [
                {"op": "replace", "path": "displayName", "value": "Ana L"},
                {"op": "remove", "path": "title"},
            ],
        ),
        (
            {f"{E}:manager": ("jdoe@x",)},
            "m2",
            True,
            [{"op": "replace", "path": f"{E}:manager", "value": {"value": "m2"}}],
        ),
        ({f"{E}:manager": ("nobody@x",)}, None, True, [{"op": "remove", "path": f"{E}:manager"}]),
        ({f"{E}:manager": ("nobody@x",)}, None, False, []),
    ],
)
def test_a_patch_touches_only_the_changed_attributes(
    changes: dict[str, tuple[str, ...]],
    manager: str | None,
    has_manager: bool,
    expected: list[dict[str, Any]],
) -> None:
    assert mapping.attribute_operations(changes, manager, has_manager) == expected


def test_a_put_replaces_the_patched_paths_and_keeps_the_rest() -> None:
    operations = [
        {"op": "replace", "path": "name.familyName", "value": "Ruiz"},
        {"op": "remove", "path": f"{E}:organization"},
        *mapping.active_operations(False),
    ]

    out = mapping.replaced({**ANA, "meta": {"version": 'W/"3"'}}, operations)

    assert out["name"] == {"givenName": "Ana", "familyName": "Ruiz"}
    assert out[E] == {"manager": {"value": "m1"}}
    assert out["active"] is False
    assert "meta" not in out
    assert ANA["name"] == {"givenName": "Ana", "familyName": "Lopez"}  # a copy was changed


def test_member_removal_filters_quote_every_id() -> None:
    (operation,) = mapping.member_operations(False, ['a"b', "c"])

    assert operation == {"op": "remove", "path": 'members[value eq "a\\"b" or value eq "c"]'}


def test_or_filters_stay_values_and_fit_in_a_url() -> None:
    hostile = 'x" or userName pr or userName eq "y'
    names = [f"user{i:04d}" for i in range(400)] + [hostile]

    filters = mapping.any_of_filters("userName", names)

    assert len(filters) > 1
    assert all(len(f) <= 4100 for f in filters)
    # an unescaped quote after "eq" starts a term; the hostile value's are escaped
    assert sum(f.count('userName eq "') for f in filters) == len(names)
    assert ScimFilter(filters[-1])  # parses: the hostile value stayed one quoted value
    assert 'userName eq "x\\" or userName pr or userName eq \\"y"' in filters[-1]


def test_or_filters_over_several_attributes_keep_each_value_whole() -> None:
    names = [f"sponsor{i:03d}@example.test" for i in range(120)]

    filters = mapping.any_of_filters(("emails.value", "userName"), names)

    assert len(filters) == 3
    assert all(len(f) <= 4100 for f in filters)
    assert sum(f.count("emails.value eq ") for f in filters) == len(names)
    assert filters[0].startswith(
        'emails.value eq "sponsor000@example.test" or userName eq "sponsor000@example.test" or '
    )
    assert ScimFilter(filters[-1])


def test_an_account_is_built_from_a_managed_user_only() -> None:
    user = {**ANA, "externalId": "syncd:Ana.Lopez@vendor.example"}
    members = {"u1": {"developers"}, "u2": {"ops"}}
    paths = ["displayName", f"{E}:manager"]

    account = mapping.account(user, "syncd:", paths, members, {"m1": "jdoe@example.test"})

    assert account is not None
    assert account.key == "ana.lopez@vendor.example"
    assert (account.ref, account.username, account.enabled) == ("u1", "ana.lopez", True)
    assert account.groups == {"developers"}
    assert dict(account.attributes) == {
        "displayName": ("Ana Lopez",),
        f"{E}:manager": ("jdoe@example.test",),
    }
    assert mapping.account({**ANA, "externalId": "hr-1"}, "syncd:", paths, members, {}) is None
    disabled = mapping.account(
        {**user, "active": False}, "syncd:", paths, members, {"m1": "jdoe@example.test"}
    )
    assert disabled is not None
    assert not disabled.enabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("soon", None), ("", None), (None, None)],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    seconds = retry_after(when)

    assert seconds is not None
    assert 28 <= seconds <= 30
