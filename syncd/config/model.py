"""The whole configuration file (``Config``) and what it derives for the pure core.

Built by ``syncd.config.loading.load_config``; the CLI, the daemon and the cycle read it.
``Config.problems`` is the check across sections and inside each target that the schema
alone cannot make; ``core_policy`` and ``target_policy`` turn it into the values of
``syncd.core.policy``.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import Field, PrivateAttr

from syncd.config.ad import AdTarget
from syncd.config.common import Model, Problem
from syncd.config.ha import HaConfig
from syncd.config.ldap import LdapTarget
from syncd.config.notify import NotifyConfig
from syncd.config.scim import ScimTarget
from syncd.config.sections import AuditConfig, DaemonConfig, PolicyConfig, SafetyConfig
from syncd.config.sources import SourceBase, SourceConfig
from syncd.core.policy import Policy, Safety, TargetPolicy

TargetConfig = Annotated[LdapTarget | AdTarget | ScimTarget, Field(discriminator="type")]


class Config(Model):
    """The whole configuration file."""

    source: SourceConfig | None = Field(
        default=None,
        description="Where contracts come from: a file, an HTTP API or a SQL query. Give this "
        "or sources:.",
        examples=[{"type": "file", "path": "contracts.yaml"}],
    )
    sources: list[SourceConfig] = Field(
        default_factory=list,
        description="Several sources at once, each with its own name:, instead of source:. "
        "Contract ids must be unique across them; when any one fails, the whole read fails.",
        examples=[[{"name": "vms", "type": "http", "url": "https://vms.example.com/api/v2"}]],
    )
    policy: PolicyConfig = Field(default=PolicyConfig(), description="How contracts become access.")
    safety: SafetyConfig = Field(
        default=SafetyConfig(), description="Limits on mass changes per target and cycle."
    )
    roles: dict[str, dict[str, list[str]]] = Field(
        description="Role -> target name -> the groups the role grants in that target: DNs "
        "for ldap and ad, displayNames for scim. Only groups named here are managed.",
        examples=[{"developer": {"corp-ldap": ["cn=developers,ou=groups,dc=example,dc=com"]}}],
    )
    targets: dict[str, TargetConfig] = Field(
        description="Target name -> the directory or application to keep in sync; the name "
        "appears in roles, logs, metrics and the audit trail.",
        examples=[
            {
                "corp-ldap": {
                    "type": "ldap",
                    "urls": ["ldaps://ldap.example.com:636"],
                    "bind_user": "cn=syncd,ou=services,dc=example,dc=com",
                    "password_file": "ldap-bind-password",
                    "base_dn": "ou=contractors,dc=example,dc=com",
                }
            }
        ],
    )
    # What load_config found to warn about in the file (old names), located
    _notes: tuple[str, ...] = PrivateAttr(default=())
    audit: AuditConfig = Field(default=AuditConfig(), description="The audit trail.")
    daemon: DaemonConfig = Field(default=DaemonConfig(), description="syncd run.")
    notify: NotifyConfig = Field(
        default=NotifyConfig(),
        description="Notices: warnings before access ends, grants, revocations, ops "
        "notices and the sponsor digest, by mail and/or webhook.",
    )
    ha: HaConfig | None = Field(
        default=None,
        description="Run syncd run on several hosts with one writer, elected on etcd. "
        "Unset: a single host, writing whenever it runs.",
    )

    def core_policy(self) -> Policy:
        """The policy the pure core plans with."""
        p = self.policy
        return Policy(
            timezone=ZoneInfo(p.timezone),
            lead_time=p.lead_time,
            require_approval=p.require_approval,
            max_duration=p.max_duration,
            delete_after=p.delete_after,
            orphan_grace=p.orphan_grace,
            username_template=p.username.template,
            username_pattern=re.compile(p.username.pattern),
            roles=frozenset(self.roles),
            max_field_length=p.max_field_length,
            field_lengths=MappingProxyType(dict(p.field_lengths)),
        )

    def warnings(self) -> list[str]:
        """Settings that are valid but weaken security, and old names still read, for
        the daemon's log at every start and reload, ``/healthz`` and ``check-config``."""
        return [*self._notes, *self._weakened()]

    def noted(self, notes: list[str]) -> Config:
        """This config, with what its file holds to warn about (``load_config``)."""
        self._notes = tuple(notes)
        return self

    def _weakened(self) -> list[str]:
        return [
            f"targets.{name}.tls_verify is false: the server certificate and host name "
            "are not checked, so anyone on the network path can pose as the directory "
            "and receive the bind password (fix: set ca_file to the CA that signs the "
            "server certificate and remove tls_verify: false)"
            for name, target in self.targets.items()
            if getattr(target, "tls_verify", True) is False
        ]

    def target_policy(self, name: str, native_expiry: bool | None = None) -> TargetPolicy:
        """What the planner needs to know about target ``name`` (no connection details).
        ``native_expiry``: what the target found when it was observed (``Observed``);
        None: as configured, on where the config leaves it to the server's flavour."""
        target = self.targets[name]
        if native_expiry is None:
            native_expiry = target.native_expiry is not False
        groups = {role: tuple(by_target.get(name, ())) for role, by_target in self.roles.items()}
        return TargetPolicy(
            name=name,
            groups_by_role=MappingProxyType(groups),
            attributes=MappingProxyType(dict(target.attributes)),
            native_expiry=native_expiry,
            safety=Safety(self.safety.max_orphan_disables, self.safety.max_deletes),
        )

    def problems(self) -> list[Problem]:
        """What the schema alone cannot check, located from the document root: the roles,
        then the audit trail, then each target."""
        problems = section_problems(self.roles, self.audit, self.targets, list(self.targets))
        daemon = [p.within("daemon") for p in self.daemon.problems()]
        notify = [p.within("notify") for p in self.notify.problems()]
        ha = [problem.within("ha") for problem in (self.ha.problems() if self.ha else [])]
        return [*self._source_problems(), *problems, *daemon, *notify, *ha]

    @property
    def all_sources(self) -> list[SourceBase]:
        """The sources to read, in order: ``source``, or the entries of ``sources``."""
        return [self.source] if self.source is not None else list(self.sources)

    def _source_problems(self) -> list[Problem]:
        if (self.source is None) == (not self.sources):
            return [
                Problem(
                    ("source",) if self.source is None else ("sources",),
                    "give either source: (one) or sources: (several)",
                    "keep one of them" if self.source else "add source: {type: file, path: ...}",
                )
            ]
        if self.source is not None:
            return [p.within("source") for p in self.source.problems()]
        out: list[Problem] = []
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if not source.name:
                out.append(Problem(("sources", index), "no name:", "give each source a name:"))
            elif source.name in seen:
                out.append(
                    Problem(("sources", index, "name"), f"{source.name!r} again", "rename it")
                )
            seen.add(source.name or "")
            out += [p.within("sources", index) for p in source.problems()]
        return out


def section_problems(
    roles: dict[str, dict[str, list[str]]] | None,
    audit: AuditConfig | None,
    targets: dict[str, LdapTarget | AdTarget | ScimTarget],
    declared: list[str] | None,
) -> list[Problem]:
    """The checks beyond the schema of whichever sections are valid (None: not valid):
    the roles, then the audit trail, then each valid target. ``declared``: the names of
    all targets, valid or not (None: the targets are not even a mapping), so that a
    role naming an invalid one is not also reported as naming no target."""
    return [
        *_role_problems(roles or {}, targets, declared),
        *(problem.within("audit") for problem in (audit.problems() if audit else [])),
        *(
            problem.within("targets", name)
            for name, target in targets.items()
            for problem in target.problems()
        ),
    ]


def _role_problems(
    roles: dict[str, dict[str, list[str]]],
    targets: dict[str, LdapTarget | AdTarget | ScimTarget],
    declared: list[str] | None,
) -> list[Problem]:
    out: list[Problem] = []
    for role, by_target in roles.items():
        for name, groups in by_target.items():
            target = targets.get(name)
            if target is None:
                if declared is not None and name not in declared:
                    out.append(
                        Problem(
                            ("roles", role, name),
                            f"no target named {name!r}",
                            f"use one of: {', '.join(declared)}",
                        )
                    )
                continue
            for i, group in enumerate(groups):
                problem = target.group_problem(group)
                if problem is not None:
                    out.append(Problem(("roles", role, name, i), *problem))
    return out
