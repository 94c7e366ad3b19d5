"""syncd on SCIMMY, a second SCIM 2.0 server independent of scim2-server
(``tests.servers.scimmy``), for the behaviours the shared scenarios do not reach: bulk
results without ``bulkId`` for non-POST operations, a filter the server cannot
evaluate, PATCH answered 204, no ETags, and a ``filter.maxResults`` far below the page
size. The first test pins the quirks themselves, as SCIMMY shows them over plain HTTP
(docs/scim.md lists them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.audit import AuditWriter
from syncd.config import load_config
from syncd.engine import open_targets, plan_cycle, run_cycle
from tests.labs.common import ANA, Account, people
from tests.labs.scim import ScimLab
from tests.servers.scim import ENTERPRISE, USER_SCHEMA, FaultProxy
from tests.servers.scimmy import start_scimmy

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
UNEVALUATED = "sponsors cannot be looked up: the service provider could not evaluate the filter"


def outcomes(lab: ScimLab, activity: str) -> list[dict[str, Any]]:
    return [
        r
        for r in lab.audit()
        if r.get("activity_name") == activity and r["unmapped"].get("phase") == "outcome"
    ]


def disable(active: bool = False) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": active}}]}


def test_scimmy_has_the_quirks_syncd_deals_with(scimmy_lab: ScimLab) -> None:
    http = scimmy_lab.directory.http
    spc = http.get("/ServiceProviderConfig").json()
    assert spc["etag"] == {"supported": False}
    assert spc["filter"] == {"supported": True, "maxResults": 200}
    jdoe = scimmy_lab.directory.user("jdoe")
    assert jdoe is not None
    assert "version" not in jdoe["meta"]
    assert http.get(f"/Users/{jdoe['id']}").headers["etag"].startswith('W/"')  # Express's

    first = http.patch(f"/Users/{jdoe['id']}", json=disable())
    again = http.patch(f"/Users/{jdoe['id']}", json=disable())
    assert (first.status_code, again.status_code, again.content) == (200, 204, b"")

    patch = {"method": "PATCH", "path": f"/Users/{jdoe['id']}", "bulkId": "p", "data": disable()}
    bot = {"schemas": [USER_SCHEMA], "userName": "bot"}
    create = {"method": "POST", "path": "/Users", "bulkId": "c", "data": bot}
    bulk = http.post("/Bulk", json={"schemas": [BULK_REQUEST], "Operations": [patch, create]})
    patched, created = bulk.json()["Operations"]
    assert "bulkId" not in patched
    assert patched["location"].endswith(f"/Users/{jdoe['id']}")
    assert (created["bulkId"], created["status"]) == ("c", "201")

    # "bot" has no e-mail: any filter on emails.value is refused, by a bug of SCIMMY
    refused = http.get("/Users", params={"filter": 'emails.value eq "jdoe@example.test"'})
    assert refused.status_code == 400
    assert refused.json()["scimType"] == "invalidValue"

    past_the_end = http.get("/Users", params={"startIndex": 10, "count": 1}).json()
    assert past_the_end["totalResults"] == 3
    assert past_the_end["Resources"][0]["userName"] == "jdoe"  # the first page again


def test_bulk_disables_and_updates_without_bulk_ids_succeed_at_once(
    scimmy_lab: ScimLab, scimmy_proxy: FaultProxy
) -> None:
    for i in range(3):  # managed, without the attributes their contracts give them
        scimmy_lab.seed(f"per.son{i}", f"per.son{i}@vendor.example", ("ops",))
    for name in ("gone1", "gone2", "gone3"):  # orphans
        scimmy_lab.seed(name, f"{name}@vendor.example", ("ops",))
    scimmy_lab.contracts(*people(3))

    result = scimmy_lab.syncd("sync")

    assert result.code == 0, result.out
    assert scimmy_proxy.count("POST", "/Bulk") == 2  # the updates, the disables: none sent again
    updates, disables = outcomes(scimmy_lab, "Update"), outcomes(scimmy_lab, "Disable")
    assert len(updates) == len(disables) == 3
    assert {r["status"] for r in updates + disables} == {"Success"}
    assert not [r for r in updates + disables if "retried" in r.get("status_detail", "")]
    assert scimmy_lab.account("gone2") == Account(False, frozenset())
    person = scimmy_lab.directory.user("per.son1")
    assert person is not None
    assert person["displayName"] == "Per Son1"
    assert "(no changes)" in scimmy_lab.syncd("sync").out


def test_a_sponsor_look_up_scimmy_cannot_evaluate_fails_alone(scimmy_lab: ScimLab) -> None:
    scimmy_lab.directory.add_user("service-bot", external_id="hr-9")  # no e-mail
    scimmy_lab.contracts(ANA, *people(2))

    result = scimmy_lab.syncd("sync")

    assert result.code == 0, result.out
    creates = outcomes(scimmy_lab, "Create")
    assert {r["status"] for r in creates} == {"Success"}
    (ana,) = [r for r in creates if r["user"]["name"] == "ana.lopez"]
    assert UNEVALUATED in ana["status_detail"]
    assert "(400 Bad Request: Cannot convert undefined or null to object)" in ana["status_detail"]
    assert "manager left unchanged" in ana["status_detail"]
    user = scimmy_lab.directory.user("ana.lopez")
    assert user is not None
    assert "manager" not in user.get(ENTERPRISE, {})
    developers = {"jdoe", "ana.lopez", "per.son0", "per.son1"}
    assert scimmy_lab.directory.member_names("developers") == developers  # the rest went on


def test_a_500_to_a_filter_fails_that_look_up_alone(
    scimmy_lab: ScimLab, scimmy_proxy: FaultProxy
) -> None:
    scimmy_lab.contracts(ANA)
    scimmy_proxy.inject(1, method="GET", path="emails.value", status=500)

    result = scimmy_lab.syncd("sync")

    assert result.code == 0, result.out
    (create,) = outcomes(scimmy_lab, "Create")
    assert create["status"] == "Success"
    assert UNEVALUATED in create["status_detail"]
    assert "(500 Internal Server Error: injected by the test proxy)" in create["status_detail"]
    assert len([p for _, p, _ in scimmy_proxy.sent if "emails.value" in p]) == 1  # not retried
    assert scimmy_lab.syncd("sync").code == 0  # the look-up works again: the manager is set
    user = scimmy_lab.directory.user("ana.lopez")
    jdoe = scimmy_lab.directory.user("jdoe")
    assert user is not None
    assert jdoe is not None
    assert user[ENTERPRISE]["manager"] == {"value": jdoe["id"]}


def test_a_username_taken_in_another_case_is_a_conflict_never_adopted(
    scimmy_lab: ScimLab,
) -> None:
    """SCIMMY's filters compare userName with case: the plan misses "Ana.Lopez", the
    create is refused 409 (the store compares without case), and it stays a conflict."""
    scimmy_lab.directory.add_user("Ana.Lopez", external_id="hr-4711")
    scimmy_lab.contracts(ANA)

    result = scimmy_lab.syncd("sync")

    assert result.code == 1, result.out
    (create,) = outcomes(scimmy_lab, "Create")
    assert create["status"] == "Failure"
    taken = "conflict: userName 'ana.lopez' is taken by a user that a filter on userName"
    assert taken in create["status_detail"]
    assert [u["userName"] for u in scimmy_lab.directory.users()] == ["jdoe", "asmith", "Ana.Lopez"]


@pytest.mark.parametrize("count", [1, 3], ids=["patch", "bulk"])
def test_a_disable_answered_204_is_a_success(
    scimmy_lab: ScimLab, scimmy_proxy: FaultProxy, count: int
) -> None:
    """The users are disabled by someone else between plan and apply: SCIMMY answers
    syncd's PATCH (alone, or in a bulk request) 204, with no body."""
    names = [f"gone{i}" for i in range(count)]
    ids = [scimmy_lab.directory.add_user(n, external_id=f"syncd:{n}@x.test") for n in names]
    scimmy_lab.contracts()
    config = load_config(scimmy_lab.write_config())
    targets = open_targets(config)
    try:
        planned = plan_cycle(config, datetime.now(UTC), targets)
        for user in ids:
            patched = scimmy_lab.directory.http.patch(f"/Users/{user}", json=disable())
            assert patched.status_code == 200
        correlation = str(uuid.uuid4())
        with AuditWriter.from_config(config.audit, correlation) as audit:
            run_cycle(planned, targets, audit, correlation)
    finally:
        for target in targets.values():
            target.close()

    if count == 1:
        assert ("PATCH", f"/scim/v2/Users/{ids[0]}", 204) in scimmy_proxy.answered
    disables = outcomes(scimmy_lab, "Disable")
    assert [r["status"] for r in disables] == ["Success"] * count
    assert [scimmy_lab.account(n) for n in names] == [Account(False, frozenset())] * count


def test_without_etags_no_write_is_conditional(
    scimmy_lab: ScimLab, scimmy_proxy: FaultProxy
) -> None:
    scimmy_lab.write_config(bulk=False)  # each user on its own: answers carry an ETag header
    scimmy_lab.seed("per.son0", "per.son0@vendor.example")
    scimmy_lab.seed("gone1", "gone1@vendor.example", ("ops",))
    scimmy_lab.contracts(ANA, *people(2))

    result = scimmy_lab.syncd("sync")

    assert result.code == 0, result.out
    assert scimmy_proxy.count("POST", "/Bulk") == 0
    assert scimmy_proxy.count("PATCH", "/Users/") == 2  # per.son0 updated, gone1 disabled
    assert not [h for h in scimmy_proxy.headers if "if-match" in h or "if-none-match" in h]
    assert "(no changes)" in scimmy_lab.syncd("sync").out


@pytest.fixture(name="small_pages")
def small_pages_fixture(tmp_path: Path) -> Iterator[tuple[ScimLab, FaultProxy]]:
    """A SCIMMY of its own that announces filter.maxResults 5, behind a proxy."""
    server = start_scimmy(tmp_path / "scimmy", config={"filter": 5})
    lab = ScimLab(server, tmp_path)
    proxy = FaultProxy(lab.tenant)
    lab.url = proxy.url
    try:
        yield lab, proxy
    finally:
        proxy.close()
        lab.directory.close()
        server.stop()


def test_a_max_results_far_below_the_page_size_sets_the_pages(
    small_pages: tuple[ScimLab, FaultProxy],
) -> None:
    lab, proxy = small_pages
    lab.write_config(page_size=500)
    lab.contracts(*people(12))
    assert lab.syncd("sync").code == 0
    proxy.reset()

    result = lab.syncd("sync")

    assert "(no changes)" in result.out, result.out
    pages = [p for m, p, _ in proxy.sent if m == "GET" and "externalId+sw" in p]
    assert len(pages) == 3  # 12 managed users, 5 a page
    assert all("count=5" in p for p in pages)
    assert len(lab.directory.users()) == 2 + 12
