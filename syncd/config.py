"""The configuration file: pydantic models, loading with located errors, derived policy.

Called by the CLI (and later the daemon) through ``load_config``. Every problem is
reported with file, line, field and a fix; all problems are collected before raising.
Secrets are never read from the YAML: only ``*_file`` (relative to
``$CREDENTIALS_DIRECTORY`` when set) or ``*_env``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from syncd import yamlsrc
from syncd.core.policy import Limit, Policy, Safety, TargetPolicy
from syncd.core.render import template_errors
from syncd.core.timeutil import parse_duration
from syncd.errors import ConfigError, ConfigProblem

DEFAULT_PATH = Path("/etc/syncd/syncd.yaml")


def _duration(value: Any) -> Any:
    if isinstance(value, int | str):
        return parse_duration(str(value))
    return value


def _limit(value: Any) -> Any:
    if isinstance(value, Limit):
        return value
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return Limit(float(text[:-1]), percent=True)
        return Limit(int(text))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a count (10) or a percentage (5%)") from exc


Duration = Annotated[Any, BeforeValidator(_duration)]
LimitField = Annotated[Any, BeforeValidator(_limit)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def secret_problem(name: str, file: Path | None, env: str | None) -> str | None:
    """Why the secret ``name`` (given as ``{name}_file`` or ``{name}_env``) can't be read."""
    if file is None and env is None:
        return f"no {name}_file or {name}_env given"
    if file is not None:
        if not file.is_file():
            return f"{name}_file {file} does not exist"
        if not os.access(file, os.R_OK):
            return f"{name}_file {file} is not readable"
    elif env and env not in os.environ:
        return f"environment variable {env} is not set"
    return None


def read_secret(file: Path | None, env: str | None) -> str:
    """A secret's value from its file or variable; callers must never log or print it."""
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return os.environ.get(env or "", "")


class SecretRef(Model):
    """A secret named by file or environment variable, never given inline."""

    password_file: Path | None = None
    password_env: str | None = None

    def secret_problem(self) -> str | None:
        return secret_problem("password", self.password_file, self.password_env)

    def read_secret(self) -> str:
        """The secret's value; callers must never log or print it."""
        return read_secret(self.password_file, self.password_env)


class FileSource(Model):
    """Contracts from a local YAML, JSON or CSV file."""

    type: Literal["file"] = "file"
    path: Path
    format: Literal["auto", "yaml", "json", "csv"] = "auto"
    fields: dict[str, str] = Field(default_factory=dict)  # canonical name -> source's name
    csv_delimiter: str = ","


class UsernamePolicy(Model):
    template: str = "{given_name}.{family_name}"
    pattern: str = r"^[a-z][a-z0-9._-]{0,63}$"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class PolicyConfig(Model):
    timezone: str = "UTC"
    lead_time: Duration = timedelta(0)
    require_approval: bool = False
    max_duration: Duration | None = None
    delete_after: Duration | None = None
    username: UsernamePolicy = UsernamePolicy()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value


class SafetyConfig(Model):
    max_orphan_disables: LimitField = Limit(10)
    max_deletes: LimitField = Limit(10)
    # the daemon distrusts a source whose valid contracts drop by more than this
    max_source_drop: LimitField = Limit(20, percent=True)


class DaemonConfig(Model):
    """``syncd run`` (SPEC §4)."""

    interval: Duration = timedelta(minutes=5)
    state_dir: Path = Path("/var/lib/syncd")
    metrics_address: str = "127.0.0.1:9464"  # "" turns the HTTP endpoint off
    ready_timeout: Duration = timedelta(seconds=60)
    backoff_max: Duration = timedelta(minutes=5)


class DisableConfig(Model):
    """How an account is disabled: ppolicy lock, 389-ds nsAccountLock, or an attribute."""

    method: Literal["ppolicy", "nsaccountlock", "attribute"] = "ppolicy"
    attribute: str | None = None
    disabled_value: str | None = None
    enabled_value: str | None = None  # None: the attribute is absent when enabled


DEFAULT_LDAP_ATTRIBUTES = {
    "cn": "{given_name} {family_name}",
    "sn": "{family_name}",
    "givenName": "{given_name}",
    "displayName": "{given_name} {family_name}",
    "mail": "{email}",
    "o": "{vendor}",
    "description": "contractor: {contract_ids}",
}


class LdapTarget(SecretRef):
    """An LDAP directory (OpenLDAP, 389-ds, generic)."""

    type: Literal["ldap"]
    url: str
    start_tls: bool = False
    ca_file: Path | None = None
    tls_verify: bool = True
    allow_plaintext: bool = False
    bind_dn: str
    base_dn: str
    key_attribute: str = "employeeNumber"
    username_attribute: str = "uid"
    dn_template: str = "uid={username},{base_dn}"
    object_classes: list[str] = Field(default_factory=lambda: ["inetOrgPerson"])
    attributes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_LDAP_ATTRIBUTES))
    disable: DisableConfig = DisableConfig()
    native_expiry: bool = True
    member_attribute: Literal["member", "uniqueMember"] = "member"
    credential_attributes: list[str] = Field(
        default_factory=lambda: ["userPassword", "sshPublicKey"]
    )
    conflict_base: str | None = None
    page_size: int = Field(default=500, ge=1, le=10000)
    connections: int = Field(default=3, ge=1, le=16)
    timeout: int = Field(default=10, ge=1, le=600)
    retries: int = Field(default=5, ge=0, le=50)


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


class AdTarget(SecretRef):
    """An Active Directory domain (Windows domain controllers or a Samba AD DC)."""

    type: Literal["ad"]
    urls: list[str] = Field(min_length=1)  # domain controllers, tried in this order
    start_tls: bool = False  # StartTLS on ldap:// URLs; otherwise every URL is ldaps://
    ca_file: Path | None = None
    tls_verify: bool = True
    bind_user: str  # the service account: a UPN (syncd@example.com) or a DN
    base_dn: str  # the managed OU
    disabled_ou: str | None = None  # offboarded accounts are moved here; None: they stay
    upn_suffix: str | None = None  # userPrincipalName = username@upn_suffix; default: domain
    key_attribute: str = "employeeID"  # carries the person key; marks managed accounts
    attributes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_AD_ATTRIBUTES))
    native_expiry: bool = True  # accountExpires = the access end
    conflict_base: str | None = None  # default: the domain (the DC= part of base_dn)
    sponsor_base: str | None = None  # where sponsors are looked up; default: the domain
    page_size: int = Field(default=1000, ge=1, le=1000)  # AD's MaxPageSize is 1000
    timeout: int = Field(default=10, ge=1, le=600)
    retries: int = Field(default=5, ge=0, le=50)

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

    def problems(self) -> list[tuple[str, str, str]]:
        """(field, message, fix) for what the schema alone cannot check."""
        out: list[tuple[str, str, str]] = []
        problem = self.secret_problem()
        if problem:
            field = "password_file" if self.password_file else "password_env"
            out.append((field, problem, "point it at the service account's password"))
        for field in ("base_dn", "disabled_ou", "conflict_base", "sponsor_base"):
            value = getattr(self, field)
            if value is not None and not _is_dn(value):
                out.append((field, "not a valid DN", "write it like OU=Contractors,DC=corp,DC=com"))
        if _is_dn(self.base_dn) and not self.domain_dn():
            out.append(("base_dn", "has no DC= components", "end it with the domain's DC= parts"))
        if "@" not in self.bind_user and not _is_dn(self.bind_user):
            out.append(
                ("bind_user", "neither a UPN nor a DN", "use syncd@corp.example.com or a DN")
            )
        for i, url in enumerate(self.urls):
            scheme = url.split("://", 1)[0].lower()
            if scheme not in ("ldap", "ldaps") or "://" not in url:
                out.append((f"urls.{i}", f"{url!r} is not an ldaps:// URL", "use ldaps://dc1:636"))
            elif scheme == "ldap" and not self.start_tls:
                out.append(
                    (
                        f"urls.{i}",
                        "AD accepts passwords only over an encrypted connection",
                        "use ldaps://, or set start_tls: true",
                    )
                )
        for name, template in self.attributes.items():
            if name.lower() in AD_OWN_ATTRIBUTES or name.lower() == self.key_attribute.lower():
                out.append(
                    (
                        f"attributes.{name}",
                        "syncd sets this attribute itself",
                        "remove it from attributes",
                    )
                )
            out += [(f"attributes.{name}", message, "") for message in template_errors(template)]
        return out


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


class ScimTarget(Model):
    """A SCIM 2.0 service provider (RFC 7643/7644): a SaaS application's user API."""

    type: Literal["scim"]
    url: str  # base URL, e.g. https://api.example.com/scim/v2
    ca_file: Path | None = None
    allow_plaintext: bool = False  # http:// sends the token in clear
    token_file: Path | None = None
    token_env: str | None = None
    token_url: str | None = None  # OAuth2 client credentials instead of a fixed token
    client_id: str | None = None
    client_secret_file: Path | None = None
    client_secret_env: str | None = None
    scope: str | None = None
    external_id_prefix: str = Field(default="syncd:", min_length=1)
    attributes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_SCIM_ATTRIBUTES))
    bulk: bool = True
    page_size: int = Field(default=500, ge=1, le=10000)
    concurrency: int = Field(default=4, ge=1, le=32)
    timeout: int = Field(default=30, ge=1, le=600)
    retries: int = Field(default=5, ge=0, le=50)
    max_retry_after: int = Field(default=120, ge=0, le=3600)
    native_expiry: ClassVar[bool] = False  # SCIM has no account end date

    def read_token(self) -> str:
        """The fixed bearer token; callers must never log or print it."""
        return read_secret(self.token_file, self.token_env)

    def read_client_secret(self) -> str:
        return read_secret(self.client_secret_file, self.client_secret_env)

    def problems(self) -> list[tuple[str, str, str]]:
        """(field, message, fix) for what the schema alone cannot check."""
        out: list[tuple[str, str, str]] = []
        for field, url in (("url", self.url), ("token_url", self.token_url)):
            scheme = (url or "https://").split("://", 1)[0].lower()
            if scheme not in ("https", "http"):
                out.append((field, f"{url!r} is not an https:// URL", "use https://host/path"))
            elif scheme == "http" and not self.allow_plaintext:
                out.append(
                    (
                        field,
                        "the token would cross the network unencrypted",
                        "use https://, or set allow_plaintext: true explicitly",
                    )
                )
        if self.token_url is None:
            problem = secret_problem("token", self.token_file, self.token_env)
            if problem:
                field = "token_env" if self.token_env else "token_file"
                out.append((field, problem, "name the bearer token's file, or use token_url"))
        else:
            if self.token_file or self.token_env:
                out.append(("token_url", "give a fixed token or token_url, not both", ""))
            if not self.client_id:
                out.append(("client_id", "token_url needs a client_id", "add client_id:"))
            problem = secret_problem(
                "client_secret", self.client_secret_file, self.client_secret_env
            )
            if problem:
                field = "client_secret_env" if self.client_secret_env else "client_secret_file"
                out.append((field, problem, "point it at the OAuth2 client secret"))
        for path, template in self.attributes.items():
            if path not in SCIM_USER_PATHS and not (
                path.startswith("urn:") and not path.startswith(ENTERPRISE_USER + ":")
            ):
                out.append(
                    (
                        f"attributes.{path}",
                        "not a SCIM attribute syncd can fill",
                        "use a single-valued string attribute such as displayName, "
                        "name.givenName, emails, title or an extension's urn:...:name",
                    )
                )
            out += [(f"attributes.{path}", message, "") for message in template_errors(template)]
        return out


TargetConfig = Annotated[LdapTarget | AdTarget | ScimTarget, Field(discriminator="type")]


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?|B?)\s*", value, re.IGNORECASE)
        if not match:
            raise ValueError(f"{value!r} is not a size (use e.g. 100MB, 1GB or 0 for off)")
        unit = match.group(2).upper().rstrip("B").rstrip("I")
        return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]
    return value


class AuditConfig(Model):
    """The audit trail (SPEC §6)."""

    path: Path = Path("/var/log/syncd/audit.jsonl")
    fsync: Literal["batch", "record"] = "batch"
    rotate_size: Annotated[int, BeforeValidator(_size)] = Field(default=100 << 20, ge=0)
    rotate_age: Duration | None = None
    checkpoint_records: int = Field(default=1000, ge=1)
    checkpoint_interval: Duration = timedelta(minutes=15)
    hmac_key_file: Path | None = None
    key_id: str = ""


class Config(Model):
    """The whole configuration file."""

    source: FileSource
    policy: PolicyConfig = PolicyConfig()
    safety: SafetyConfig = SafetyConfig()
    roles: dict[str, dict[str, list[str]]]
    targets: dict[str, TargetConfig]
    audit: AuditConfig = AuditConfig()
    daemon: DaemonConfig = DaemonConfig()

    def core_policy(self) -> Policy:
        p = self.policy
        return Policy(
            timezone=ZoneInfo(p.timezone),
            lead_time=p.lead_time,
            require_approval=p.require_approval,
            max_duration=p.max_duration,
            delete_after=p.delete_after,
            username_template=p.username.template,
            username_pattern=re.compile(p.username.pattern),
            roles=frozenset(self.roles),
        )

    def target_policy(self, name: str) -> TargetPolicy:
        target = self.targets[name]
        groups = {role: tuple(by_target.get(name, ())) for role, by_target in self.roles.items()}
        return TargetPolicy(
            name=name,
            groups_by_role=MappingProxyType(groups),
            attributes=MappingProxyType(dict(target.attributes)),
            native_expiry=target.native_expiry,
            safety=Safety(self.safety.max_orphan_disables, self.safety.max_deletes),
        )


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or correct its spelling",
    "literal_error": "use one of the listed values",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "int_parsing": "use a whole number",
    "float_parsing": "use a number",
}


_UNION_TAGS = frozenset({"ldap", "ad", "scim", "file"})


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get("SYNCD_CONFIG") or DEFAULT_PATH)


def load_config(path: Path) -> Config:
    """Load and validate ``path``; raise ``ConfigError`` listing every problem."""
    file = str(path)
    try:
        doc = yamlsrc.load(path)
    except OSError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    None,
                    "",
                    f"cannot read: {exc.strerror}",
                    "check the path and its permissions",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            [ConfigProblem(file, line, "", f"not valid YAML: {exc}", "fix the syntax")]
        ) from exc
    if not isinstance(doc.data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    1,
                    "",
                    "expected a mapping at the top level",
                    "start from config/syncd.yaml",
                )
            ]
        )
    problems = _inline_secrets(doc)
    base = path.parent
    data = _resolve_paths(doc.data, base)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _data_path(doc.data, err["loc"])
            fix = _FIXES.get(err["type"], "")
            problems.append(
                ConfigProblem(file, doc.line(loc), yamlsrc.dotted(loc), err["msg"], fix)
            )
        raise ConfigError(problems) from exc
    problems += _cross_check(config, doc)
    if problems:
        raise ConfigError(problems)
    return config


def _inline_secrets(doc: yamlsrc.LocatedYaml) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    targets = doc.data.get("targets")
    if not isinstance(targets, dict):
        return problems
    for name, target in targets.items():
        for secret in ("password", "token", "client_secret"):
            if not (isinstance(target, dict) and secret in target):
                continue
            loc = ("targets", name, secret)
            problems.append(
                ConfigProblem(
                    doc.file,
                    doc.line(loc),
                    yamlsrc.dotted(loc),
                    "secrets are never read from the config file",
                    f"use {secret}_file or {secret}_env",
                )
            )
            del target[secret]
    return problems


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the config are relative to the config file's folder, except
    relative secret files (``password_file``, ``token_file``, ``client_secret_file``),
    looked up in ``$CREDENTIALS_DIRECTORY`` when systemd set it (``LoadCredential=``)."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")

    def rel(section: Any, key: str, folder: Path) -> Any:
        if not isinstance(section, dict):
            return section
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return {**section, key: str(folder / value)}
        return section

    out = dict(data)
    for section in ("source", "audit"):
        if section in out:
            out[section] = rel(out[section], "path", base)
    if "daemon" in out:
        out["daemon"] = rel(out["daemon"], "state_dir", base)
    if "audit" in out:
        out["audit"] = rel(out["audit"], "hmac_key_file", Path(credentials or base))
    if isinstance(out.get("targets"), dict):
        targets = {}
        for name, target in out["targets"].items():
            target = rel(target, "ca_file", base)
            for secret in ("password_file", "token_file", "client_secret_file"):
                target = rel(target, secret, Path(credentials or base))
            targets[name] = target
        out["targets"] = targets
    return out


def _data_path(data: Any, loc: tuple[int | str, ...]) -> yamlsrc.Path_:
    """Map a pydantic error location onto the document (skipping union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if found:
            node = node[part]
        elif part in _UNION_TAGS:
            continue
        elif isinstance(node, dict | list):
            path.append(part)
            break
        else:
            break
        path.append(part)
    return tuple(path)


def _field_path(field: str) -> tuple[str | int, ...]:
    """``attributes.mail`` or ``urls.0`` as a document path."""
    name, _, rest = field.partition(".")
    if not rest:
        return (name,)
    return (name, int(rest) if rest.isdigit() else rest)


def _is_dn(value: str) -> bool:
    try:
        parse_dn(value)
    except (LDAPInvalidDnError, ValueError, IndexError):
        return False
    return bool(value.strip())


def _cross_check(config: Config, doc: yamlsrc.LocatedYaml) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def add(loc: yamlsrc.Path_, message: str, fix: str) -> None:
        problems.append(ConfigProblem(doc.file, doc.line(loc), yamlsrc.dotted(loc), message, fix))

    for role, by_target in config.roles.items():
        for target_name, groups in by_target.items():
            target = config.targets.get(target_name)
            if target is None:
                add(
                    ("roles", role, target_name),
                    f"no target named {target_name!r}",
                    f"use one of: {', '.join(config.targets)}",
                )
                continue
            for i, group in enumerate(groups):
                if isinstance(target, ScimTarget):
                    if not group.strip():
                        add(
                            ("roles", role, target_name, i),
                            "empty group name",
                            "write the SCIM group's displayName",
                        )
                elif not _is_dn(group):
                    add(
                        ("roles", role, target_name, i),
                        "group DN is not a valid DN",
                        "write it like cn=developers,ou=groups,dc=example,dc=com",
                    )
    audit = config.audit
    if audit.hmac_key_file is not None:
        if not audit.hmac_key_file.is_file():
            add(
                ("audit", "hmac_key_file"),
                f"{audit.hmac_key_file} does not exist",
                "point it at a file holding the HMAC key (e.g. 32 random bytes, base64)",
            )
        if not audit.key_id:
            add(
                ("audit", "key_id"),
                "an HMAC key needs a key_id",
                "name the key, e.g. key_id: audit-2027",
            )
    for name, target in config.targets.items():
        where = ("targets", name)
        if isinstance(target, ScimTarget | AdTarget):
            for field, message, fix in target.problems():
                add((*where, *_field_path(field)), message, fix)
            continue
        problem = target.secret_problem()
        if problem:
            add(
                (*where, "password_file" if target.password_file else "password_env"),
                problem,
                "point it at the bind password (file or environment variable)",
            )
        for field in ("bind_dn", "base_dn"):
            if not _is_dn(getattr(target, field)):
                add(
                    (*where, field),
                    "not a valid DN",
                    "write it like ou=contractors,dc=example,dc=com",
                )
        if target.conflict_base is not None and not _is_dn(target.conflict_base):
            add((*where, "conflict_base"), "not a valid DN", "use a DN such as dc=example,dc=com")
        if "{username}" not in target.dn_template or not target.dn_template.endswith("{base_dn}"):
            add(
                (*where, "dn_template"),
                "must contain {username} and end with {base_dn}",
                "use e.g. uid={username},{base_dn}",
            )
        for attr, template in target.attributes.items():
            for message in template_errors(template):
                add(
                    (*where, "attributes", attr),
                    message,
                    "placeholders: given_name, family_name, email, username, person, vendor, "
                    "sponsor, contract_ids, attributes.NAME",
                )
        if target.disable.method == "attribute" and not (
            target.disable.attribute and target.disable.disabled_value
        ):
            add(
                (*where, "disable"),
                "method attribute needs attribute and disabled_value",
                "add attribute: and disabled_value:",
            )
        plain = target.url.lower().startswith("ldap://") and not target.start_tls
        if plain and not target.allow_plaintext:
            add(
                (*where, "url"),
                "the bind password would cross the network unencrypted",
                "use ldaps://, set start_tls: true, or set allow_plaintext: true explicitly",
            )
        if not target.url.lower().startswith(("ldap://", "ldaps://")):
            add(
                (*where, "url"),
                f"{target.url!r} is not an ldap:// or ldaps:// URL",
                "use ldaps://host:636",
            )
    return problems
