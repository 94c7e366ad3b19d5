"""The SCIM target end to end: contracts file → ``syncd`` CLI → a real scim2-server,
watched through a counting proxy. What the shared scenarios cannot say: the SCIM
resources themselves, PATCH of only what changed, bulk, request counts, servers
without PATCH or bulk, OAuth2 client credentials, hostile values in filters."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.labs.common import ANA, CARLA_ENDED, Account, contract, day, people
from tests.labs.scim import ScimLab
from tests.servers.scim import ENTERPRISE, FaultProxy, ScimServer, default_config, start_scim


def test_a_user_carries_the_contract_in_core_and_enterprise_attributes(scim_lab: ScimLab) -> None:
    scim_lab.contracts({**ANA, "vendor": "Acme Consulting"})

    assert scim_lab.syncd("sync").code == 0

    user = scim_lab.directory.user("ana.lopez")
    jdoe = scim_lab.directory.user("jdoe")
    assert user is not None
    assert jdoe is not None
    assert user["externalId"] == "syncd:ana.lopez@vendor.example"
    assert user["active"] is True
    assert user["name"] == {"givenName": "Ana", "familyName": "Lopez"}
    assert user["displayName"] == "Ana Lopez"
    assert user["emails"] == [
        {"value": "ana.lopez@vendor.example", "type": "work", "primary": True}
    ]
    assert user[ENTERPRISE] == {
        "employeeNumber": "ana.lopez@vendor.example",
        "organization": "Acme Consulting",
        "manager": {"value": jdoe["id"]},
    }
    creates = [
        r for r in scim_lab.audit() if r.get("activity_name") == "Create" and r["class_uid"] == 3001
    ]
    assert creates[-1]["user"]["uid_alt"] == user["id"]


def test_changes_go_out_as_a_patch_of_the_changed_attributes_only(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(ANA)
    scim_lab.syncd("sync")
    proxy.reset()
    scim_lab.contracts({**ANA, "family_name": "López-Ruiz", "vendor": "Globex"})

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    patches = [body for method, path, body in proxy.sent if method == "PATCH" and "/Users/" in path]
    assert len(patches) == 1
    assert {op["path"]: op["value"] for op in patches[0]["Operations"]} == {
        "name.familyName": "López-Ruiz",
        "displayName": "Ana López-Ruiz",
        f"{ENTERPRISE}:organization": "Globex",
    }
    assert proxy.count("PUT") == 0
    user = scim_lab.directory.user("ana.lopez")
    assert user is not None
    assert user["name"]["familyName"] == "López-Ruiz"
    assert user["name"]["givenName"] == "Ana"
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_memberships_move_with_roles_and_employees_stay(scim_lab: ScimLab) -> None:
    scim_lab.contracts(ANA)
    scim_lab.syncd("sync")
    scim_lab.contracts({**ANA, "roles": ["writer"]})

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    directory = scim_lab.directory
    assert directory.member_names("wiki-editors") == {"asmith", "ana.lopez"}
    assert directory.member_names("developers") == {"jdoe"}
    assert directory.member_names("vpn-users") == {"jdoe"}


def test_a_rehired_contractor_is_enabled_again(scim_lab: ScimLab) -> None:
    scim_lab.contracts({**ANA, "start": day(-40), "end": day(-5)})
    scim_lab.seed("ana.lopez", "ana.lopez@vendor.example", ("developers",))
    scim_lab.syncd("sync")
    assert scim_lab.account("ana.lopez") == Account(False, frozenset())

    scim_lab.contracts({**ANA, "start": day(-40), "end": day(-5)}, {**ANA, "id": "C-1b"})
    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    account = scim_lab.account("ana.lopez")
    assert account is not None
    assert account.enabled
    assert account.groups == {"developers", "vpn-users"}


def test_a_user_is_deleted_after_delete_after(scim_lab: ScimLab) -> None:
    scim_lab.configure(policy={"timezone": "UTC", "delete_after": "1d"})
    scim_lab.seed("carla.rossi", "carla.rossi@vendor.example", ("wiki-editors",))
    scim_lab.contracts(ANA, CARLA_ENDED)

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    assert scim_lab.directory.user("carla.rossi") is None
    assert scim_lab.directory.member_names("wiki-editors") == {"asmith"}


def test_many_creates_go_out_as_bulk_requests_and_converge(
    scim_lab: ScimLab, proxy: FaultProxy
) -> None:
    scim_lab.contracts(*people(40))

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    assert proxy.count("POST", "/Users") == 0
    assert 1 <= proxy.count("POST", "/Bulk") <= 4  # one per worker
    assert proxy.count("PATCH", "/Groups/") == 3  # one per group
    assert len(scim_lab.directory.users()) == 2 + 40
    assert len(scim_lab.directory.member_names("vpn-users")) == 1 + 40
    assert "(no changes)" in scim_lab.syncd("sync").out


@pytest.mark.parametrize("size", [5, 45])
def test_a_converged_cycle_costs_a_fixed_few_requests(
    scim_lab: ScimLab, proxy: FaultProxy, size: int
) -> None:
    scim_lab.write_config(page_size=20)
    scim_lab.contracts(*people(size), ANA)
    assert scim_lab.syncd("sync").code == 0
    proxy.reset()

    result = scim_lab.syncd("sync")

    assert "(no changes)" in result.out
    pages = -(-(size + 1) // 20)
    # discovery (3), one per page of managed users, one for the groups, one for the
    # manager (jdoe, not a managed user)
    assert proxy.count() == proxy.count("GET") == 3 + pages + 1 + 1


def test_a_server_without_patch_or_bulk_gets_puts(tmp_path: Path) -> None:
    server = start_scim(
        tmp_path / "srv", tenants=True, config=default_config(patch=False, bulk=False)
    )
    lab = ScimLab(server, tmp_path)
    proxy = FaultProxy(lab.tenant)
    lab.url = proxy.url
    try:
        lab.seed("carla.rossi", "carla.rossi@vendor.example", ("wiki-editors",))
        lab.contracts(ANA, CARLA_ENDED, *people(3, ["writer"]))

        first = lab.syncd("sync")

        assert first.code == 0, first.out
        assert proxy.count("PATCH") == proxy.count("POST", "/Bulk") == 0
        assert proxy.count("POST", "/Users") == 4
        assert proxy.count("PUT", "/Users/") == 1  # carla disabled
        assert lab.account("carla.rossi") == Account(False, frozenset())
        assert lab.directory.member_names("wiki-editors") == {
            "asmith",
            *(f"per.son{i}" for i in range(3)),
        }
        assert lab.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))
        assert "(no changes)" in lab.syncd("sync").out
    finally:
        proxy.close()
        lab.directory.close()
        server.stop()


@pytest.mark.parametrize(("page_size", "scan"), [(500, True), (1, False)])
def test_conflicts_of_a_mass_onboarding_are_found_by_a_scan_or_by_filters(
    scim_lab: ScimLab, proxy: FaultProxy, page_size: int, scan: bool
) -> None:
    scim_lab.write_config(page_size=page_size)
    scim_lab.directory.add_user("per.son7", external_id="hr-7")
    scim_lab.contracts(*people(200, ["writer"]))

    result = scim_lab.syncd("plan")

    assert result.code == 1
    assert (
        "! conflict per.son7 (contract P-7): userName 'per.son7' is taken by an unmanaged "
        "user (externalId 'hr-7')"
    ) in result.out
    lookups = [p for m, p, _ in proxy.sent if m == "GET" and "/Users?" in p and "sw" not in p]
    with_filter = [p for p in lookups if "filter=" in p]
    # a count, then the three users (two employees and the squatter) one way or the other
    assert len(lookups) == (2 if scan else 1 + 2)
    assert bool(with_filter) is not scan


def test_hostile_usernames_stay_values_in_filters(scim_lab: ScimLab) -> None:
    scim_lab.configure(policy={"timezone": "UTC", "username": {"pattern": "^.+$"}})
    hostile = 'x" or userName pr or userName eq "y'
    scim_lab.contracts(
        contract("C-9", "Star", "Filter", ["writer"], day(-1), day(9), username=hostile)
    )

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert "conflict" not in result.out  # an unquoted filter would match jdoe and asmith
    assert scim_lab.directory.user(hostile) is not None
    assert "(no changes)" in scim_lab.syncd("sync").out


def test_a_sponsor_who_is_no_user_leaves_the_manager_empty(scim_lab: ScimLab) -> None:
    scim_lab.contracts({**ANA, "sponsor": "nobody@example.test"})

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out
    user = scim_lab.directory.user("ana.lopez")
    assert user is not None
    assert "manager" not in user[ENTERPRISE]
    (create,) = [
        r
        for r in scim_lab.audit()
        if r.get("activity_name") == "Create" and r["status"] == "Success"
    ]
    assert "sponsor nobody@example.test is not a user of corp" in create["status_detail"]


class TokenEndpoint:
    """An OAuth2 token endpoint (client credentials) issuing the SCIM server's token."""

    def __init__(self, token: str, client: str, secret: str, lifetime: int) -> None:
        self.fetched = 0
        endpoint = self
        expected = "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = self.rfile.read(int(self.headers["Content-Length"])).decode()
                good = self.headers.get("Authorization") == expected
                ok = good and "grant_type=client_credentials" in form
                endpoint.fetched += ok
                body = (
                    {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
                    if ok
                    else {"error": "invalid_client"}
                )
                data = json.dumps(body).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"


@pytest.fixture
def token_endpoint(scim_server: ScimServer) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint(scim_server.token, "syncd", "client-Secret-1", 3600)
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()


def test_oauth2_client_credentials_fetch_one_token_per_run(
    scim_lab: ScimLab, token_endpoint: TokenEndpoint
) -> None:
    (scim_lab.work / "client-secret").write_text("client-Secret-1\n")
    scim_lab.write_config(
        token_file=None,
        token_url=token_endpoint.url,
        client_id="syncd",
        client_secret_file="client-secret",
    )
    scim_lab.contracts(*people(3))

    result = scim_lab.syncd("sync")

    assert result.code == 0, result.out + result.err
    assert token_endpoint.fetched == 1
    assert len(scim_lab.directory.users()) == 5


def test_refused_client_credentials_say_what_to_check(
    scim_lab: ScimLab, token_endpoint: TokenEndpoint
) -> None:
    (scim_lab.work / "client-secret").write_text("wrong")
    scim_lab.write_config(
        token_file=None,
        token_url=token_endpoint.url,
        client_id="syncd",
        client_secret_file="client-secret",
    )
    scim_lab.contracts(ANA)

    result = scim_lab.syncd("sync")

    assert result.code == 1
    assert "NOT PLANNED" in result.out
    assert "token_url refused the client credentials (401: invalid_client)" in result.out
    assert "wrong" not in result.out + result.err


def test_a_wrong_token_is_reported_with_what_to_check(scim_lab: ScimLab) -> None:
    (scim_lab.work / "token").write_text("not-the-token")
    scim_lab.contracts(ANA)

    result = scim_lab.syncd("sync")

    assert result.code == 1
    assert "401" in result.out
    assert "check token_file / token_env" in result.out
    assert "not-the-token" not in result.out + result.err


def test_check_config_online_names_missing_groups(scim_lab: ScimLab) -> None:
    scim_lab.configure(roles={"writer": {"corp": ["no-such-group"]}})
    scim_lab.contracts(ANA)

    result = scim_lab.syncd("check-config", "--online")

    assert result.code == 2
    assert "group 'no-such-group' does not exist" in result.err


def test_a_membership_in_a_missing_group_fails_alone(scim_lab: ScimLab) -> None:
    scim_lab.configure(roles={"writer": {"corp": ["no-such-group"]}})
    scim_lab.contracts(ANA, contract("C-8", "Wes", "Writer", ["writer"], day(-1), day(10)))

    result = scim_lab.syncd("sync")

    assert result.code == 1
    assert "FAILED + add" in result.out
    assert "group 'no-such-group' does not exist" in result.out
    assert scim_lab.account("ana.lopez") == Account(True, frozenset({"developers", "vpn-users"}))
    failures = [r for r in scim_lab.audit() if r["status"] == "Failure"]
    assert [r["group"]["uid"] for r in failures] == ["no-such-group"]
