"""What the ``ldap`` and ``ad`` targets share: one vocabulary for the fields of a directory.

Imported by ``syncd.config.ldap`` and ``syncd.config.ad``, whose models derive from
``DirectoryTarget``; the connection code of both targets reads these fields alone. A
directory moved from one kind to the other keeps these lines as they are:

- ``urls``: the server, or several tried in this order. LDAP replicas and AD domain
  controllers both fail over, so it is a list; one URL may be written as plain text.
- ``bind_user``: the account syncd binds as. It is a DN on any directory and may be a
  UPN on AD, so ``bind_dn`` would misname half its uses.
- ``password_file`` / ``password_env``, ``start_tls``, ``ca_file``, ``tls_verify``,
  ``base_dn``, ``key_attribute`` (``employeeNumber`` on both), ``timeout``, ``retries``.

The old spellings of the ``ldap`` target, ``url`` and ``bind_dn``, are still read (a
warning names the new key). ``scim`` keeps its own names: its ``url`` is one HTTP base
URL and it binds with a token, not a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, WithJsonSchema

from syncd.config.common import SecretRef, is_dn


def _listed(value: Any) -> Any:
    """One URL written as plain text is a list of one."""
    return [value] if isinstance(value, str) else value


class DirectoryTarget(SecretRef):
    """What the LDAP and AD targets share: where and as whom to bind, over what TLS,
    which subtree is managed and which attribute marks a managed account."""

    renamed: ClassVar[Mapping[str, str]] = MappingProxyType({"url": "urls", "bind_dn": "bind_user"})

    urls: Annotated[
        list[str],
        BeforeValidator(_listed),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    {"type": "string"},
                ]
            }
        ),
    ] = Field(
        min_length=1,
        description="The directory server, or several tried in this order (replicas, "
        "domain controllers: one down is not an outage): ldaps://host:636, or ldap://host "
        "with start_tls: true. One URL may be written as plain text.",
        examples=[["ldaps://ldap1.example.com:636", "ldaps://ldap2.example.com:636"]],
    )
    start_tls: bool = Field(
        default=False, description="Upgrade ldap:// connections with StartTLS before binding."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that sign the servers' certificates. Unset: the "
        "system CAs. A relative path is relative to the config file's folder.",
    )
    tls_verify: bool = Field(
        default=True,
        description="Verify the servers' certificates and host names; turn off only in a lab.",
    )
    bind_user: str = Field(
        description="The service account syncd binds as: its DN "
        "(cn=syncd,ou=services,dc=example,dc=com) on any directory, or on AD also its UPN "
        "(svc-syncd@corp.example.com).",
        examples=["cn=syncd,ou=services,dc=example,dc=com"],
    )
    base_dn: str = Field(
        description="The managed subtree (on AD, the managed OU): new accounts are created "
        "directly below it.",
        examples=["ou=contractors,dc=example,dc=com"],
    )
    key_attribute: str = Field(
        default="employeeNumber",
        description="Attribute holding the person key; it marks the accounts syncd "
        "manages. employeeNumber takes the default person key, the e-mail, everywhere "
        "(AD's employeeID takes 16 characters at most).",
    )
    timeout: int = Field(
        default=10, ge=1, le=600, description="Seconds, for connecting and per operation."
    )
    retries: int = Field(
        default=5,
        ge=0,
        le=50,
        description="Retries of temporary errors (server down, busy, timeout), with "
        "exponential backoff and jitter.",
    )

    def group_problem(self, group: str) -> tuple[str, str] | None:
        """(message, fix) when ``group``, as a role lists it for this target, is unusable."""
        if is_dn(group):
            return None
        return (
            "group DN is not a valid DN",
            "write it like cn=developers,ou=groups,dc=example,dc=com",
        )
