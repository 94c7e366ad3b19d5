"""DN, time and attribute-value helpers shared by the ``ldap`` and ``ad`` targets. Pure.

Called by ``targets.directory`` (operations), ``targets.ldap`` and ``targets.ad``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

T = TypeVar("T")
_SPECIAL = ("\\", '"', "+", "#", ";", "<", ">")
FILTER_TERMS = 100  # values per OR filter: short enough for every server's limits


def normalize_dn(dn: str) -> str:
    """A comparable form of a DN: attribute types and values lower-cased, no spacing."""
    if not any(c in dn for c in _SPECIAL):
        # Fast path (no escapes, quotes or multi-valued RDNs): split and trim is exact.
        return ",".join(
            "=".join(side.strip() for side in part.split("=", 1)) for part in dn.lower().split(",")
        )
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except (LDAPInvalidDnError, ValueError, IndexError):
        return dn.strip().lower()
    return ",".join(f"{attr.lower()}={value.lower()}" for attr, value, _sep in parts)


def under(ndn: str, base: str) -> bool:
    """Whether the normalized DN ``ndn`` sits somewhere below the normalized ``base``."""
    return ndn.endswith("," + base)


def generalized_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(value: str) -> datetime | None:
    """``YYYYmmddHHMMSS[.fff]Z`` as written by syncd (and by most servers)."""
    text = value.strip()
    if len(text) < 15 or not text[:14].isdigit() or not text.endswith("Z"):
        return None
    try:
        return datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def values(raw: Any) -> tuple[str, ...]:
    """An attribute's values as strings, whether ldap3 decoded one value or a list."""
    if raw is None:
        return ()
    if isinstance(raw, list | tuple):
        return tuple(str(v) for v in raw)
    return (str(raw),)


def lowered(entry: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A decoded entry keyed by lower-cased attribute name (servers differ in case)."""
    return {k.lower(): values(v) for k, v in entry.items()}


def first_int(found: tuple[str, ...], default: int) -> int:
    """The first value as an integer, or ``default`` when absent or not a number."""
    try:
        return int(found[0]) if found else default
    except ValueError:
        return default


def any_of(attribute: str, wanted: Iterable[str]) -> str:
    """An escaped OR filter matching entries whose ``attribute`` equals any value."""
    name = escape_filter_chars(attribute)
    return "(|" + "".join(f"({name}={escape_filter_chars(x)})" for x in wanted) + ")"


def chunks(items: Sequence[T], size: int = FILTER_TERMS) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
