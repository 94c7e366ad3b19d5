"""Directory operations the ``ldap`` and ``ad`` targets share: writes that tolerate a
change already in place, group membership in batches, the conflict look-up and the
online check.

Called by ``targets.ldap`` and ``targets.ad``; each passes what differs between them
(attribute names, filters, which answers mean "already done").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, Connection
from ldap3.core import exceptions as lx

from syncd.core.model import Action, ActionKind, Conflict, Outcome
from syncd.errors import PermanentError, TargetError
from syncd.targets.base import Report
from syncd.targets.directory.connection import Entry, LdapConnection
from syncd.targets.directory.values import chunks

E = TypeVar("E")  # an entry, in whatever shape the caller decoded it
SCAN_ABOVE = 500  # wanted accounts above which conflicts are found by one scan
Operation = Callable[[Connection], Any]
Why = tuple[str, str]  # why an entry is a conflict, and the fix ("": none)


def read_entry(conn: Connection, dn: str, attributes: list[str]) -> dict[str, Any]:
    """The decoded attributes of one entry (a base search)."""
    conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=attributes)
    return dict(conn.response[0]["attributes"]) if conn.response else {}


def entry_exists(conn: Connection, dn: str) -> bool:
    try:
        conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=["1.1"])
    except lx.LDAPNoSuchObjectResult:
        return False
    return bool(conn.response)


def exists(conn: LdapConnection, dn: str) -> bool:
    """Whether ``dn`` exists: one base search."""
    return conn.call(partial(entry_exists, dn=dn))


def tolerant(conn: LdapConnection, operation: Operation, already: Mapping[int, str]) -> str:
    """Run ``operation``; a refusal whose result code says the change is already in
    place (``already``: code -> note) is success, and the note is returned."""
    try:
        conn.call(operation)
    except PermanentError as exc:
        if exc.code not in already:
            raise
        return already[exc.code]
    return ""


def check_present(
    conn: LdapConnection, target: str, wanted: Sequence[tuple[str, str]]
) -> list[str]:
    """``check()`` of a directory target: one line per (what, DN) that does not exist,
    or the one error that stopped the check."""
    try:
        return [
            f"{target}: {what} {dn} does not exist" for what, dn in wanted if not exists(conn, dn)
        ]
    except TargetError as exc:
        return [str(exc)]


def candidates(
    conn: LdapConnection, base: str, scan: str, terms: Sequence[str], attributes: list[str]
) -> list[Entry]:
    """Entries under ``base`` that may stand in the way of new accounts; ``terms`` holds
    one filter per new account (its username, its key...).

    Up to ``SCAN_ABOVE`` accounts, OR filters of a hundred accounts' terms a search; past
    it (a first sync, a mass onboarding) one paged ``scan`` of every entry carrying the
    attributes is cheaper than building that many filters."""
    if len(terms) > SCAN_ABOVE:
        return conn.paged(base, scan, attributes)
    found: list[Entry] = []
    for chunk in chunks(terms):
        found += conn.paged(base, "(|" + "".join(chunk) + ")", attributes)
    return found


def first_conflicts(
    target: str,
    wanted: Sequence[tuple[str, str]],
    by_value: Mapping[str, Sequence[tuple[str, E]]],
    reason: Callable[[str, E, str, str], Why],
) -> dict[str, Conflict]:
    """For each wanted (person key, username): the first entry found under the username
    or the key (``by_value``, lower-cased) for which ``reason`` names a conflict (and
    its fix)."""
    conflicts: dict[str, Conflict] = {}
    for person, name in wanted:
        for dn, entry in [*by_value.get(name.lower(), ()), *by_value.get(person, ())]:
            why, fix = reason(dn, entry, person, name)
            if why:
                conflicts[person] = Conflict(target, person, name, dn, why, fix=fix)
                break
    return conflicts


def change_members(
    conn: LdapConnection,
    actions: Sequence[Action],
    dn_for: Callable[[Action], str],
    attribute: str,
    already: Callable[[PermanentError], str | None],
    report: Report,
    per_modify: int | None = None,
) -> None:
    """Membership changes of one kind, one modify of a group's ``attribute`` per
    ``per_modify`` accounts (None: all of them). When the directory refuses a batch (a
    member already in or out, one bad value) each account is sent on its own, and a
    refusal that ``already`` names (returns a note for) counts as done."""
    operation = MODIFY_ADD if actions[0].kind is ActionKind.ADD_MEMBER else MODIFY_DELETE
    by_group: dict[str, list[tuple[Action, str]]] = {}
    for action in actions:
        try:
            by_group.setdefault(action.group, []).append((action, dn_for(action)))
        except PermanentError as exc:
            report(Outcome(action, False, str(exc), action.ref))
    for group, pairs in by_group.items():
        for batch in chunks(pairs, per_modify or len(pairs)):
            try:
                _modify_members(conn, group, attribute, operation, [dn for _, dn in batch])
            except PermanentError:
                for action, dn in batch:
                    report(_member_alone(conn, action, group, dn, attribute, operation, already))
                continue
            for action, dn in batch:
                report(Outcome(action, True, "", dn))


def _modify_members(
    conn: LdapConnection, group: str, attribute: str, operation: str, dns: list[str]
) -> None:
    changes = {attribute: [(operation, dns)]}
    conn.call(lambda c: c.modify(group, changes))


def _member_alone(
    conn: LdapConnection,
    action: Action,
    group: str,
    dn: str,
    attribute: str,
    operation: str,
    already: Callable[[PermanentError], str | None],
) -> Outcome:
    try:
        _modify_members(conn, group, attribute, operation, [dn])
    except PermanentError as exc:
        note = already(exc)
        if note is None:
            return Outcome(action, False, str(exc), dn)
        return Outcome(action, True, note, dn)
    return Outcome(action, True, "", dn)
