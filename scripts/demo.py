"""The built-in demo behind ``make demo``: a throwaway slapd, the sample contracts in
``config/``, then ``syncd plan``, ``syncd sync``, a second ``sync`` (no changes), the
resulting entries and the audit lines. Everything lives in ``.demo/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from ldap3 import MODIFY_ADD, Connection, Server, Tls

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.slapd import start_slapd  # noqa: E402

# Accounts syncd made in earlier cycles: Carla's contract has ended since, Emeka was
# terminated, and Gus's contract is gone from the source (an orphan).
EARLIER = [
    ("carla.rossi", "Carla Rossi", "carla.rossi@vendor-a.example", "C-1003", ["wiki-editors"]),
    ("emeka.obi", "Emeka Obi", "emeka.obi@vendor-b.example", "C-1005", ["developers", "vpn-users"]),
    ("gus.old", "Gus Old", "gus.old@vendor-c.example", "C-0042", ["ops"]),
]


def seed(conn: Connection) -> None:
    for uid, cn, key, contract, groups in EARLIER:
        dn = f"uid={uid},ou=contractors,dc=example,dc=test"
        conn.add(
            dn,
            attributes={
                "objectClass": ["inetOrgPerson"],
                "uid": uid,
                "cn": cn,
                "sn": cn.split()[-1],
                "employeeNumber": key,
                "userPassword": "demo-Password-1",
                "description": f"contractor: {contract}",
                "pwdEndTime": "20301231230000Z",
            },
        )
        for group in groups:
            conn.modify(
                f"cn={group},ou=groups,dc=example,dc=test", {"member": [(MODIFY_ADD, [dn])]}
            )


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def syncd(config: Path, *args: str) -> int:
    cmd = [sys.executable, "-m", "syncd", "-c", str(config), *args]
    print("$ syncd " + " ".join(args), flush=True)
    return subprocess.run(cmd, check=False).returncode


def main() -> int:
    work = ROOT / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    server = start_slapd(work / "slapd")
    try:
        password = work / "bind-password"
        password.write_text(server.service_password)
        password.chmod(0o600)
        config = yaml.safe_load((ROOT / "config" / "syncd.yaml").read_text())
        config["source"]["path"] = str(ROOT / "config" / "contracts.yaml")
        ldap = config["targets"]["corp-ldap"]
        ldap.update(urls=server.ldaps_url, ca_file=str(server.ca_file), password_file=str(password))
        config["audit"]["path"] = str(work / "audit.jsonl")
        # the state folder holds when each orphan was first seen absent (policy.orphan_grace)
        (work / "state").mkdir(mode=0o750, exist_ok=True)
        config["daemon"]["state_dir"] = str(work / "state")
        path = work / "syncd.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        tls = Tls(ca_certs_file=str(server.ca_file))
        ldaps = Server(server.ldaps_url, use_ssl=True, tls=tls)
        seed(Connection(ldaps, server.admin_dn, server.admin_password, auto_bind=True))
        banner(
            f"slapd on {server.ldaps_url} with 3 contractors from earlier cycles; "
            f"config {path.relative_to(ROOT)}"
        )
        syncd(path, "check-config", "--online")
        banner("What would change (nothing is written)")
        syncd(path, "plan")
        banner("Apply it")
        print(f"(exit code {syncd(path, 'sync')})")
        banner("Run again: a converged directory needs no change")
        syncd(path, "sync")
        banner("Access ending within 5 years")
        syncd(path, "expiring", "--within", "1830d")
        banner("Entries under ou=contractors")
        conn = Connection(ldaps, server.service_dn, server.service_password, auto_bind=True)
        conn.search(
            "ou=contractors,dc=example,dc=test",
            "(employeeNumber=*)",
            attributes=["uid", "pwdAccountLockedTime", "pwdEndTime", "memberOf"],
        )
        for entry in sorted(conn.entries, key=lambda e: str(e.uid)):
            locked = "LOCKED" if entry.pwdAccountLockedTime.value else "enabled"
            groups = [str(g).split(",")[0] for g in entry.memberOf.values]
            print(f"  {entry.uid}: {locked}, ends {entry.pwdEndTime}, groups {groups}")
        banner("Audit trail (first lines of .demo/audit.jsonl)")
        lines = (work / "audit.jsonl").read_text().splitlines()
        for line in lines[:8]:
            record = json.loads(line)
            print(
                f"  {record['metadata']['sequence']:>3} {record['type_name']:<34} "
                f"{record['status']:<8} {record.get('user', {}).get('name', '')}"
            )
        print(f"  ... {len(lines)} records in all")
        banner("Check the audit trail's hash chain")
        syncd(path, "audit", "verify")
    finally:
        if os.environ.get("KEEP"):
            print(f"slapd left running (pid {server.process.pid if server.process else '?'})")
        else:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
