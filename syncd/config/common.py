"""Building blocks of every config model: the base class, value types, secrets and DNs.

Imported by the other modules of ``syncd.config``: the sections (``sections``) and the
one module per target kind (``ldap``, ``ad``, ``scim``). Nothing here reads the YAML
document. A model reports what its schema alone cannot check as ``Problem`` values,
located relative to itself; ``Config.problems`` places them under the document root and
``load_config`` adds file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, NamedTuple

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from syncd.core.policy import Limit
from syncd.core.render import template_errors
from syncd.core.timeutil import parse_duration

FieldPath = tuple[str | int, ...]


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | str) and not isinstance(value, bool):
        return parse_duration(str(value))
    raise ValueError(f"not a duration: {value!r} (use {DURATION_FORMS})")


def _limit(value: Any) -> Any:
    if isinstance(value, Limit):
        return value
    text = str(value).strip()
    try:
        if text.endswith("%"):
            return Limit(float(text[:-1]), percent=True)
        return Limit(int(text))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a count or a percentage (use e.g. 10 or 5%)") from exc


def _size(value: Any) -> Any:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?|B?)\s*", value, re.IGNORECASE)
        if not match:
            raise ValueError(f"{value!r} is not a size (use e.g. 100MB, 1GB or 0 for off)")
        unit = match.group(2).upper().rstrip("B").rstrip("I")
        return int(match.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]
    return value


# Every form of a duration: whole numbers with a unit (w, d, h, m, s), several in a row
# (1d12h), or a bare number of seconds (300).
DURATION_FORMS = "30s, 300 (seconds), 15m, 12h, 1d, 2w, or several together: 1h30m, 1d12h"
_DURATION_PATTERN = r"^\s*(\d+|(\d+\s*[wdhmsWDHMS]\s*)+)$"
_LIMIT_PATTERN = r"^\s*(\d+|\d+(\.\d+)?\s*%)\s*$"
_SIZE_PATTERN = r"^\s*\d+\s*([KMGkmg][iI]?[bB]?|[bB]?)\s*$"

# A ``timedelta`` written as 30s, 15m, 12h, 1d or 2w (a bare number is seconds).
Duration = Annotated[
    Any,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION_PATTERN},
                {"type": "integer", "minimum": 0},
            ]
        }
    ),
]
# A ``Limit``: a count (10) or a percentage of the managed accounts (5%).
LimitField = Annotated[
    Any,
    BeforeValidator(_limit),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _LIMIT_PATTERN},
            ]
        }
    ),
]
# Bytes, written as a number or with a unit: 512K, 100MB, 1GiB (powers of 1024).
Size = Annotated[
    int,
    BeforeValidator(_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _SIZE_PATTERN},
            ]
        }
    ),
]


def _renamed_in_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Old names in the JSON Schema: accepted as before, marked deprecated."""
    renamed: Mapping[str, str] = getattr(model, "renamed", {})
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    for old, new in renamed.items():
        properties[old] = {
            key: value for key, value in properties[new].items() if key not in ("default", "title")
        } | {"deprecated": True, "description": f"Deprecated: the old name of {new}."}
        if new in required:
            required.remove(new)
            schema.setdefault("allOf", []).append(
                {"anyOf": [{"required": [new]}, {"required": [old]}]}
            )


class Model(BaseModel):
    """Base of every config model: an unknown key is an error (a typo is reported, not
    silently ignored), and a loaded configuration cannot be changed.

    ``renamed`` maps the old name of a field to its new one: a file that still uses the
    old name loads as before, and ``load_config`` warns, naming the new key."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_renamed_in_schema)
    renamed: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """The old names, read as the new ones. Given both, the old one stays, and is
        reported as an unknown key whose fix names the new one."""
        if not cls.renamed or not isinstance(data, dict):
            return data
        out = dict(data)
        for old, new in cls.renamed.items():
            if old in out and new not in out:
                out[new] = out.pop(old)
        return out


class Problem(NamedTuple):
    """What a model's schema alone cannot catch: where (a path relative to the model that
    found it), what is wrong, and how to fix it (may be empty)."""

    path: FieldPath
    message: str
    fix: str = ""

    def within(self, *prefix: str | int) -> Problem:
        """The same problem, located from an enclosing model."""
        return self._replace(path=(*prefix, *self.path))


def secret_problem(name: str, file: Path | None, env: str | None) -> str | None:
    """Why the secret ``name`` (given as ``{name}_file`` or ``{name}_env``) can't be read."""
    if file is None and env is None:
        return f"no {name}_file or {name}_env given"
    if file is not None:
        if not file.is_file():
            return f"{name}_file {file} does not exist"
        if not os.access(file, os.R_OK):
            return f"{name}_file {file} is not readable"
    elif env and env not in os.environ:
        return f"environment variable {env} is not set"
    return None


def read_secret(file: Path | None, env: str | None) -> str:
    """A secret's value from its file or variable; callers must never log or print it."""
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return os.environ.get(env or "", "")


def is_dn(value: str) -> bool:
    """Whether ``value`` is a non-empty, well-formed distinguished name (RFC 4514)."""
    try:
        parse_dn(value)
    except (LDAPInvalidDnError, ValueError, IndexError):
        return False
    return bool(value.strip())


PLACEHOLDERS = (
    "use the placeholders given_name, family_name, email, username, person, vendor, "
    "sponsor, contract_ids, attributes.NAME"
)


def template_problems(name: str, template: str, fix: str = PLACEHOLDERS) -> list[Problem]:
    """Unknown placeholders in the template of attribute ``name``, under ``attributes``."""
    return [Problem(("attributes", name), message, fix) for message in template_errors(template)]


class SecretRef(Model):
    """A password named by file or environment variable, never given inline."""

    password_file: Path | None = Field(
        default=None,
        description="File holding the password (surrounding whitespace is ignored). A "
        "relative path is looked up in $CREDENTIALS_DIRECTORY when systemd set it "
        "(LoadCredential=), otherwise next to the config file. Give this or password_env; "
        "the password itself is never accepted in the config file.",
    )
    password_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the password, instead of "
        "password_file.",
    )

    def secret_problem(self) -> str | None:
        """Why the password can't be read, or None."""
        return secret_problem("password", self.password_file, self.password_env)

    def read_secret(self) -> str:
        """The secret's value; callers must never log or print it."""
        return read_secret(self.password_file, self.password_env)

    def password_problems(self, fix: str) -> list[Problem]:
        """The unreadable password, located at the field that names it."""
        problem = self.secret_problem()
        if problem is None:
            return []
        field = "password_file" if self.password_file else "password_env"
        return [Problem((field,), problem, fix)]
