"""What was sent, kept in the state directory so that each notice goes out once.

Used by ``syncd.notify.service``; the file is ``notices.json`` in ``daemon.state_dir``,
replaced whole and atomically (``syncd.state.StateDir.write_json``), under a lock since
the delivery thread writes it as messages go out. It holds:

- ``armed``: per person, the access end warned about and the thresholds sent for it
  (an end that changes arms them all again: ``syncd.notify.due``);
- ``done``: each (notice, channel) delivered, with when, so that a notice half
  delivered (mail sent, the webhook down) is retried on the other channel only;
  entries go after ``KEEP``;
- ``outbox``: grants, revocations and ops notices not yet delivered on every channel,
  retried each cycle until they are, or until they have waited ``KEEP``.

A file that is lost or unreadable costs at most one more message per notice that is
due at that moment, never a warning missed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from syncd.notify.due import Armed
from syncd.notify.message import Notice
from syncd.state import StateDir

log = logging.getLogger(__name__)
FILE = "notices.json"
KEEP = timedelta(days=40)


def _notice(item: dict[str, Any]) -> Notice:
    return Notice(
        kind=item["kind"],
        key=item["key"],
        to=tuple(item["to"]),
        contract_ids=tuple(item["contract_ids"]),
        threshold=item.get("threshold", ""),
        late=bool(item.get("late", False)),
        values=MappingProxyType(item.get("values", {})),
    )


def _plain(notice: Notice) -> dict[str, Any]:
    return {
        "kind": notice.kind,
        "key": notice.key,
        "to": list(notice.to),
        "contract_ids": list(notice.contract_ids),
        "threshold": notice.threshold,
        "late": notice.late,
        "values": dict(notice.values),
    }


class NoticeStore:
    """The notices sent and waiting, as in ``folder/notices.json``."""

    def __init__(self, folder: Path, state: StateDir | None) -> None:
        self.path = folder / FILE
        self.state = state  # None: a dry run, read only
        self.lock = threading.Lock()
        self.armed: dict[str, Armed] = {}
        self.done: dict[str, datetime] = {}
        self.outbox: dict[str, tuple[Notice, datetime]] = {}
        self.checked: datetime | None = None  # when warnings were last planned
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.armed = {
                key: Armed(datetime.fromisoformat(item["end"]), frozenset(item["sent"]))
                for key, item in data["armed"].items()
            }
            self.done = {key: datetime.fromisoformat(at) for key, at in data["done"].items()}
            self.outbox = {
                item["key"]: (_notice(item), datetime.fromisoformat(item["since"]))
                for item in data["outbox"]
            }
            checked = data.get("checked")
            self.checked = datetime.fromisoformat(checked) if checked else None
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: cannot read what was sent (%s); starting afresh", self.path, exc)

    def sent(self) -> dict[str, Armed]:
        """Per person, the warnings sent for their access end (a copy: the delivery
        thread adds to it)."""
        with self.lock:
            return dict(self.armed)

    def delivered(self, key: str, channel: str) -> bool:
        with self.lock:
            return f"{key}@{channel}" in self.done

    def queue(self, notices: Iterable[Notice], now: datetime) -> None:
        """Keep notices that must survive until delivered (grants, revocations, ops)."""
        with self.lock:
            for notice in notices:
                self.outbox.setdefault(notice.key, (notice, now))
            self._save()

    def waiting(self) -> list[Notice]:
        with self.lock:
            return [notice for notice, _ in self.outbox.values()]

    def mark(
        self,
        notice: Notice,
        channel: str,
        channels: Iterable[str],
        at: datetime,
        armed: tuple[str, Armed] | None = None,
    ) -> None:
        """``notice`` went out on ``channel`` (or was given up for good); once on all
        ``channels``, it is done (a warning's person then holds ``armed``)."""
        with self.lock:
            self.done[f"{notice.key}@{channel}"] = at
            if all(f"{notice.key}@{name}" in self.done for name in channels):
                self.outbox.pop(notice.key, None)
                if armed is not None:  # a warning: ``armed`` keeps it from now on
                    self.armed[armed[0]] = armed[1]
                    for name in channels:
                        self.done.pop(f"{notice.key}@{name}", None)
            self._save()

    def prune(self, now: datetime) -> None:
        """Forget what is too old to matter: ends passed, deliveries and waiting
        notices older than ``KEEP``; remember that warnings were planned ``now``."""
        with self.lock:
            self.checked = now
            old = now - KEEP
            self.armed = {k: a for k, a in self.armed.items() if a.end > now - timedelta(days=1)}
            self.done = {k: at for k, at in self.done.items() if at > old}
            self.outbox = {k: item for k, item in self.outbox.items() if item[1] > old}
            self._save()

    def _save(self) -> None:
        if self.state is None:
            return
        data = {
            "format": "syncd.notices/1",
            "checked": self.checked.isoformat() if self.checked else None,
            "armed": {
                key: {"end": a.end.isoformat(), "sent": sorted(a.sent)}
                for key, a in sorted(self.armed.items())
            },
            "done": {key: at.isoformat() for key, at in sorted(self.done.items())},
            "outbox": [
                {**_plain(n), "since": since.isoformat()}
                for _, (n, since) in sorted(self.outbox.items())
            ],
        }
        try:
            self.state.write_json(FILE, data)
        except OSError as exc:
            log.error(
                "%s: cannot keep what was sent (%s); after a restart some notices may go out again",
                self.path,
                exc.strerror or exc,
            )
