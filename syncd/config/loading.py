"""Reading the config file: YAML with line numbers, paths resolved, every problem located.

Called by the CLI and the daemon (``config_path`` and ``load_config``). Every problem is
reported with file, line, field and a fix (``syncd.config.teach`` words the schema's
errors), and all of them are collected before ``ConfigError`` is raised: when the
structure is invalid, the sections that are valid on their own are still checked
beyond their schema, so one run lists everything. Old names of fields are read as the
new ones, with a warning (``Config.warnings``). Secrets are never read from the YAML:
only ``*_file`` (relative ones from ``$CREDENTIALS_DIRECTORY`` when set) or ``*_env``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from syncd import yamlsrc
from syncd.config.common import Problem
from syncd.config.fields import kinds, old_names, renamed_in
from syncd.config.model import Config, TargetConfig, section_problems
from syncd.config.sections import AuditConfig
from syncd.config.teach import teach
from syncd.errors import ConfigError, ConfigProblem

DEFAULT_PATH = Path("/etc/syncd/syncd.yaml")

_SECRETS = ("password", "token", "client_secret")
_T = TypeVar("_T")
_TARGET: TypeAdapter[Any] = TypeAdapter(TargetConfig)
_AUDIT = TypeAdapter(AuditConfig)
_ROLES: TypeAdapter[dict[str, dict[str, list[str]]]] = TypeAdapter(dict[str, dict[str, list[str]]])


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
        structural = [_structural(doc, err) for err in exc.errors()]
        problems += sorted(structural, key=lambda problem: problem.line or 0)
        problems += [_located(doc, problem) for problem in _valid_parts_problems(data)]
        raise ConfigError(problems) from exc
    problems += [_located(doc, problem) for problem in config.problems()]
    if problems:
        raise ConfigError(problems)
    return config.noted([str(_located(doc, note)) for note in renamed_in(doc.data)])


def _structural(doc: yamlsrc.LocatedYaml, err: ErrorDetails) -> ConfigProblem:
    """A schema error, located in the document and worded to teach."""
    loc = _data_path(doc.data, err["loc"])
    message, fix = teach(err)
    return ConfigProblem(doc.file, doc.line(loc), yamlsrc.dotted(loc), message, fix)


def _valid_parts_problems(data: dict[str, Any]) -> list[Problem]:
    """The checks beyond the schema, of the sections and targets valid on their own,
    while some other part of the file is not."""
    raw = data.get("targets")
    raw = raw if isinstance(raw, dict) else None
    declared = None if raw is None else list(raw)
    valid = {name: _valid(_TARGET, target) for name, target in (raw or {}).items()}
    targets = {name: target for name, target in valid.items() if target is not None}
    audit = _valid(_AUDIT, data.get("audit", {}))
    roles = _valid(_ROLES, data.get("roles"))
    return section_problems(roles, audit, targets, declared)


def _valid(adapter: TypeAdapter[_T], value: Any) -> _T | None:
    """``value`` validated, or None when it is not valid. Unknown keys, reported
    already, do not hide the checks of the rest: they are left out and it is tried again."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        errors = exc.errors()
        if not all(err["type"] == "extra_forbidden" for err in errors):
            return None
    try:
        return adapter.validate_python(_without(value, [err["loc"] for err in errors]))
    except ValidationError:
        return None


def _without(value: Any, locs: list[tuple[int | str, ...]]) -> Any:
    """A copy of ``value`` without the keys at ``locs`` (pydantic locations)."""
    if not isinstance(value, dict):
        return value
    here = {loc[-1] for loc in locs if len(loc) == 1}
    out = {}
    for key, child in value.items():
        if key in here:
            continue
        below = [loc[1:] for loc in locs if len(loc) > 1 and loc[0] == key]
        out[key] = _without(child, below) if below else child
    tags = [loc[1:] for loc in locs if len(loc) > 1 and loc[0] not in value]
    return _without(out, tags) if tags else out


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
    """A problem of the loaded models, located where the document says it (a field
    given by its old name is found by that name)."""
    path = _old_names(doc.data, problem.path)
    return ConfigProblem(
        doc.file, doc.line(path), yamlsrc.dotted(path), problem.message, problem.fix
    )


def _old_names(data: Any, path: yamlsrc.Path_) -> yamlsrc.Path_:
    """``path`` with each field that the document gives by its old name so named."""
    out: list[str | int] = []
    node = data
    for part in path:
        if isinstance(part, int) and isinstance(node, str):
            break  # one URL written as text stands for a list of one
        part = _as_given(node, part)
        out.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return tuple(out)


def _as_given(node: Any, part: str | int) -> str | int:
    """The key of ``node`` for field ``part``: its old name when only that is there."""
    old = old_names().get(str(part))
    if isinstance(node, dict) and part not in node and old in node:
        return str(old)
    return part


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

    def source(section: Any) -> Any:
        section = _rel(_rel(section, "path", base), "ca_file", base)
        for secret in (*_SECRETS, "url"):
            section = _rel(section, f"{secret}_file", credentials)
        return section

    out = dict(data)
    if "source" in out:
        out["source"] = source(out["source"])
    if isinstance(out.get("sources"), list):
        out["sources"] = [source(each) for each in out["sources"]]
    if "audit" in out:
        out["audit"] = _rel(out["audit"], "path", base)
    if "daemon" in out:
        out["daemon"] = _rel(out["daemon"], "state_dir", base)
        out["daemon"] = _rel(out["daemon"], "trigger_token_file", credentials)
    if "audit" in out:
        out["audit"] = _rel(out["audit"], "hmac_key_file", credentials)
    if isinstance(out.get("notify"), dict):
        out["notify"] = _notify_paths(_rel(out["notify"], "templates_dir", base), base, credentials)
    if "ha" in out:
        out["ha"] = _rel(out["ha"], "ca_file", base)
        for key in ("cert_file", "key_file", "password_file"):
            out["ha"] = _rel(out["ha"], key, credentials)
    if isinstance(out.get("targets"), dict):
        targets = {}
        for name, target in out["targets"].items():
            target = _rel(target, "ca_file", base)
            for secret in _SECRETS:
                target = _rel(target, f"{secret}_file", credentials)
            targets[name] = target
        out["targets"] = targets
    return out


def _rel(section: Any, key: str, folder: Path) -> Any:
    """``section`` with its relative path ``key`` made absolute under ``folder``."""
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return {**section, key: str(folder / value)}
    return section


def _notify_paths(notify: dict[str, Any], base: Path, credentials: Path) -> dict[str, Any]:
    """The files of ``notify:``: CA files next to the config, secrets as credentials."""
    out = dict(notify)
    if "smtp" in out:
        out["smtp"] = _rel(_rel(out["smtp"], "ca_file", base), "password_file", credentials)
    if "webhook" in out:
        out["webhook"] = _rel(_rel(out["webhook"], "ca_file", base), "headers_file", credentials)
    return out


def _data_path(data: Any, loc: tuple[int | str, ...]) -> yamlsrc.Path_:
    """Map a pydantic error location onto the document (skipping union tags, naming a
    field given by its old name so)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        part = _as_given(node, part)
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if found:
            node = node[part]
        elif part in kinds():
            continue  # a tagged union's kind, not a key of the document
        elif isinstance(node, dict | list):
            path.append(part)
            break
        else:
            break
        path.append(part)
    return tuple(path)
