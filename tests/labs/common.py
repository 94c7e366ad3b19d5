"""What every lab shares: contracts relative to today, the four lab groups and three
roles every target is seeded with, :class:`SyncdBench` (a syncd work folder driven
through the command line) and :class:`World`, the view of a target the shared
lifecycle scenarios talk to."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

GROUP_NAMES = ("developers", "vpn-users", "wiki-editors", "ops")
ROLES = {
    "developer": ("developers", "vpn-users"),
    "writer": ("wiki-editors",),
    "operator": ("ops", "vpn-users"),
}


def day(offset: int) -> str:
    """An ISO date ``offset`` days from today (UTC, the tests' policy timezone)."""
    return (datetime.now(UTC) + timedelta(days=offset)).date().isoformat()


def moment(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def contract(
    cid: str, given: str, family: str, roles: list[str], start: str, end: str, **extra: Any
) -> dict[str, Any]:
    email = f"{given}.{family}@vendor.example".lower()
    return {
        "id": cid,
        "email": email,
        "given_name": given,
        "family_name": family,
        "roles": roles,
        "start": start,
        "end": end,
        **extra,
    }


def people(count: int, roles: list[str] | None = None) -> list[dict[str, Any]]:
    """``count`` active contractors per.son0, per.son1, ..."""
    return [
        contract(f"P-{i}", "Per", f"Son{i}", roles or ["developer", "writer"], day(-1), day(10))
        for i in range(count)
    ]


ANA = contract("C-1", "Ana", "Lopez", ["developer"], day(-10), day(30), sponsor="jdoe@example.test")
BO_FUTURE = contract("C-2", "Bo", "Chen", ["operator"], day(20), day(60))
CARLA_ENDED = contract("C-3", "Carla", "Rossi", ["writer"], day(-90), day(-2))


@dataclass(frozen=True)
class Account:
    """A managed account as a lab sees it on the target."""

    enabled: bool
    groups: frozenset[str]  # of GROUP_NAMES


@dataclass
class Result:
    code: int
    out: str
    err: str


class SyncdBench:
    """What every test lab shares: a work folder holding a syncd config, the contracts
    and the audit trail, with syncd driven through its command line. A lab provides
    ``work``, ``overrides``, ``roles()`` and ``target_config()``."""

    work: Path
    overrides: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.work / "syncd.yaml"

    @property
    def audit_path(self) -> Path:
        return self.work / "audit.jsonl"

    def roles(self) -> dict[str, dict[str, list[str]]]:
        raise NotImplementedError

    def target_config(self, **target: Any) -> dict[str, Any]:
        raise NotImplementedError

    def write_config(self, **target: Any) -> Path:
        config: dict[str, Any] = {
            "source": {"type": "file", "path": "contracts.yaml"},
            "policy": {"timezone": "UTC"},
            "safety": {"max_orphan_disables": 10, "max_deletes": 10},
            "roles": self.roles(),
            "targets": {"corp": self.target_config(**target)},
            "audit": {"path": "audit.jsonl"},
            # in the work folder (not created unless a test does): never the host's
            "daemon": {"state_dir": "state"},
        }
        for key, value in self.overrides.items():
            config[key] = {**config.get(key, {}), **value}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return self.config_path

    def configure(self, **sections: dict[str, Any]) -> None:
        self.overrides.update(sections)
        self.write_config()

    def contracts(self, *records: dict[str, Any]) -> None:
        path = self.work / "contracts.yaml"
        path.write_text(yaml.safe_dump({"contracts": list(records)}, allow_unicode=True))

    def syncd(self, *args: str) -> Result:
        # Imported here, not at the top: the fixture plugins load this module in every
        # session, unit-only ones too, and a CLI that fails to import should fail the
        # tests that run it, not the loading of the plugins.
        from syncd.cli import main

        if not self.config_path.exists():
            self.write_config()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["-c", str(self.config_path), *args])
        return Result(code, out.getvalue(), err.getvalue())

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


class World(Protocol):
    """A target as the shared lifecycle scenarios see it: syncd's config and contracts,
    its command line, and whether an account exists, is enabled and in which of the
    four lab groups it is."""

    def contracts(self, *records: dict[str, Any]) -> None: ...
    def configure(self, **sections: dict[str, Any]) -> None: ...
    def syncd(self, *args: str) -> Result: ...
    def seed(self, username: str, key: str | None, groups: tuple[str, ...] = ()) -> None: ...
    def account(self, username: str) -> Account | None: ...
    def snapshot(self) -> Any: ...
    def audit(self) -> list[dict[str, Any]]: ...
