"""Which LDAP server an ``ldap`` target talks to, from its root DSE (RFC 4512 §5.1).

Called by ``targets.ldap.target``, which reads the root DSE once per connection (the
attributes in ``ROOT_DSE_ATTRIBUTES``, asked for by name: some servers show
``vendorVersion`` only then) and hands the entry to ``RootDse.of`` and ``detect``. Both
are pure; ``targets.ldap.settings`` turns the flavour into defaults.

What tells the servers apart (checked on 389-ds 2.3, slapd 2.5 and Samba 4.17):

* 389 Directory Server: ``vendorName: 389 Project``, ``vendorVersion:
  389-Directory/2.3.1 B2025.016.1616``. Red Hat's build names itself in
  ``vendorVersion`` (``Red Hat-Directory/...``). A build that hides both still
  announces the Netscape replication extended operations (2.16.840.1.113730.3.5.*),
  which only the Netscape line of servers has (OpenLDAP's controls and extensions
  overlap 389-ds's otherwise).
* OpenLDAP: no vendor attributes at all; the root DSE's objectClass is
  ``OpenLDAProotDSE`` and it names ``configContext``.
* Active Directory (and Samba): ``supportedCapabilities`` holds
  1.2.840.113556.1.4.800; a ``type: ad`` target is the one that fits it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from syncd.targets.directory.values import lowered

ROOT_DSE_ATTRIBUTES = [
    "namingContexts",
    "subschemaSubentry",
    "vendorName",
    "vendorVersion",
    "objectClass",
    "configContext",
    "supportedCapabilities",
    "supportedExtension",
    "supportedControl",
]
AD_CAPABILITY = "1.2.840.113556.1.4.800"
NETSCAPE_EXTENSIONS = "2.16.840.1.113730.3.5."  # replication extended operations
_DIRSRV_VENDORS = ("389-Directory/", "Red Hat-Directory/")


class Flavour(enum.StrEnum):
    """The kinds of LDAP server whose defaults syncd knows."""

    OPENLDAP = "openldap"
    DIRSRV = "389-ds"
    OTHER = "other"  # anything else, Active Directory included


@dataclass(frozen=True)
class RootDse:
    """What the root DSE says about the server; empty when it could not be read."""

    readable: bool = False
    naming_contexts: tuple[str, ...] = ()
    subschema: str = ""  # DN of the subschema subentry
    vendor_name: str = ""
    vendor_version: str = ""
    object_classes: tuple[str, ...] = ()
    config_context: str = ""
    capabilities: frozenset[str] = frozenset()
    extensions: frozenset[str] = frozenset()
    controls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> RootDse:
        """The root DSE as ldap3 decoded it (attribute -> values)."""
        found = lowered(entry)

        def one(name: str) -> str:
            return next(iter(found.get(name, ())), "")

        return cls(
            readable=True,
            naming_contexts=found.get("namingcontexts", ()),
            subschema=one("subschemasubentry"),
            vendor_name=one("vendorname"),
            vendor_version=one("vendorversion"),
            object_classes=found.get("objectclass", ()),
            config_context=one("configcontext"),
            capabilities=frozenset(found.get("supportedcapabilities", ())),
            extensions=frozenset(found.get("supportedextension", ())),
            controls=frozenset(found.get("supportedcontrol", ())),
        )


@dataclass(frozen=True)
class ServerKind:
    """A server's flavour and how to name it to a person."""

    flavour: Flavour
    label: str  # "389 Directory Server 2.3.1", "OpenLDAP", ...
    controls: frozenset[str] = frozenset()  # the controls the root DSE lists


def detect(dse: RootDse) -> ServerKind:
    """The flavour of the server whose root DSE this is, and the controls it offers."""
    return replace(_kind(dse), controls=dse.controls)


def _kind(dse: RootDse) -> ServerKind:
    if not dse.readable:
        return ServerKind(Flavour.OTHER, "an LDAP server whose root DSE is not readable")
    if AD_CAPABILITY in dse.capabilities:
        return ServerKind(Flavour.OTHER, _vendor("Active Directory", dse))
    if _is_dirsrv(dse):
        return ServerKind(Flavour.DIRSRV, _dirsrv_label(dse.vendor_version))
    if "openldaprootdse" in {c.lower() for c in dse.object_classes} or dse.config_context:
        return ServerKind(Flavour.OPENLDAP, "OpenLDAP")
    return ServerKind(Flavour.OTHER, _vendor("an LDAP server of unknown flavour", dse))


def _is_dirsrv(dse: RootDse) -> bool:
    if dse.vendor_name == "389 Project" or dse.vendor_version.startswith(_DIRSRV_VENDORS):
        return True
    unbranded = not dse.vendor_name and not dse.vendor_version
    return unbranded and any(e.startswith(NETSCAPE_EXTENSIONS) for e in dse.extensions)


def _dirsrv_label(vendor_version: str) -> str:
    """``389-Directory/2.3.1 B2025.016.1616`` -> ``389 Directory Server 2.3.1``."""
    match = re.match(r"(389|Red Hat)-Directory/([\w.-]{1,30})", vendor_version)
    if match is None:
        return "389 Directory Server"
    product = "389 Directory Server" if match.group(1) == "389" else "Red Hat Directory Server"
    return f"{product} {match.group(2)}"


def _vendor(label: str, dse: RootDse) -> str:
    # what the server says of itself, cut short: it ends up in one line of output
    named: Sequence[str] = [v[:60] for v in (dse.vendor_name, dse.vendor_version) if v]
    return f"{label} ({', '.join(named)})" if named else label
