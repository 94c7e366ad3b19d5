"""The HTTP source (``syncd.sources.http``) against json-server, an off-the-shelf REST
server, and against a small API of our own that fails on purpose."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from syncd.config import HttpSource
from syncd.core.model import Status
from syncd.errors import SourceError
from syncd.sources.http import HttpReader
from tests.integration.test_scim_lifecycle import TokenEndpoint
from tests.servers.faultapi import FaultApi, serving
from tests.servers.jsonserver import JsonServer, JsonServerError, start_json_server
from tests.sources.common import VMS_MAPPING, checked, vms_item

ITEMS = [vms_item(n) for n in range(1, 8)]


def source(url: str, **settings: Any) -> HttpSource:
    return HttpSource.model_validate(
        {"type": "http", "url": url, "allow_plaintext": True, **VMS_MAPPING, **settings}
    )


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonServer]:
    try:
        server = start_json_server(tmp_path_factory.mktemp("json-server"), {"assignments": []})
    except JsonServerError as exc:
        pytest.skip(f"json-server unavailable: {exc}")
    yield server
    server.stop()


def fill(server: JsonServer, items: list[dict[str, Any]]) -> None:
    """Replace the collection through json-server's own REST API."""
    for old in httpx2.get(f"{server.url}/assignments").json():
        httpx2.delete(f"{server.url}/assignments/{old['id']}").raise_for_status()
    for item in items:
        httpx2.post(f"{server.url}/assignments", json=item).raise_for_status()


def test_json_server_pages_by_link_and_the_mapping_makes_contracts(
    json_server: JsonServer,
) -> None:
    items = [*ITEMS, vms_item(8, state="Closed"), vms_item(9, skills="DEV;OPS")]
    fill(json_server, items)
    url = f"{json_server.url}/assignments?_page=1&_limit=2"
    reader = HttpReader(source(url, paging={"style": "link", "total_header": "X-Total-Count"}))
    records = reader.read()
    assert len(reader.pages) == 5  # 9 items, 2 a page
    assert [r.origin for r in records[:3]] == ["http page 1 item 1", "http page 1 item 2",
                                               "http page 2 item 1"]  # fmt: skip
    contracts, invalid = checked(records)
    assert invalid == []
    by_id = {c.id: c for c in contracts}
    assert set(by_id) == {item["id"] for item in items}
    assert by_id["A-00001"].roles == ("developer", "ops")
    assert by_id["A-00002"].roles == ("developer",)
    assert by_id["A-00001"].email == "worker1@vendor.test"
    assert by_id["A-00008"].status is Status.TERMINATED
    reader.close()


def test_json_server_etag_says_unchanged_until_the_data_changes(json_server: JsonServer) -> None:
    fill(json_server, ITEMS)
    url = f"{json_server.url}/assignments?_page=1&_limit=3"
    reader = HttpReader(source(url))
    assert not reader.unchanged()  # nothing read yet
    reader.read()
    assert all(page.etag for page in reader.pages)
    assert reader.unchanged()
    fill(json_server, [*ITEMS[:-1], vms_item(7, state="Closed")])
    assert not reader.unchanged()
    reader.close()


def test_rejected_records_name_page_item_id_field_and_fix(json_server: JsonServer) -> None:
    bad = [vms_item(1), vms_item(2, state="Paused"), vms_item(3, skills=[{"code": "CEO"}])]
    fill(json_server, bad)
    reader = HttpReader(source(f"{json_server.url}/assignments?_page=1&_limit=2"))
    contracts, invalid = checked(reader.read())
    reader.close()
    assert [c.id for c in contracts] == ["A-00001"]
    found = {(r.origin, r.contract_id, r.field) for r in invalid}
    assert found == {("http page 1 item 2", "A-00002", "status"),
                     ("http page 2 item 1", "A-00003", "roles")}  # fmt: skip
    assert all(r.fix for r in invalid)
    assert "'CEO'" in next(r.reason for r in invalid if r.field == "roles")


@pytest.fixture
def api() -> Iterator[FaultApi]:
    with serving(FaultApi(items=list(ITEMS), size=2)) as running:
        yield running


def fast(url: str, **settings: Any) -> HttpReader:
    """A reader whose retries do not wait (the waits asked for are recorded)."""
    reader = HttpReader(source(url, records="data.items", **settings))
    reader.waits = []  # type: ignore[attr-defined]
    reader.sleep = reader.waits.append  # type: ignore[attr-defined]
    return reader


@pytest.mark.parametrize(
    "paging",
    [
        {"style": "next", "total": "total"},
        {"style": "cursor", "cursor": "cursor", "cursor_param": "cursor"},
        {"style": "page", "page_param": "page", "size": 2, "size_param": ""},
    ],
    ids=["next-url", "cursor", "page-number"],
)
def test_each_paging_style_reads_every_item_once(api: FaultApi, paging: dict[str, Any]) -> None:
    reader = fast(f"{api.url}/items", paging=paging)
    records = reader.read()
    assert [r.fields["id"] for r in records] == [item["id"] for item in ITEMS]
    assert sorted(api.hits) == [1, 2, 3, 4]


def test_a_page_that_keeps_failing_fails_the_whole_read(api: FaultApi) -> None:
    api.faults.add("500")
    reader = fast(f"{api.url}/items", paging={"style": "next"}, retries=2)
    with pytest.raises(SourceError, match=r"page 2 failed after 3 tries \(HTTP 500\)"):
        reader.read()
    assert api.hits[2] == 3
    assert reader.pages == []  # nothing of a failed read is kept


def test_a_429_waits_as_long_as_retry_after_says(api: FaultApi) -> None:
    api.faults.add("429")
    reader = fast(f"{api.url}/items", paging={"style": "next"})
    assert len(reader.read()) == len(ITEMS)
    assert reader.waits == [1.0]  # type: ignore[attr-defined]


def test_a_retry_after_over_the_limit_fails_at_once(api: FaultApi) -> None:
    api.faults.add("429")
    reader = fast(f"{api.url}/items", paging={"style": "next"}, max_retry_after=0)
    with pytest.raises(SourceError, match="Retry-After 1 s, over max_retry_after 0"):
        reader.read()


def test_a_body_cut_short_is_a_failed_read(api: FaultApi) -> None:
    api.faults.add("truncated")
    reader = fast(f"{api.url}/items", paging={"style": "next"}, retries=1)
    with pytest.raises(SourceError, match="page 2 failed after 2 tries"):
        reader.read()


def test_a_cursor_that_loops_is_a_failed_read(api: FaultApi) -> None:
    api.faults.add("cursor-loop")
    reader = fast(f"{api.url}/items", paging={"style": "cursor", "cursor": "cursor"})
    with pytest.raises(SourceError, match="loops"):
        reader.read()


def test_a_total_that_disagrees_is_a_failed_read(api: FaultApi) -> None:
    api.faults.add("wrong-total")
    reader = fast(f"{api.url}/items", paging={"style": "next", "total": "total"})
    with pytest.raises(SourceError, match="reports 8 items, the read got 7"):
        reader.read()


def test_bounds_on_pages_and_records(api: FaultApi) -> None:
    with pytest.raises(SourceError, match="more than max_pages 3"):
        fast(f"{api.url}/items", paging={"style": "next"}, max_pages=3).read()
    with pytest.raises(SourceError, match="more than max_records 5"):
        fast(f"{api.url}/items", paging={"style": "next"}, max_records=5).read()


def test_a_page_of_the_wrong_shape_is_a_failed_read(api: FaultApi) -> None:
    reader = HttpReader(source(f"{api.url}/items", records="data.people"))
    with pytest.raises(SourceError, match=r"page 1 has no list at 'data.people'"):
        reader.read()


def test_unchanged_by_etag_costs_one_request_per_page(api: FaultApi) -> None:
    reader = fast(f"{api.url}/items", paging={"style": "next"})
    reader.read()
    api.hits.clear()
    assert reader.unchanged()
    assert sum(api.hits.values()) == 4
    api.items[-1] = vms_item(7, state="Closed")
    assert not reader.unchanged()


def test_a_bearer_token_from_a_file_is_sent(api: FaultApi, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    reader = fast(f"{api.url}/items", paging={"style": "next"}, token_file=str(token))
    seen: list[str] = []
    reader.http.event_hooks["request"] = [lambda r: seen.append(r.headers["Authorization"])]
    reader.read()
    assert set(seen) == {"Bearer s3cret"}


def test_basic_auth_and_a_refusal_that_says_what_to_check(api: FaultApi, tmp_path: Path) -> None:
    api.authorization = "Basic " + base64.b64encode(b"syncd:pa55").decode()
    password = tmp_path / "password"
    password.write_text("pa55\n")
    settings = {"paging": {"style": "next"}, "username": "syncd"}
    assert len(fast(f"{api.url}/items", password_file=str(password), **settings).read()) == 7
    password.write_text("wrong\n")
    with pytest.raises(SourceError, match=r"page 1 answered HTTP 401 .*check token_file"):
        fast(f"{api.url}/items", password_file=str(password), **settings).read()


def test_oauth2_client_credentials_share_the_scim_targets_token_code(
    api: FaultApi, tmp_path: Path
) -> None:
    endpoint = TokenEndpoint("vms-t0ken", "syncd", "client-Secret-1", 3600)
    try:
        api.authorization = "Bearer vms-t0ken"
        secret = tmp_path / "client-secret"
        secret.write_text("client-Secret-1\n")
        reader = fast(f"{api.url}/items", paging={"style": "next"}, token_url=endpoint.url,
                      client_id="syncd", client_secret_file=str(secret))  # fmt: skip
        assert len(reader.read()) == 7
        assert len(reader.read()) == 7
        assert endpoint.fetched == 1  # one token, kept until shortly before it expires
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()
