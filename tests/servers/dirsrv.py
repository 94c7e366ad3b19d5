"""Throwaway 389 Directory Server (389-ds 2.3) on 127.0.0.1 for syncd's tests.

Callers use :func:`start_dirsrv` in-process and :meth:`Dirsrv.stop` at teardown;
the server is a plain child process of the caller, like the throwaway slapd of
:mod:`tests.servers.slapd`. A server shared by several tests is put back to its
seeded tree with :meth:`Dirsrv.reset` (``tests.plugins.dirsrv`` does, per test).
Needs ``apt-get install -y --no-install-recommends 389-ds-base`` (``ns-slapd``,
``dscreate``, NSS's ``certutil``/``pk12util``) and either root or membership of the
``dirsrv`` group (``/etc/dirsrv`` is 0750).

How it works, and why:

* ``dscreate`` (lib389) is the supported way to lay out an instance, but it takes
  6-12 s (lib389 polls with 1 s sleeps). It runs once per machine, into a private
  ``PREFIX`` (a copy of ``defaults.inf`` with systemd/SELinux off and every path
  under the prefix) with ``user``/``group`` = the current user. Its ``dse.ldif``
  is edited (see ``_TEMPLATE_SETTINGS``) and cached with placeholders as
  ``$SYNCD_TEST_CACHE`` (or ``~/.cache/syncd-tests``) ``/dirsrv-<key>.dse.ldif``;
  the key covers ``ns-slapd -v``, the suffix, the user and this file. A ``flock``
  makes parallel pytest workers build it once.
* Each start writes that template into the work directory with its paths, two
  free ports and a random Directory Manager password (``{SSHA512}``). No database
  is copied: ns-slapd creates an empty backend and the base tree is added over
  LDAP, so the memberOf and referential-integrity plugins see it like any write.
* ``ns-slapd`` forks into the background unless it believes systemd runs it:
  with ``NOTIFY_SOCKET`` set (Debian builds it with systemd support) it stays in
  the foreground, logs to its ``errors`` file as usual and sends ``READY=1`` once
  it accepts connections; that message (on an abstract unix socket, so no path
  length limit) is the readiness signal. ``-d 0`` also keeps it in the
  foreground but then it logs nothing, not even why it failed to start.
* It runs as the current user (``nsslapd-localuser``; root stays root), so the
  ``dirsrv`` account needs no access to the work directory: pytest's 0700
  ``/tmp/pytest-of-<user>`` is fine. LDAPI is off (its socket path would be
  limited to 108 bytes).
* TLS: 389-ds reads keys only from an NSS database. The CA and server certificate
  come from :func:`tests.servers.slapd._make_tls` (EC P-256, SANs ``127.0.0.1``
  and ``localhost``) and go in with ``openssl pkcs12`` + ``pk12util`` under the
  nickname ``Server-Cert`` that ``cn=RSA,cn=encryption,cn=config`` names (EC
  works despite the name; the only cost is ``attrcrypt`` ERR lines at start:
  attribute encryption needs an RSA key, and it is not used here).
* Defaults unfit for tests that the template changes: ns-slapd listens on all
  interfaces (now ``nsslapd-listenhost 127.0.0.1``) and sizes caches from RAM
  (25 %: a 1.5 GB db cache on 24 GB; now fixed and small). Measured on a busy
  2-core machine: start 1.5-2.5 s with the template cached, stop 1.5-2 s (bdb
  threads wake once a second), ~57 MB RSS idle, ~4 MB on disk; three instances
  started in parallel took 4.2 s. ``nosync`` turns
  ``nsslapd-db-durable-transaction`` off, the analogue of slapd's ``dbnosync``.
  Passwords are hashed with PBKDF2-SHA512 (~20 ms each): ~50 adds or binds per s
  with a password, ~250-300 adds per s without.
* Otherwise the instance is stock 389-ds: no password policy, the Account Policy
  plugin off (as ``dscreate`` leaves it), the stock schema only (no ``pwdEndTime``,
  no ``sshPublicKey``: SSH keys go in ``nsSshPublicKey``). ``nsAccountLock: true``
  refuses binds with 53 unwillingToPerform, also after a password reset.

The tree created at every start (``<suffix>`` defaults to ``dc=example,dc=test``)::

    <suffix>                          domain
      ou=people   uid=jdoe            employee, in developers and vpn-users
                  uid=asmith          employee, in wiki-editors, ops, auditors
      ou=contractors                  empty: syncd's own subtree
      ou=groups   cn=developers, cn=vpn-users, cn=wiki-editors, cn=ops
                                      groupOfNames (memberOf maintained)
                  cn=auditors         groupOfUniqueNames
      ou=services cn=syncd            the service account (not the root DN)

The memberOf plugin adds the ``nsMemberOf`` objectClass to members on its own
(inetOrgPerson does not allow ``memberOf`` in 389-ds). The service account reads
everything, and adds, modifies and deletes entries under ou=people,
ou=contractors and ou=groups (``nsAccountLock`` included), but cannot write ACIs;
it has no size limits. The employees' password is :data:`tests.servers.slapd.EMPLOYEE_PASSWORD`.
"""

from __future__ import annotations

import base64
import fcntl
import grp
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ldap3 import MODIFY_ADD, NONE, SUBTREE, Connection, Server
from ldap3.utils.dn import parse_dn

from tests.servers.slapd import EMPLOYEE_PASSWORD, _make_tls

DEFAULT_SUFFIX = "dc=example,dc=test"
ROOT_DN = "cn=Directory Manager"

# /usr/sbin is missing from PATH for many non-root users.
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
_SYSTEM_INF = Path("/usr/share/dirsrv/inf/defaults.inf")
_SYSTEM_ETC = Path("/etc/dirsrv")

_READY_TIMEOUT = 60.0  # ~1 s when idle; generous for a loaded 2-core machine
_STOP_TIMEOUT = 30.0
_BUILD_TIMEOUT = 600.0
_START_ATTEMPTS = 3
_LOG_NAME = "ns-slapd.out"  # stdout/stderr: what ns-slapd says before its errors log opens
_PORT_IN_USE = ("Local Network address is in use", "Address already in use")

# The work directory's layout; dscreate builds the template with the same one.
_LAYOUT = ("config", "db", "log", "run", "lock", "bak", "ldif", "inst", "etc", "share")
_PREFIX = "@PREFIX@"

# cn=config entries rewritten in the cached template ("@...@" are filled per start).
_LDBM = "cn=ldbm database,cn=plugins,cn=config"
_REFINT = "cn=referential integrity postoperation,cn=plugins,cn=config"
_TEMPLATE_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("cn=config", "nsslapd-port", "@PORT@"),
    ("cn=config", "nsslapd-securePort", "@TLS_PORT@"),
    ("cn=config", "nsslapd-security", "on"),
    ("cn=config", "nsslapd-listenhost", "127.0.0.1"),
    ("cn=config", "nsslapd-securelistenhost", "127.0.0.1"),
    ("cn=config", "nsslapd-rootpw", "@ROOTPW@"),
    ("cn=config", "nsslapd-localuser", "@USER@"),
    ("cn=config", "nsslapd-ldapilisten", "off"),
    (f"cn=bdb,cn=config,{_LDBM}", "nsslapd-cache-autosize", "0"),
    (f"cn=bdb,cn=config,{_LDBM}", "nsslapd-dbcachesize", "16777216"),
    (f"cn=bdb,cn=config,{_LDBM}", "nsslapd-db-durable-transaction", "@DURABLE@"),
    (f"cn=userroot,{_LDBM}", "nsslapd-cachememsize", "33554432"),
    (f"cn=userroot,{_LDBM}", "nsslapd-dncachememsize", "8388608"),
    ("cn=MemberOf Plugin,cn=plugins,cn=config", "nsslapd-pluginEnabled", "on"),
    (_REFINT, "nsslapd-pluginEnabled", "on"),
)

# Paths dscreate must not take from the system defaults.inf (values relative to PREFIX).
_INF_PATHS = {
    "sysconf_dir": "etc",
    "initconfig_dir": "etc/default",
    "config_dir": "config",
    "schema_dir": "config/schema",
    "cert_dir": "config",
    "local_state_dir": "var",
    "run_dir": "run",
    "pid_file": "run/slapd.pid",
    "ldapi": "run/ldapi.socket",
    "inst_dir": "inst",
    "tmpfiles_d": "etc/tmpfiles.d",
    "lock_dir": "lock",
    "log_dir": "log",
    "access_log": "log/access",
    "audit_log": "log/audit",
    "error_log": "log/errors",
    "security_log": "log/security",
    "db_dir": "db",
    "db_home_dir": "db",
    "backup_dir": "bak",
    "ldif_dir": "ldif",
}


# An entry's attributes as ldap3's add() takes them.
_Attrs = dict[str, list[str] | str]


class DirsrvError(RuntimeError):
    """389-ds could not be built or started; the message carries its output."""


@dataclass
class Dirsrv:
    """A running (or stopped) throwaway 389-ds and what a client needs to use it."""

    workdir: Path
    port: int
    tls_port: int
    suffix: str
    root_dn: str
    root_password: str
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

    @property
    def errors_log(self) -> Path:
        return self.workdir / "log" / "errors"

    # the names tests.labs.ldap uses for the root DN of tests.servers.slapd
    @property
    def admin_dn(self) -> str:
        return self.root_dn

    @property
    def admin_password(self) -> str:
        return self.root_password

    def reset(self) -> None:
        """Back to the tree :func:`start_dirsrv` seeded: every entry below the suffix is
        deleted (leaves first) and the base entries are added again; the suffix entry
        keeps its ACIs. For a server shared by several tests."""
        _reset(self)

    def restart(self) -> None:
        """Stop and start again on the same ports and config (for cn=config changes)."""
        self.stop()
        offsets = _log_offsets(self)
        proc, ready = _launch_and_wait(self.workdir)
        self.process = proc
        if not ready:
            tail = _log_tails(self, offsets)
            self.stop()
            raise DirsrvError(f"{_failure(proc, ready)} (work dir {self.workdir}):\n{tail}")

    def stop(self) -> None:
        """Stop ns-slapd: SIGTERM, up to 30 s to exit, then SIGKILL. Idempotent."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_dirsrv(
    folder: Path,
    *,
    suffix: str = DEFAULT_SUFFIX,
    nosync: bool = False,
    cache_dir: Path | None = None,
) -> Dirsrv:
    """Build a fresh instance in ``folder`` and run ns-slapd on it as a child.

    The first call on a machine (or after this file or 389-ds changed) also runs
    ``dscreate`` once to build the cached template (6-12 s). The caller must call
    :meth:`Dirsrv.stop`; nothing is registered globally.
    """
    _check_installed()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(folder)
    template = _template(suffix, cache_dir or _default_cache())
    _reset_layout(folder)
    ca_file, cert_file, key_file = _make_tls(folder / "tls")
    _make_nssdb(folder, cert_file, key_file, ca_file)
    server = Dirsrv(
        workdir=folder,
        port=0,
        tls_port=0,
        suffix=suffix,
        root_dn=ROOT_DN,
        root_password=secrets.token_urlsafe(18),
        service_dn=f"cn=syncd,ou=services,{suffix}",
        service_password=secrets.token_urlsafe(18),
        ca_file=ca_file,
    )
    _run_server(server, template, nosync=nosync)
    try:
        _seed(server)
    except BaseException:
        server.stop()
        raise
    return server


def _check_installed() -> None:
    _tool("ns-slapd")
    _tool("dscreate")
    # /etc/dirsrv is 0750 dirsrv:dirsrv; dscreate and every start copy files from it.
    if not os.access(_SYSTEM_ETC, os.R_OK | os.X_OK):
        raise DirsrvError(
            f"{_SYSTEM_ETC} is not readable by {_user()}: run as root or add the user to"
            " the dirsrv group"
        )


# --- the cached template -----------------------------------------------------------


def _default_cache() -> Path:
    return Path(os.environ.get("SYNCD_TEST_CACHE") or Path.home() / ".cache" / "syncd-tests")


def _template(suffix: str, cache: Path) -> str:
    """The edited dse.ldif of a dscreate'd instance, with placeholders; built once."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"dirsrv-{_cache_key(suffix)}.dse.ldif"
    with _locked(cache / "dirsrv-build.lock"):
        if not path.is_file():
            partial = path.with_suffix(".part")
            partial.write_text(_build_with_retry(suffix))
            partial.replace(path)
    return path.read_text()


def _cache_key(suffix: str) -> str:
    version = subprocess.run(
        [_tool("ns-slapd"), "-v"], capture_output=True, check=False
    ).stdout.decode(errors="replace")
    digest = hashlib.sha256(
        "\0".join([version, suffix, _user()]).encode() + Path(__file__).read_bytes()
    )
    return digest.hexdigest()[:16]


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _build_with_retry(suffix: str) -> str:
    # dscreate starts ns-slapd on all interfaces with ports we chose: they may be
    # taken by then, the only failure worth a retry.
    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            return _build_template(suffix)
        except DirsrvError as exc:
            if attempt == _START_ATTEMPTS or not any(t in str(exc) for t in _PORT_IN_USE):
                raise
    raise AssertionError("unreachable: the loop returns or raises")


def _build_template(suffix: str) -> str:
    build = Path(tempfile.mkdtemp(prefix="syncd-dirsrv-build-"))
    try:
        _prepare_prefix(build)
        inf = build / "instance.inf"
        inf.write_text(_instance_inf(suffix))
        # lib389 checks the user with getpass.getuser(), which trusts $USER/$LOGNAME.
        env = dict(os.environ, PREFIX=str(build), USER=_user(), LOGNAME=_user())
        _run([_tool("dscreate"), "from-file", str(inf)], what="dscreate", env=env,
             timeout=_BUILD_TIMEOUT)  # fmt: skip
        dse = (build / "config" / "dse.ldif").read_text()
    finally:
        shutil.rmtree(build, ignore_errors=True)
    text = _edit_dse(dse, _TEMPLATE_SETTINGS).replace(str(build), _PREFIX)
    if str(build) in text or "syncd-dirsrv-build-" in text:
        raise DirsrvError("dscreate wrote paths outside its PREFIX; the template is unusable")
    return text


def _prepare_prefix(build: Path) -> None:
    for name in _LAYOUT:
        (build / name).mkdir(mode=0o700, exist_ok=True)
    # lib389 reads PREFIX/share/dirsrv/inf/defaults.inf and copies the schema and
    # collation files from <sysconf_dir>/dirsrv.
    shutil.copytree(_SYSTEM_ETC, build / "etc" / "dirsrv")
    inf_dir = build / "share" / "dirsrv" / "inf"
    inf_dir.mkdir(parents=True)
    (inf_dir / "defaults.inf").write_text(_defaults_inf(build))


def _defaults_inf(build: Path) -> str:
    values = {key: str(build / rel) for key, rel in _INF_PATHS.items()}
    values.update(with_systemd="0", with_selinux="no", user=_user(), group=_group())
    lines = []
    for line in _SYSTEM_INF.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"{key} = {values.pop(key)}" if key in values else line)
    return "\n".join(lines) + "\n"


def _instance_inf(suffix: str) -> str:
    port, tls_port = _free_ports()
    return f"""\
[general]
full_machine_name = localhost
strict_host_checking = False
selinux = False
systemd = False
start = False

[slapd]
instance_name = syncd
user = {_user()}
group = {_group()}
port = {port}
secure_port = {tls_port}
self_sign_cert = False
root_password = {secrets.token_urlsafe(18)}

[backend-userroot]
suffix = {suffix}
create_suffix_entry = False
"""


def _edit_dse(dse: str, settings: Sequence[tuple[str, str, str]]) -> str:
    """Set (replace or add) single-valued attributes of dse.ldif entries by DN."""
    entries = [block.splitlines() for block in re.sub(r"\n ", "", dse).split("\n\n")]
    for dn, attr, value in settings:
        entry = _find_entry(entries, dn)
        prefix = attr.lower() + ":"
        entry[:] = [line for line in entry if not line.lower().startswith(prefix)]
        entry.append(f"{attr}: {value}")
    return "\n\n".join("\n".join(lines) for lines in entries if lines) + "\n"


def _find_entry(entries: list[list[str]], dn: str) -> list[str]:
    wanted = f"dn: {dn}".lower()
    for entry in entries:
        if entry and entry[0].lower() == wanted:
            return entry
    raise DirsrvError(f"dscreate's dse.ldif has no entry {dn!r}")


# --- one instance ------------------------------------------------------------------


def _refuse_if_running(folder: Path) -> None:
    try:
        pid = int((folder / "run" / "slapd.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"ns-slapd" in cmdline and str(folder / "config").encode() in cmdline:
        raise DirsrvError(f"an ns-slapd (pid {pid}) is already running in {folder}; stop it first")


def _reset_layout(folder: Path) -> None:
    """Empty the instance's directories: a reused folder starts over, pid file included."""
    for name in (*_LAYOUT, "tls"):
        shutil.rmtree(folder / name, ignore_errors=True)
    for name in _LAYOUT:
        (folder / name).mkdir(mode=0o700)
    config = folder / "config"
    shutil.copytree(_SYSTEM_ETC / "schema", config / "schema")
    for name in ("slapd-collations.conf", "certmap.conf"):
        shutil.copy(_SYSTEM_ETC / "config" / name, config / name)


def _make_nssdb(folder: Path, cert_file: Path, key_file: Path, ca_file: Path) -> None:
    """389-ds reads its key from an NSS database only: import our openssl files."""
    config = folder / "config"
    nssdb = f"sql:{config}"
    secret = folder / "tls" / "nss.pass"
    _write_private(secret, secrets.token_urlsafe(18))
    # pin.txt lets ns-slapd open the database without asking on a terminal.
    _write_private(config / "pin.txt", f"Internal (Software) Token:{secret.read_text()}\n")
    p12 = folder / "tls" / "server.p12"
    _run(["certutil", "-N", "-d", nssdb, "-f", str(secret)], what="certutil -N")
    _run(["certutil", "-A", "-d", nssdb, "-f", str(secret), "-n", "syncd test CA",
          "-t", "CT,,", "-a", "-i", str(ca_file)], what="certutil -A")  # fmt: skip
    _run(["openssl", "pkcs12", "-export", "-in", str(cert_file), "-inkey", str(key_file),
          "-name", "Server-Cert", "-passout", f"file:{secret}", "-out", str(p12)],
         what="openssl pkcs12")  # fmt: skip
    _run(["pk12util", "-i", str(p12), "-d", nssdb, "-k", str(secret), "-w", str(secret)],
         what="pk12util")  # fmt: skip


def _run_server(server: Dirsrv, template: str, *, nosync: bool) -> None:
    """Start ns-slapd on free ports; retry only when a port was taken meanwhile."""
    for attempt in range(1, _START_ATTEMPTS + 1):
        server.port, server.tls_port = _free_ports()
        _write_dse(server, template, nosync=nosync)
        offsets = _log_offsets(server)
        proc, ready = _launch_and_wait(server.workdir)
        server.process = proc
        if ready and _tls_handshakes(server.tls_port, server.ca_file):
            return
        tail = _log_tails(server, offsets)
        server.stop()
        if any(text in tail for text in _PORT_IN_USE) and attempt < _START_ATTEMPTS:
            continue
        raise DirsrvError(f"{_failure(proc, ready)} (work dir {server.workdir}):\n{tail}")
    raise AssertionError("unreachable: the loop returns or raises")


def _launch_and_wait(folder: Path) -> tuple[subprocess.Popen[bytes], bool]:
    with _notify_socket() as (sock, address):
        proc = _launch(folder, folder / "log" / _LOG_NAME, address)
        try:
            return proc, _wait_ready(proc, sock)
        except BaseException:
            # Ctrl-C while waiting must not leave an orphan nobody can stop.
            proc.kill()
            proc.wait()
            raise


def _failure(proc: subprocess.Popen[bytes], ready: bool) -> str:
    if proc.returncode is not None and not ready:
        return f"ns-slapd exited with status {proc.returncode} before it was ready"
    if not ready:
        return f"ns-slapd did not report READY=1 within {_READY_TIMEOUT:.0f} s"
    return "ns-slapd is up but its TLS port does not complete a handshake with our CA"


def _write_dse(server: Dirsrv, template: str, *, nosync: bool) -> None:
    values = {
        _PREFIX: str(server.workdir),
        "@PORT@": str(server.port),
        "@TLS_PORT@": str(server.tls_port),
        "@ROOTPW@": _ssha512(server.root_password),
        "@USER@": _user(),
        "@DURABLE@": "off" if nosync else "on",
    }
    text = template
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    _write_private(server.workdir / "config" / "dse.ldif", text)


@contextmanager
def _notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, as systemd's NOTIFY_SOCKET."""
    name = f"syncd-dirsrv-{os.getpid()}-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(0.1)
        yield sock, "@" + name


def _launch(folder: Path, log_file: Path, notify: str) -> subprocess.Popen[bytes]:
    # NOTIFY_SOCKET keeps ns-slapd in the foreground (no fork, so stop() can
    # signal it) while it still logs normally to log/errors.
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    args = [
        _tool("ns-slapd"),
        "-D",
        str(folder / "config"),
        "-i",
        str(folder / "run" / "slapd.pid"),
    ]
    with log_file.open("ab") as log:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )


def _wait_ready(proc: subprocess.Popen[bytes], sock: socket.socket) -> bool:
    """True once ns-slapd sends READY=1; False if it died or timed out."""
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            message = sock.recv(4096)
        except TimeoutError:
            if proc.poll() is not None:
                return False
            continue
        if b"READY=1" in message.split(b"\n"):
            return True
    return False


def _tls_handshakes(port: int, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.unwrap()
            return True
    except (OSError, ssl.SSLError):
        return False


def _log_offsets(server: Dirsrv) -> tuple[int, int]:
    return _size(server.workdir / "log" / _LOG_NAME), _size(server.errors_log)


def _log_tails(server: Dirsrv, offsets: tuple[int, int]) -> str:
    out = _log_tail(server.workdir / "log" / _LOG_NAME, offsets[0])
    errors = _log_tail(server.errors_log, offsets[1])
    return f"--- {_LOG_NAME}:\n{out}\n--- errors:\n{errors}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_tail(log_file: Path, offset: int, lines: int = 30) -> str:
    try:
        with log_file.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as exc:
        return f"(cannot read log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# --- the base tree -----------------------------------------------------------------


def _seed(server: Dirsrv) -> None:
    conn = _root_connection(server)
    try:
        _add_entries(conn, _base_entries(server))
        # Added last: an ACI whose target does not exist yet is logged as an error.
        acis = _acis(server.suffix, server.service_dn)
        changes = {"aci": [(MODIFY_ADD, acis)]}
        if not conn.modify(server.suffix, changes):  # type: ignore[no-untyped-call]
            raise DirsrvError(f"adding the service account's ACIs failed: {conn.result}")
    finally:
        conn.unbind()


def _reset(server: Dirsrv) -> None:
    conn = _root_connection(server)
    try:
        conn.search(server.suffix, "(objectClass=*)", SUBTREE, attributes=["1.1"])
        below = [
            (len(parse_dn(entry["dn"])), entry["dn"])
            for entry in conn.response or []
            if entry["type"] == "searchResEntry" and entry["dn"].lower() != server.suffix.lower()
        ]
        for _depth, dn in sorted(below, reverse=True):  # leaves first
            if not conn.delete(dn):  # type: ignore[no-untyped-call]
                raise DirsrvError(f"resetting: deleting {dn} failed: {conn.result}")
        _add_entries(conn, _base_entries(server)[1:])  # the suffix entry and its ACIs stay
    finally:
        conn.unbind()


def _root_connection(server: Dirsrv) -> Connection:
    return Connection(
        Server(server.url, connect_timeout=10, get_info=NONE),
        server.root_dn,
        server.root_password,
        auto_bind=True,
        receive_timeout=30,
    )


def _add_entries(conn: Connection, entries: list[tuple[str, _Attrs]]) -> None:
    for dn, attributes in entries:
        if not conn.add(dn, attributes=attributes):  # type: ignore[no-untyped-call]
            raise DirsrvError(f"seeding {dn} failed: {conn.result}")


def _base_entries(server: Dirsrv) -> list[tuple[str, _Attrs]]:
    suffix = server.suffix
    people, groups = f"ou=people,{suffix}", f"ou=groups,{suffix}"
    entries: list[tuple[str, _Attrs]] = [
        (suffix, {"objectClass": ["top", "domain"], "dc": _first_value(suffix)}),
    ]
    for ou in ("people", "contractors", "groups", "services"):
        entries.append((f"ou={ou},{suffix}", {"objectClass": ["top", "organizationalUnit"]}))
    entries.append(_service_entry(server))
    domain = ".".join(part.split("=", 1)[1] for part in suffix.split(","))
    for uid, given, sn in (("jdoe", "John", "Doe"), ("asmith", "Alice", "Smith")):
        entries.append((f"uid={uid},{people}", _person(uid, given, sn, domain)))
    for group, uid in (
        ("developers", "jdoe"),
        ("vpn-users", "jdoe"),
        ("wiki-editors", "asmith"),
        ("ops", "asmith"),
    ):
        member = f"uid={uid},{people}"
        entries.append((f"cn={group},{groups}", {"objectClass": _GROUP, "member": member}))
    auditors: _Attrs = {"objectClass": _UNIQUE_GROUP, "uniqueMember": f"uid=asmith,{people}"}
    entries.append((f"cn=auditors,{groups}", auditors))
    return entries


_GROUP = ["top", "groupOfNames"]
_UNIQUE_GROUP = ["top", "groupOfUniqueNames"]


def _service_entry(server: Dirsrv) -> tuple[str, _Attrs]:
    # nsSizeLimit/nsLookThroughLimit -1: the service account pages through everything.
    return server.service_dn, {
        "objectClass": ["top", "applicationProcess", "simpleSecurityObject"],
        "description": "syncd service account (not the root DN)",
        "userPassword": server.service_password,
        "nsSizeLimit": "-1",
        "nsLookThroughLimit": "-1",
        "nsPagedSizeLimit": "-1",
    }


def _person(uid: str, given: str, sn: str, domain: str) -> _Attrs:
    return {
        "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson"],
        "cn": f"{given} {sn}",
        "givenName": given,
        "sn": sn,
        "mail": f"{uid}@{domain}",
        "employeeNumber": f"{uid}@{domain}",
        "userPassword": EMPLOYEE_PASSWORD,
    }


def _acis(suffix: str, service_dn: str) -> list[str]:
    """The service account's rights. In 389-ds 2.3 ``targetattr="*"`` also covers
    operational attributes (nsAccountLock, passwordExpirationTime, ...) and ``aci``
    itself, and the ``add`` right ignores ``targetattr``: without the deny and the
    ``targattrfilters`` below the account could write ACIs on, or add entries
    carrying ACIs into, the subtrees it manages (e.g. anonymous read of them)."""
    who = f'userdn="ldap:///{service_dn}"'
    acis = [
        f'(targetattr="*")(version 3.0; acl "syncd reads all"; '
        f"allow (read, search, compare) {who};)",
        f'(targetattr="aci")(version 3.0; acl "syncd never writes ACIs"; deny (write) {who};)',
    ]
    for ou in ("people", "contractors", "groups"):
        target = f'(target="ldap:///ou={ou},{suffix}")(targetattr="*")'
        acis.append(
            f'{target}(version 3.0; acl "syncd edits ou={ou}"; allow (write, delete) {who};)'
        )
        acis.append(
            f'{target}(targattrfilters="add=aci:(aci=NEVER)")'
            f'(version 3.0; acl "syncd adds to ou={ou}, no ACIs"; allow (add) {who};)'
        )
    return acis


def _first_value(dn: str) -> str:
    return dn.split(",", 1)[0].split("=", 1)[1]


# --- small helpers -----------------------------------------------------------------


def _user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _group() -> str:
    return grp.getgrgid(os.getegid()).gr_name


def _ssha512(password: str) -> str:
    """``{SSHA512}`` for nsslapd-rootpw: base64(sha512(password + salt) + salt)."""
    salt = os.urandom(16)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode("ascii")


def _free_ports() -> tuple[int, int]:
    # Both sockets are open at once so the kernel cannot hand out one port twice.
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second,
    ):
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _tool(name: str) -> str:
    found = shutil.which(name, path=_SBIN_PATH)
    if found is None:
        raise DirsrvError(
            f"{name} not found in PATH or /usr/sbin (apt-get install -y"
            " --no-install-recommends 389-ds-base)"
        )
    return found


def _run(
    args: list[str], *, what: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> None:
    try:
        result = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=timeout,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DirsrvError(f"{what} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")
        raise DirsrvError(f"{what} failed with status {result.returncode}:\n{output[-4000:]}")
