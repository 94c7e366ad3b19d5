"""The exception tree of syncd. Every error we raise derives from ``SyncdError``.

::

    SyncdError
    ├── ConfigError          invalid configuration (file, line, field, fix); exit 2
    ├── SourceError          the contract source cannot be read or parsed as a whole; exit 2
    └── TargetError          a target refused or failed an operation
        ├── TemporaryError   worth retrying (server down, busy, timeout); may carry a delay
        ├── PermanentError   retrying cannot help (constraint, access rights, no such object)
        └── ConflictError    an unmanaged object stands where a managed one would go

Library errors (ldap3, yaml, OS) are translated at the edge that calls the library and
re-raised ``from`` the original, so tracebacks keep the cause.
"""

from __future__ import annotations

from dataclasses import dataclass


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where} {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(SyncdError):
    """The configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SourceError(SyncdError):
    """The contract source as a whole cannot be used; nothing is changed in any target."""


class TargetError(SyncdError):
    """A target operation failed."""


class TemporaryError(TargetError):
    """A failure that may go away: the operation is retried after ``delay`` seconds or backoff."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(TargetError):
    """A failure that retrying cannot fix; reported for the action, the cycle goes on."""


class ConflictError(TargetError):
    """An object that syncd does not manage is in the way; it is reported, never adopted."""
