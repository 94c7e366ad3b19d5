"""Reading accounts and groups again after a write, for the ``ldap`` and ``ad`` targets:
entries found by person key in batches, the members of groups, and which members lie
outside the managed scope.

Called by ``targets.ldap.reading`` and ``targets.ad.reading`` (the member base reads
also by their observation). Bounded: one paged search per base per ``FILTER_TERMS``
keys, one base read per group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial

from syncd.errors import PermanentError
from syncd.targets.directory.connection import NO_SUCH_OBJECT, Entry, LdapConnection
from syncd.targets.directory.operations import read_entry
from syncd.targets.directory.values import any_of, chunks, lowered, normalize_dn


def scopes(key_attribute: str, keys: Iterable[str]) -> list[str]:
    """The filters that find the entries of ``keys``: OR filters of ``FILTER_TERMS``
    keys each. Never a scan of the managed scope: a read-back covers one chunk of
    writes, and scanning a large directory after every chunk would cost more than the
    writes (measured with bench/ldap_cycle.py)."""
    wanted = sorted(set(keys))
    return [any_of(key_attribute, chunk) for chunk in chunks(wanted)]


def by_keys(
    conn: LdapConnection,
    bases: Sequence[str],
    key_attribute: str,
    keys: Iterable[str],
    attributes: list[str],
    also: str = "",
) -> list[Entry]:
    """Entries under each of ``bases`` whose ``key_attribute`` is one of ``keys`` and
    that match the filter ``also``, when given: one paged search per base for every
    ``FILTER_TERMS`` keys."""
    found: list[Entry] = []
    for scope in scopes(key_attribute, keys):
        search = f"(&{also}{scope})" if also else scope
        for base in bases:
            found += conn.paged(base, search, attributes)
    return found


def members_of(
    conn: LdapConnection, groups: Iterable[str], attribute: str
) -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """The normalized member DNs of each group (keyed as given), and the groups that do
    not exist: one base read per group."""
    members: dict[str, frozenset[str]] = {}
    missing = set()
    for group in sorted(set(groups)):
        try:
            entry = conn.call(partial(read_entry, dn=group, attributes=[attribute]))
        except PermanentError as exc:
            if exc.code != NO_SUCH_OBJECT:
                raise
            missing.add(group)
            continue
        values = lowered(entry).get(attribute.lower(), ())
        members[group] = frozenset(normalize_dn(value) for value in values)
    return members, frozenset(missing)


def holders(members: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Normalized member DN -> the groups (of ``members``) that hold it. Members of the
    same groups share one set: most accounts hold one of a few combinations."""
    found: dict[str, set[str]] = {}
    for group, dns in members.items():
        for dn in dns:
            found.setdefault(dn, set()).add(group)
    shared: dict[frozenset[str], frozenset[str]] = {}
    return {dn: shared.setdefault(frozenset(g), frozenset(g)) for dn, g in found.items()}


def split(
    members: Mapping[str, frozenset[str]], keys: Mapping[str, str]
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """Per group, the person keys of its managed members (``keys``: normalized DN ->
    person key, for every managed account of the cycle) and its other members
    (normalized DNs)."""
    managed = {g: frozenset(keys[m] for m in dns if m in keys) for g, dns in members.items()}
    others = {g: frozenset(m for m in dns if m not in keys) for g, dns in members.items()}
    return managed, others
