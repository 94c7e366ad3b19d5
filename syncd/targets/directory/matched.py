"""Which of some entries a group holds, without reading all its members: a base read of
each group with the matched values control (RFC 3876), for a targeted cycle.

Called by ``targets.ldap.reading``. A group of 100,000 members costs a whole read of
them (about a second on slapd) however few people a boundary concerns; with the control
the server returns only the member values equal to one of the DNs asked for, so a
targeted observation costs what it asks. OpenLDAP offers the control (its root DSE
lists ``MATCHED_VALUES`` in ``supportedControl``); where it is not offered (389-ds 2.3,
Active Directory) the caller reads the groups whole.

The control's value is a ``ValuesReturnFilter`` (RFC 3876 §2): a SEQUENCE OF simple
filter items, here one ``equalityMatch`` ([3] AttributeValueAssertion) per DN, encoded
with BER's definite lengths. One read per group for every ``FILTER_TERMS`` DNs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

from ldap3 import BASE, Connection

from syncd.errors import PermanentError
from syncd.targets.directory.connection import NO_SUCH_OBJECT, LdapConnection
from syncd.targets.directory.values import chunks, lowered, normalize_dn

MATCHED_VALUES = "1.2.826.0.1.3344810.2.3"
_SEQUENCE, _OCTETS, _EQUALITY = 0x30, 0x04, 0xA3


def _length(size: int) -> bytes:
    """BER definite length: short form below 128, else long form."""
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def values_return_filter(attribute: str, values: Iterable[str]) -> bytes:
    """The BER value of a matched values control that keeps the values of ``attribute``
    equal to one of ``values``."""
    name = _tlv(_OCTETS, attribute.encode())
    items = b"".join(_tlv(_EQUALITY, name + _tlv(_OCTETS, v.encode())) for v in values)
    return _tlv(_SEQUENCE, items)


def _read(conn: Connection, dn: str, attribute: str, control: bytes) -> tuple[str, ...]:
    conn.search(
        dn,
        "(objectClass=*)",
        search_scope=BASE,
        attributes=[attribute],
        controls=[(MATCHED_VALUES, True, control)],
    )
    if not conn.response:
        return ()
    return lowered(dict(conn.response[0]["attributes"])).get(attribute.lower(), ())


def members_among(
    conn: LdapConnection, groups: Iterable[str], attribute: str, dns: Sequence[str]
) -> dict[str, frozenset[str]]:
    """Per group (keyed as given), the normalized DNs among ``dns`` that it holds as
    ``attribute`` values. A group that does not exist holds none; the control is
    critical, so a server that ignored it would refuse the read rather than answer
    with every member."""
    found: dict[str, set[str]] = {}
    asked = sorted(set(dns))
    for group in sorted(set(groups)):
        held = found.setdefault(group, set())
        for chunk in chunks(asked):
            control = values_return_filter(attribute, chunk)
            try:
                values = conn.call(partial(_read, dn=group, attribute=attribute, control=control))
            except PermanentError as exc:
                if exc.code != NO_SUCH_OBJECT:
                    raise
                break
            held.update(normalize_dn(v) for v in values)
    return {group: frozenset(held) for group, held in found.items()}
