"""Which operation each result of a bulk answer is about (``syncd.targets.scim.bulk``),
without a server: ``bulkId`` for POST, method and location (or path) for the rest, then
position; and what a scim2-client ``BulkResponse`` turns into."""

from __future__ import annotations

import pytest
from scim2_models import BulkResponse, EnterpriseUser, User

from syncd.targets.scim.bulk import Result, Sent, match, resource, results

BASE = "http://127.0.0.1:8080/scim/v2"
CREATE = Sent("POST", "/Users", "0")
DISABLE_A = Sent("PATCH", "/Users/a", "1")
DISABLE_B = Sent("PATCH", "/Users/b", "2")
DELETE_C = Sent("DELETE", "/Users/c", "3")
SENT = [CREATE, DISABLE_A, DISABLE_B, DELETE_C]


def answer(method: str, status: int = 200, **fields: str) -> Result:
    return Result(method, status, **fields)


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        pytest.param(  # scim2-server: every result echoes the bulkId sent
            [
                answer("DELETE", 204, bulk_id="3", location=f"{BASE}/Users/c"),
                answer("POST", 201, bulk_id="0", location=f"{BASE}/Users/new"),
                answer("PATCH", bulk_id="2", location=f"{BASE}/Users/b"),
                answer("PATCH", bulk_id="1", location=f"{BASE}/Users/a"),
            ],
            {0: 3, 1: 0, 2: 2, 3: 1},
            id="bulkId-everywhere",
        ),
        pytest.param(  # SCIMMY: bulkId on POST only, locations on the rest
            [
                answer("POST", 201, bulk_id="0", location=f"{BASE}/Users/new"),
                answer("PATCH", 204, location=f"{BASE}/Users/b"),
                answer("PATCH", location=f"{BASE}/Users/a"),
                answer("DELETE", 404, location=f"{BASE}/Users/c"),
            ],
            {0: 0, 1: 2, 2: 1, 3: 3},
            id="bulkId-on-POST-only",
        ),
        pytest.param(  # a path instead of a location
            [answer("PATCH", path="/Users/b"), answer("DELETE", 204, path="/Users/c")],
            {0: 2, 1: 3},
            id="path",
        ),
        pytest.param(  # nothing but method and status: by position
            [
                answer("POST", 201, bulk_id="0"),
                answer("PATCH"),
                answer("PATCH", 412),
                answer("DELETE", 204),
            ],
            {0: 0, 1: 1, 2: 2, 3: 3},
            id="position",
        ),
        pytest.param(  # failOnErrors: the answer stops after the first error
            [answer("POST", 409, bulk_id="0"), answer("PATCH", 400)],
            {0: 0, 1: 1},
            id="stopped-early",
        ),
    ],
)
def test_each_result_is_matched_as_the_rfc_allows(
    answered: list[Result], expected: dict[int, int]
) -> None:
    assert match(SENT, answered) == expected


@pytest.mark.parametrize(
    ("answered", "expected"),
    [
        # a POST result is matched by its bulkId only: its location names a new resource
        pytest.param([answer("POST", 201, location=f"{BASE}/Users/new")], {}, id="POST-no-id"),
        pytest.param([answer("POST", 201, bulk_id="9")], {}, id="POST-unknown-id"),
        # a location of something not sent is about nothing, not about a neighbour
        pytest.param([answer("PATCH", location=f"{BASE}/Users/zz")], {}, id="other-resource"),
        pytest.param([answer("PATCH", location=f"{BASE}/Groups/a")], {}, id="other-type"),
        # a method that differs from the operation's is not that operation
        pytest.param([answer("DELETE", location=f"{BASE}/Users/a")], {}, id="other-method"),
        pytest.param([answer("POST", 201), answer("DELETE", 204)], {}, id="position-method"),
        # one operation is answered once
        pytest.param(
            [answer("PATCH", bulk_id="1"), answer("PATCH", location=f"{BASE}/Users/a")],
            {0: 1},
            id="answered-twice",
        ),
    ],
)
def test_a_result_about_nothing_sent_is_matched_to_nothing(
    answered: list[Result], expected: dict[int, int]
) -> None:
    assert match(SENT, answered) == expected


def test_operations_on_one_resource_are_answered_in_the_order_sent() -> None:
    sent = [Sent("PATCH", "/Users/a", "0"), Sent("PATCH", "/Users/a", "1")]
    answered = [answer("PATCH", location=f"{BASE}/Users/a")] * 2

    assert match(sent, answered) == {0: 0, 1: 1}


def test_a_bulk_id_taken_first_leaves_the_next_operation_on_that_resource() -> None:
    sent = [Sent("PATCH", "/Users/a", "0"), Sent("PATCH", "/Users/a", "1")]
    answered = [answer("PATCH", location=f"{BASE}/Users/a"), answer("PATCH", bulk_id="0")]

    assert match(sent, answered) == {0: 1, 1: 0}


def test_a_thousand_operations_are_matched_quickly() -> None:
    sent = [Sent("PATCH", f"/Users/u{i}", str(i)) for i in range(1000)]
    answered = [answer("PATCH", location=f"{BASE}/Users/u{i}") for i in reversed(range(1000))]

    assert match(sent, answered) == {i: 999 - i for i in range(1000)}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (f"{BASE}/Users/abc", ("users", "abc")),
        (f"{BASE}/Users/abc/", ("users", "abc")),
        ("/Users/a%20b", ("users", "a b")),
        ("/Users", None),
        ("", None),
        (None, None),
    ],
)
def test_the_resource_a_location_or_path_names(
    where: str | None, expected: tuple[str, str] | None
) -> None:
    assert resource(where) == expected


def test_a_bulk_response_as_scim2_client_reads_it() -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"],
        "Operations": [
            {"method": "POST", "bulkId": "0", "location": f"{BASE}/Users/n", "status": "201"},
            {"method": "PATCH", "location": f"{BASE}/Users/a", "status": "204"},
            {
                "method": "DELETE",
                "location": f"{BASE}/Users/c",
                "status": "404",
                "response": {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "404",
                    "detail": "Resource c not found",
                },
            },
        ],
    }

    read = results(BulkResponse[User[EnterpriseUser]].model_validate(body))

    assert read == [
        Result("POST", 201, "0", f"{BASE}/Users/n"),
        Result("PATCH", 204, None, f"{BASE}/Users/a"),
        Result("DELETE", 404, None, f"{BASE}/Users/c", detail="Resource c not found"),
    ]
    assert match(SENT, read) == {0: 0, 1: 1, 2: 3}
    assert results(None) == []
