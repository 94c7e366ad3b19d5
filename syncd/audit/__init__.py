"""The audit trail: OCSF-shaped, hash-chained JSON lines (SPEC §6).

``records`` shapes events, ``chain`` links them, ``writer`` appends them safely with
the help of ``trail`` (files, rotation, recovery), ``active`` (the open file) and
``files``, ``verify`` checks a trail, ``settle`` closes intents a crash or a failed
write left open. ``syncd.apply``, ``syncd.engine``, ``syncd.cli`` and ``syncd.daemon`` take
``AuditWriter`` from here; ``AuditError`` is what it raises when the trail cannot be
written safely.
"""

from syncd.audit.files import AuditError
from syncd.audit.writer import AuditWriter

__all__ = ["AuditError", "AuditWriter"]
