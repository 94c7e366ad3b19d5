"""Reading a subschema and checking a target's config against it, without a server:
definitions as 389-ds 2.3 and slapd 2.5 publish them (``tests/integration/test_dirsrv.py``
checks against the real ones)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.config import LdapTarget
from syncd.targets.ldap.checks import schema_problems
from syncd.targets.ldap.flavour import RootDse, detect
from syncd.targets.ldap.schema import Subschema, parse_definition
from syncd.targets.ldap.settings import resolve

ATTRIBUTES = [
    "( 2.5.4.0 NAME 'objectClass' EQUALITY objectIdentifierMatch "
    "SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 X-ORIGIN 'RFC 4512' )",
    "( 2.5.4.41 NAME 'name' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
    "( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
    "( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )",
    "( 0.9.2342.19200300.100.1.1 NAME ( 'uid' 'userid' ) "
    "SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} )",
    "( 0.9.2342.19200300.100.1.3 NAME ( 'mail' 'rfc822mailbox' ) "
    "SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
    "( 2.16.840.1.113730.3.1.3 NAME 'employeeNumber' SINGLE-VALUE )",
    "( 2.5.4.35 NAME 'userPassword' SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )",
    "( 2.5.4.31 NAME 'member' SUP distinguishedName )",
    "( 2.16.840.1.113730.3.1.610 NAME ( 'nsAccountLock' ) DESC 'Operational attribute "
    "for Account Inactivation' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 "
    "USAGE directoryOperation X-ORIGIN 'Netscape Directory Server' )",
    "( 2.16.840.1.113730.3.8.11.1 NAME 'nsSshPublicKey' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
    "not a definition",
]
CLASSES = [
    "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
    "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) "
    "MAY ( userPassword $ telephoneNumber $ description ) )",
    "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title ) )",
    "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson "
    "STRUCTURAL MAY ( uid $ mail $ employeeNumber $ displayName $ givenName $ o ) )",
    "( 2.16.840.1.113730.3.2.331 NAME 'nsAccount' DESC 'Netscape' SUP top AUXILIARY "
    "MAY ( nsSshPublicKey $ userPassword ) )",
    "( 1.3.6.1.4.1.1466.101.120.111 NAME 'extensibleObject' SUP top AUXILIARY )",
]
SCHEMA = Subschema.parse("cn=schema", ATTRIBUTES, CLASSES)
DIRSRV = RootDse.of({"vendorVersion": "389-Directory/2.3.1 B2025.016.1616"})
LDAP: dict[str, Any] = {
    "type": "ldap",
    "urls": "ldaps://ldap.example.test",
    "bind_user": "cn=syncd,dc=example,dc=test",
    "base_dn": "ou=contractors,dc=example,dc=test",
    "password_env": "X",
    "attributes": {"cn": "{given_name}", "sn": "{family_name}", "mail": "{email}"},
}


def test_a_definition_is_split_into_its_fields() -> None:
    oid, fields = parse_definition(
        "( 2.5.6.6 NAME 'person' DESC 'RFC2256: a person' SUP top STRUCTURAL "
        "MUST ( sn $ cn ) MAY userPassword X-ORIGIN ( 'RFC 4519' 'user defined' ) )"
    )
    assert oid == "2.5.6.6"
    assert fields["NAME"] == ("person",)
    assert fields["DESC"] == ("RFC2256: a person",)
    assert fields["STRUCTURAL"] == ()
    assert fields["MUST"] == ("sn", "cn")
    assert fields["MAY"] == ("userPassword",)
    assert fields["X-ORIGIN"] == ("RFC 4519", "user defined")


@pytest.mark.parametrize("text", ["", "2.5.6.6 NAME 'x'", "( 1.2.3 NAME )", "( 1 MAY ( a $ b )"])
def test_a_malformed_definition_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"schema definition|without a value|unclosed list"):
        parse_definition(text)


@pytest.mark.parametrize(
    ("classes", "attribute", "held"),
    [
        (["inetOrgPerson"], "mail", True),
        (["inetOrgPerson"], "SN", True),  # through person, any case
        (["inetOrgPerson"], "surname", True),  # another name of sn
        (["inetOrgPerson"], "2.5.4.4", True),  # its OID
        (["inetOrgPerson"], "nsAccountLock", True),  # operational
        (["inetOrgPerson"], "nsSshPublicKey", False),
        (["inetOrgPerson", "nsAccount"], "nsSshPublicKey", True),
        (["inetOrgPerson", "extensibleObject"], "nsSshPublicKey", True),
        (["inetOrgPerson"], "pwdEndTime", False),  # not defined
        (["noSuchClass"], "mail", False),
    ],
)
def test_may_hold(classes: list[str], attribute: str, held: bool) -> None:
    assert SCHEMA.may_hold(classes, attribute) is held


def _problems(**target: Any) -> list[str]:
    config = LdapTarget.model_validate({**LDAP, **target})
    return schema_problems(config, resolve(config, detect(DIRSRV)), SCHEMA)


def test_a_config_that_fits_has_no_problems() -> None:
    assert _problems() == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            {"object_classes": ["inetOrgPerson", "ldapPublicKey"]},
            "objectClass ldapPublicKey (object_classes) is not defined in the schema of "
            "389 Directory Server 2.3.1 (cn=schema)",
        ),
        (
            {"attributes": {"cn": "x", "sn": "x", "nsSshPublicKey": "x"}},
            "attribute nsSshPublicKey (attributes.nsSshPublicKey) is not allowed by "
            "object_classes [inetOrgPerson]",
        ),
        (
            {"attributes": {"cn": "x", "sn": "x", "sshPublicKey": "x"}},
            "attribute sshPublicKey (attributes.sshPublicKey) is not defined",
        ),
        ({"key_attribute": "employeeID"}, "attribute employeeID (key_attribute) is not defined"),
        ({"disable": {"method": "ppolicy"}}, "fix: ppolicy is OpenLDAP's; remove disable.method"),
        (
            {"disable": {"method": "attribute", "attribute": "title", "disabled_value": "x"}},
            "attribute title (disable.attribute) is not defined",
        ),
        ({"member_attribute": "uniqueMember"}, "attribute uniqueMember (member_attribute)"),
        (
            {"credential_attributes": ["userPassword", "sshPublicKey"]},
            "(for this flavour: userPassword, nsSshPublicKey)",
        ),
    ],
)
def test_each_mismatch_is_one_line_naming_attribute_server_and_fix(
    target: dict[str, Any], expected: str
) -> None:
    [problem] = _problems(**target)
    assert expected in problem
    assert "389 Directory Server 2.3.1" in problem
    assert "fix: " in problem


def test_a_default_credential_attribute_the_server_lacks_is_no_problem() -> None:
    schema = Subschema.parse("cn=Subschema", ATTRIBUTES, CLASSES)  # no sshPublicKey
    config = LdapTarget.model_validate({**LDAP, "native_expiry": False})
    unknown = resolve(config, detect(RootDse.of({"vendorName": "Acme"})))
    problems = schema_problems(config, unknown, schema)
    assert not [p for p in problems if "sshPublicKey" in p]
    [ppolicy] = problems  # the default lock of an unknown server, missing here
    assert "pwdAccountLockedTime (disable.method: ppolicy)" in ppolicy
    assert "an LDAP server of unknown flavour (Acme)" in ppolicy
