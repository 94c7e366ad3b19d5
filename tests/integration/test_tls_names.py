"""Certificates and host names over LDAPS and StartTLS, on real slapds, through syncd's
own connection code (``Endpoint`` and ``LdapConnection``).

OpenSSL checks the name during the handshake (``VerifiedTls``), the same way on every
Python: ldap3 2.9.1's own matcher ignores IP address SANs on Python 3.12 and later,
where it refused every ``ldaps://127.0.0.1``. What must hold: a certificate that names
the IP address (or the DNS name) of the URL is accepted; one that does not, or one
from a CA not in ``ca_file``, is refused as a permanent error, at once, with retries
configured (a wrong certificate does not fix itself); ``tls_verify: false`` connects
whatever the certificate.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import Connection

from syncd.errors import PermanentError
from syncd.targets.directory.connection import Endpoint, LdapConnection
from tests.servers.slapd import Slapd, start_slapd

# Not the hosts of the URLs: CN=127.0.0.1 still, which OpenSSL never matches an IP
# address against, and ignores for names once the certificate has DNS SANs.
ELSEWHERE = ("DNS:ldap.other.test", "IP:10.9.9.9")
RETRIES = 5  # about 6 s of backoff before the last attempt, if anything were retried


@pytest.fixture(name="slapd", scope="module")
def slapd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd whose certificate names IP:127.0.0.1 and DNS:localhost."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="elsewhere", scope="module")
def elsewhere_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A slapd on 127.0.0.1 whose certificate names another host."""
    server = start_slapd(tmp_path_factory.mktemp("elsewhere"), cert_names=ELSEWHERE)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="foreign_ca", scope="module")
def foreign_ca_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed neither slapd's certificate."""
    folder = tmp_path_factory.mktemp("foreign-ca")
    ca_file = folder / "ca.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", str(folder / "ca.key"), "-out", str(ca_file),
            "-subj", "/CN=another throwaway CA", "-days", "1",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca_file


def connection(
    server: Slapd,
    host: str,
    *,
    start_tls: bool,
    ca_file: Path | None,
    tls_verify: bool = True,
) -> LdapConnection:
    """syncd's connection to ``server`` as ``host``: by LDAPS, or StartTLS on ldap://."""
    scheme, port = ("ldap", server.port) if start_tls else ("ldaps", server.tls_port)
    endpoint = Endpoint(
        (f"{scheme}://{host}:{port}",),
        server.service_dn,
        lambda: server.service_password,
        start_tls=start_tls,
        ca_file=ca_file,
        tls_verify=tls_verify,
        timeout=5,
        retries=RETRIES,
    )
    return LdapConnection(endpoint, "corp")


def who_am_i(conn: LdapConnection) -> str:
    """The bound identity, asked over the connection, which must be a TLS one."""

    def ask(c: Connection) -> str:
        assert isinstance(c.socket, ssl.SSLSocket)
        return str(c.extend.standard.who_am_i())

    try:
        return conn.call(ask)
    finally:
        conn.close()


def refused(conn: LdapConnection, caplog: pytest.LogCaptureFixture) -> PermanentError:
    """The error of a connection that must fail at the first attempt."""
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(PermanentError) as caught:
        conn.call(lambda c: c.extend.standard.who_am_i())
    took = time.monotonic() - started
    assert not [r for r in caplog.records if "retry" in r.getMessage()]
    assert took < 1.0  # the first retry alone would wait 0.2 s, all five about 6 s
    return caught.value


TRANSPORTS = [pytest.param(False, id="ldaps"), pytest.param(True, id="starttls")]


@pytest.mark.parametrize("start_tls", TRANSPORTS)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_certificate_naming_the_host_of_the_url_is_accepted(
    slapd: Slapd, host: str, start_tls: bool
) -> None:
    # 127.0.0.1 matches the IP address SAN, localhost the DNS one
    conn = connection(slapd, host, start_tls=start_tls, ca_file=slapd.ca_file)
    assert who_am_i(conn) == f"dn:{slapd.service_dn}"


@pytest.mark.parametrize("start_tls", TRANSPORTS)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_host_the_certificate_does_not_name_is_refused_at_once(
    elsewhere: Slapd, host: str, start_tls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    conn = connection(elsewhere, host, start_tls=start_tls, ca_file=elsewhere.ca_file)
    error = refused(conn, caplog)
    kind = "IP address mismatch" if host == "127.0.0.1" else "Hostname mismatch"
    assert kind in str(error)
    assert "the certificate does not name the host of the URL" in str(error)
    assert str(error).startswith("corp: TLS: the server's certificate was refused")


@pytest.mark.parametrize("start_tls", TRANSPORTS)
@pytest.mark.parametrize("trust", ["foreign CA", "system CAs"])
def test_a_certificate_from_an_untrusted_ca_is_refused_at_once(
    slapd: Slapd, foreign_ca: Path, trust: str, start_tls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ca_file = foreign_ca if trust == "foreign CA" else None
    conn = connection(slapd, "127.0.0.1", start_tls=start_tls, ca_file=ca_file)
    error = refused(conn, caplog)
    assert str(error).startswith("corp: TLS: the server's certificate was refused")
    assert "its issuer is not trusted: set ca_file to the CA that issued it" in str(error)


@pytest.mark.parametrize("start_tls", TRANSPORTS)
def test_tls_verify_false_connects_whatever_the_certificate(
    elsewhere: Slapd, foreign_ca: Path, start_tls: bool
) -> None:
    conn = connection(
        elsewhere, "127.0.0.1", start_tls=start_tls, ca_file=foreign_ca, tls_verify=False
    )
    assert who_am_i(conn) == f"dn:{elsewhere.service_dn}"
