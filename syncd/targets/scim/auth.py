"""Credentials on every SCIM request: a fixed bearer token, or an OAuth2 client
credentials grant (RFC 6749 §4.4).

Used by ``syncd.targets.scim.session`` as the ``auth`` of its httpx2 client. Tokens and
client secrets are read from files or environment variables (``syncd.config``) and
never appear in messages. A fetched token is cached until shortly before it expires
and fetched again once when the service provider answers 401 (revoked early).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Generator

import httpx2

from syncd.config import ScimTarget
from syncd.errors import PermanentError, TemporaryError


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

    def __init__(self, name: str, config: ScimTarget, verify: ssl.SSLContext) -> None:
        self.name = name
        self.config = config
        self._http = httpx2.Client(verify=verify, timeout=config.timeout)
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
        cfg = self.config
        form = {"grant_type": "client_credentials"}
        if cfg.scope:
            form["scope"] = cfg.scope
        try:
            response = self._http.post(
                cfg.token_url or "",
                data=form,
                auth=(cfg.client_id or "", cfg.read_client_secret()),
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
