"""Credentials on every request to an HTTP API: a fixed bearer token, or an OAuth2
client credentials grant (RFC 6749 §4.4).

Used as the ``auth`` of an httpx2 client by the SCIM target (``syncd.targets.scim``) and
the HTTP source (``syncd.sources.http``): one token code for both. Tokens and client
secrets are read from files or environment variables (``syncd.config``) and never
appear in messages. A fetched token is cached until shortly before it expires
and fetched again once when the service provider answers 401 (revoked early).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass

import httpx2

from syncd.errors import PermanentError, TemporaryError


@dataclass(frozen=True)
class Grant:
    """Where and as whom to fetch tokens: the ``token_url`` settings of a config section."""

    token_url: str
    client_id: str
    secret: Callable[[], str]  # reads the client secret when a token is fetched
    scope: str | None = None
    timeout: float = 30.0


class BearerToken(httpx2.Auth):
    """A fixed token from ``token_file`` / ``token_env``."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ClientCredentials(httpx2.Auth):
    """Tokens from ``token_url`` for ``client_id`` and its secret (HTTP Basic, the
    client authentication every authorization server must accept, RFC 6749 §2.3.1)."""

    def __init__(self, name: str, grant: Grant, verify: ssl.SSLContext) -> None:
        self.name = name
        self.grant = grant
        self._http = httpx2.Client(verify=verify, timeout=grant.timeout)
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0  # time.monotonic() after which the token is not used

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.token(stale=token)}"
            yield request

    def token(self, stale: str = "") -> str:
        """A valid token; ``stale`` is one the server refused, so never returned again."""
        with self._lock:
            if self._token and self._token != stale and time.monotonic() < self._expires:
                return self._token
            self._token, lifetime = self._fetch()
            # Renew a little early so that a token never expires in flight.
            self._expires = time.monotonic() + lifetime - min(60.0, lifetime / 10)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        grant = self.grant
        form = {"grant_type": "client_credentials"}
        if grant.scope:
            form["scope"] = grant.scope
        try:
            response = self._http.post(
                grant.token_url,
                data=form,
                auth=(grant.client_id, grant.secret()),
                headers={"Accept": "application/json"},
            )
        except httpx2.RequestError as exc:
            raise TemporaryError(f"{self.name}: token_url unreachable: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TemporaryError(f"{self.name}: token_url answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            error = body.get("error_description") or body.get("error") or response.reason_phrase
            raise PermanentError(
                f"{self.name}: token_url refused the client credentials "
                f"({response.status_code}: {error}); check client_id, "
                "client_secret_file / client_secret_env and scope"
            )
        lifetime = body.get("expires_in")
        return str(body["access_token"]), float(lifetime) if lifetime else float("inf")

    def close(self) -> None:
        self._http.close()
