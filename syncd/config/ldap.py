"""``type: ldap`` targets: an LDAP directory (OpenLDAP, 389-ds, generic).

Part of ``Config.targets``; the LDAP target and its connection code read ``LdapTarget``.
``LdapTarget.problems`` holds every check of an LDAP target that its schema alone cannot
make; ``Config.problems`` calls it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from syncd.config.common import Model, Problem, is_dn, template_problems
from syncd.config.directory import DirectoryTarget

DEFAULT_LDAP_ATTRIBUTES = {
    "cn": "{given_name} {family_name}",
    "sn": "{family_name}",
    "givenName": "{given_name}",
    "displayName": "{given_name} {family_name}",
    "mail": "{email}",
    "o": "{vendor}",
    "description": "contractor: {contract_ids}",
}


class DisableConfig(Model):
    """How an account is disabled: ppolicy lock, 389-ds nsAccountLock, or an attribute."""

    method: Literal["ppolicy", "nsaccountlock", "attribute"] | None = Field(
        default=None,
        description="ppolicy sets pwdAccountLockedTime (OpenLDAP ppolicy overlay with "
        "pwdLockout: TRUE); nsaccountlock sets nsAccountLock (389 Directory Server); "
        "attribute writes disabled_value into attribute. Unset: by the server's flavour, "
        "read from its root DSE on connecting: nsaccountlock on 389 Directory Server, "
        "ppolicy on OpenLDAP and any other server.",
    )
    attribute: str | None = Field(
        default=None,
        description="With method attribute: the attribute that marks an account disabled "
        "(e.g. loginDisabled).",
    )
    disabled_value: str | None = Field(
        default=None, description="With method attribute: its value on a disabled account."
    )
    enabled_value: str | None = Field(
        default=None,
        description="With method attribute: its value on an enabled account. Unset: the "
        "attribute is removed when the account is enabled.",
    )

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check: method attribute names what to write."""
        if self.method == "attribute" and not (self.attribute and self.disabled_value):
            return [
                Problem(
                    (),
                    "method attribute needs attribute and disabled_value",
                    "add attribute: and disabled_value:",
                )
            ]
        return []


class LdapTarget(DirectoryTarget):
    """An LDAP directory (OpenLDAP, 389-ds, generic)."""

    type: Literal["ldap"] = Field(description="ldap: this kind of target.")
    allow_plaintext: bool = Field(
        default=False,
        description="Must be true to use ldap:// without StartTLS: the bind password then "
        "crosses the network in clear.",
    )
    username_attribute: str = Field(
        default="uid",
        description="Attribute holding the username; uid suits inetOrgPerson and posixAccount.",
    )
    dn_template: str = Field(
        default="uid={username},{base_dn}",
        description="DN of a new account. Must contain {username} (escaped per RFC 4514) and "
        "end with {base_dn}: accounts sit directly under base_dn.",
    )
    object_classes: list[str] = Field(
        default_factory=lambda: ["inetOrgPerson"],
        description="objectClass values of new entries.",
    )
    attributes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LDAP_ATTRIBUTES),
        description="Attribute name -> template ({given_name}, {family_name}, {email}, "
        "{username}, {person}, {vendor}, {sponsor}, {contract_ids}, {attributes.NAME}), kept "
        "in sync on active accounts; a template rendering empty removes the attribute. "
        "Replaces the default set (cn, sn, givenName, displayName, mail, o, description).",
    )
    disable: DisableConfig = Field(
        default=DisableConfig(),
        description="How an account is disabled; by the server's flavour when method is unset.",
    )
    native_expiry: bool | None = Field(
        default=None,
        description="Keep pwdEndTime at the access end (OpenLDAP 2.5+ ppolicy), so the "
        "server refuses binds after it even while syncd is down. 389 Directory Server has "
        "no such native expiry: true is an error there. Unset: by the server's flavour, "
        "read from its root DSE on connecting: off on 389 Directory Server, on for "
        "OpenLDAP and any other server.",
    )
    member_attribute: Literal["member", "uniqueMember"] = Field(
        default="member",
        description="Group attribute listing members by DN: member (groupOfNames) or "
        "uniqueMember (groupOfUniqueNames).",
    )
    credential_attributes: list[str] | None = Field(
        default=None,
        description="Attributes removed when access ends, so no credential outlives the "
        "contract. Unset: by the server's flavour, read from its root DSE on connecting: "
        "userPassword and nsSshPublicKey on 389 Directory Server, userPassword and "
        "sshPublicKey on OpenLDAP and any other server.",
    )
    conflict_base: str | None = Field(
        default=None,
        description="Where unmanaged entries that would collide with a new account are "
        "looked for. Unset: the naming context that holds base_dn (the server's root DSE "
        "namingContexts, else the dc= components of base_dn), so employees elsewhere in "
        "the tree are seen.",
    )
    page_size: int = Field(
        default=500, ge=1, le=10000, description="Entries per page of a paged search."
    )
    connections: int = Field(
        default=3,
        ge=1,
        le=16,
        description="Connections used in parallel for a batch of independent writes of one kind.",
    )

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check, located relative to this target."""
        return [
            *self.password_problems("point it at the bind password (file or environment variable)"),
            *self._dn_problems(),
            *self._template_problems(),
            *(problem.within("disable") for problem in self.disable.problems()),
            *self._url_problems(),
        ]

    def _dn_problems(self) -> list[Problem]:
        examples = {
            "bind_user": "cn=syncd,ou=services,dc=example,dc=com",
            "base_dn": "ou=contractors,dc=example,dc=com",
            "conflict_base": "dc=example,dc=com",
        }
        return [
            Problem((field,), "not a valid DN", f"write it like {example}")
            for field, example in examples.items()
            if getattr(self, field) is not None and not is_dn(getattr(self, field))
        ]

    def _template_problems(self) -> list[Problem]:
        out: list[Problem] = []
        if "{username}" not in self.dn_template or not self.dn_template.endswith("{base_dn}"):
            out.append(
                Problem(
                    ("dn_template",),
                    "must contain {username} and end with {base_dn}",
                    "use e.g. uid={username},{base_dn}",
                )
            )
        for name, template in self.attributes.items():
            out += template_problems(name, template)
        return out

    def _url_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for i, url in enumerate(self.urls):
            low = url.lower()
            if not low.startswith(("ldap://", "ldaps://")):
                out.append(
                    Problem(
                        ("urls", i),
                        f"{url!r} is not an ldap:// or ldaps:// URL",
                        "use ldaps://host:636",
                    )
                )
            elif low.startswith("ldap://") and not self.start_tls and not self.allow_plaintext:
                out.append(
                    Problem(
                        ("urls", i),
                        "the bind password would cross the network unencrypted",
                        "use ldaps://, set start_tls: true, or set allow_plaintext: true "
                        "explicitly",
                    )
                )
        return out
