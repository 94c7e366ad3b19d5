"""What to change when an LDAP server refuses a request: a hint for each result code,
given only for the operations it holds for (the same code means something else for a
bind, a read or a write). Pure: no I/O.

Used by ``targets.directory.connection``'s ``translate_result`` (and so by the ``ldap``
target, and the ``ad`` target for answers without a Windows error code it knows).
"""

from __future__ import annotations

REFERRAL = 10  # the result codes are RFC 4511's

# ldap3's names of the responses (``LDAPOperationResult.type``): a hint depends on what
# was asked, since the same code means something else for a bind, a read or a write
_BIND = "bindResponse"
_SEARCH = "searchResDone"
_ADD, _MODIFY = "addResponse", "modifyResponse"
_MODDN = "modDNResponse"
_WRITES = frozenset({_ADD, _MODIFY, "delResponse", _MODDN})
_RIGHTS = (
    "the bind account lacks the access rights; grant it {} access to the managed subtree and groups"
)
# (code, the responses it applies to (None: any but a bind), what to change); a hint
# that may not hold for the operation is left out
_HINTS: tuple[tuple[int, frozenset[str] | None, str], ...] = (
    (32, None, "the entry or its parent does not exist"),  # noSuchObject
    (
        49,  # slapd answers so for an account its password policy locked, too
        frozenset({_BIND}),
        "invalid credentials for bind_user, or a password policy locked it; check "
        "password_file / password_env",
    ),
    (50, _WRITES, _RIGHTS.format("write")),
    (50, frozenset({_SEARCH}), _RIGHTS.format("read")),
    (
        19,  # 389-ds: "Exceed password retry limit"
        frozenset({_BIND}),
        "a password policy refused the bind account (locked out, or password expired)",
    ),
    (
        19,
        _WRITES,
        "a constraint refused the value (password policy, unique or single-valued attribute)",
    ),
    (21, _WRITES, "the value does not fit the attribute's syntax"),
    (
        17,
        _WRITES | {_SEARCH},
        "the attribute is not in the server's schema; load the schema or drop the "
        "attribute from the config",
    ),
    (68, frozenset({_ADD, _MODDN}), "an entry with this DN already exists"),
    (
        REFERRAL,
        None,
        "the server sent syncd to another one, which syncd does not follow: point the URL "
        "at a server that holds the entry (for writes, not a read-only replica)",
    ),
)


def hint_for(code: int, response: str, text: str) -> str:
    """What to change for result ``code`` in answer to ``response`` (ldap3's name of the
    response, '' when unknown), whose server said ``text``; '' when nothing applies."""
    if code == 65 and response in (_ADD, _MODIFY):
        return "the entry would violate its object classes: " + _object_class_problem(
            text.lower(), response
        )
    for hinted, responses, hint in _HINTS:
        applies = response != _BIND if responses is None else response in responses
        if hinted == code and applies:
            return hint
    return ""


def _object_class_problem(said: str, response: str) -> str:
    if "not allowed" in said:
        return "an attribute is not allowed by them; add an object class that allows it"
    if response == _MODIFY and "member" in said:
        return "a group would lose its last member"
    return "an attribute they require is missing"
