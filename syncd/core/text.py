"""Untrusted text: the characters no contract value may hold, how any value is shown on
a line of log, command output or JSON so that it cannot start a line of its own or turn
the rest of the line around, and how names fold into a username. Pure.

Called by ``core.rules`` and ``core.contracts`` (validation rejects ``FORBIDDEN``
characters and renders default usernames), by ``syncd.logfmt``, ``syncd.report`` and
the CLI (``shown`` in plain text) and by ``syncd.audit.chain`` and ``syncd.logfmt``
(``json_safe`` on JSON lines).

The forbidden characters:

* the control characters: C0 (U+0000 to U+001F: NUL, TAB, LF, CR, ...), DEL (U+007F)
  and C1 (U+0080 to U+009F, NEL U+0085 among them): line breaks for logs, terminals
  and LDIF, or invisible;
* the line and paragraph separators U+2028 and U+2029, which JSON leaves raw and many
  viewers and JavaScript treat as line breaks;
* the bidirectional embeddings, overrides and isolates U+202A to U+202E and U+2066 to
  U+2069, which make a viewer show the text after them in another order than it is
  stored ("Trojan Source").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What json.dumps(..., ensure_ascii=False) leaves raw of FORBIDDEN (it escapes C0).
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_TEMPLATE_FIELD = re.compile(r"\{([a-z_]+)\}")
_NOT_USERNAME = re.compile(r"[^a-z0-9._-]")
_NOT_USERNAMES = re.compile(r"[^a-z0-9._\n-]")  # one per line
# Letters that Unicode decomposition does not reduce to ASCII, spelled as people do.
_LETTERS = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th"}
    | dict(zip("øØłŁđĐðÐı", "oOlLdDdDi", strict=True))
)
_LETTER = re.compile(f"[{''.join(map(chr, _LETTERS))}]")  # where a long text needs them
# The fields a username template may name, in the order ``username_format`` numbers them
TEMPLATE_FIELDS = ("given_name", "family_name", "email", "email_local")


def code_point(char: str) -> str:
    """``U+000A``: how a character is named in messages."""
    return f"U+{ord(char):04X}"


def first_forbidden(text: str) -> tuple[int, str] | None:
    """The position and code point (``U+000A``) of the first forbidden character."""
    found = FORBIDDEN.search(text)
    if found is None:
        return None
    return found.start(), code_point(found.group())


def has_forbidden(text: str) -> bool:
    """Whether ``text`` holds a forbidden character: a quick check for long texts, as
    every forbidden character is one that ``str.isprintable`` refuses."""
    return not text.isprintable() and FORBIDDEN.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    number = ord(char)
    return f"\\x{number:02x}" if number <= 0xFF else f"\\u{number:04x}"


def shown(value: object) -> str:
    """``value`` as text for one line: every forbidden character written as an escape
    (``\\n``, ``\\r``, ``\\t``, ``\\x00``, ``\\x85``, ``\\u2028``, ``\\u202e``).
    Backslashes are kept as they are (DNs escape with them), so an escape shown is
    either one of these or text the value held."""
    return FORBIDDEN.sub(_escape, str(value))


def json_safe(encoded: str) -> str:
    """JSON text as ``json.dumps(..., ensure_ascii=False)`` writes it, with the
    forbidden characters it leaves raw (DEL, C1, U+2028, U+2029, the bidirectional
    controls) written as ``\\u`` escapes with lowercase hex, like the C0 ones it
    escapes itself. In JSON text these characters can only stand inside strings,
    where the escape means the same character: the value read back is unchanged."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked when cut (for messages about an
    oversized value, which must not carry it whole)."""
    return text if len(text) <= limit else f"{text[:limit]}…"


def default_username(template: str, values: Mapping[str, str]) -> str:
    """Render ``policy.username.template``: ASCII-folded, lower-case, no spaces."""

    def field(match: re.Match[str]) -> str:
        return values.get(match.group(1), "")

    return folded(_TEMPLATE_FIELD.sub(field, template))


def username_format(template: str) -> str:
    """``template`` as a ``str.format`` string of the ``TEMPLATE_FIELDS`` values in their
    order; a field it does not name renders empty, as in ``default_username``."""
    parts = _TEMPLATE_FIELD.split(template)  # text, field, text, field, ..., text
    return "".join(
        part.replace("{", "{{").replace("}", "}}")
        if index % 2 == 0
        else (f"{{{TEMPLATE_FIELDS.index(part)}}}" if part in TEMPLATE_FIELDS else "")
        for index, part in enumerate(parts)
    )


def folded(rendered: str) -> str:
    """``rendered`` folded to ASCII, lower-case, without anything but ``[a-z0-9._-]``
    (ASCII text folds to itself: no translation or decomposition needed)."""
    if not rendered.isascii():
        rendered = rendered.translate(_LETTERS)
        rendered = unicodedata.normalize("NFKD", rendered).encode("ascii", "ignore").decode()
    return _NOT_USERNAME.sub("", rendered.lower())


def folded_each(texts: list[str]) -> list[str]:
    """``folded`` of each of ``texts``, all in one (folding is character by character,
    and keeps no line break: each text is a line of their folding)."""
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # one holds a line break
        return [folded(text) for text in texts]
    if not joined.isascii():
        joined = _LETTER.sub(_spelled, joined)  # a few of them: no translation of all
        joined = unicodedata.normalize("NFKD", joined).encode("ascii", "ignore").decode()
    return _NOT_USERNAMES.sub("", joined.lower()).split("\n")


def _spelled(letter: re.Match[str]) -> str:
    return _LETTERS[ord(letter.group())]
