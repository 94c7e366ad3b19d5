"""``syncd run`` with an HTTP source: asked at ``source.poll``, an unchanged source (304)
runs no cycle, a changed one runs a cycle at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import yaml

from tests.servers.faultapi import FaultApi, serving
from tests.unit.test_daemon import (  # the daemon's bench and its fixture
    ANA,
    BO,
    Bench,
    bench,  # noqa: F401
    contract,
    in_days,
    wait_for,
)


@pytest.fixture
def api() -> Iterator[FaultApi]:
    with serving(FaultApi(items=[contract("C-1", "ana", in_days(10))], size=2)) as running:
        yield running


def test_an_unchanged_http_source_runs_no_cycle_and_a_change_runs_one(
    bench: Bench,  # noqa: F811
    api: FaultApi,
) -> None:
    bench.write_config()
    config = yaml.safe_load(bench.config_path.read_text())
    config["source"] = {
        **{"type": "http", "url": f"{api.url}/items", "allow_plaintext": True},
        **{"records": "data.items", "paging": {"style": "next"}, "poll": "1s"},
    }
    bench.config_path.write_text(yaml.safe_dump(config))
    running = bench.started()
    assert ANA in bench.corp.accounts
    api.hits.clear()

    time.sleep(2.5)

    assert sum(api.hits.values()) >= 2  # asked at least twice, each answered 304
    assert running.sample("syncd_cycles_total", result="ok") == 1
    api.items.append(contract("C-2", "bo", in_days(10)))
    wait_for(lambda: BO in bench.corp.accounts, 5)
    # the account is there before the cycle that made it is counted
    wait_for(lambda: running.sample("syncd_cycles_total", result="ok") == 2, 5)
    assert running.sample("syncd_cycles_total", result="ok") == 2
    running.stop()
