"""The JSON Schema of the config file, generated from the models.

Printed by ``syncd config schema`` and shipped as ``config/syncd.schema.json``, which
the example ``config/syncd.yaml`` names in its first line, so that an editor with a
YAML language server completes keys, shows each field's description and default, and
flags what syncd would refuse. Defaults are written as the file writes them (``1h``,
``10``, ``20%``), not as Python would print them; fields that syncd still reads under
an old name list that name as deprecated.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from syncd.config.model import Config
from syncd.core.policy import Limit
from syncd.core.timeutil import format_duration


class _Schema(GenerateJsonSchema):
    """pydantic's generator, writing defaults in the config file's own notation, also
    those a factory makes (the default attribute templates)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        if isinstance(dft, Limit):
            return str(dft) if dft.percent else int(dft.value)
        if isinstance(dft, BaseModel):  # a section left out: all of its defaults
            return {}
        return super().encode_default(dft)


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file."""
    schema = Config.model_json_schema(schema_generator=_Schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "syncd configuration",
    }
