"""The hash chain: canonical JSON and record digests. Pure: no I/O.

Used by ``syncd.audit.writer`` (``Sealer.seal`` links each record as it is written),
``syncd.audit.verify`` (``recompute`` checks a stored line) and the CLI (a ``Sealer``
with the key given to ``syncd audit verify --key-file``).

Canonical form: the record as JSON with keys sorted at every level, no insignificant
whitespace, UTF-8 without escaping non-ASCII, except that the characters that could break
or reorder a line in a viewer and that JSON leaves raw (DEL and C1 U+007F to U+009F, NEL
among them; U+2028, U+2029; the bidirectional controls U+202A to U+202E and U+2066 to
U+2069) are written as ``\\uxxxx`` escapes with lowercase hex (``syncd.core.text.json_safe``).
For the values syncd writes (strings, integers, booleans, null, lists, objects; never
floats) and without those characters this is the JSON Canonicalization Scheme of RFC 8785.

Each record carries ``unmapped.chain``::

    {"alg": "sha256" | "hmac-sha256", "prev": <hash of the previous record>,
     "hash": <digest of this record>, "key_id": <HMAC key name, hmac only>}

``hash`` is SHA-256 (or HMAC-SHA-256 with the site's key) over the canonical form of
the record without ``unmapped.chain.hash``. The first record of a trail links to
``GENESIS``. Changing, removing, inserting or reordering a record breaks a hash or a
link; with HMAC, rewriting the whole chain needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from syncd.core.text import json_safe

GENESIS = "0" * 64
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(record: dict[str, Any]) -> str:
    return json_safe(_CANONICAL.encode(record))


@dataclass(frozen=True)
class Sealer:
    """Computes record digests: plain SHA-256, or HMAC-SHA-256 when a key is given."""

    key: bytes = b""
    key_id: str = ""

    @property
    def alg(self) -> str:
        return "hmac-sha256" if self.key else "sha256"

    def digest(self, data: str) -> str:
        raw = data.encode("utf-8")
        if self.key:
            return hmac.new(self.key, raw, hashlib.sha256).hexdigest()
        return hashlib.sha256(raw).hexdigest()

    def seal(self, record: dict[str, Any], prev: str) -> tuple[str, str]:
        """Link ``record`` to ``prev``; returns (its line without newline, its hash).

        The line is the canonical form with the hash put in place as text: in canonical
        form ``"hash"`` is the key right after ``"alg"`` in the chain object, and that
        ``"chain":{`` can only be ours (any other text is inside an escaped string)."""
        chain: dict[str, str] = {"alg": self.alg, "prev": prev}
        if self.key:
            chain["key_id"] = self.key_id
        record.setdefault("unmapped", {})["chain"] = chain
        body = canonical(record)
        digest = self.digest(body)
        chain["hash"] = digest
        marker = f'"chain":{{"alg":"{self.alg}",'
        return body.replace(marker, f'{marker}"hash":"{digest}",', 1), digest


def recompute(line: str, chain: dict[str, Any], sealer: Sealer | None) -> str | None:
    """The digest a stored line should carry, or None when it cannot be checked (an
    HMAC record and no key). The line must be canonical; any other byte is an edit."""
    body = line.replace(f'"hash":"{chain.get("hash")}",', "", 1)
    if chain.get("alg") == "hmac-sha256":
        if sealer is None or not sealer.key:
            return None
        return sealer.digest(body)
    return Sealer().digest(body)
