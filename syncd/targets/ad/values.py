"""Active Directory's value formats, as pure functions: FILETIME, userAccountControl
bits, sAMAccountName rules, random passwords in ``unicodePwd`` form.

Used by ``syncd.targets.ad``; no I/O, so they are tested with plain tables.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime, timedelta

ACCOUNTDISABLE = 0x2
NORMAL_ACCOUNT = 0x200
# A new account is added disabled (and without PASSWD_NOTREQD, which AD would add to
# its default 546) and enabled once it has a password.
NEW_ACCOUNT_UAC = NORMAL_ACCOUNT | ACCOUNTDISABLE

NEVER = 0x7FFFFFFFFFFFFFFF  # accountExpires: never expires (so is 0)
_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_TICKS_PER_SECOND = 10_000_000

SAM_MAX = 20
SAM_FORBIDDEN = '"/\\[]:;|=,+*?<>@'
# rangeUpper of the attributes a person key may be kept in (AD schema)
KEY_MAX = {"employeeid": 16, "employeenumber": 512}


def to_filetime(moment: datetime) -> int:
    """100-nanosecond intervals since 1601-01-01 UTC, as accountExpires wants."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _TICKS_PER_SECOND + delta.microseconds * 10


def from_filetime(value: int) -> datetime | None:
    """The moment a FILETIME names; None for 0 and ``NEVER`` (no expiry)."""
    if value <= 0 or value >= NEVER:
        return None
    seconds, ticks = divmod(value, _TICKS_PER_SECOND)
    try:
        return _EPOCH + timedelta(seconds=seconds, microseconds=ticks // 10)
    except OverflowError:
        return None


def disabled(uac: int) -> int:
    """``uac`` with ACCOUNTDISABLE set and every other bit as it was."""
    return uac | ACCOUNTDISABLE


def enabled(uac: int) -> int:
    """``uac`` with ACCOUNTDISABLE cleared and every other bit as it was."""
    return uac & ~ACCOUNTDISABLE


def sam_problem(name: str) -> str:
    """Why ``name`` cannot be a sAMAccountName, or "" when it can."""
    if not name:
        return "the username is empty"
    if len(name) > SAM_MAX:
        return f"username {name!r} is longer than AD's {SAM_MAX} characters for sAMAccountName"
    bad = sorted({c for c in name if c in SAM_FORBIDDEN or ord(c) < 32})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"username {name!r} holds characters AD forbids in sAMAccountName: {shown}"
    if name.endswith("."):
        return f"username {name!r} ends with a period, which AD refuses"
    return ""


def key_problem(attribute: str, key: str) -> str:
    """Why ``key`` does not fit in ``attribute``, or "" when it does."""
    limit = KEY_MAX.get(attribute.lower())
    if limit is not None and len(key) > limit:
        return f"person key {key!r} is longer than {attribute}'s {limit} characters"
    return ""


def random_password() -> str:
    """A password nobody knows that meets any complexity policy (four character
    classes, 40 characters); never logged, never stored."""
    alphabet = string.ascii_letters + string.digits + "-_.!#%"
    core = "".join(secrets.choice(alphabet) for _ in range(36))
    return core + secrets.choice("ABCDEFGH") + secrets.choice("abcdefgh") + "7!"


def unicode_pwd(password: str) -> bytes:
    """The wire form of ``unicodePwd``: the password in double quotes, UTF-16-LE."""
    return f'"{password}"'.encode("utf-16-le")
