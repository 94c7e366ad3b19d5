"""Throwaway OpenLDAP slapd on 127.0.0.1 for syncd's tests, benchmark and demo.

Callers:

* the pytest fixtures call :func:`start_slapd` in-process and :meth:`Slapd.stop`
  at teardown; the server is a plain child process that dies with ``stop()``;
* the benchmark calls :func:`start_slapd` too, usually with ``nosync=True``;
* the demo uses the CLI, which leaves a detached server running::

      python -m tests.servers.slapd start DIR [--nosync]   # prints the ldaps URL
      python -m tests.servers.slapd stop DIR

  ``start`` writes ``DIR/slapd.json`` (mode 0600, passwords included) with the
  fields of :class:`Slapd` plus the pid; ``stop`` reads it back.

Every instance owns its work directory: its own CA and server certificate,
random passwords and two free ports, so parallel runs never share state. The
certificate names 127.0.0.1 and localhost unless ``cert_names`` says otherwise.

The tree loaded before start (``<suffix>`` defaults to ``dc=example,dc=test``)::

    <suffix>                          dcObject + organization
      ou=people   uid=jdoe            employee, in developers and vpn-users
                  uid=asmith          employee, in wiki-editors, ops, auditors
      ou=contractors                  empty: syncd's own subtree
      ou=groups   cn=developers, cn=vpn-users, cn=wiki-editors, cn=ops
                                      groupOfNames (memberOf maintained)
                  cn=auditors         groupOfUniqueNames
      ou=services cn=syncd            the service account (not the rootdn)
      ou=policies cn=default          default password policy (ppolicy)

The base tree and ``extra_ldif`` are loaded offline with ``slapadd``, so no
overlay runs on them: entries in ``extra_ldif`` that should carry ``memberOf``
must spell it out, as the base LDIF does for the employees. Everything done
over LDAP after start goes through memberof, refint and ppolicy as usual.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SUFFIX = "dc=example,dc=test"
# the server certificate's subjectAltName entries, as openssl spells them
CERT_NAMES = ("IP:127.0.0.1", "DNS:localhost")

# The employees' password, fixed so that tests can bind as them; only its
# hash is written to disk.
EMPLOYEE_PASSWORD = "employee-Secret-1"

_MODULE_DIR = "/usr/lib/ldap"
_SCHEMA_DIR = Path("/etc/ldap/schema")
# /usr/sbin is missing from PATH for many non-root users.
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

_READY_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_START_ATTEMPTS = 3
_CERT_DAYS = "30"

_JSON_NAME = "slapd.json"
_LOG_NAME = "slapd.log"

# Anonymous simple bind (messageID 1, LDAPv3, empty name and password) and an
# unbind: the smallest exchange proving slapd answers LDAP, not only accepts.
_PROBE_BIND = bytes.fromhex("300c020101600702010304008000")
_PROBE_UNBIND = bytes.fromhex("30050201024200")
_BIND_RESPONSE_TAG = 0x61

# Schema for the OpenSSH LPK attribute, which Debian's slapd does not ship.
_LPK_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.24552.500.1.1.1.13
    NAME 'sshPublicKey'
    DESC 'OpenSSH public key'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )

objectclass ( 1.3.6.1.4.1.24552.500.1.1.2.0
    NAME 'ldapPublicKey'
    DESC 'Holder of OpenSSH public keys'
    SUP top
    AUXILIARY
    MAY ( sshPublicKey $ uid ) )
"""

# Our own openssl config, so that the certificates do not depend on the
# distribution's openssl.cnf. The key identifiers and critical
# basicConstraints keep the chain valid under strict verification
# (VERIFY_X509_STRICT is on by default from Python 3.13).
_OPENSSL_CNF = """\
[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


class SlapdError(RuntimeError):
    """slapd, slapadd or openssl failed; the message carries their output."""


@dataclass
class Slapd:
    """A running (or stopped) throwaway slapd and what a client needs to use it."""

    workdir: Path
    port: int
    tls_port: int
    suffix: str
    admin_dn: str
    admin_password: str
    service_dn: str
    service_password: str
    ca_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def stop(self) -> None:
        """Stop slapd: SIGTERM, up to 10 s to exit, then SIGKILL. Idempotent."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        # TERM lets slapd close the mdb environment and remove its pidfile.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_slapd(
    workdir: Path,
    *,
    suffix: str = DEFAULT_SUFFIX,
    nosync: bool = False,
    extra_ldif: str = "",
    cert_names: Sequence[str] = CERT_NAMES,
) -> Slapd:
    """Build a fresh directory in ``workdir`` and run slapd on it as a child.

    ``extra_ldif`` is appended to the base LDIF (parents before children).
    ``nosync`` sets ``dbnosync``: about twice the write speed, no durability.
    ``cert_names`` are the server certificate's subjectAltName entries (its CN is
    127.0.0.1 whatever they are); tests of TLS name checks give it other names.
    The caller must call :meth:`Slapd.stop`; nothing is registered globally.
    """
    return _start(
        workdir,
        suffix=suffix,
        nosync=nosync,
        extra_ldif=extra_ldif,
        detach=False,
        cert_names=cert_names,
    )


def _start(
    workdir: Path,
    *,
    suffix: str,
    nosync: bool,
    extra_ldif: str,
    detach: bool,
    cert_names: Sequence[str] = CERT_NAMES,
) -> Slapd:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(workdir)
    domain = _domain_of(suffix)

    admin_password = secrets.token_urlsafe(18)
    service_password = secrets.token_urlsafe(18)
    admin_dn = f"cn=admin,{suffix}"
    service_dn = f"cn=syncd,ou=services,{suffix}"

    # A reused work directory starts over: slapadd refuses duplicate entries.
    data_dir = workdir / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(mode=0o700)

    ca_file, cert_file, key_file = _make_tls(workdir / "tls", cert_names)
    schema_file = workdir / "openssh-lpk.schema"
    schema_file.write_text(_LPK_SCHEMA)

    conf_file = workdir / "slapd.conf"
    conf_file.write_text(
        _slapd_conf(
            workdir=workdir,
            data_dir=data_dir,
            schema_file=schema_file,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            suffix=suffix,
            admin_dn=admin_dn,
            admin_hash=_ssha(admin_password),
            service_dn=service_dn,
            nosync=nosync,
        )
    )
    # The rootpw hash is still a target for offline guessing.
    conf_file.chmod(0o600)

    ldif_file = workdir / "base.ldif"
    ldif = _base_ldif(suffix, domain, service_dn, _ssha(service_password))
    if extra_ldif.strip():
        ldif = ldif + "\n" + extra_ldif.strip("\n") + "\n"
    ldif_file.write_text(ldif)
    ldif_file.chmod(0o600)
    _run([_tool("slapadd"), "-f", str(conf_file), "-l", str(ldif_file)], what="slapadd")

    log_file = workdir / _LOG_NAME
    for attempt in range(1, _START_ATTEMPTS + 1):
        port, tls_port = _free_ports()
        log_offset = log_file.stat().st_size if log_file.exists() else 0
        proc = _launch(conf_file, log_file, port, tls_port, detach=detach)
        try:
            ready = _wait_ready(proc, port, tls_port, ca_file)
        except BaseException:
            # Ctrl-C while waiting must not leave an orphan nobody can stop.
            proc.kill()
            proc.wait()
            raise
        if ready:
            return Slapd(
                workdir=workdir,
                port=port,
                tls_port=tls_port,
                suffix=suffix,
                admin_dn=admin_dn,
                admin_password=admin_password,
                service_dn=service_dn,
                service_password=service_password,
                ca_file=ca_file,
                process=proc,
            )
        tail = _log_tail(log_file, log_offset)
        # Another process can grab a port between our probe and slapd's bind;
        # only that race is worth a retry, any other failure repeats itself.
        if proc.returncode is not None and "Address already in use" in tail:
            if attempt < _START_ATTEMPTS:
                continue
            reason = f"could not bind free ports in {_START_ATTEMPTS} attempts"
        elif proc.returncode is not None:
            reason = f"slapd exited with status {proc.returncode} before accepting connections"
        else:
            proc.kill()
            proc.wait()
            reason = (
                f"slapd did not answer LDAP on port {port} and a TLS handshake on port"
                f" {tls_port} within {_READY_TIMEOUT:.0f} s"
            )
        raise SlapdError(f"{reason} (work dir {workdir}); end of {log_file}:\n{tail}")
    raise AssertionError("unreachable: the loop returns or raises")


def _launch(
    conf_file: Path, log_file: Path, port: int, tls_port: int, *, detach: bool
) -> subprocess.Popen[bytes]:
    urls = f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
    # "-d none" keeps slapd in the foreground like "-d 0" but still prints
    # the messages that explain a failure ("-d 0" prints nothing at all, not
    # even "bind failed" or a config error). The price: under heavy
    # pipelining it logs one "deferring operation" line per queued request.
    args = [_tool("slapd"), "-d", "none", "-f", str(conf_file), "-h", urls]
    with log_file.open("ab") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=conf_file.parent,
            # Detached (CLI) servers must outlive the command and the
            # terminal's Ctrl-C; in-process ones stay in our process group
            # so that an interrupted pytest takes them down too.
            start_new_session=detach,
        )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, tls_port: int, ca_file: Path) -> bool:
    """True once slapd answers on both ports; False if it died or timed out."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        # slapd calls listen() only after the database is open, so until then
        # connections are refused rather than queued.
        if _answers_ldap(port) and _tls_handshakes(tls_port, ca_file):
            return True
        time.sleep(0.02)
    return False


def _tls_handshakes(port: int, ca_file: Path) -> bool:
    # A full handshake against our CA, closed cleanly: a bare TCP connect
    # would leave "TLS: can't accept" noise in the log, and this also proves
    # slapd loaded the certificate clients will verify. Its names are the
    # clients' business: a test may give slapd a certificate for another host.
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.unwrap()
            return True
    except (OSError, ssl.SSLError):
        return False


def _answers_ldap(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(_PROBE_BIND)
            reply = sock.recv(64)
            if len(reply) > 5 and reply[0] == 0x30 and _BIND_RESPONSE_TAG in reply[2:6]:
                sock.sendall(_PROBE_UNBIND)
                return True
            return False
    except OSError:
        return False


def _free_ports() -> tuple[int, int]:
    # Both sockets are open at once so the kernel cannot hand out one port twice.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second,
    ):
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


def _make_tls(tls_dir: Path, names: Sequence[str] = CERT_NAMES) -> tuple[Path, Path, Path]:
    """Create a throwaway CA and a server certificate for ``names`` (subjectAltName
    entries); return (ca, cert, key)."""
    tls_dir.mkdir(mode=0o700, exist_ok=True)
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF.format(names=", ".join(names)))
    ca_key = tls_dir / "ca.key"
    ca_crt = tls_dir / "ca.pem"
    srv_key = tls_dir / "server.key"
    srv_csr = tls_dir / "server.csr"
    srv_crt = tls_dir / "server.pem"

    # EC P-256: key generation is instant, unlike RSA.
    for key in (ca_key, srv_key):
        _private_file(key)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    _openssl(
        "req", "-new", "-x509", "-config", cnf, "-extensions", "v3_ca", "-key", ca_key,
        "-subj", "/CN=syncd throwaway test CA", "-sha256", "-days", _CERT_DAYS, "-out", ca_crt,
    )  # fmt: skip
    _openssl(
        "req", "-new", "-config", cnf, "-key", srv_key, "-subj", "/CN=127.0.0.1", "-out", srv_csr
    )  # fmt: skip
    # A random serial, so no serial file is left around and two runs never
    # issue the same issuer+serial pair.
    serial = f"0x{secrets.randbits(63) | 1:x}"
    _openssl(
        "x509", "-req", "-in", srv_csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", serial,
        "-sha256", "-days", _CERT_DAYS, "-extfile", cnf, "-extensions", "v3_server",
        "-out", srv_crt,
    )  # fmt: skip
    return ca_crt, srv_crt, srv_key


def _openssl(*args: str | Path) -> None:
    _run(["openssl", *map(str, args)], what=f"openssl {args[0]}")


def _private_file(path: Path) -> None:
    # Created 0600 before openssl writes into it, so the key is never readable
    # by others, not even for an instant; openssl keeps an existing file's mode.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    path.chmod(0o600)


def _ssha(password: str) -> str:
    """The ``{SSHA}`` form slapd understands: base64(sha1(password + salt) + salt)."""
    salt = os.urandom(8)
    # SHA-1 is what the {SSHA} scheme is defined with; nothing to choose here.
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _domain_of(suffix: str) -> str:
    parts = [part.strip() for part in suffix.split(",")]
    if not parts or not all(p.lower().startswith("dc=") and len(p) > 3 for p in parts):
        raise ValueError(f"suffix must be made of dc= components only, got {suffix!r}")
    return ".".join(p[3:] for p in parts)


def _slapd_conf(
    *,
    workdir: Path,
    data_dir: Path,
    schema_file: Path,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    suffix: str,
    admin_dn: str,
    admin_hash: str,
    service_dn: str,
    nosync: bool,
) -> str:
    schemas = "\n".join(
        f'include "{_SCHEMA_DIR / name}.schema"'
        for name in ("core", "cosine", "nis", "inetorgperson")
    )
    svc = f'dn.exact="{service_dn}"'
    sync_line = "dbnosync\n" if nosync else ""
    pid_file = workdir / "slapd.pid"
    args_file = workdir / "slapd.args"
    return f"""\
# Generated by tests/servers/slapd.py for a throwaway test server.

{schemas}
include "{schema_file}"

# Debian builds backends and overlays as modules. In 2.5 the ppolicy schema
# lives in the module, so no ppolicy.schema is included.
modulepath {_MODULE_DIR}
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy

pidfile "{pid_file}"
argsfile "{args_file}"

# Without these, a client that pipelines many writes on one connection gets
# disconnected once too many requests are outstanding.
conn_max_pending_auth 100000
sockbuf_max_incoming_auth 16777215

TLSCACertificateFile "{ca_file}"
TLSCertificateFile "{cert_file}"
TLSCertificateKeyFile "{key_file}"

database mdb
suffix "{suffix}"
rootdn "{admin_dn}"
rootpw {admin_hash}
directory "{data_dir}"
# The default 10 MiB map fills after a few thousand entries; this is only
# address space, the file grows as needed.
maxsize 4294967296
{sync_line}
index objectClass eq
index uid,mail,employeeNumber,cn eq
index member,uniqueMember,memberOf eq

# First match wins: the service account pages through everything, other
# users keep the usual 500-entry cap on plain searches but may page on.
limits {svc} size=unlimited time=unlimited
limits users size.soft=500 size.hard=500 size.pr=1000 size.prtotal=unlimited

# Root DSE and schema are public so that clients can discover controls.
access to dn.base=""
    by * read
access to dn.base="cn=Subschema"
    by * read
access to attrs=userPassword
    by self write
    by {svc} write
    by anonymous auth
    by * none
access to attrs=sshPublicKey
    by {svc} write
    by self write
    by users read
    by * none
access to dn.subtree="ou=contractors,{suffix}"
    by {svc} write
    by users read
    by * none
access to dn.subtree="ou=groups,{suffix}"
    by {svc} write
    by users read
    by * none
access to *
    by {svc} read
    by users read
    by * none

overlay memberof
memberof-refint TRUE

overlay refint
refint_attributes member uniqueMember
# groupOfNames needs one member: if refint removes the last one, it puts
# this value in instead of failing the delete.
refint_nothing "cn=placeholder,ou=groups,{suffix}"

overlay ppolicy
ppolicy_default "cn=default,ou=policies,{suffix}"
ppolicy_use_lockout
"""


def _base_ldif(suffix: str, domain: str, service_dn: str, service_hash: str) -> str:
    org = domain.split(".")[0]
    people = f"ou=people,{suffix}"
    groups = f"ou=groups,{suffix}"
    jdoe = f"uid=jdoe,{people}"
    asmith = f"uid=asmith,{people}"

    entries = [
        f"""dn: {suffix}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: {org}
o: {org} (throwaway test directory)""",
    ]
    for ou in ("people", "contractors", "groups", "services", "policies"):
        entries.append(
            f"dn: ou={ou},{suffix}\nobjectClass: top\nobjectClass: organizationalUnit\nou: {ou}"
        )

    # pwdLockout must be TRUE or 2.5 ignores pwdAccountLockedTime entirely;
    # pwdMaxFailure 0 keeps failed binds from locking anyone by accident.
    entries.append(f"""dn: cn=default,ou=policies,{suffix}
objectClass: top
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
pwdMaxAge: 0
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
pwdCheckQuality: 0""")

    entries.append(f"""dn: {service_dn}
objectClass: top
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: syncd
description: syncd service account (not the rootdn)
userPassword: {service_hash}""")

    # memberOf is written by hand: slapadd bypasses the memberof overlay.
    for uid, given, sn, member_of in (
        ("jdoe", "John", "Doe", ("developers", "vpn-users")),
        ("asmith", "Alice", "Smith", ("wiki-editors", "ops", "auditors")),
    ):
        lines = [
            f"dn: uid={uid},{people}",
            "objectClass: top",
            "objectClass: person",
            "objectClass: organizationalPerson",
            "objectClass: inetOrgPerson",
            f"uid: {uid}",
            f"cn: {given} {sn}",
            f"givenName: {given}",
            f"sn: {sn}",
            f"mail: {uid}@{domain}",
            f"employeeNumber: {uid}@{domain}",
            f"userPassword: {_ssha(EMPLOYEE_PASSWORD)}",
        ]
        # memberof only tracks groupOfNames, so auditors gets no memberOf.
        lines += [f"memberOf: cn={g},{groups}" for g in member_of if g != "auditors"]
        entries.append("\n".join(lines))

    for group, member in (
        ("developers", jdoe),
        ("vpn-users", jdoe),
        ("wiki-editors", asmith),
        ("ops", asmith),
    ):
        entries.append(
            f"dn: cn={group},{groups}\nobjectClass: top\nobjectClass: groupOfNames\n"
            f"cn: {group}\nmember: {member}"
        )
    entries.append(
        f"dn: cn=auditors,{groups}\nobjectClass: top\nobjectClass: groupOfUniqueNames\n"
        f"cn: auditors\nuniqueMember: {asmith}"
    )
    return "\n\n".join(entries) + "\n"


def _tool(name: str) -> str:
    found = shutil.which(name, path=_SBIN_PATH)
    if found is None:
        raise SlapdError(f"{name} not found in PATH or /usr/sbin (is the slapd package installed?)")
    return found


def _run(args: list[str], *, what: str) -> None:
    result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise SlapdError(f"{what} failed with status {result.returncode}:\n{output[-4000:]}")


def _log_tail(log_file: Path, offset: int, lines: int = 30) -> str:
    try:
        with log_file.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(slapd printed nothing)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A detached slapd is reparented; until its new parent reaps it, a dead
    # one lingers as a zombie that kill(pid, 0) still finds.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_slapd(pid: int, workdir: Path) -> bool:
    """Guard against a recycled pid: it must be a slapd using this work dir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        # No /proc: nothing better to check than liveness.
        return True
    return any(arg.endswith(b"slapd") for arg in cmdline[:1]) and any(
        str(workdir / "slapd.conf").encode() == arg for arg in cmdline
    )


def _refuse_if_running(workdir: Path) -> None:
    # Rebuilding the database under a live slapd would corrupt it.
    pidfile = workdir / "slapd.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if _pid_alive(pid) and _is_our_slapd(pid, workdir):
        raise SlapdError(f"a slapd (pid {pid}) is already running in {workdir}; stop it first")


def _stop_pid(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _STOP_TIMEOUT
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _describe(server: Slapd) -> dict[str, Any]:
    return {
        "workdir": str(server.workdir),
        "port": server.port,
        "tls_port": server.tls_port,
        "url": server.url,
        "ldaps_url": server.ldaps_url,
        "suffix": server.suffix,
        "admin_dn": server.admin_dn,
        "admin_password": server.admin_password,
        "service_dn": server.service_dn,
        "service_password": server.service_password,
        "ca_file": str(server.ca_file),
        "pid": server.process.pid if server.process is not None else None,
    }


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    # Opened 0600 from the start: the file holds the passwords.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")


def _cli_start(workdir: Path, *, suffix: str, nosync: bool) -> int:
    server = _start(workdir, suffix=suffix, nosync=nosync, extra_ldif="", detach=True)
    try:
        _write_private_json(server.workdir / _JSON_NAME, _describe(server))
    except BaseException:
        server.stop()
        raise
    print(server.ldaps_url)
    return 0


def _cli_stop(workdir: Path) -> int:
    workdir = workdir.resolve()
    json_file = workdir / _JSON_NAME
    try:
        pid = int(json.loads(json_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read a pid from {json_file}: {exc}", file=sys.stderr)
        return 1
    if not _pid_alive(pid):
        print(f"slapd (pid {pid}) is not running")
        return 0
    if not _is_our_slapd(pid, workdir):
        print(f"pid {pid} is not the slapd of {workdir}; leaving it alone", file=sys.stderr)
        return 1
    _stop_pid(pid)
    if _pid_alive(pid):
        print(f"slapd (pid {pid}) survived SIGKILL", file=sys.stderr)
        return 1
    print(f"slapd (pid {pid}) stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.servers.slapd",
        description="Start or stop a detached throwaway slapd for syncd demos.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start slapd in DIR, write DIR/slapd.json")
    start.add_argument("dir", type=Path)
    start.add_argument("--nosync", action="store_true", help="dbnosync: faster, not durable")
    start.add_argument("--suffix", default=DEFAULT_SUFFIX)
    stop = commands.add_parser("stop", help="stop the slapd described by DIR/slapd.json")
    stop.add_argument("dir", type=Path)
    args = parser.parse_args(argv)

    try:
        if args.command == "start":
            return _cli_start(args.dir, suffix=args.suffix, nosync=args.nosync)
        return _cli_stop(args.dir)
    except (SlapdError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
