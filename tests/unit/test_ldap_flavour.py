"""The ``ldap`` target's server flavour and settings, without a server: root DSEs as
389-ds 2.3, slapd 2.5 and Samba 4.17 answer them (``tests/integration/test_dirsrv.py``
reads the real ones), the defaults each flavour brings, an explicit setting winning,
and the config leaving those settings unset."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config import LdapTarget
from syncd.targets.ldap.flavour import Flavour, RootDse, detect
from syncd.targets.ldap.settings import LOCKED_FOREVER, resolve

DIRSRV_DSE = {
    "vendorName": ["389 Project"],
    "vendorVersion": ["389-Directory/2.3.1 B2025.016.1616"],
    "objectClass": ["top"],
    "namingContexts": ["dc=example,dc=test"],
    "subschemaSubentry": ["cn=schema"],
    "supportedExtension": ["1.3.6.1.4.1.4203.1.11.3", "2.16.840.1.113730.3.5.3"],
}
SLAPD_DSE = {
    "objectClass": ["top", "OpenLDAProotDSE"],
    "configContext": ["cn=config"],
    "subschemaSubentry": ["cn=Subschema"],
    "supportedExtension": ["1.3.6.1.4.1.4203.1.11.3", "1.3.6.1.4.1.1466.20037"],
}
SAMBA_DSE = {
    "vendorName": ["Samba Team (https://www.samba.org)"],
    "vendorVersion": ["4.17.12-Debian"],
    "supportedCapabilities": ["1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1670"],
}
LDAP: dict[str, Any] = {
    "type": "ldap",
    "urls": "ldaps://ldap.example.test",
    "bind_user": "cn=syncd,dc=example,dc=test",
    "base_dn": "ou=contractors,dc=example,dc=test",
    "password_env": "X",
}


@pytest.mark.parametrize(
    ("entry", "flavour", "label"),
    [
        (DIRSRV_DSE, Flavour.DIRSRV, "389 Directory Server 2.3.1"),
        (
            {"vendorName": "Red Hat, Inc.", "vendorVersion": "Red Hat-Directory/12.2.0 B2023"},
            Flavour.DIRSRV,
            "Red Hat Directory Server 12.2.0",
        ),
        (
            {"supportedExtension": ["2.16.840.1.113730.3.5.5"]},
            Flavour.DIRSRV,
            "389 Directory Server",
        ),
        (SLAPD_DSE, Flavour.OPENLDAP, "OpenLDAP"),
        ({"OBJECTCLASS": ["openldaprootdse"]}, Flavour.OPENLDAP, "OpenLDAP"),
        (
            SAMBA_DSE,
            Flavour.OTHER,
            "Active Directory (Samba Team (https://www.samba.org), 4.17.12-Debian)",
        ),
        ({"vendorName": "Acme"}, Flavour.OTHER, "an LDAP server of unknown flavour (Acme)"),
        ({}, Flavour.OTHER, "an LDAP server of unknown flavour"),
    ],
    ids=["389-ds", "rhds", "389-unbranded", "openldap", "openldap-case", "samba", "acme", "bare"],
)
def test_the_flavour_comes_from_the_root_dse(
    entry: dict[str, Any], flavour: Flavour, label: str
) -> None:
    server = detect(RootDse.of(entry))
    assert server.flavour is flavour
    assert server.label == label


def test_an_unreadable_root_dse_is_an_unknown_server() -> None:
    server = detect(RootDse())
    assert server.flavour is Flavour.OTHER
    assert "root DSE is not readable" in server.label


def test_the_root_dse_gives_naming_contexts_and_subschema() -> None:
    dse = RootDse.of(DIRSRV_DSE)
    assert dse.naming_contexts == ("dc=example,dc=test",)
    assert dse.subschema == "cn=schema"


def test_a_vendor_string_is_cut_short() -> None:
    server = detect(RootDse.of({"vendorName": "x" * 500}))
    assert len(server.label) < 100


# -- settings ------------------------------------------------------------------------


def _settings(entry: dict[str, Any], **target: Any) -> Any:
    return resolve(LdapTarget.model_validate({**LDAP, **target}), detect(RootDse.of(entry)))


def test_the_config_leaves_disable_expiry_and_credentials_to_the_flavour() -> None:
    config = LdapTarget.model_validate(LDAP)
    assert config.disable.method is None
    assert config.native_expiry is None
    assert config.credential_attributes is None
    described = LdapTarget.model_json_schema()["properties"]
    assert "Unset: by the server's flavour" in described["native_expiry"]["description"]
    assert "Unset: by the server's flavour" in described["credential_attributes"]["description"]


@pytest.mark.parametrize(
    ("entry", "method", "lock", "value", "expiry", "credentials"),
    [
        (
            DIRSRV_DSE,
            "nsaccountlock",
            "nsAccountLock",
            "TRUE",
            None,
            ("userPassword", "nsSshPublicKey"),
        ),
        (
            SLAPD_DSE,
            "ppolicy",
            "pwdAccountLockedTime",
            LOCKED_FOREVER,
            "pwdEndTime",
            ("userPassword", "sshPublicKey"),
        ),
        (
            {},
            "ppolicy",
            "pwdAccountLockedTime",
            LOCKED_FOREVER,
            "pwdEndTime",
            ("userPassword", "sshPublicKey"),
        ),
    ],
    ids=["389-ds", "openldap", "unknown"],
)
def test_each_flavour_has_its_defaults(
    entry: dict[str, Any],
    method: str,
    lock: str,
    value: str,
    expiry: str | None,
    credentials: tuple[str, ...],
) -> None:
    settings = _settings(entry)
    assert settings.method == method
    assert (settings.lock_attribute, settings.lock_value) == (lock, value)
    assert settings.expiry_attribute == expiry
    assert settings.credential_attributes == credentials
    assert settings.configured == frozenset()
    assert settings.refusal == ""


def test_an_explicit_setting_always_wins() -> None:
    disable = {"method": "attribute", "attribute": "loginDisabled", "disabled_value": "TRUE"}
    settings = _settings(DIRSRV_DSE, disable=disable, credential_attributes=[], native_expiry=False)
    assert (settings.method, settings.lock_attribute, settings.lock_value) == (
        "attribute",
        "loginDisabled",
        "TRUE",
    )
    assert settings.credential_attributes == ()
    assert settings.configured == {"disable", "native_expiry", "credential_attributes"}
    on_slapd = _settings(SLAPD_DSE, native_expiry=False, disable={"method": "nsaccountlock"})
    assert (on_slapd.method, on_slapd.native_expiry) == ("nsaccountlock", False)


def test_native_expiry_true_on_389ds_is_refused_with_the_fix() -> None:
    settings = _settings(DIRSRV_DSE, native_expiry=True)
    assert settings.native_expiry is True
    assert "389 Directory Server 2.3.1 has no native expiry" in settings.refusal
    assert "ends access on time while it runs" in settings.refusal
    assert "Fix: set native_expiry: false" in settings.refusal
    assert _settings(SLAPD_DSE, native_expiry=True).refusal == ""
    assert _settings({}, native_expiry=True).refusal == ""


def test_the_about_line_says_the_server_and_what_was_chosen() -> None:
    assert _settings(DIRSRV_DSE).about() == (
        "389 Directory Server 2.3.1 — disable: nsaccountlock, native expiry: none, "
        "credentials: userPassword, nsSshPublicKey"
    )
    disable = {"method": "attribute", "attribute": "employeeType", "disabled_value": "x"}
    assert _settings(SLAPD_DSE, disable=disable, credential_attributes=[]).about() == (
        "OpenLDAP — disable: attribute employeeType (configured), native expiry: pwdEndTime, "
        "credentials: none (configured)"
    )


@pytest.mark.parametrize(
    ("method", "values", "enabled"),
    [
        ("nsaccountlock", (), True),
        ("nsaccountlock", ("true",), False),
        ("nsaccountlock", ("FALSE",), True),
        ("ppolicy", (LOCKED_FOREVER,), False),
        ("ppolicy", (), True),
    ],
)
def test_enabled_by_the_lock_attribute(method: str, values: tuple[str, ...], enabled: bool) -> None:
    assert _settings({}, disable={"method": method}).enabled(values) is enabled
