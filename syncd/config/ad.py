"""``type: ad`` targets: an Active Directory domain.

Part of ``Config.targets``; the AD target and its connection code read ``AdTarget``
(``domain_dn`` and ``upn_domain`` derive names from it). ``AdTarget.problems`` holds
every check its schema alone cannot make; ``Config.problems`` calls it.
"""

from __future__ import annotations

from typing import Literal

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import Field

from syncd.config.common import Problem, is_dn, template_problems
from syncd.config.directory import DirectoryTarget

DEFAULT_AD_ATTRIBUTES = {
    "givenName": "{given_name}",
    "sn": "{family_name}",
    "displayName": "{given_name} {family_name}",
    "mail": "{email}",
    "company": "{vendor}",
    "manager": "{sponsor}",
    "description": "contractor: {contract_ids}",
}
# Attributes the ad target writes itself (or AD maintains): never templated.
AD_OWN_ATTRIBUTES = frozenset(
    {
        "samaccountname", "userprincipalname", "useraccountcontrol", "accountexpires",
        "unicodepwd", "userpassword", "pwdlastset", "objectclass", "cn", "name",
        "distinguishedname", "memberof", "primarygroupid", "objectsid",
    }
)  # fmt: skip


class AdTarget(DirectoryTarget):
    """An Active Directory domain (Windows domain controllers or a Samba AD DC)."""

    type: Literal["ad"] = Field(description="ad: this kind of target.")
    disabled_ou: str | None = Field(
        default=None,
        description="OU offboarded accounts are moved to (and back from on a new contract). "
        "Unset: they stay in base_dn.",
    )
    upn_suffix: str | None = Field(
        default=None,
        description="userPrincipalName = username@upn_suffix. Unset: the domain of base_dn "
        "(its DC= parts).",
    )
    attributes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_AD_ATTRIBUTES),
        description="Attribute name -> template (placeholders as for ldap), kept in sync on "
        "active accounts; manager takes the sponsor and is set to the sponsor's account. "
        "Attributes syncd writes itself (sAMAccountName, userPrincipalName, "
        "userAccountControl, accountExpires, ...) are not allowed.",
    )
    native_expiry: bool = Field(
        default=True,
        description="Keep accountExpires at the access end, so AD refuses logons after it "
        "even while syncd is down.",
    )
    conflict_base: str | None = Field(
        default=None,
        description="Where a new account's names must be free of unmanaged objects. Unset: "
        "the domain (the DC= part of base_dn).",
    )
    sponsor_base: str | None = Field(
        default=None,
        description="Where sponsors' accounts are looked up (by mail or userPrincipalName). "
        "Unset: the domain.",
    )
    page_size: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Entries per page of a paged search; AD's MaxPageSize caps it at 1000.",
    )

    def domain_dn(self) -> str:
        """The DC= components of ``base_dn``: the naming context of the domain."""
        try:
            parts = parse_dn(self.base_dn)
        except (LDAPInvalidDnError, ValueError, IndexError):
            return self.base_dn
        return ",".join(f"{a}={v}" for a, v, _ in parts if a.lower() == "dc")

    def upn_domain(self) -> str:
        """The part of userPrincipalName after the @."""
        if self.upn_suffix:
            return self.upn_suffix
        return ".".join(part.split("=", 1)[1] for part in self.domain_dn().split(","))

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check, located relative to this target."""
        return [
            *self.password_problems("point it at the service account's password"),
            *self._dn_problems(),
            *self._url_problems(),
            *self._attribute_problems(),
        ]

    def _dn_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for field in ("base_dn", "disabled_ou", "conflict_base", "sponsor_base"):
            value = getattr(self, field)
            if value is not None and not is_dn(value):
                out.append(
                    Problem(
                        (field,), "not a valid DN", "write it like OU=Contractors,DC=corp,DC=com"
                    )
                )
        if is_dn(self.base_dn) and not self.domain_dn():
            out.append(
                Problem(("base_dn",), "has no DC= components", "end it with the domain's DC= parts")
            )
        if "@" not in self.bind_user and not is_dn(self.bind_user):
            out.append(
                Problem(
                    ("bind_user",),
                    "neither a UPN nor a DN",
                    "use svc-syncd@corp.example.com or a DN",
                )
            )
        return out

    def _url_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for i, url in enumerate(self.urls):
            scheme = url.split("://", 1)[0].lower()
            if scheme not in ("ldap", "ldaps") or "://" not in url:
                out.append(
                    Problem(("urls", i), f"{url!r} is not an ldaps:// URL", "use ldaps://dc1:636")
                )
            elif scheme == "ldap" and not self.start_tls:
                out.append(
                    Problem(
                        ("urls", i),
                        "AD accepts passwords only over an encrypted connection",
                        "use ldaps://, or set start_tls: true",
                    )
                )
        return out

    def _attribute_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for name, template in self.attributes.items():
            if name.lower() in AD_OWN_ATTRIBUTES or name.lower() == self.key_attribute.lower():
                out.append(
                    Problem(
                        ("attributes", name),
                        "syncd sets this attribute itself",
                        "remove it from attributes",
                    )
                )
            out += template_problems(name, template)
        return out
