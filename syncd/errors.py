"""The exception tree of syncd. Every error we raise derives from ``SyncdError``.

::

    SyncdError
    ├── ConfigError          invalid configuration (file, line, field, fix); exit 2
    ├── SourceError          the contract source cannot be read or parsed as a whole; exit 2
    └── TargetError          a target refused or failed an operation
        ├── TemporaryError   worth retrying (server down, busy, timeout); may carry a delay
        └── PermanentError   retrying cannot help (constraint, access rights, no such object)

Library errors (ldap3, httpx2, yaml, OS) are translated at the edge that calls the
library and re-raised ``from`` the original, so tracebacks keep the cause. A
``TargetError`` keeps what the server answered as data (``code``, ``subcode``,
``status``, ``headers``), so that callers decide on it without digging the library's
exception out of ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


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
    """A target operation failed; what the server answered is kept as data.

    ``code``: the protocol's result code (an LDAP resultCode such as 32, noSuchObject);
    ``subcode``: a finer code inside the answer (Active Directory's Windows error such as
    ``00000562``, or a SCIM ``scimType`` such as ``uniqueness``); ``status`` and
    ``headers``: the HTTP status and response headers. Zero or empty when the server
    gave no answer (connection failed, timeout)."""

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        subcode: str = "",
        status: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.status = status
        self.headers: Mapping[str, str] = MappingProxyType(dict(headers or {}))


class TemporaryError(TargetError):
    """A failure that may go away: the operation is retried after ``delay`` seconds or backoff."""

    def __init__(
        self,
        message: str,
        delay: float | None = None,
        *,
        code: int = 0,
        subcode: str = "",
        status: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, subcode=subcode, status=status, headers=headers)
        self.delay = delay


class PermanentError(TargetError):
    """A failure that retrying cannot fix; reported for the action, the cycle goes on."""
