"""Close intents a crash left without an outcome, by looking at the target (SPEC §6).

Called by ``syncd.engine.run_cycle`` (so by ``syncd sync`` and by every daemon
cycle), after the cycle observed its targets and before it applies anything: every
intent found open when the writer started, or left open when a write to the trail
failed (a full disk), gets an outcome record saying whether the change is in place now
(``observed: true``). Whatever is not in place is planned again
by the same cycle, so no change stays unaccounted for.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.audit.writer import AuditWriter
from syncd.core.model import ObservedAccount
from syncd.core.plan import same_instant


def in_place(intent: dict[str, Any], account: ObservedAccount | None) -> bool:
    """Whether the change an intent announced shows in the observed account."""
    unmapped = intent["unmapped"]
    action = str(unmapped["action"])
    group = str((intent.get("group") or {}).get("uid", ""))
    if action == "delete":
        return account is None
    if account is None:
        return action == "remove_member"
    if action in ("enable", "disable"):
        return account.enabled == (action == "enable")
    if action in ("add_member", "remove_member"):
        return (group in account.groups) == (action == "add_member")
    if action == "revoke_credentials":
        return not account.has_credentials
    if action == "set_expiry":
        return same_instant(account.expiry, _instant(unmapped.get("expiry")))
    if action == "update":
        changes: dict[str, list[str]] = unmapped.get("changes") or {}
        return all(
            sorted(account.attributes.get(name, ())) == sorted(values)
            for name, values in changes.items()
        )
    return action == "create"


def settle_pending(
    audit: AuditWriter,
    observed: Mapping[str, Mapping[str, ObservedAccount]],
    correlation: str,
) -> int:
    """Write an outcome for every open intent; returns how many were settled."""
    for intent in audit.pending:
        target = intent["unmapped"].get("target", "")
        accounts = observed.get(target)
        # left open by a crash (found at start) or by a write to the trail that failed
        when = (
            "observed after the trail could not be written"
            if intent["metadata"]["uid"] in audit.interrupted
            else "observed after restart"
        )
        if accounts is None:
            audit.settle(
                intent,
                None,
                f"{when}: target {target} could not "
                "be read; the next cycle plans whatever is missing",
                correlation,
            )
            continue
        account = accounts.get((intent.get("user") or {}).get("uid", ""))
        applied = in_place(intent, account)
        detail = (
            f"{when}: the change is in place"
            if applied
            else f"{when}: the change is not in place; planned again"
        )
        audit.settle(intent, applied, detail, correlation)
    settled = len(audit.pending)
    audit.pending = []
    audit.interrupted = set()
    audit.sync()
    return settled


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
