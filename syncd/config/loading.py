"""Reading the config file: YAML with line numbers, paths resolved, every problem located.

Called by the CLI and the daemon (``config_path`` and ``load_config``). Every problem is
reported with file, line, field and a fix, and all of them are collected before
``ConfigError`` is raised. Secrets are never read from the YAML: only ``*_file``
(relative ones from ``$CREDENTIALS_DIRECTORY`` when set) or ``*_env``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from syncd import yamlsrc
from syncd.config.common import Problem
from syncd.config.model import Config
from syncd.errors import ConfigError, ConfigProblem

DEFAULT_PATH = Path("/etc/syncd/syncd.yaml")

# What to do about pydantic's error types, for the ones with an obvious fix.
_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or correct its spelling",
    "literal_error": "use one of the listed values",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "int_parsing": "use a whole number",
    "float_parsing": "use a number",
}
# Discriminator values pydantic puts into error locations of tagged unions; they are not
# keys of the document.
_UNION_TAGS = frozenset({"ldap", "ad", "scim", "file"})
_SECRETS = ("password", "token", "client_secret")


def config_path(explicit: str | None) -> Path:
    """The config file: the one given, else ``$SYNCD_CONFIG``, else ``DEFAULT_PATH``."""
    return Path(explicit or os.environ.get("SYNCD_CONFIG") or DEFAULT_PATH)


def load_config(path: Path) -> Config:
    """Load and validate ``path``; raise ``ConfigError`` listing every problem."""
    doc = _read(path)
    problems = _inline_secrets(doc)
    data = _resolve_paths(doc.data, path.parent)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _data_path(doc.data, err["loc"])
            fix = _FIXES.get(err["type"], "")
            problems.append(
                ConfigProblem(doc.file, doc.line(loc), yamlsrc.dotted(loc), err["msg"], fix)
            )
        raise ConfigError(problems) from exc
    problems += [_located(doc, problem) for problem in config.problems()]
    if problems:
        raise ConfigError(problems)
    return config


def _read(path: Path) -> yamlsrc.LocatedYaml:
    """The parsed document, which must be a mapping."""
    file = str(path)
    try:
        doc = yamlsrc.load(path)
    except OSError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    None,
                    "",
                    f"cannot read: {exc.strerror}",
                    "check the path and its permissions",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            [ConfigProblem(file, line, "", f"not valid YAML: {exc}", "fix the syntax")]
        ) from exc
    if not isinstance(doc.data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    1,
                    "",
                    "expected a mapping at the top level",
                    "start from config/syncd.yaml",
                )
            ]
        )
    return doc


def _located(doc: yamlsrc.LocatedYaml, problem: Problem) -> ConfigProblem:
    return ConfigProblem(
        doc.file, doc.line(problem.path), yamlsrc.dotted(problem.path), problem.message, problem.fix
    )


def _inline_secrets(doc: yamlsrc.LocatedYaml) -> list[ConfigProblem]:
    """A problem for each secret written into the file, which is then dropped so that
    validation does not report it again (and never echoes it)."""
    problems: list[ConfigProblem] = []
    targets = doc.data.get("targets")
    if not isinstance(targets, dict):
        return problems
    for name, target in targets.items():
        for secret in _SECRETS:
            if not (isinstance(target, dict) and secret in target):
                continue
            loc = ("targets", name, secret)
            problems.append(
                ConfigProblem(
                    doc.file,
                    doc.line(loc),
                    yamlsrc.dotted(loc),
                    "secrets are never read from the config file",
                    f"use {secret}_file or {secret}_env",
                )
            )
            del target[secret]
    return problems


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the config are relative to the config file's folder, except
    relative secret files (``password_file``, ``token_file``, ``client_secret_file``,
    ``hmac_key_file``), looked up in ``$CREDENTIALS_DIRECTORY`` when systemd set it
    (``LoadCredential=``)."""
    credentials = Path(os.environ.get("CREDENTIALS_DIRECTORY") or base)

    def rel(section: Any, key: str, folder: Path) -> Any:
        if not isinstance(section, dict):
            return section
        value = section.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            return {**section, key: str(folder / value)}
        return section

    out = dict(data)
    for section in ("source", "audit"):
        if section in out:
            out[section] = rel(out[section], "path", base)
    if "daemon" in out:
        out["daemon"] = rel(out["daemon"], "state_dir", base)
    if "audit" in out:
        out["audit"] = rel(out["audit"], "hmac_key_file", credentials)
    if isinstance(out.get("targets"), dict):
        targets = {}
        for name, target in out["targets"].items():
            target = rel(target, "ca_file", base)
            for secret in _SECRETS:
                target = rel(target, f"{secret}_file", credentials)
            targets[name] = target
        out["targets"] = targets
    return out


def _data_path(data: Any, loc: tuple[int | str, ...]) -> yamlsrc.Path_:
    """Map a pydantic error location onto the document (skipping union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if found:
            node = node[part]
        elif part in _UNION_TAGS:
            continue
        elif isinstance(node, dict | list):
            path.append(part)
            break
        else:
            break
        path.append(part)
    return tuple(path)
