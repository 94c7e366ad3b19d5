"""What an ``ldap`` target writes on the server it found: the config where it says, the
defaults of the server's flavour (``targets.ldap.flavour``) where it leaves it open.

Pure. Called by ``targets.ldap.target`` once per connection, after the root DSE was
read; ``targets.ldap.reading`` and ``targets.ldap.checks`` read the resulting
``Settings``. The defaults:

================  ==============  =============  ============================
flavour           disable.method  native_expiry  credential_attributes
================  ==============  =============  ============================
OpenLDAP, other   ppolicy         pwdEndTime     userPassword, sshPublicKey
389-ds            nsaccountlock   none           userPassword, nsSshPublicKey
================  ==============  =============  ============================

389-ds has nothing that refuses a bind from a given time on, out of the box:
``passwordExpirationTime`` is recomputed by any password change (a reset would lift
the end), and the Account Policy plugin needs a schema element and a restart
(docs/389ds.md). An explicit ``native_expiry: true`` there is refused (``refusal``)
rather than written and failed entry by entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from syncd.config import LdapTarget
from syncd.targets.ldap.flavour import Flavour, ServerKind

Method = Literal["ppolicy", "nsaccountlock", "attribute"]
LOCKED_FOREVER = "000001010000Z"  # ppolicy: locked until an administrator unlocks
PPOLICY_LOCK = "pwdAccountLockedTime"
NS_LOCK = "nsAccountLock"
EXPIRY_ATTRIBUTE = "pwdEndTime"  # OpenLDAP 2.5+ ppolicy: no bind after this time


@dataclass(frozen=True)
class Defaults:
    """What a flavour gets where the config is silent."""

    method: Method
    native_expiry: bool
    credential_attributes: tuple[str, ...]


DEFAULTS: Mapping[Flavour, Defaults] = {
    Flavour.OPENLDAP: Defaults("ppolicy", True, ("userPassword", "sshPublicKey")),
    Flavour.DIRSRV: Defaults("nsaccountlock", False, ("userPassword", "nsSshPublicKey")),
    Flavour.OTHER: Defaults("ppolicy", True, ("userPassword", "sshPublicKey")),
}


@dataclass(frozen=True)
class Settings:
    """How one ``ldap`` target disables, expires and strips accounts on its server."""

    server: ServerKind
    method: Method
    native_expiry: bool
    credential_attributes: tuple[str, ...]
    attribute: str | None = None  # method attribute: what marks an account disabled
    disabled_value: str | None = None  # method attribute
    enabled_value: str | None = None  # method attribute; None: removed when enabled
    configured: frozenset[str] = frozenset()  # settings the config named, not the flavour
    refusal: str = ""  # why this target cannot work on this server as configured

    @property
    def lock_attribute(self) -> str | None:
        """The attribute that holds the disabled state."""
        return {"ppolicy": PPOLICY_LOCK, "nsaccountlock": NS_LOCK}.get(self.method, self.attribute)

    @property
    def lock_value(self) -> str:
        """The value the lock attribute takes when syncd disables an account."""
        if self.method == "ppolicy":
            return LOCKED_FOREVER
        if self.method == "nsaccountlock":
            return "TRUE"
        return self.disabled_value or ""

    @property
    def expiry_attribute(self) -> str | None:
        return EXPIRY_ATTRIBUTE if self.native_expiry else None

    def enabled(self, values: tuple[str, ...]) -> bool:
        """Whether an account whose lock attribute holds ``values`` is enabled."""
        if self.method == "ppolicy":
            return not values
        if self.method == "nsaccountlock":
            return not values or values[0].upper() != "TRUE"
        return not values or values[0] != self.disabled_value

    def about(self) -> str:
        """One line for ``plan`` and ``check-config``: the server, and what was chosen.
        ``389 Directory Server 2.3.1 — disable: nsaccountlock, native expiry: none, ...``"""
        disable = self.method + (f" {self.attribute}" if self.method == "attribute" else "")
        expiry = self.expiry_attribute or "none"
        credentials = ", ".join(self.credential_attributes) or "none"
        parts = [
            f"disable: {disable}{self._how('disable')}",
            f"native expiry: {expiry}{self._how('native_expiry')}",
            f"credentials: {credentials}{self._how('credential_attributes')}",
        ]
        return f"{self.server.label} — " + ", ".join(parts)

    def _how(self, setting: str) -> str:
        return " (configured)" if setting in self.configured else ""


def resolve(config: LdapTarget, server: ServerKind) -> Settings:
    """The settings of ``config`` on ``server``: an explicit setting always wins."""
    defaults = DEFAULTS[server.flavour]
    disable = config.disable
    configured = {
        name
        for name, value in (
            ("disable", disable.method),
            ("native_expiry", config.native_expiry),
            ("credential_attributes", config.credential_attributes),
        )
        if value is not None
    }
    native_expiry = defaults.native_expiry if config.native_expiry is None else config.native_expiry
    credentials = defaults.credential_attributes
    if config.credential_attributes is not None:
        credentials = tuple(config.credential_attributes)
    return Settings(
        server=server,
        method=disable.method or defaults.method,
        native_expiry=native_expiry,
        credential_attributes=credentials,
        attribute=disable.attribute,
        disabled_value=disable.disabled_value,
        enabled_value=disable.enabled_value,
        configured=frozenset(configured),
        refusal=_refusal(server, native_expiry),
    )


def _refusal(server: ServerKind, native_expiry: bool) -> str:
    if server.flavour is not Flavour.DIRSRV or not native_expiry:
        return ""
    return (
        f"native_expiry is true, but {server.label} has no native expiry: nothing in it "
        "refuses a bind from a given time on (passwordExpirationTime is moved by any "
        "password change, and pwdEndTime is OpenLDAP's). syncd still ends access on time "
        "while it runs (nsAccountLock, groups, credentials). Fix: set native_expiry: false "
        "or remove it (docs/389ds.md)"
    )
