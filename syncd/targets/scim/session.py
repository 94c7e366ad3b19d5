"""One SCIM service provider: an httpx2 client with scim2-client on top, discovery,
retries and error translation.

Used by ``targets.scim.target`` (observation), ``targets.scim.writes`` and
``targets.scim.members`` (changes). Every request goes through
:meth:`ScimSession.call`, which turns scim2-client and httpx2 errors into
``TemporaryError`` (429 and 503 with their ``Retry-After``, gateway errors, network
failures, timeouts: retried with tenacity after the delay the server asked for) or
``PermanentError`` (any other error status, with the server's ``detail`` and what an
admin can change); both keep the HTTP status, headers and ``scimType`` as data. A
filter answered 400 or 500 is one the server cannot evaluate (:func:`unevaluated`):
that look-up fails alone, and says so. A ``Retry-After`` pauses every thread of the
session, so that a rate-limited server is not hammered by the other workers meanwhile.
``Known`` holds what one cycle learned about the server, for the observation and the
writes.

Inside ``syncd run`` the session follows the daemon's pulse (``syncd.pulse``): it beats
before each request with the time the request may take, its retry delays and
``Retry-After`` pauses end at once on a stop, no retry follows a stop, and no request
goes out once the stop's grace has run out. A request already on the wire is not
broken off: it ends within ``timeout``.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import httpx2
from pydantic import ValidationError
from scim2_client import RequestNetworkException, SCIMClientException
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Resource, SCIMException, ServiceProviderConfig
from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential_jitter

from syncd import pulse
from syncd.config import ScimTarget
from syncd.core.model import Action
from syncd.errors import PermanentError, TemporaryError
from syncd.httpauth import BearerToken, ClientCredentials, Grant
from syncd.targets.scim.mapping import any_of_filters

log = logging.getLogger(__name__)
T = TypeVar("T")

TEMPORARY_STATUS = {429, 502, 503, 504}  # worth sending again
UNEVALUATED = {400, 500}  # answers to a filter the server could not evaluate
_HINTS = {
    400: "the service provider refused the request as written",
    401: "the service provider refused the credentials; check token_file / token_env "
    "(or client_id and its secret)",
    403: "the token lacks the rights for this; grant the provisioning scope to it",
    404: "it does not exist (any more)",
    409: "another object already holds this value",
    412: "it changed on the server since it was read; the next cycle reads it again",
    413: "the request is larger than the service provider accepts",
}


@dataclass(frozen=True)
class Capabilities:
    """What the service provider publishes about itself, discovered once per cycle."""

    user: type[Resource[Any]]  # the User model with the extensions the server declares
    extensions: frozenset[str]  # schema URNs of those User extensions
    group: type[Resource[Any]]
    patch: bool
    etag: bool
    bulk_operations: int  # most operations in one /Bulk request; 0 when it has none
    bulk_payload: int  # most bytes in one /Bulk request


@dataclass
class Known:
    """What this cycle learned about the service provider, shared with the writes."""

    caps: Capabilities
    prefix: str  # externalId prefix of managed users
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> resource
    versions: dict[str, str] = field(default_factory=dict)  # id -> ETag we can vouch for
    ids: dict[str, str] = field(default_factory=dict)  # person key -> id, created this cycle
    groups: dict[str, str] = field(default_factory=dict)  # configured displayName -> id
    managers: dict[str, str | None] = field(default_factory=dict)  # sponsor -> user id
    unresolved: dict[str, str] = field(default_factory=dict)  # sponsor -> why not looked up
    identities: dict[str, str] = field(default_factory=dict)  # user id -> e-mail or userName

    def user_id(self, action: Action) -> str | None:
        """The SCIM id an action is about: observed, or created this cycle."""
        return action.ref or self.ids.get(action.person)


class ScimSession:
    """The HTTP client, the scim2-client on top of it and their error handling."""

    def __init__(self, config: ScimTarget, name: str) -> None:
        self.config = config
        self.name = name
        verify = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
        grant = Grant(config.token_url or "", config.client_id or "", config.read_client_secret)
        self.auth: BearerToken | ClientCredentials = (
            ClientCredentials(
                name, replace(grant, scope=config.scope, timeout=config.timeout), verify
            )
            if config.token_url
            else BearerToken(config.read_token())
        )
        self.http = httpx2.Client(
            base_url=config.url.rstrip("/"),
            verify=verify,
            auth=self.auth,
            timeout=config.timeout,
            limits=httpx2.Limits(max_connections=config.concurrency + 1),
            headers={"Accept": "application/scim+json"},
        )
        self.scim = SyncSCIMClient(self.http)
        self._lock = threading.Lock()
        self._resume = 0.0  # time.monotonic() before which no request goes out
        self._pool: ThreadPoolExecutor | None = None
        self.page_size = config.page_size  # lowered to the server's maxResults by discover()
        self.pulse = pulse.current()
        # httpx's timeout holds for each of connecting, sending and waiting for the answer
        self._allow = float(config.timeout * 3)

    def discover(self) -> Capabilities:
        """Read ServiceProviderConfig, ResourceTypes and Schemas (three requests)."""
        scim = SyncSCIMClient(self.http)  # a fresh client: discover() skips what it knows
        self.call(lambda _: scim.discover())
        self.scim = scim
        user, group = scim.get_resource_model("User"), scim.get_resource_model("Group")
        if user is None or group is None:
            raise PermanentError(
                f"{self.name}: the service provider serves no "
                f"{'User' if user is None else 'Group'} resource type; check url"
            )
        spc = scim.provider.config
        max_results = spc.filter.max_results if spc and spc.filter else None
        self.page_size = min(self.config.page_size, max_results or self.config.page_size)
        patch, etag, bulk_operations, bulk_payload = _features(spc)
        return Capabilities(
            user=user,
            extensions=_user_extensions(scim),
            group=group,
            patch=patch,
            etag=etag,
            bulk_operations=bulk_operations if self.config.bulk else 0,
            bulk_payload=bulk_payload,
        )

    def search(
        self, model: type[Resource[Any]], query: str, notes: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every resource matching the filter ``query`` ("": all), as JSON, one request
        per page.

        Pages are read as plain JSON: turning a thousand users into models costs 0.2 s
        of CPU per page (measured) and only a few of their attributes are read."""
        found: list[dict[str, Any]] = []
        start = 1
        while True:
            params: dict[str, Any] = {"startIndex": start, "count": self.page_size}
            if query:
                params["filter"] = query
            try:
                page = self.call(partial(_page, model=model, params=params), notes)
            except PermanentError as exc:
                if not query or exc.status not in UNEVALUATED:
                    raise
                raise unevaluated(exc, query, self.name) from exc
            resources = page.get("Resources") or []
            found += resources
            start += len(resources)
            if not resources or start > int(page.get("totalResults") or 0):
                return found

    def read(self, model: type[Resource[Any]], id: str) -> dict[str, Any]:
        """One resource by id, as JSON."""
        return self.call(partial(_page, model=model, id=id, params=None))

    def find(
        self, model: type[Resource[Any]], attribute: str | tuple[str, ...], values: Iterable[str]
    ) -> list[dict[str, Any]]:
        """Resources whose ``attribute`` (or any of several) equals any of ``values``,
        and maybe others: callers pick what they need. OR filters that fit in a URL,
        sent in parallel; or, when listing every resource takes fewer requests (a
        first sync into a new application), that list. Call it from the main thread
        only (it waits for the pool)."""
        queries = any_of_filters(attribute, sorted(set(values)))
        if len(queries) <= 1:
            return self.search(model, queries[0]) if queries else []
        total = self.call(partial(_page, model=model, params={"count": 0})).get("totalResults")
        if isinstance(total, int) and -(-total // self.page_size) < len(queries):
            return self.search(model, "")
        pages = self.pool().map(lambda query: self.search(model, query), queries)
        return [resource for page in pages for resource in page]

    def call(self, operation: Callable[[SyncSCIMClient], T], notes: list[str] | None = None) -> T:
        """Run ``operation``, retrying temporary failures; ``notes`` collects each one
        that was retried, so outcomes can say what it took."""
        retrying = Retrying(
            stop=stop_after_attempt(self.config.retries + 1),
            wait=self._wait,
            retry=self._retryable,
            sleep=self._sleep,
            before_sleep=lambda state: self._before_retry(state, notes),
            reraise=True,
        )
        result: T = retrying(self.once, operation)
        return result

    def once(self, operation: Callable[[SyncSCIMClient], T]) -> T:
        """Run ``operation`` once, after any pause a server asked for, errors translated."""
        pause = self._resume - time.monotonic()
        if pause > 0 and not self.pulse.wait(pause):
            raise TemporaryError(f"{self.name}: not sent: syncd is stopping")
        try:
            with self.pulse.guard(_nothing, self._allow):
                result = operation(self.scim)
        except pulse.Stopped as exc:
            raise TemporaryError(f"{self.name}: not sent: {exc}") from exc
        except (SCIMClientException, SCIMException, httpx2.HTTPError, ValidationError) as exc:
            error = translate(exc, self.name)
            delay = error.delay if isinstance(error, TemporaryError) else None
            if delay:
                if delay > self.config.max_retry_after:
                    error = TemporaryError(
                        f"{error}; the server asked to wait {delay:.0f} s, more than "
                        f"max_retry_after {self.config.max_retry_after}",
                        delay,
                        status=error.status,
                        headers=error.headers,
                    )
                with self._lock:
                    self._resume = max(self._resume, time.monotonic() + delay)
            raise error from exc
        self.pulse.cleared(self)
        return result

    def _retryable(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return (
            isinstance(exc, TemporaryError)
            and (exc.delay is None or exc.delay <= self.config.max_retry_after)
            and not self.pulse.stopping()
        )

    _backoff = wait_exponential_jitter(multiplier=0.2, max=20, jitter=0.2)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TemporaryError) and exc.delay is not None:
            return exc.delay  # other threads wait for it in once()
        return float(self._backoff(state))

    def _sleep(self, seconds: float) -> None:
        """The delay before a retry; the daemon's stop ends it, and the retry with it."""
        if not self.pulse.wait(seconds):
            raise TemporaryError(f"{self.name}: not retried: syncd is stopping")

    def _before_retry(self, state: RetryCallState, notes: list[str] | None) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.pulse.trouble(self, f"{exc}; retry {state.attempt_number} of {self.config.retries}")
        log.warning("%s, retry %d", exc, state.attempt_number)
        if notes is not None:
            notes.append(str(exc).removeprefix(f"{self.name}: "))

    def pool(self) -> ThreadPoolExecutor:
        """Worker threads for independent requests (``concurrency``)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.concurrency, f"{self.name}-scim")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if isinstance(self.auth, ClientCredentials):
            self.auth.close()
        self.http.close()


def _nothing() -> None:
    """A request on the wire is left to its timeout: httpx has no safe way to break it
    off from another thread."""


def _user_extensions(scim: SyncSCIMClient) -> frozenset[str]:
    """Schema URNs of the extensions the User resource type declares."""
    user_type = next((t for t in scim.provider.resource_types if t.name == "User"), None)
    declared = (user_type.schema_extensions or []) if user_type else []
    return frozenset(str(e.schema_) for e in declared)


def _features(spc: ServiceProviderConfig | None) -> tuple[bool, bool, int, int]:
    """PATCH, ETags, most operations and bytes in one /Bulk request (0: no Bulk), as
    the ServiceProviderConfig says."""
    if spc is None:
        return False, False, 0, 0
    bulk = spc.bulk
    bulk_ops = (bulk.max_operations or 0) if bulk and bulk.supported else 0
    return (
        bool(spc.patch and spc.patch.supported),
        bool(spc.etag and spc.etag.supported),
        bulk_ops,
        (bulk.max_payload_size or 1 << 20) if bulk else 0,
    )


def _page(
    scim: SyncSCIMClient, model: type[Resource[Any]], params: Any, id: str | None = None
) -> dict[str, Any]:
    # Any answer but 200 raises, with the response attached for translate().
    page = scim.query(
        model,
        id,
        query_parameters=params,
        check_response_payload=False,
        expected_status_codes=[200],
    )
    return page if isinstance(page, dict) else {}


def translate(exc: BaseException, name: str) -> TemporaryError | PermanentError:
    """A scim2-client / httpx2 error as ours, with the server's detail and a hint."""
    if isinstance(exc, RequestNetworkException):
        return TemporaryError(f"{name}: connection failed: {exc.__cause__ or exc}")
    response = getattr(exc, "source", None)
    if isinstance(response, httpx2.Response):
        status = response.status_code
        body = error_body(response)
        detail = str(body.get("detail") or exc)
        message = f"{name}: {status} {response.reason_phrase}: {detail}"
        answer: dict[str, Any] = {
            "status": status,
            "subcode": str(body.get("scimType") or ""),
            "headers": dict(response.headers),
        }
        if status in TEMPORARY_STATUS:
            delay = retry_after(response.headers.get("retry-after"))
            return TemporaryError(message, delay, **answer)
        hint = _HINTS.get(status, "")
        return PermanentError(f"{message}; {hint}" if hint else message, **answer)
    if isinstance(exc, SCIMException | ValidationError):
        # Raised by scim2-client's or the models' own checks before anything was sent.
        return PermanentError(f"{name}: request not sent, it does not fit the schema: {exc}")
    return PermanentError(f"{name}: {type(exc).__name__}: {exc}")


def unevaluated(exc: PermanentError, query: str, name: str) -> PermanentError:
    """A 400 or 500 answer to a filter: the server cannot evaluate it (one it does not
    support, or a bug of its own, such as SCIMMY's 400 on ``emails.value`` as soon as
    one user has no e-mail). Only that look-up fails; its callers say so and go on."""
    shown = query if len(query) <= 120 else f"{query[:117]}..."
    answer = str(exc).removeprefix(f"{name}: ").removesuffix(f"; {_HINTS.get(exc.status)}")
    return PermanentError(
        f"{name}: the service provider could not evaluate the filter {shown} ({answer})",
        status=exc.status,
        subcode=exc.subcode,
        headers=exc.headers,
    )


def error_body(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def retried(notes: list[str]) -> str:
    """An outcome's note on the temporary failures it took."""
    return f"retried after: {'; '.join(dict.fromkeys(notes))}" if notes else ""
