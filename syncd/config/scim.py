"""``type: scim`` targets: a SCIM 2.0 service provider (RFC 7643/7644).

Part of ``Config.targets``; the SCIM target, its session and its OAuth2 client read
``ScimTarget``, and the attribute mapping uses ``ENTERPRISE_USER``. ``ScimTarget.problems``
holds every check its schema alone cannot make; ``Config.problems`` calls it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from syncd.config.common import Model, Problem, read_secret, secret_problem, template_problems

ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEFAULT_SCIM_ATTRIBUTES = {
    "name.givenName": "{given_name}",
    "name.familyName": "{family_name}",
    "displayName": "{given_name} {family_name}",
    "emails": "{email}",
    f"{ENTERPRISE_USER}:employeeNumber": "{person}",
    f"{ENTERPRISE_USER}:organization": "{vendor}",
    f"{ENTERPRISE_USER}:manager": "{sponsor}",
}
# Single-valued string attributes of the User schema and its enterprise extension (RFC
# 7643 §4) that templates may fill. userName, externalId and active are syncd's own;
# ``emails`` is the primary work address; ``manager`` takes the sponsor's e-mail and
# is sent as a reference to that user. Other extensions' ``urn:...:attr`` paths pass.
SCIM_USER_PATHS = frozenset(
    {
        "displayName", "nickName", "title", "userType", "preferredLanguage", "locale",
        "timezone", "profileUrl", "emails", "name.formatted", "name.familyName",
        "name.givenName", "name.middleName", "name.honorificPrefix", "name.honorificSuffix",
        *(
            f"{ENTERPRISE_USER}:{name}"
            for name in (
                "employeeNumber", "costCenter", "organization", "division", "department",
                "manager",
            )
        ),
    }
)  # fmt: skip
_CREDENTIALS_DIRECTORY = (
    "A relative path is looked up in $CREDENTIALS_DIRECTORY when systemd set it, otherwise "
    "next to the config file."
)


class ScimTarget(Model):
    """A SCIM 2.0 service provider (RFC 7643/7644): a SaaS application's user API."""

    type: Literal["scim"] = Field(description="scim: this kind of target.")
    url: str = Field(
        description="Base URL of the SCIM API, e.g. https://api.example.com/scim/v2. "
        "http:// also needs allow_plaintext."
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that sign the server certificate. Unset: the "
        "system CAs. TLS is always verified. A relative path is relative to the config "
        "file's folder.",
    )
    allow_plaintext: bool = Field(
        default=False,
        description="Must be true to use http:// URLs: the token then crosses the network "
        "in clear.",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding a fixed bearer token. " + _CREDENTIALS_DIRECTORY + " Give "
        "this, token_env or token_url; the token itself is never accepted in the config file.",
    )
    token_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the bearer token, instead of "
        "token_file.",
    )
    token_url: str | None = Field(
        default=None,
        description="OAuth2 token endpoint: syncd fetches its token with client credentials "
        "instead of a fixed token, keeps it until shortly before it expires and fetches a "
        "new one after a 401.",
    )
    client_id: str | None = Field(
        default=None, description="OAuth2 client id; required with token_url."
    )
    client_secret_file: Path | None = Field(
        default=None,
        description="File holding the OAuth2 client secret, with token_url. "
        + _CREDENTIALS_DIRECTORY,
    )
    client_secret_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the OAuth2 client secret, "
        "instead of client_secret_file.",
    )
    scope: str | None = Field(
        default=None,
        description="OAuth2 scope to ask for with token_url. Unset: none is sent.",
    )
    external_id_prefix: str = Field(
        default="syncd:",
        min_length=1,
        description="Marks managed users: externalId = this prefix + the person key; users "
        "without it are never changed. Changing it makes existing accounts unmanaged.",
    )
    attributes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SCIM_ATTRIBUTES),
        description="SCIM attribute path -> template (placeholders as for ldap), kept in "
        "sync with a PATCH of the changed ones; a template rendering empty removes the "
        "attribute. Paths: single-valued strings of the User schema and the enterprise "
        "extension (emails is the primary work address, manager takes the sponsor), or "
        "another extension's urn:...:name.",
    )
    bulk: bool = Field(default=True, description="Use /Bulk when the server offers it.")
    patch_excludes_members: bool = Field(
        default=False,
        description="Send group PATCHes with ?excludedAttributes=members, so that the answer "
        "leaves out the member list. Only for a server known to apply such a PATCH right: "
        "some replace or empty the whole member list when it carries that parameter.",
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=10000,
        description="Users per page when listing, lowered to the server's filter.maxResults.",
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Requests in flight at once (group PATCHes, look-ups, writes without bulk).",
    )
    timeout: int = Field(default=30, ge=1, le=600, description="Seconds per request.")
    retries: int = Field(
        default=5,
        ge=0,
        le=50,
        description="Retries of temporary errors (429, 502, 503, 504, network, timeout), "
        "after the server's Retry-After or with exponential backoff.",
    )
    max_retry_after: int = Field(
        default=120,
        ge=0,
        le=3600,
        description="Longest Retry-After, in seconds, that is waited for; after a longer one "
        "the remaining work waits for the next cycle.",
    )
    native_expiry: ClassVar[bool] = False  # SCIM has no account end date

    def read_token(self) -> str:
        """The fixed bearer token; callers must never log or print it."""
        return read_secret(self.token_file, self.token_env)

    def read_client_secret(self) -> str:
        """The OAuth2 client secret; callers must never log or print it."""
        return read_secret(self.client_secret_file, self.client_secret_env)

    def group_problem(self, group: str) -> tuple[str, str] | None:
        """(message, fix) when ``group``, as a role lists it for this target, is unusable."""
        if group.strip():
            return None
        return ("empty group name", "write the SCIM group's displayName")

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check, located relative to this target."""
        return [
            *self._url_problems(),
            *(self._token_problems() if self.token_url is None else self._client_problems()),
            *self._attribute_problems(),
        ]

    def _url_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for field, url in (("url", self.url), ("token_url", self.token_url)):
            scheme = (url or "https://").split("://", 1)[0].lower()
            if scheme not in ("https", "http"):
                out.append(
                    Problem((field,), f"{url!r} is not an https:// URL", "use https://host/path")
                )
            elif scheme == "http" and not self.allow_plaintext:
                out.append(
                    Problem(
                        (field,),
                        "the token would cross the network unencrypted",
                        "use https://, or set allow_plaintext: true explicitly",
                    )
                )
        return out

    def _token_problems(self) -> list[Problem]:
        problem = secret_problem("token", self.token_file, self.token_env)
        if problem is None:
            return []
        field = "token_env" if self.token_env else "token_file"
        return [Problem((field,), problem, "name the bearer token's file, or use token_url")]

    def _client_problems(self) -> list[Problem]:
        out: list[Problem] = []
        if self.token_file or self.token_env:
            out.append(
                Problem(
                    ("token_url",),
                    "give a fixed token or token_url, not both",
                    "remove token_file and token_env, or token_url",
                )
            )
        if not self.client_id:
            out.append(Problem(("client_id",), "token_url needs a client_id", "add client_id:"))
        problem = secret_problem("client_secret", self.client_secret_file, self.client_secret_env)
        if problem:
            field = "client_secret_env" if self.client_secret_env else "client_secret_file"
            out.append(Problem((field,), problem, "point it at the OAuth2 client secret"))
        return out

    def _attribute_problems(self) -> list[Problem]:
        out: list[Problem] = []
        for path, template in self.attributes.items():
            if path not in SCIM_USER_PATHS and not (
                path.startswith("urn:") and not path.startswith(ENTERPRISE_USER + ":")
            ):
                out.append(
                    Problem(
                        ("attributes", path),
                        "not a SCIM attribute syncd can fill",
                        "use a single-valued string attribute such as displayName, "
                        "name.givenName, emails, title or an extension's urn:...:name",
                    )
                )
            out += template_problems(path, template)
        return out
