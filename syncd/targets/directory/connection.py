"""One LDAP connection with verified TLS, error translation and retries.

Used by ``targets.ldap`` and ``targets.ad`` (through ``targets.directory``). Every
ldap3 exception is translated here into ``TemporaryError`` (server down, busy, timeout:
retried with backoff, reconnecting when the connection broke) or ``PermanentError``
(a refusal or a certificate that retrying cannot change, with a hint of what to change
when syncd can tell), keeping the LDAP result code as ``code``. A target kind with
richer answers (AD's Windows error codes) passes its own ``translate``.

TLS is verified by OpenSSL during the handshake, chain and host name alike
(``targets.directory.tls``), not by ldap3's own name matcher.

Inside ``syncd run`` a connection follows the daemon's pulse (``syncd.pulse``): it
beats before each request, announcing how long the request may block, so that the
watchdog is fed while it waits on a slow server; its retry delays end at once on a
stop and no retry follows one; and when the stop's grace runs out, the request in
flight is broken off (its socket shut down) and no new one is sent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ldap3 import FIRST, NONE, SUBTREE, Connection, Server, ServerPool
from ldap3.core import exceptions as lx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from syncd import pulse
from syncd.errors import PermanentError, TemporaryError
from syncd.targets.directory.hints import REFERRAL, hint_for
from syncd.targets.directory.tls import (
    HandshakeTls,
    certificate_hint,
    certificate_verdict,
    setup_failure,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Entry = tuple[str, dict[str, Any]]
Translate = Callable[[lx.LDAPOperationResult, str], "TemporaryError | PermanentError"]

# result codes worth retrying: busy, unavailable, time limit, admin limit, unwilling is not
TEMPORARY_CODES = frozenset({3, 11, 51, 52, 80})
NO_SUCH_OBJECT = 32
# the server did not answer, or the connection broke: worth another attempt
_UNREACHABLE = (
    lx.LDAPCommunicationError,
    lx.LDAPSocketOpenError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPResponseTimeoutError,
    OSError,
)


class DirectoryConfig(Protocol):
    """The connection settings the ``ldap`` and ``ad`` target configs have in common."""

    @property
    def start_tls(self) -> bool: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def tls_verify(self) -> bool: ...
    @property
    def page_size(self) -> int: ...
    @property
    def timeout(self) -> int: ...
    @property
    def retries(self) -> int: ...
    def read_secret(self) -> str: ...


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect: shared by the ``ldap`` and ``ad`` targets."""

    urls: tuple[str, ...]  # tried in this order (a pool of domain controllers, say)
    bind: str  # DN, or a UPN for AD
    secret: Callable[[], str]  # reads the bind password when a connection opens
    start_tls: bool = False
    ca_file: Path | None = None
    tls_verify: bool = True
    page_size: int = 500
    timeout: int = 10
    retries: int = 5
    auto_range: bool = False  # AD's member;range=0-1499 paging of large values

    @classmethod
    def of(
        cls, config: DirectoryConfig, urls: Sequence[str], bind: str, auto_range: bool = False
    ) -> Endpoint:
        """The endpoint of a target's config: its ``urls`` tried in order, bound as
        ``bind`` with the password the config names."""
        return cls(
            urls=tuple(urls),
            bind=bind,
            secret=config.read_secret,
            start_tls=config.start_tls,
            ca_file=config.ca_file,
            tls_verify=config.tls_verify,
            page_size=config.page_size,
            timeout=config.timeout,
            retries=config.retries,
            auto_range=auto_range,
        )


class LdapConnection:
    """A lazily opened, automatically reopened, bound connection to a directory: the
    first of ``endpoint.urls`` that answers."""

    def __init__(self, endpoint: Endpoint, name: str, translate: Translate | None = None) -> None:
        self.endpoint = endpoint
        self.name = name
        self.translate: Translate = translate or translate_result
        self.pulse = pulse.current()
        self._conn: Connection | None = None
        self._opening: Connection | None = None  # while it connects, binds
        self._tls: HandshakeTls | None = None  # of the connection being opened
        # One attempt may block for a connect per server, the TLS handshake, the bind
        # and the request itself, each up to the timeout.
        self._allow = float(endpoint.timeout * (len(endpoint.urls) + 3))
        self._last_error: BaseException | None = None
        self._retrying = Retrying(
            stop=stop_after_attempt(endpoint.retries + 1),
            wait=wait_exponential_jitter(multiplier=0.2, max=20, jitter=0.2),
            retry=retry_if_exception(self._retryable),
            sleep=self._sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, TemporaryError) and not self.pulse.stopping()

    def _before_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._last_error = exc
        retries = self.endpoint.retries
        self.pulse.trouble(self, f"{exc}; retry {state.attempt_number} of {retries}")
        log.warning("%s, retry %d", exc, state.attempt_number)

    def _sleep(self, seconds: float) -> None:
        """The delay before a retry; the daemon's stop ends it, and the retry with it."""
        if not self.pulse.wait(seconds):
            raise TemporaryError(f"{self._last_error}; not retried: syncd is stopping")

    def _abort(self) -> None:
        """Break off the request in flight, from another thread: shutting the socket
        down wakes a thread blocked on it (closing it would not)."""
        for conn in (self._conn, self._opening):
            sock = getattr(conn, "socket", None)
            if sock is not None and sock.fileno() >= 0:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
        if self._tls is not None:
            self._tls.break_off()

    def _open(self) -> Connection:
        end = self.endpoint
        tls = self._tls = HandshakeTls(tls_verify=end.tls_verify, ca_file=end.ca_file)
        servers = [
            Server(
                url,
                use_ssl=url.lower().startswith("ldaps://"),
                tls=tls,
                get_info=NONE,
                connect_timeout=end.timeout,
            )
            for url in end.urls
        ]
        # FIRST: the first server that answers, in the configured order; one pass over
        # the list per attempt, the retries around it give the others time to come back.
        # ldap3 takes a number of passes for ``active`` (its stubs say bool).
        target: Server | ServerPool = servers[0]
        if len(servers) > 1:
            target = ServerPool(servers, FIRST, active=1, exhaust=False)  # type: ignore[arg-type]
        conn = Connection(
            target,
            user=end.bind,
            password=end.secret(),
            raise_exceptions=True,
            receive_timeout=end.timeout,
            read_only=False,
            return_empty_attributes=False,
            auto_range=end.auto_range,
            # ldap3 would follow a referral to any host it names, binding there with the
            # service account's password (in clear text for an ldap:// referral): syncd
            # only talks to the configured servers, and reports a referral as an error
            # (_refuse_a_referral).
            auto_referrals=False,
        )
        self._opening = conn
        try:
            conn.open()
            if end.start_tls:
                conn.start_tls()
            conn.bind()
        finally:
            self._opening = None
        return conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind()
            except lx.LDAPException:
                log.debug("%s: unbind failed while closing", self.name)
            self._conn = None

    def call(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on a bound connection, retrying temporary failures."""
        result: T = self._retrying(self._once, operation)
        return result

    def _once(self, operation: Callable[[Connection], T]) -> T:
        try:
            with self.pulse.guard(self._abort, self._allow):
                result = self._translated(operation)
        except pulse.Stopped as exc:
            raise TemporaryError(f"{self.name}: {exc}") from exc
        except PermanentError as exc:
            if self.pulse.aborted:  # whatever ldap3 made of a socket shut under it
                raise TemporaryError(f"{self.name}: request broken off: {exc}") from exc
            raise
        self.pulse.cleared(self)
        return result

    def _translated(self, operation: Callable[[Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = self._open()
            result = operation(self._conn)
            _refuse_a_referral(self._conn)
            return result
        except lx.LDAPOperationResult as exc:
            raise self.translate(exc, self.name) from exc
        except lx.LDAPServerPoolExhaustedError as exc:
            self._drop()
            urls = ", ".join(self.endpoint.urls)
            raise TemporaryError(f"{self.name}: no server of {urls} answered") from exc
        except (lx.LDAPException, OSError) as exc:
            self._drop()
            raise self._failure(exc) from exc

    def _failure(self, exc: lx.LDAPException | OSError) -> TemporaryError | PermanentError:
        """Our error for a connection that failed or could not be set up."""
        verdict = certificate_verdict(exc)
        if verdict:  # a wrong certificate does not fix itself: not retried
            return PermanentError(
                f"{self.name}: TLS: the server's certificate was refused ({verdict}); "
                + certificate_hint(verdict)
            )
        unusable = setup_failure(exc)  # ca_file: no retry reads it better
        if unusable is not None:
            return PermanentError(
                f"{self.name}: TLS set-up failed ({_quoted(unusable)}); check ca_file"
            )
        if isinstance(exc, _UNREACHABLE):
            if self.pulse.aborted:
                return TemporaryError(f"{self.name}: request broken off: syncd is stopping")
            return TemporaryError(f"{self.name}: connection failed: {_quoted(exc)}")
        if isinstance(exc, lx.LDAPStartTLSError):
            return PermanentError(f"{self.name}: StartTLS failed: {_quoted(exc)}")
        return PermanentError(f"{self.name}: {_quoted(exc)}")

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.unbind()
            except (lx.LDAPException, OSError):
                log.debug("%s: dropping a broken connection", self.name)
            self._conn = None

    def paged(self, base: str, search_filter: str, attributes: list[str]) -> list[Entry]:
        """All entries of a paged subtree search, as (DN, attributes) pairs.

        Pages are consumed as they arrive so that only the decoded attributes stay in
        memory; a failure restarts the whole search (it is one retryable unit)."""
        return self.paged_each(base, search_filter, attributes, lambda entry: entry)

    def paged_each(
        self,
        base: str,
        search_filter: str,
        attributes: list[str],
        convert: Callable[[Entry], T | None],
    ) -> list[T]:
        """What ``convert`` makes of each entry of a paged subtree search (None: left
        out), called as the entries arrive, so that ldap3's decoded entry is dropped at
        once and only the conversion stays in memory. ``convert`` must be pure: a
        failure restarts the whole search."""

        def run(conn: Connection) -> list[T]:
            pages = conn.extend.standard.paged_search(
                base,
                search_filter,
                search_scope=SUBTREE,
                attributes=attributes,
                paged_size=self.endpoint.page_size,
                generator=True,
            )
            kept: list[T] = []
            seen = 0
            for e in pages:
                if e.get("type") == "searchResEntry":
                    item = convert((str(e["dn"]), e.get("attributes") or {}))
                    if item is not None:
                        kept.append(item)
                    seen += 1
                    if seen % self.endpoint.page_size == 0:
                        self.pulse.beat(self._allow)  # a page came: alive, waiting for the next
            return kept

        return self.call(run)


def _refuse_a_referral(conn: Connection) -> None:
    """Raise for an answer that is a referral (10): ldap3 raises for none, and with
    ``auto_referrals`` off does not follow it either, so nothing was done here."""
    answer = conn.result
    if isinstance(answer, dict) and answer.get("result") == REFERRAL:
        raise lx.LDAPOperationResult(
            result=REFERRAL,
            description=answer.get("description"),
            dn=answer.get("dn"),
            message=answer.get("message") or " ".join(answer.get("referrals") or []),
            response_type=answer.get("type"),
        )


def _quoted(said: object) -> str:
    """A server's or library's words, as we quote them: without the trailing newline
    389-ds ends its messages with."""
    return str(said).rstrip()


def translate_result(exc: lx.LDAPOperationResult, name: str) -> TemporaryError | PermanentError:
    """Our error for an LDAP refusal, with the result code kept and, when syncd can tell
    what to change, a hint."""
    code = int(getattr(exc, "result", 0) or 0)
    description = _quoted(getattr(exc, "description", "") or type(exc).__name__)
    text = _quoted(getattr(exc, "message", "") or "")
    message = f"{name}: {description} ({code})" + (
        f": {text}" if text and text != description else ""
    )
    hint = hint_for(code, str(getattr(exc, "type", "") or ""), text)
    if hint:
        message += f"; {hint}"
    if code in TEMPORARY_CODES:
        return TemporaryError(message, code=code)
    return PermanentError(message, code=code)
