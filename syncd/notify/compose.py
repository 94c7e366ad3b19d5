"""The notices themselves: who gets which message, with which values. Pure.

Called by ``syncd.notify.service``. Warnings and digests come from ``syncd.notify.due``;
grants and revocations from the outcomes of a cycle (an account created or enabled, an
account disabled, because of a contract's dates); ops notices from the safety holds
and the conflicts a cycle found new. The values say what a template may show: the
person, the access end in ``policy.timezone`` (date, time, zone) and in UTC, and what
stops working (each target's groups from the person's roles).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from syncd.config import Config
from syncd.core.model import ActionKind, Cause, Conflict, Outcome, Person, PersonState
from syncd.core.timeutil import format_duration, iso_utc
from syncd.notify.due import DueWarning
from syncd.notify.message import Notice


def when(moment: datetime, tz: ZoneInfo) -> dict[str, str]:
    """An instant in the recipient's terms (the policy's zone) and in UTC."""
    local = moment.astimezone(tz)
    return {
        "date": local.strftime("%A %d %B %Y"),
        "time": local.strftime("%H:%M"),
        "zone": f"{local.tzname()} ({tz.key})",
        "utc": iso_utc(moment),
    }


def stops(config: Config, roles: Iterable[str]) -> dict[str, list[str]]:
    """Per target, the groups the roles grant (the account itself where none)."""
    out: dict[str, set[str]] = {name: set() for name in config.targets}
    for role in roles:
        for target, groups in config.roles.get(role, {}).items():
            out.setdefault(target, set()).update(groups)
    return {target: sorted(groups) for target, groups in sorted(out.items())}


def _person(person: Person) -> dict[str, str]:
    name = f"{person.given_name} {person.family_name}".strip() or person.username
    return {"name": name, "email": person.email, "vendor": person.vendor, "key": person.key}


def _to(config: Config, person: Person, *, contractor: bool = False) -> tuple[str, ...]:
    rec = config.notify.recipients
    out = [person.sponsor] if rec.sponsor and person.sponsor else []
    if contractor and rec.contractor:
        out.append(person.email)
    return tuple(dict.fromkeys(out))


def warning(config: Config, due: DueWarning, now: datetime) -> Notice | None:
    """The warning for one person; None when it would reach no one."""
    person, end = due.person, due.person.access_end
    assert end is not None  # ``due_warnings`` warns only about an end
    to = (*_to(config, person, contractor=True), *config.notify.recipients.copy_to)
    if not to:
        return None
    tz = ZoneInfo(config.policy.timezone)
    values = {
        "person": _person(person),
        "end": when(end, tz),
        "left": format_duration(max(end - now, timedelta(0))) or "moments",
        "stops": stops(config, person.roles),
        "extend_text": config.notify.extend_text,
        "extend_link": config.notify.extend_link,
    }
    return Notice(
        "warning",
        f"warning:{person.key}:{iso_utc(end)}:{due.label}",
        tuple(dict.fromkeys(to)),
        person.contract_ids,
        due.label,
        due.late,
        MappingProxyType(values),
    )


def outcomes(config: Config, done: Sequence[Outcome], people: Mapping[str, Person]) -> list[Notice]:
    """Access granted and access revoked, to the sponsor, from a cycle's outcomes."""
    tz = ZoneInfo(config.policy.timezone)
    kinds = {ActionKind.CREATE: "granted", ActionKind.ENABLE: "granted"}
    kinds[ActionKind.DISABLE] = "revoked"
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for outcome in done:
        action = outcome.action
        kind = kinds.get(action.kind)
        if outcome.ok and kind and action.cause is Cause.CONTRACT:
            found[(kind, action.person)].append(action.target)
    out = []
    for (kind, key), targets in sorted(found.items()):
        person = people.get(key)
        if person is None or not getattr(config.notify.kinds, kind):
            continue
        if kind == "granted" and person.state is not PersonState.ACTIVE:
            continue
        to = _to(config, person)
        if not to:
            continue
        end = person.access_end if kind == "granted" else person.last_end
        values: dict[str, Any] = {
            "person": _person(person),
            "targets": sorted(targets),
            "stops": stops(config, person.roles),
            "end": when(end, tz) if end else {"date": "", "time": "", "zone": "", "utc": ""},
        }
        stamp = iso_utc(end) if end else ""
        out.append(
            Notice(
                kind,
                f"{kind}:{key}:{stamp}",
                to,
                person.contract_ids,
                values=MappingProxyType(values),
            )
        )
    return out


def ops(config: Config, holds: Sequence[str], conflicts: Sequence[Conflict]) -> Notice | None:
    """One ops notice for new safety holds and new conflicts; None without either."""
    rec = config.notify.recipients
    if not (holds or conflicts) or not rec.ops or not config.notify.kinds.ops:
        return None
    lines = [f"held: {line}" for line in holds]
    lines += [f"conflict on {c.target}: {c.username} ({c.person}): {c.reason}" for c in conflicts]
    parts = [f"{len(holds)} held"] if holds else []
    parts += [f"{len(conflicts)} new conflicts"] if conflicts else []
    ids = tuple(sorted({i for c in conflicts for i in c.contract_ids}))
    summary = ", ".join(parts)
    values = {"summary": summary, "lines": lines}
    key = "ops:" + "|".join(lines)
    return Notice("ops", key, tuple(rec.ops), ids, values=MappingProxyType(values))


def digests(config: Config, people: Iterable[Person], now: datetime, period: str) -> list[Notice]:
    """One digest per sponsor: the people they sponsor who have access, with their end
    dates and groups, and those whose access ends before the next digest."""
    tz = ZoneInfo(config.policy.timezone)
    span = timedelta(days=7 if config.notify.digest.every == "weekly" else 1)
    by_sponsor: dict[str, list[Person]] = defaultdict(list)
    for person in people:
        if person.state is PersonState.ACTIVE and person.sponsor:
            by_sponsor[person.sponsor.lower()].append(person)
    out = []
    for sponsor, sponsored in sorted(by_sponsor.items()):
        rows = []
        ending = []
        for person in sorted(sponsored, key=lambda p: (p.access_end or now, p.key)):
            end = person.access_end
            row = {
                **_person(person),
                "end": " ".join(list(when(end, tz).values())[:3]) if end else "",
                "contract_ids": list(person.contract_ids),
                "stops": stops(config, person.roles),
            }
            rows.append(row)
            if end is not None and end <= now + span:
                ending.append(row)
        values = {
            "people": rows,
            "ending": ending,
            "extend_text": config.notify.extend_text,
            "extend_link": config.notify.extend_link,
        }
        ids = tuple(i for p in sponsored for i in p.contract_ids)
        out.append(
            Notice(
                "digest",
                f"digest:{sponsor}:{period}",
                (sponsor,),
                ids,
                values=MappingProxyType(values),
            )
        )
    return out
