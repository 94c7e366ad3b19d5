"""Contracts from a JSON collection of an HTTP API (``source.type: http``).

Called through ``syncd.sources.registry``. ``HttpReader.read`` walks every page
(``syncd.sources.paging`` says which comes next) with httpx2, the project's one HTTP
stack, and its credentials are those of the SCIM target (``syncd.httpauth``): a bearer
token, HTTP basic, or an OAuth2 client credentials grant. TLS is verified; plaintext
only when the config says so.

A partial read is a failed read: a page that still fails after its retries (429 with
Retry-After, 5xx, a network error, a body cut short), a page that is not the expected
shape, more pages or items than the bounds allow, a next link or cursor already
followed (a loop), or an item count that disagrees with a total the API reports raises
``SourceError`` for the whole read, so that nobody is orphaned by a smaller source.
Each item's origin names the source, the page and the item's index in it.

``unchanged`` asks again for each page of the last read with ``If-None-Match`` /
``If-Modified-Since``: when every page answers 304, or the same bytes (a digest, for
APIs without validators), the source has not changed and the daemon plans nothing. A
change that shows in no page's body (a new page after a last page that was full, told
only by a ``Link`` header) is seen at the next full cycle (``daemon.interval``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from syncd.config import HttpSource
from syncd.core.contracts import RawRecord
from syncd.errors import PermanentError, SourceError, TemporaryError
from syncd.httpauth import BearerToken, ClientCredentials, Grant
from syncd.sources.mapping import Mapper, at_path
from syncd.sources.paging import Walk

log = logging.getLogger(__name__)
_RETRY = frozenset({429, 500, 502, 503, 504})
_HINTS = {
    401: "the API refused the credentials; check token_file / token_env, username or token_url",
    403: "the credentials lack the right to read this collection",
    404: "no such collection; check url",
}


@dataclass(frozen=True)
class Fetched:
    """One page as the last read got it: enough to ask again whether it changed."""

    url: str
    params: tuple[tuple[str, str], ...]
    etag: str | None
    modified: str | None
    digest: bytes


class HttpReader:
    """One HTTP source, its client and what its last read saw of each page."""

    def __init__(self, source: HttpSource, sleep: Callable[[float], None] = time.sleep) -> None:
        self.source = source
        self.sleep = sleep
        self.mapper = Mapper(source)
        self.pages: list[Fetched] = []  # of the last complete read
        verify = ssl.create_default_context(cafile=str(source.ca_file) if source.ca_file else None)
        self.http = httpx2.Client(
            verify=verify,
            auth=_auth(source, verify),
            timeout=source.timeout,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def read(self) -> list[RawRecord]:
        """Every record of every page; ``SourceError`` when any part cannot be read."""
        src = self.source
        walk = Walk(src.label, src.url, src.paging, src.max_pages)
        records: list[RawRecord] = []
        pages: list[Fetched] = []
        try:
            while (step := walk.next_request()) is not None:
                url, params = step
                response = self._get(url, params, walk.number)
                body = _json(response, src.label, walk.number)
                items = at_path(body, src.records)
                if not isinstance(items, list):
                    where = f"at {src.records!r}" if src.records else "at its top level"
                    raise SourceError(
                        f"{src.label}: page {walk.number} has no list {where} (fix: set "
                        "records: to the dotted path of the items in each page)"
                    )
                if len(records) + len(items) > src.max_records:
                    raise SourceError(
                        f"{src.label}: more than max_records {src.max_records} items "
                        "(fix: raise max_records, or narrow the collection's URL)"
                    )
                records += self.mapper.many(items, f"{src.label} page {walk.number} item ")
                pages.append(_fetched(response, url, params))
                walk.advance(response, body, len(items))
        except (PermanentError, TemporaryError) as exc:
            raise SourceError(str(exc)) from exc
        walk.check_total(len(records))
        self.pages = pages
        return records

    def unchanged(self) -> bool:
        """Every page of the last read is as it was (304, or the same bytes). False when
        there was no complete read, or a page changed; a probe that fails is no change
        (the next full read says what is wrong)."""
        if not self.pages:
            return False
        for page in self.pages:
            headers = {}
            if page.etag:
                headers["If-None-Match"] = page.etag
            if page.modified:
                headers["If-Modified-Since"] = page.modified
            try:
                response = self.http.get(_merged(page.url, page.params), headers=headers)
            except (httpx2.HTTPError, PermanentError, TemporaryError) as exc:
                log.info("%s: cannot ask whether it changed: %s", self.source.label, exc)
                return True
            if response.status_code == 304:
                continue
            if response.status_code != 200:
                log.info("%s: probe answered %s", self.source.label, response.status_code)
                return True
            if hashlib.blake2b(response.content, digest_size=16).digest() != page.digest:
                return False
        return True

    def _get(self, url: str, params: dict[str, str], number: int) -> httpx2.Response:
        """One page, retried on temporary failures; ``SourceError`` when it still fails."""
        src = self.source
        why = ""
        for attempt in range(src.retries + 1):
            delay = min(30.0, 0.5 * 2**attempt)
            try:
                response = self.http.get(_merged(url, params))
            except httpx2.HTTPError as exc:  # refused, timed out, cut short
                why = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response
                why = f"HTTP {response.status_code}"
                if response.status_code not in _RETRY:
                    hint = _HINTS.get(response.status_code, "check url and the API's answer")
                    raise SourceError(f"{src.label}: page {number} answered {why} (fix: {hint})")
                wait = _retry_after(response.headers.get("Retry-After"))
                if wait is not None and wait > src.max_retry_after:
                    raise SourceError(
                        f"{src.label}: page {number} answered {why} with Retry-After "
                        f"{wait:.0f} s, over max_retry_after {src.max_retry_after}"
                    )
                delay = wait if wait is not None else delay
            if attempt < src.retries:
                log.warning("%s: page %d failed (%s); retrying", src.label, number, why)
                self.sleep(delay)
        raise SourceError(
            f"{src.label}: page {number} failed after {src.retries + 1} tries ({why}); "
            "a partial read is a failed read, so nothing changes"
        )


def _merged(url: str, params: Mapping[str, str] | tuple[tuple[str, str], ...]) -> httpx2.URL:
    """``url`` with ``params`` added to its own query (httpx2 would replace it)."""
    return httpx2.URL(url).copy_merge_params(dict(params)) if params else httpx2.URL(url)


def _json(response: httpx2.Response, label: str, number: int) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError) as exc:
        raise SourceError(
            f"{label}: page {number} is not JSON ({' '.join(str(exc).split())}); a cut or "
            "garbled response is a failed read"
        ) from exc


def _fetched(response: httpx2.Response, url: str, params: dict[str, str]) -> Fetched:
    return Fetched(
        url,
        tuple(params.items()),
        response.headers.get("ETag"),
        response.headers.get("Last-Modified"),
        hashlib.blake2b(response.content, digest_size=16).digest(),
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds; None when absent or a date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _auth(source: HttpSource, verify: ssl.SSLContext) -> httpx2.Auth | None:
    if source.token_url:
        grant = Grant(
            source.token_url,
            source.client_id or "",
            source.read_client_secret,
            source.scope,
            float(source.timeout),
        )
        return ClientCredentials(source.label, grant, verify)
    if source.token_file or source.token_env:
        return BearerToken(source.read_token())
    if source.username:
        return httpx2.BasicAuth(source.username, source.read_password())
    return None
