"""The SCIM lab: a fresh, empty directory of a SCIM server (a tenant of scim2-server,
``tests.servers.scim``, or SCIMMY emptied, ``tests.servers.scimmy``), seeded like the
other targets, plus a syncd config pointing at it. It is also the shared scenarios'
SCIM :class:`~tests.labs.common.World`, for either server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tests.labs.common import GROUP_NAMES, ROLES, Account, SyncdBench
from tests.servers.scim import Directory


class ScimProvider(Protocol):
    """A running SCIM server as the lab needs it: its token, and the base URL of an
    empty directory (``ScimServer`` and ``ScimmyServer``)."""

    token: str

    def tenant(self) -> str: ...


@dataclass
class ScimLab(SyncdBench):
    """A fresh directory of a SCIM server, seeded like the slapd of the LDAP tests (four
    groups, employees jdoe and asmith), plus a syncd config pointing at it (or at
    ``url``, e.g. a fault proxy in front of it)."""

    server: ScimProvider
    work: Path
    url: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tenant = self.server.tenant()
        self.url = self.url or self.tenant
        self.directory = Directory(self.tenant, self.server.token)
        jdoe = self.directory.add_user("jdoe", external_id="hr-1001", email="jdoe@example.test")
        asmith = self.directory.add_user("asmith", external_id="hr-1002", email="asmith@ex.test")
        members = {"developers": (jdoe,), "vpn-users": (jdoe,), "wiki-editors": (asmith,)}
        for name in GROUP_NAMES:
            self.directory.add_group(name, members.get(name, (asmith,) if name == "ops" else ()))
        (self.work / "token").write_text(self.server.token)

    def roles(self) -> dict[str, dict[str, list[str]]]:
        return {role: {"corp": list(groups)} for role, groups in ROLES.items()}

    def target_config(self, **target: Any) -> dict[str, Any]:
        return {
            "type": "scim",
            "url": self.url,
            "allow_plaintext": True,  # loopback only
            "token_file": "token",
            "retries": 1,
            **target,
        }

    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None:
        # Unmanaged: another system's externalId.
        external = f"syncd:{key}" if key else "hr-4711"
        user = self.directory.add_user(username, external_id=external, email=f"{username}@x.test")
        for group in groups:
            self.directory.join(group, user)

    def account(self, username: str) -> Account | None:
        user = self.directory.user(username)
        if user is None or not str(user.get("externalId", "")).startswith("syncd:"):
            return None
        groups = frozenset(n for n in GROUP_NAMES if username in self.directory.member_names(n))
        return Account(user.get("active") is not False, groups)

    def snapshot(self) -> Any:
        return self.directory.snapshot()
