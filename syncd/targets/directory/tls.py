"""Verified TLS for ldap3, the same on every Python, and what a refused certificate means.

Used by ``targets.directory.connection`` (``HandshakeTls`` for every connection it
opens, ``certificate_verdict`` and ``certificate_hint`` when one fails) and by the
tests' server helpers, which connect as syncd does (``VerifiedTls``).

ldap3 2.9.1 turns its SSL context's ``check_hostname`` off and matches the host name
itself after the handshake: with ``ssl.match_hostname`` up to Python 3.11 (deprecated),
and on 3.12+, where that is gone, with a copy of Python 3.4's matcher that ignores IP
address SANs, so ``ldaps://127.0.0.1`` is refused a certificate made for it. Here
OpenSSL checks during the handshake, as for any HTTPS client: an IP address against the
certificate's IP SANs, a name against its DNS names (wildcards as RFC 6125 says).
ldap3's ``wrap_socket``, and its matcher with it, is never called.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from pathlib import Path

from ldap3 import Connection, Tls
from ldap3.core import exceptions as lx

# OpenSSL's verdict in an ssl error's text, when ldap3 kept only the text
_VERDICT = re.compile(r"certificate verify failed: (.*?)\.? \(_ssl")
_UNTRUSTED = "its issuer is not trusted: set ca_file to the CA that issued it"
# words of OpenSSL's verdict (X509_verify_cert_error_string) -> what to change
_HINTS = (
    (
        ("mismatch",),  # "Hostname mismatch", "IP address mismatch"
        "the certificate does not name the host of the URL (as a DNS name, or an IP "
        "address in its subjectAltName); put a name it holds in the URL or reissue it",
    ),
    (("has expired",), "the certificate has expired; renew it"),
    (("not yet valid",), "the certificate is not valid yet; check the clocks"),
    (("issuer", "self-signed", "self signed", "unable to verify"), _UNTRUSTED),
)


class VerifiedTls(Tls):
    """ldap3's ``Tls`` with the handshake done on our own ``SSLContext``, which checks
    the certificate chain and the host name of the URL.

    ``tls_verify=False`` (the config's documented opt-out) checks nothing at all.
    Deliberately not ``ssl.create_default_context()``: on 3.13 it adds
    ``VERIFY_X509_STRICT``, which would make the certificates accepted depend on the
    Python version."""

    def __init__(self, *, tls_verify: bool = True, ca_file: Path | None = None) -> None:
        # ldap3 reads these, and refuses a ca_file that does not exist
        super().__init__(
            validate=ssl.CERT_REQUIRED if tls_verify else ssl.CERT_NONE,
            ca_certs_file=str(ca_file) if ca_file else None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.tls_verify = tls_verify
        self.ca_file = ca_file

    def context(self) -> ssl.SSLContext:
        """A new context, made when a handshake is due, as ldap3 makes its own: the
        CAs (the system's take ~0.1 s to load) are read again at every connection,
        never for a server that did not answer."""
        # PROTOCOL_TLS_CLIENT: check_hostname on, CERT_REQUIRED, TLS 1.2 or later
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if not self.tls_verify:
            context.check_hostname = False  # before verify_mode, or it refuses
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            if self.ca_file:
                context.load_verify_locations(cafile=str(self.ca_file))
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise lx.LDAPSSLConfigurationError(f"cannot load {self.ca_file}: {exc}") from exc
        return context

    def wrap_socket(self, connection: Connection, do_handshake: bool = False) -> None:
        # the host of this server's URL (in a pool, the one being connected to); a
        # refused certificate raises ssl.SSLCertVerificationError, which ldap3 wraps
        connection.socket = self.context().wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=connection.server.host,
        )


class HandshakeTls(VerifiedTls):
    """``VerifiedTls``, keeping the socket it wraps reachable during the handshake.

    ldap3 does the TLS handshake inside the wrapping, after the plain socket was handed
    over and before the connection holds the TLS one: nothing else reaches the socket
    then, so its file descriptor and identity are kept for ``break_off``."""

    handshake: tuple[int, tuple[int, int]] | None = None

    def wrap_socket(self, connection: Connection, do_handshake: bool = False) -> None:
        fd = connection.socket.fileno()
        info = os.fstat(fd)
        self.handshake = (fd, (info.st_dev, info.st_ino))
        try:
            super().wrap_socket(connection, do_handshake)
        finally:
            self.handshake = None

    def break_off(self) -> None:
        """Shut down the socket of the handshake in progress, if any (from another
        thread: it wakes the one blocked in the handshake)."""
        handshake = self.handshake
        if handshake is not None:
            _shut_down(*handshake)


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


def setup_failure(exc: BaseException) -> BaseException | None:
    """The error of a TLS context that could not be made (ca_file), if ``exc`` hides one
    (ldap3 wraps what ``wrap_socket`` raised)."""
    failed = [e for e in _related(exc) if isinstance(e, lx.LDAPSSLConfigurationError)]
    return failed[0] if failed else None


def certificate_verdict(exc: BaseException) -> str:
    """OpenSSL's verdict if ``exc`` is (or hides) a refused server certificate, or ''."""
    refusals = [
        e
        for e in _related(exc)
        if isinstance(e, ssl.SSLCertVerificationError | lx.LDAPCertificateError)
    ]
    for refusal in refusals:
        verdict = getattr(refusal, "verify_message", None)
        if isinstance(verdict, str) and verdict:
            return verdict.rstrip(".")
    if not refusals:
        return ""
    found = _VERDICT.search(str(refusals[0]))
    return found.group(1).replace("\\'", "'") if found else str(refusals[0]).rstrip()


def certificate_hint(verdict: str) -> str:
    """What to change for OpenSSL's ``verdict`` on the server's certificate."""
    said = verdict.lower()
    for words, hint in _HINTS:
        if any(word in said for word in words):
            return hint
    return "check ca_file and the server's certificate"


def _related(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it.

    ldap3 hands an ssl error on as a class merged with its own: for LDAPS rebuilt from
    its text (quoted as a tuple, the verdict's own fields lost), for StartTLS with the
    original as context; when a host name has several addresses, as (error, address)
    pairs listed in its arguments."""
    todo: list[BaseException] = [exc]
    found: list[BaseException] = []
    while todo:
        current = todo.pop()
        if any(current is e for e in found):
            continue
        found.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        for arg in current.args:
            pairs = arg if isinstance(arg, list) else []
            todo += [p[0] for p in pairs if isinstance(p, tuple) and p and _is_error(p[0])]
    return found


def _is_error(value: object) -> bool:
    return isinstance(value, BaseException)
