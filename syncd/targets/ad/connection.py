"""The connection of the ``ad`` target: a pool of domain controllers tried in order,
verified TLS, and AD's extended error codes translated into what an admin should change.

Used by ``targets.ad.target``. Opening (a pool of DCs tried in order), retries,
reconnects and the translation of ldap3's exceptions come from ``targets.directory``'s
``LdapConnection``; this module gives it a translation that reads the Windows error
code AD puts at the start of every diagnostic message (``0000052D: Constraint
violation``) and keeps it as the error's ``subcode``.
"""

from __future__ import annotations

import re

from ldap3.core import exceptions as lx

from syncd.config import AdTarget
from syncd.errors import PermanentError, TemporaryError
from syncd.targets.directory.connection import (
    TEMPORARY_CODES,
    Endpoint,
    LdapConnection,
    translate_result,
)

ALREADY_MEMBER = "00000562"
NOT_MEMBER = "00000561"
_DIAGNOSTIC = re.compile(r"^\s*([0-9A-Fa-f]{8}):")
_BIND_DATA = re.compile(r"data ([0-9a-fA-F]{3,8})")
_RIGHTS = (
    "delegate control of the managed OU to the service account (create and delete user "
    "objects, write all properties, reset password) and let it write 'member' of the "
    "managed groups"
)
# Windows error codes in diagnostic messages: (temporary?, what to change)
_AD_CODES: dict[str, tuple[bool, str]] = {
    "0000052D": (
        False,
        "the domain's password policy refused the password (length, complexity, history "
        "or minimum age); syncd sets 40 random characters of four classes, so check the "
        "minimum password age and fine-grained password policies applying to the OU",
    ),
    "00002071": (
        False,
        "a value that must be unique in the domain is taken (sAMAccountName or "
        "userPrincipalName): give the contract another username",
    ),
    "00000005": (False, f"access denied: {_RIGHTS}"),
    "00002098": (False, f"insufficient access rights: {_RIGHTS}"),
    "0000202B": (
        False,
        "the DC answered with a referral: the object is in another domain or partition; "
        "point urls at a DC of the domain that holds base_dn and the groups",
    ),
    "0000208D": (False, "the object or its parent OU does not exist"),
    "0000200B": (
        False,
        "AD refused a value for this attribute (too long or wrong syntax); check the "
        "attribute templates and key_attribute",
    ),
    ALREADY_MEMBER: (False, "already a member"),
    NOT_MEMBER: (False, "not a member"),
    "00000057": (False, "AD refused a parameter of the request (a value it does not accept)"),
    "0000001F": (
        False,
        "AD is unwilling to perform this change (e.g. a password over an unencrypted "
        "connection, or a protected object)",
    ),
    "000020EF": (True, "the DC is busy or replicating; retried"),
    "00000775": (False, "the service account is locked out; unlock it in AD"),
}
# the "data NNN" of a failed bind (AcceptSecurityContext error)
_BIND_CODES = {
    "52e": "invalid credentials for bind_user; check password_file / password_env",
    "525": "bind_user does not exist; use its UPN (syncd@corp.example.com) or DN",
    "530": "the service account may not log on at this time",
    "531": "the service account may not log on from this workstation",
    "532": "the service account's password has expired; set a new one",
    "533": "the service account is disabled; enable it",
    "701": "the service account has expired (accountExpires); extend it",
    "773": "the service account must change its password before it can bind",
    "775": "the service account is locked out; unlock it",
}


def connect(config: AdTarget, name: str) -> LdapConnection:
    """A connection to the domain controllers of ``urls``, reading AD's error codes."""
    # auto_range: member;range=0-1499 and beyond are fetched in full
    endpoint = Endpoint.of(config, config.urls, config.bind_user, auto_range=True)
    return LdapConnection(endpoint, name, translate_ad)


def diagnostic_code(message: str) -> str:
    """The Windows error code at the start of an AD diagnostic message, upper-cased."""
    match = _DIAGNOSTIC.match(message or "")
    return match.group(1).upper() if match else ""


def translate_ad(exc: lx.LDAPOperationResult, name: str) -> TemporaryError | PermanentError:
    """Our error for an AD refusal, saying what to change; falls back to the generic
    LDAP translation for answers without a known Windows code."""
    code = int(getattr(exc, "result", 0) or 0)
    text = str(getattr(exc, "message", "") or "")
    description = str(getattr(exc, "description", "") or type(exc).__name__)
    subcode = diagnostic_code(text)
    hint = ""
    temporary = False
    if code in TEMPORARY_CODES:  # busy, unavailable, time limit: retried as for LDAP
        return translate_result(exc, name)
    if code == 8:  # strongerAuthRequired
        hint = (
            "the DC requires an encrypted (or signed) connection: use ldaps:// URLs or "
            "start_tls: true"
        )
    elif code == 49:
        data = _BIND_DATA.search(text)
        hint = _BIND_CODES.get(data.group(1).lower(), "") if data else ""
        hint = hint or _BIND_CODES["52e"]
    elif (known := _AD_CODES.get(subcode)) is not None:
        temporary, hint = known
    if not hint:
        generic = translate_result(exc, name)
        return type(generic)(str(generic), code=code, subcode=subcode)
    message = f"{name}: {description} ({code}): {text.strip()}; {hint}"
    if temporary:
        return TemporaryError(message, code=code, subcode=subcode)
    return PermanentError(message, code=code, subcode=subcode)
