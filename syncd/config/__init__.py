"""The configuration file: pydantic models, loading with located errors, derived policy.

Called by the CLI and the daemon through ``load_config``; the sources, targets and the
audit writer read their own section's model. Import from here (``from syncd.config
import LdapTarget``); the modules are:

- ``loading``: ``load_config`` and ``config_path``: YAML with line numbers, relative
  paths, inline secrets refused, every problem located.
- ``model``: the root ``Config``, its cross-section checks and the policy it derives.
- ``sources``: the source (file, http, sql) and its field mapping.
- ``sections``: policy, safety, daemon and audit.
- ``ha``: leader election on etcd for several hosts (``syncd.ha``).
- ``directory``: what ``ldap`` and ``ad`` share, one vocabulary for both.
- ``ldap``, ``ad``, ``scim``: one module per target kind, each with its own checks.
- ``common``: the base model, value types, secrets and DN helpers they share.
- ``fields`` and ``teach``: the keys known where, computed from the models, and errors
  worded to teach (the closest key, where a key lives now, an example of the shape).
- ``schema``: the JSON Schema of the file, for editors (``syncd config schema``).

Secrets are never read from the YAML: only ``*_file`` (relative to
``$CREDENTIALS_DIRECTORY`` when set) or ``*_env``.
"""

from syncd.config.ad import AD_OWN_ATTRIBUTES, DEFAULT_AD_ATTRIBUTES, AdTarget
from syncd.config.common import (
    DURATION_FORMS,
    Duration,
    LimitField,
    Model,
    Problem,
    SecretRef,
    Size,
    is_dn,
    read_secret,
    secret_problem,
)
from syncd.config.directory import DirectoryTarget
from syncd.config.ha import HaConfig
from syncd.config.ldap import DEFAULT_LDAP_ATTRIBUTES, DisableConfig, LdapTarget
from syncd.config.loading import DEFAULT_PATH, config_path, load_config
from syncd.config.model import Config, TargetConfig
from syncd.config.schema import config_schema
from syncd.config.scim import (
    DEFAULT_SCIM_ATTRIBUTES,
    ENTERPRISE_USER,
    SCIM_USER_PATHS,
    ScimTarget,
)
from syncd.config.sections import (
    AuditConfig,
    DaemonConfig,
    PolicyConfig,
    SafetyConfig,
    UsernamePolicy,
)
from syncd.config.sources import (
    FileSource,
    HttpSource,
    Paging,
    RolesFrom,
    SourceBase,
    SourceConfig,
    SqlSource,
)

__all__ = [
    "AD_OWN_ATTRIBUTES",
    "DEFAULT_AD_ATTRIBUTES",
    "DEFAULT_LDAP_ATTRIBUTES",
    "DEFAULT_PATH",
    "DEFAULT_SCIM_ATTRIBUTES",
    "DURATION_FORMS",
    "ENTERPRISE_USER",
    "SCIM_USER_PATHS",
    "AdTarget",
    "AuditConfig",
    "Config",
    "DaemonConfig",
    "DirectoryTarget",
    "DisableConfig",
    "Duration",
    "FileSource",
    "HaConfig",
    "HttpSource",
    "LdapTarget",
    "LimitField",
    "Model",
    "Paging",
    "PolicyConfig",
    "Problem",
    "RolesFrom",
    "SafetyConfig",
    "ScimTarget",
    "SecretRef",
    "Size",
    "SourceBase",
    "SourceConfig",
    "SqlSource",
    "TargetConfig",
    "UsernamePolicy",
    "config_path",
    "config_schema",
    "is_dn",
    "load_config",
    "read_secret",
    "secret_problem",
]
