"""A throwaway Samba AD DC on 127.0.0.1 for the ``ad`` target's tests and benchmark.

Callers: the session fixture ``samba_dc`` of ``tests.plugins.ad`` (through
:func:`start_samba`, then :meth:`SambaDC.reset` before every test and
:meth:`SambaDC.close` at the end) and ``bench/ad_cycle.py``.

Samba's ports are fixed (389, 636), so there is one DC per machine and it needs root:
a second test session on the machine waits (``flock``) until the first has closed its DC.
Provisioning takes seconds, so the provisioned and seeded folder is cached as a tarball
keyed by the Samba version and this file's content; later runs (and every ``reset``)
restore it in milliseconds. Its paths are absolute, so it always lives in the same
place. Samba's own certificate names only ``DC1.example.test``; the DC gets a
certificate for 127.0.0.1 from a throwaway CA instead, made at every start.

The seeded domain ``example.test``::

    OU=people      jdoe, asmith        employees (mail jdoe@example.test, ...)
    OU=contractors                     empty: syncd's managed OU
    OU=disabled                        empty: for ``disabled_ou``
    OU=groups      developers, vpn-users, wiki-editors, ops   (jdoe in the first two,
                                       asmith in the last two)
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ldap3 import BASE, MODIFY_ADD, Connection, Server
from ldap3.core.exceptions import LDAPException

from syncd.targets.directory.tls import VerifiedTls
from tests.servers.slapd import _make_tls

REALM = "EXAMPLE.TEST"
DOMAIN_DN = "DC=example,DC=test"
UPN_DOMAIN = "example.test"
ADMIN_USER = f"Administrator@{UPN_DOMAIN}"
ADMIN_DN = f"CN=Administrator,CN=Users,{DOMAIN_DN}"
# Fixed, so that a cached domain can be used again; it guards a loopback test DC only.
ADMIN_PASSWORD = "Lab-Admin-Secret-42"
EMPLOYEE_PASSWORD = "Lab-Employee-Secret-7"
URL = "ldaps://127.0.0.1:636"
GROUP_NAMES = ("developers", "vpn-users", "wiki-editors", "ops")
EMPLOYEES = {"jdoe": ("developers", "vpn-users"), "asmith": ("wiki-editors", "ops")}

_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0
_TLS = "tls"  # kept across restores: made fresh at every start


class SambaError(RuntimeError):
    """Samba could not be provisioned or started; the message carries its output."""


def group_dn(name: str) -> str:
    return f"CN={name},OU=groups,{DOMAIN_DN}"


def ou_dn(name: str) -> str:
    return f"OU={name},{DOMAIN_DN}"


@dataclass
class SambaDC:
    """A provisioned domain in ``workdir`` and, while started, its samba process."""

    workdir: Path
    snapshot: Path  # tarball of the seeded domain
    lock: int  # file descriptor holding the machine-wide DC lock
    process: subprocess.Popen[bytes] | None = None

    url = URL

    @property
    def ca_file(self) -> Path:
        return self.workdir / _TLS / "ca.pem"

    @property
    def conf(self) -> Path:
        return self.workdir / "etc" / "smb.conf"

    def start(self) -> None:
        _make_tls(self.workdir / _TLS)
        log = self.workdir / "samba.out"
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    "samba", "--foreground", "--no-process-group", "--model=single",
                    "-s", str(self.conf),
                ],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise SambaError(f"samba did not start:\n{log.read_text(errors='replace')[-3000:]}")

    def _answers(self) -> bool:
        """A base search of the domain over LDAPS, as the administrator."""
        try:
            conn = self.admin()
        except LDAPException:
            return False
        try:
            return bool(conn.search(DOMAIN_DN, "(objectClass=*)", BASE, attributes=["1.1"]))
        except LDAPException:
            return False
        finally:
            conn.unbind()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s. Idempotent."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Stop the DC and let another session have it."""
        self.stop()
        if self.lock >= 0:
            os.close(self.lock)  # releases the flock
            self.lock = -1

    def reset(self) -> None:
        """Back to the seeded domain: stop, restore the snapshot, start."""
        self.stop()
        _restore(self.snapshot, self.workdir)
        self.start()

    def admin(self) -> Connection:
        # verified as syncd verifies: ldap3's own check refuses 127.0.0.1 on Python 3.12+
        tls = VerifiedTls(ca_file=self.ca_file)
        server = Server(URL, use_ssl=True, tls=tls, connect_timeout=5)
        return Connection(server, ADMIN_USER, ADMIN_PASSWORD, auto_bind=True, receive_timeout=30)


def start_samba(cache_dir: Path | None = None) -> SambaDC:
    """A started DC holding the seeded domain, provisioned once per Samba version."""
    workdir = Path(tempfile.gettempdir()) / "syncd-samba-dc"
    cache = cache_dir or Path(
        os.environ.get("SYNCD_TEST_CACHE") or Path.home() / ".cache" / "syncd-tests"
    )
    snapshot = cache / f"samba-dc-{_cache_key()}.tar"
    lock = os.open(f"{workdir}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another session's DC: wait until it is closed
    _stop_leftover(workdir)
    dc = SambaDC(workdir, snapshot, lock)
    try:
        _prepare(dc, cache)
    except BaseException:
        dc.close()
        raise
    return dc


def _prepare(dc: SambaDC, cache: Path) -> None:
    """Start ``dc`` from the cached snapshot, or provision, seed and cache it first."""
    workdir, snapshot = dc.workdir, dc.snapshot
    if snapshot.is_file():
        _restore(snapshot, workdir)
        dc.start()
        return
    _provision(workdir)
    dc.start()
    try:
        _seed(dc)
    finally:
        dc.stop()
    cache.mkdir(parents=True, exist_ok=True)
    partial = snapshot.with_suffix(".part")
    with tarfile.open(partial, "w") as tar:
        for child in sorted(workdir.iterdir()):
            if child.name != _TLS:
                tar.add(child, arcname=child.name)
    partial.replace(snapshot)
    dc.start()


def _cache_key() -> str:
    version = subprocess.run(
        ["samba", "-V"], capture_output=True, text=True, check=True
    ).stdout.strip()
    digest = hashlib.sha256(version.encode() + Path(__file__).read_bytes())
    return digest.hexdigest()[:16]


def _stop_leftover(workdir: Path) -> None:
    """A DC left running by an interrupted earlier run holds the fixed ports."""
    pidfile = workdir / "run" / "samba.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"samba" in cmdline and str(workdir).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)


def _restore(snapshot: Path, workdir: Path) -> None:
    workdir.mkdir(mode=0o700, exist_ok=True)
    for child in workdir.iterdir():
        if child.name == _TLS:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    with tarfile.open(snapshot) as tar:
        tar.extractall(workdir, filter="tar")


def _provision(workdir: Path) -> None:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(mode=0o700, parents=True)
    run = workdir / "run"
    tls = workdir / _TLS
    options = {
        "interfaces": "127.0.0.1",
        "bind interfaces only": "yes",
        "server services": "rpc, ldap, kdc",
        "pid directory": run,
        "ncalrpc dir": run / "ncalrpc",
        "winbindd socket directory": run / "winbindd",
        "log file": workdir / "log" / "samba.log",
        "tls enabled": "yes",
        "tls keyfile": tls / "server.key",
        "tls certfile": tls / "server.pem",
        "tls cafile": tls / "ca.pem",
    }
    _run(
        [
            "samba-tool", "domain", "provision", f"--realm={REALM}", "--domain=EXAMPLE",
            "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307", "--host-name=dc1",
            "--host-ip=127.0.0.1", f"--adminpass={ADMIN_PASSWORD}", f"--targetdir={workdir}",
            *(f"--option={name}={value}" for name, value in options.items()),
        ]
    )  # fmt: skip
    # No minimum age or history, so tests may set passwords again at once.
    _run(
        [
            "samba-tool", "domain", "passwordsettings", "set", "-s",
            str(workdir / "etc" / "smb.conf"), "--min-pwd-age=0", "--max-pwd-age=0",
            "--history-length=0",
        ]
    )  # fmt: skip


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SambaError(f"{command[:3]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _seed(dc: SambaDC) -> None:
    conn = dc.admin()
    try:
        for ou in ("people", "contractors", "disabled", "groups"):
            conn.add(ou_dn(ou), ["top", "organizationalUnit"])
        for name in GROUP_NAMES:
            conn.add(group_dn(name), ["top", "group"], {"sAMAccountName": name})
        for name, groups in EMPLOYEES.items():
            dn = f"CN={name},OU=people,{DOMAIN_DN}"
            ok = conn.add(
                dn,
                ["top", "person", "organizationalPerson", "user"],
                {
                    "sAMAccountName": name,
                    "userPrincipalName": f"{name}@{UPN_DOMAIN}",
                    "mail": f"{name}@{UPN_DOMAIN}",
                    "userAccountControl": "512",
                    "unicodePwd": f'"{EMPLOYEE_PASSWORD}"'.encode("utf-16-le"),
                },
            )
            if not ok:
                raise SambaError(f"seeding {dn}: {conn.result}")
            for group in groups:
                conn.modify(group_dn(group), {"member": [(MODIFY_ADD, [dn])]})
    finally:
        conn.unbind()
