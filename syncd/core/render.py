"""Attribute templates (``targets.*.attributes``) rendered for one person. Pure.

A template is plain text with ``{field}`` placeholders; nothing else is evaluated, so a
config cannot reach into Python objects. Fields: given_name, family_name, email,
username, person, vendor, sponsor, contract_ids, and ``attributes.NAME`` for a
contract's free attributes. A template that renders empty means "attribute absent".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from syncd.core.model import Person

_FIELD = re.compile(r"\{([a-z_]+)(?:\.([A-Za-z0-9_-]+))?\}")
FIELDS = frozenset(
    {
        "given_name",
        "family_name",
        "email",
        "username",
        "person",
        "vendor",
        "sponsor",
        "contract_ids",
        "attributes",
    }
)


def template_errors(template: str) -> list[str]:
    """Unknown placeholders in a template, for config validation."""
    problems = []
    for match in _FIELD.finditer(template):
        name, sub = match.group(1), match.group(2)
        if name not in FIELDS:
            problems.append(f"unknown placeholder {{{name}}}")
        elif (name == "attributes") != (sub is not None):
            problems.append(f"placeholder {match.group(0)} needs the form {{attributes.NAME}}")
    return problems


def person_fields(person: Person) -> dict[str, str]:
    return {
        "given_name": person.given_name,
        "family_name": person.family_name,
        "email": person.email,
        "username": person.username,
        "person": person.key,
        "vendor": person.vendor,
        "sponsor": person.sponsor,
        "contract_ids": " ".join(person.contract_ids),
    }


def render(template: str, fields: Mapping[str, str], attributes: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) == "attributes":
            return attributes.get(match.group(2) or "", "")
        return fields.get(match.group(1), "")

    return _FIELD.sub(one, template).strip()


def render_attributes(templates: Mapping[str, str], person: Person) -> dict[str, tuple[str, ...]]:
    """Every templated attribute for ``person``; empty tuples for those rendering empty."""
    fields = person_fields(person)
    out: dict[str, tuple[str, ...]] = {}
    for name, template in templates.items():
        value = render(template, fields, person.attributes)
        out[name] = (value,) if value else ()
    return out
