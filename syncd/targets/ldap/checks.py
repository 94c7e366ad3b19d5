"""What ``check-config --online`` verifies in an ``ldap`` target's subschema: every
object class and attribute the target will write (its templates, the person key and
username, the lock of its disable method, its native expiry, the group member
attribute) and every credential attribute it will remove.

Called by ``LdapDirectory.check`` (``targets.ldap.target``): ``check_schema`` reads the
subschema (two base reads at most), ``schema_problems`` compares it with the target's
config and its ``Settings`` on this server, without I/O. Each mismatch is one line
naming the attribute, the setting that asks for it, the server and the fix.
A credential attribute the flavour's defaults name and the server lacks is no mismatch:
nothing can hold it, so nothing is left to remove (an OpenLDAP without the OpenSSH-LPK
schema has no ``sshPublicKey``); one the config names is, since the credentials it
meant may live in another attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from syncd.config import LdapTarget
from syncd.errors import PermanentError
from syncd.targets.directory.connection import LdapConnection
from syncd.targets.directory.operations import read_entry
from syncd.targets.directory.values import lowered
from syncd.targets.ldap.flavour import Flavour
from syncd.targets.ldap.schema import Subschema
from syncd.targets.ldap.settings import DEFAULTS, EXPIRY_ATTRIBUTE, NS_LOCK, Settings


def check_schema(
    conn: LdapConnection, target: str, config: LdapTarget, settings: Settings, subschema: str
) -> list[str]:
    """The problems ``schema_problems`` finds in the server's subschema: the subentry
    the root DSE names (``subschema``), else the one the base DN's entry names."""
    if not subschema:
        entry = conn.call(partial(read_entry, dn=config.base_dn, attributes=["subschemaSubentry"]))
        subschema = next(iter(lowered(entry).get("subschemasubentry", ())), "")
    wanted = ["attributeTypes", "objectClasses"]
    entry = conn.call(partial(read_entry, dn=subschema, attributes=wanted)) if subschema else {}
    if not entry:
        raise PermanentError(
            f"{target}: the server shows no subschema ({subschema or 'none named'}) to "
            "check the config against; let bind_user read it"
        )
    found = lowered(entry)
    schema = Subschema.parse(
        subschema, found.get("attributetypes", ()), found.get("objectclasses", ())
    )
    return [f"{target}: {problem}" for problem in schema_problems(config, settings, schema)]


def schema_problems(config: LdapTarget, settings: Settings, schema: Subschema) -> list[str]:
    """One line per object class or attribute of ``config`` that ``schema`` lacks or
    does not allow on the target's entries."""
    where = f"the schema of {settings.server.label} ({schema.dn})"
    classes = list(config.object_classes)
    out = [
        f"objectClass {name} (object_classes) is not defined in {where}; fix: name "
        "classes the server defines, e.g. inetOrgPerson"
        for name in classes
        if schema.object_class(name) is None
    ]
    for field, attribute in _entry_attributes(config, settings):
        out += _entry_problem(schema, classes, field, attribute, where)
    for field, attribute in _method_attributes(settings):
        if schema.attribute(attribute) is None:
            fix = _missing_fix(attribute, settings)
            out.append(f"attribute {attribute} ({field}) is not defined in {where}; fix: {fix}")
    if schema.attribute(config.member_attribute) is None:
        out.append(
            f"attribute {config.member_attribute} (member_attribute) is not defined in "
            f"{where}; fix: use the attribute the groups list members in"
        )
    out += _credential_problems(settings, schema, where)
    return out


def _entry_attributes(config: LdapTarget, settings: Settings) -> list[tuple[str, str]]:
    """(setting, attribute) for each attribute a new or updated entry carries that
    its object classes must allow."""
    pairs = [
        ("key_attribute", config.key_attribute),
        ("username_attribute", config.username_attribute),
        *((f"attributes.{name}", name) for name in config.attributes),
    ]
    if settings.method == "attribute" and settings.attribute:
        pairs.append(("disable.attribute", settings.attribute))
    return pairs


def _method_attributes(settings: Settings) -> list[tuple[str, str]]:
    """(setting, attribute) for the lock and expiry attributes of fixed names."""
    pairs = []
    if settings.method in ("ppolicy", "nsaccountlock"):
        pairs.append((f"disable.method: {settings.method}", settings.lock_attribute or ""))
    if settings.native_expiry:
        pairs.append(("native_expiry", EXPIRY_ATTRIBUTE))
    return pairs


def _entry_problem(
    schema: Subschema, classes: Sequence[str], field: str, attribute: str, where: str
) -> list[str]:
    if schema.attribute(attribute) is None:
        return [
            f"attribute {attribute} ({field}) is not defined in {where}; fix: remove it "
            "from the config or load a schema that defines it"
        ]
    if not schema.may_hold(classes, attribute):
        return [
            f"attribute {attribute} ({field}) is not allowed by object_classes "
            f"[{', '.join(classes)}] in {where}; fix: add an object class that allows it "
            "to object_classes, or remove it from the config"
        ]
    return []


def _credential_problems(settings: Settings, schema: Subschema, where: str) -> list[str]:
    if "credential_attributes" not in settings.configured:
        return []
    usual = ", ".join(DEFAULTS[settings.server.flavour].credential_attributes)
    return [
        f"attribute {name} (credential_attributes) is not defined in {where}, so no "
        f"credential can be in it; fix: name the attributes this server keeps credentials "
        f"in (for this flavour: {usual}), or remove credential_attributes to use those"
        for name in settings.credential_attributes
        if schema.attribute(name) is None
    ]


def _missing_fix(attribute: str, settings: Settings) -> str:
    """How to do without a lock or expiry attribute the server lacks."""
    flavour = settings.server.flavour
    if attribute == EXPIRY_ATTRIBUTE:
        return (
            "set native_expiry: false (pwdEndTime is OpenLDAP 2.5+ ppolicy's), or load "
            "the ppolicy schema"
        )
    if flavour is Flavour.DIRSRV:  # its own lock is always there: ppolicy was asked for
        return (
            "ppolicy is OpenLDAP's; remove disable.method to use nsaccountlock, the "
            "default on 389 Directory Server"
        )
    if attribute == NS_LOCK:
        instead = "remove disable.method to use ppolicy, the default on OpenLDAP"
        if flavour is not Flavour.OPENLDAP:
            instead = "choose ppolicy (OpenLDAP) or attribute as disable.method"
        return f"nsAccountLock is 389 Directory Server's; {instead}"
    return (
        "load OpenLDAP's ppolicy schema and overlay, or choose nsaccountlock (389-ds) or "
        "attribute as disable.method"
    )
