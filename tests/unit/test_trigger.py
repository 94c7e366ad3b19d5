"""``POST /trigger`` on the daemon's listener (``syncd.trigger``): off by default, a
bearer token compared in constant time, the body ignored, rate-limited, audited."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from syncd.trigger import Trigger
from tests.unit.test_daemon import (  # the daemon's bench and its fixture
    Bench,
    bench,  # noqa: F401
    contract,
    free_port,
    in_days,
    wait_for,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_is_required_and_requests_are_rate_limited() -> None:
    requested: list[int] = []
    clock = Clock()
    trigger = Trigger("t0ken", 10, lambda: requested.append(1), clock)
    assert trigger.answer("/trigger", {"Authorization": ""}, "c")[0] == 401
    assert trigger.answer("/trigger", {"Authorization": "Bearer t0ke"}, "c")[0] == 401
    assert trigger.answer("/trigger", {"Authorization": "Basic t0ken"}, "c")[0] == 401
    assert trigger.answer("/elsewhere", {"Authorization": "Bearer t0ken"}, "c")[0] == 404
    assert requested == []
    assert trigger.answer("/trigger", {"Authorization": "Bearer t0ken"}, "c")[0] == 202
    clock.now += 4
    code, body, headers = trigger.answer("/trigger", {"Authorization": "Bearer t0ken"}, "c")
    assert (code, headers, body["retry_after"]) == (429, {"Retry-After": "6"}, 6)
    clock.now += 6
    assert trigger.answer("/trigger", {"Authorization": "bearer t0ken"}, "d")[0] == 202
    assert requested == [1, 1]
    assert trigger.take() == ["c", "d"]
    assert trigger.take() == []


def test_post_trigger_runs_a_cycle_now_and_is_audited(bench: Bench, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    token = tmp_path / "trigger-token"
    token.write_text("s3cret-trigger\n")
    bench.write_config(metrics_address=f"127.0.0.1:{port}", trigger_token_file=str(token))
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    url = f"http://127.0.0.1:{port}/trigger"

    refused = httpx2.post(url, headers={"Authorization": "Bearer wrong"}, content=b"{}")
    assert refused.status_code == 401
    answer = httpx2.post(
        url,
        headers={"Authorization": "Bearer s3cret-trigger"},
        content=b'{"event": "contract.terminated", "id": "C-1"}',
    )
    assert answer.status_code == 202
    wait_for(lambda: running.sample("syncd_cycles_total", result="ok") == 2, 3)
    again = httpx2.post(url, headers={"Authorization": "Bearer s3cret-trigger"})
    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) > 0
    running.stop()
    events = [r for r in bench.audit() if r.get("activity_name") == "Trigger"]
    assert [e["unmapped"]["client"] for e in events] == ["127.0.0.1"]
    assert running.sample("syncd_cycles_total", result="ok") == 2


def test_trigger_is_off_by_default(bench: Bench) -> None:  # noqa: F811
    port = free_port()
    bench.write_config(metrics_address=f"127.0.0.1:{port}")
    bench.contracts(contract("C-1", "ana", in_days(10)))
    running = bench.started()
    answer = httpx2.post(f"http://127.0.0.1:{port}/trigger", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 405
    running.stop()


@pytest.mark.parametrize(
    ("daemon", "expected"),
    [
        ({"trigger_token_file": "missing-token"}, "trigger_token_file"),
        ({"trigger_token_file": "token", "metrics_address": ""}, "metrics_address is off"),
    ],
)
def test_a_trigger_needs_a_readable_token_and_the_listener(
    bench: Bench,  # noqa: F811
    daemon: dict[str, str],
    expected: str,
) -> None:
    from syncd.config import load_config
    from syncd.errors import ConfigError

    (bench.folder / "token").write_text("x")
    bench.write_config(**daemon)
    with pytest.raises(ConfigError, match=expected):
        load_config(bench.config_path)
