"""The audit trail: OCSF-shaped, hash-chained JSON lines (SPEC §6).

``records`` shapes events, ``chain`` links them, ``writer`` appends them safely,
``verify`` checks a trail, ``settle`` closes intents a crash left open.
"""

from syncd.audit.records import Outcome
from syncd.audit.writer import AuditError, AuditWriter

__all__ = ["AuditError", "AuditWriter", "Outcome"]
