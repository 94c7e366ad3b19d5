"""Policy values the pure core works with, built by ``syncd.config`` from validated YAML.

Kept apart from the pydantic config models so the core depends on plain frozen data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Limit:
    """A safety limit: an absolute count, or a percentage of the managed accounts."""

    value: float
    percent: bool = False

    def allows(self, count: int, managed: int) -> bool:
        if self.percent:
            return count <= managed * self.value / 100.0
        return count <= self.value

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}"


@dataclass(frozen=True)
class Policy:
    """How contracts turn into access (``policy:`` in the config)."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    lead_time: timedelta = timedelta(0)
    require_approval: bool = False
    max_duration: timedelta | None = None
    delete_after: timedelta | None = None
    orphan_grace: timedelta = timedelta(hours=1)  # absence before irreversible steps
    username_template: str = "{given_name}.{family_name}"
    username_pattern: re.Pattern[str] = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
    roles: frozenset[str] = frozenset()
    max_field_length: int = 256  # characters of any text field of a contract ...
    field_lengths: Mapping[str, int] = field(  # ... unless named here
        default_factory=lambda: MappingProxyType({})
    )

    def max_length(self, name: str) -> int:
        """The most characters a value of contract field ``name`` may have."""
        return self.field_lengths.get(name, self.max_field_length)


@dataclass(frozen=True)
class Safety:
    """Per-target, per-cycle limits on actions nobody's contract dates call for."""

    max_orphan_disables: Limit = Limit(10)
    max_deletes: Limit = Limit(10)


@dataclass(frozen=True)
class TargetPolicy:
    """What the planner needs to know about one target (no connection details)."""

    name: str
    groups_by_role: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    native_expiry: bool = True
    safety: Safety = Safety()

    @property
    def managed_groups(self) -> frozenset[str]:
        return frozenset(g for groups in self.groups_by_role.values() for g in groups)
