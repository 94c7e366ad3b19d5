"""A small client of etcd's v3 API through its JSON gateway, over httpx2.

Used by ``syncd.ha.election`` (the daemon's campaign) and ``syncd.commands`` (``syncd
ha status``, ``syncd ha step-down``). Only what leader election needs: leases (grant,
keep-alive, revoke, time to live), one-key transactions, reads and deletes, and the
member list. Keys and values travel base64-encoded and int64 fields come back as
strings (the gateway's mapping of protobuf to JSON); this module hides both.

A request goes to the endpoint that answered last; when it cannot be reached, or
answers that it has no leader (a member cut off from the quorum), the next endpoint is
tried, each once per request. Every failure ends in ``EtcdError``: the election treats
it as "not renewed", never as an answer.
"""

from __future__ import annotations

import base64
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import httpx2

from syncd.config.ha import HaConfig
from syncd.errors import SyncdError

log = logging.getLogger(__name__)


class EtcdError(SyncdError):
    """No etcd member gave a usable answer."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd holds it."""

    key: str
    value: str
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True)
class TxnResult:
    """A transaction's answer: whether the compare held, and the store's revision."""

    succeeded: bool
    revision: int


class Etcd:
    """A connection to one etcd cluster, made from the ``ha:`` config."""

    def __init__(self, config: HaConfig) -> None:
        self.config = config
        self._endpoints = [e.rstrip("/") for e in config.endpoints]
        try:
            verify = _tls(config)
        except (OSError, ssl.SSLError) as exc:
            raise EtcdError(f"ha: the TLS files cannot be used: {exc}") from exc
        self._http = httpx2.Client(verify=verify, timeout=config.timeout.total_seconds())
        self._token = ""

    def close(self) -> None:
        self._http.close()

    # -- leases --------------------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew ``lease``; its TTL from now in seconds (0: it has expired or is gone)."""
        answer = self.call("/v3/lease/keepalive", {"ID": lease})
        return int(answer.get("result", answer).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        """End ``lease`` now: the keys bound to it are deleted."""
        self.call("/v3/lease/revoke", {"ID": lease})

    def time_to_live(self, lease: int) -> int:
        """Seconds left on ``lease`` (-1: gone)."""
        return int(self.call("/v3/lease/timetolive", {"ID": lease}).get("TTL", -1))

    # -- keys ----------------------------------------------------------------------------
    def create(self, key: str, value: str, lease: int) -> TxnResult:
        """Put ``key`` bound to ``lease`` if, and only if, it does not exist."""
        answer = self.call(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": b64(key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": "0",
                    }
                ],
                "success": [
                    {"request_put": {"key": b64(key), "value": b64(value), "lease": str(lease)}}
                ],
            },
        )
        return TxnResult(bool(answer.get("succeeded")), _revision(answer))

    def put(self, key: str, value: str, lease: int = 0) -> int:
        """Set ``key``; the store's revision after it."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return _revision(self.call("/v3/kv/put", body))

    def get(self, key: str) -> tuple[KeyValue | None, int]:
        """``key`` (None: absent) and the store's revision."""
        answer = self.call("/v3/kv/range", {"key": b64(key)})
        kvs = answer.get("kvs") or []
        return (_kv(kvs[0]) if kvs else None), _revision(answer)

    def delete(self, key: str) -> int:
        """Delete ``key``; how many keys went."""
        return int(self.call("/v3/kv/deleterange", {"key": b64(key)}).get("deleted", 0))

    def members(self) -> list[dict[str, Any]]:
        """The cluster's members, as etcd lists them (name, ID, clientURLs...)."""
        return list(self.call("/v3/cluster/member/list", {}).get("members") or [])

    # -- transport -----------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` on the first member that answers; ``EtcdError`` when
        none does."""
        errors: list[str] = []
        for _ in range(len(self._endpoints)):
            endpoint = self._endpoints[0]
            try:
                return self._post(endpoint, path, body)
            except (httpx2.HTTPError, EtcdError, ValueError) as exc:
                errors.append(f"{endpoint}: {exc}")
                self._endpoints.append(self._endpoints.pop(0))  # the next one first
        raise EtcdError(f"etcd {path}: no member answered ({'; '.join(errors)})")

    def _post(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.config.user and not self._token:
            self._authenticate(endpoint)
        headers = {"Authorization": self._token} if self._token else {}
        response = self._http.post(endpoint + path, json=body, headers=headers)
        if response.status_code == 401 and self._token:  # the token expired: once more
            self._token = ""
            return self._post(endpoint, path, body)
        answer: dict[str, Any] = response.json()
        if response.status_code != 200 or "error" in answer:
            message = answer.get("error") or answer.get("message") or response.text
            raise EtcdError(f"{response.status_code} {message}")
        return answer

    def _authenticate(self, endpoint: str) -> None:
        response = self._http.post(
            endpoint + "/v3/auth/authenticate",
            json={"name": self.config.user, "password": self.config.password()},
        )
        if response.status_code != 200:
            raise EtcdError(f"authentication as {self.config.user} refused")
        self._token = str(response.json().get("token", ""))


def _tls(config: HaConfig) -> ssl.SSLContext:
    """Server certificates always verified; a client certificate when configured."""
    context = ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file is not None else None
    )
    if config.cert_file is not None and config.key_file is not None:
        context.load_cert_chain(str(config.cert_file), str(config.key_file))
    return context


def _revision(answer: dict[str, Any]) -> int:
    return int((answer.get("header") or {}).get("revision", 0))


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=unb64(raw["key"]),
        value=unb64(raw.get("value", "")),
        lease=int(raw.get("lease", 0)),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )
