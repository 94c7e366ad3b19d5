"""One LDAP connection with verified TLS, error translation and retries.

Used by ``targets.ldap`` and ``targets.ad`` (through ``targets.directory``). Every
ldap3 exception is translated here into ``TemporaryError`` (server down, busy, timeout:
retried with backoff, reconnecting when the connection broke) or ``PermanentError``
(with a message that says what to change), keeping the LDAP result code as ``code``.
A target kind with richer answers (AD's Windows error codes) passes its own
``translate``.

Inside ``syncd run`` a connection follows the daemon's pulse (``syncd.pulse``): it
beats before each request, announcing how long the request may block, so that the
watchdog is fed while it waits on a slow server; its retry delays end at once on a
stop and no retry follows one; and when the stop's grace runs out, the request in
flight is broken off (its socket shut down) and no new one is sent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ldap3 import FIRST, NONE, SUBTREE, Connection, Server, ServerPool, Tls
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

log = logging.getLogger(__name__)
T = TypeVar("T")
Entry = tuple[str, dict[str, Any]]
Translate = Callable[[lx.LDAPOperationResult, str], "TemporaryError | PermanentError"]

# result codes worth retrying: busy, unavailable, time limit, admin limit, unwilling is not
TEMPORARY_CODES = frozenset({3, 11, 51, 52, 80})
NO_SUCH_OBJECT = 32
_HINTS = {
    32: "the entry or its parent does not exist",
    50: "the bind account lacks the access rights; grant it write access to the managed "
    "subtree and groups",
    19: "a constraint refused the value (password policy or unique attribute)",
    21: "the value does not fit the attribute's syntax",
    65: "the entry would violate its object class (a required attribute is missing, or a "
    "group would lose its last member)",
    17: "the attribute is not in the server's schema; load the schema or drop the attribute "
    "from the config",
    49: "invalid credentials for bind_dn; check password_file / password_env",
    68: "the entry already exists",
}


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
        self._tls: _Tls | None = None  # of the connection being opened
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
        handshake = self._tls.handshake if self._tls is not None else None
        if handshake is not None:
            _shut_down(*handshake)

    def _open(self) -> Connection:
        end = self.endpoint
        tls = self._tls = _Tls(
            validate=ssl.CERT_REQUIRED if end.tls_verify else ssl.CERT_NONE,
            ca_certs_file=str(end.ca_file) if end.ca_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
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
            return operation(self._conn)
        except lx.LDAPOperationResult as exc:
            raise self.translate(exc, self.name) from exc
        except lx.LDAPServerPoolExhaustedError as exc:
            self._drop()
            urls = ", ".join(self.endpoint.urls)
            raise TemporaryError(f"{self.name}: no server of {urls} answered") from exc
        except (
            lx.LDAPCommunicationError,
            lx.LDAPSocketOpenError,
            lx.LDAPSessionTerminatedByServerError,
            lx.LDAPResponseTimeoutError,
            OSError,
        ) as exc:
            self._drop()
            if self.pulse.aborted:
                raise TemporaryError(f"{self.name}: request broken off: syncd is stopping") from exc
            raise TemporaryError(f"{self.name}: connection failed: {exc}") from exc
        except (lx.LDAPSSLConfigurationError, lx.LDAPCertificateError, lx.LDAPStartTLSError) as exc:
            self._drop()
            raise PermanentError(
                f"{self.name}: TLS failed ({exc}); check ca_file and the server certificate"
            ) from exc
        except lx.LDAPException as exc:
            self._drop()
            raise PermanentError(f"{self.name}: {exc}") from exc

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

        def run(conn: Connection) -> list[Entry]:
            pages = conn.extend.standard.paged_search(
                base,
                search_filter,
                search_scope=SUBTREE,
                attributes=attributes,
                paged_size=self.endpoint.page_size,
                generator=True,
            )
            entries: list[Entry] = []
            for e in pages:
                if e.get("type") == "searchResEntry":
                    entries.append((str(e["dn"]), e.get("attributes") or {}))
                    if len(entries) % self.endpoint.page_size == 0:
                        self.pulse.beat(self._allow)  # a page came: alive, waiting for the next
            return entries

        return self.call(run)


class _Tls(Tls):
    """ldap3's ``Tls``, keeping the socket it wraps reachable during the handshake.

    ldap3 does the TLS handshake inside the wrapping, after the plain socket was handed
    over and before the connection holds the TLS one: nothing else reaches the socket
    then, so its file descriptor and identity are kept for ``_shut_down``."""

    handshake: tuple[int, tuple[int, int]] | None = None

    def wrap_socket(self, connection: Connection, do_handshake: bool = False) -> None:
        fd = connection.socket.fileno()
        info = os.fstat(fd)
        self.handshake = (fd, (info.st_dev, info.st_ino))
        try:
            super().wrap_socket(connection, do_handshake)
        finally:
            self.handshake = None


def _shut_down(fd: int, identity: tuple[int, int]) -> None:
    """Shut down the socket behind ``fd`` if it still is the one with ``identity``
    (device and inode; the descriptor may have been closed and reused meanwhile): on a
    copy of the descriptor, which holds the socket while it is checked."""
    try:
        copy = os.dup(fd)
    except OSError:
        return
    try:
        info = os.fstat(copy)
        if (info.st_dev, info.st_ino) == identity:
            with socket.socket(fileno=copy) as sock:  # closes the copy
                copy = -1
                sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        if copy >= 0:
            os.close(copy)


def translate_result(exc: lx.LDAPOperationResult, name: str) -> TemporaryError | PermanentError:
    """Our error for an LDAP refusal, with the result code kept and a hint to fix it."""
    code = int(getattr(exc, "result", 0) or 0)
    text = getattr(exc, "message", "") or getattr(exc, "description", "") or str(exc)
    description = getattr(exc, "description", "") or type(exc).__name__
    hint = _HINTS.get(code, "")
    message = f"{name}: {description} ({code})" + (
        f": {text}" if text and text != description else ""
    )
    if hint:
        message += f"; {hint}"
    if code in TEMPORARY_CODES:
        return TemporaryError(message, code=code)
    return PermanentError(message, code=code)
