"""Notices from the running daemon to real receivers on loopback: an SMTP server that
insists on STARTTLS (aiosmtpd, a throwaway CA) and an HTTPS webhook receiver.

The daemon runs in-process on a memory target (``tests.unit.test_daemon.Bench``); the
mail, the webhook and the audit trail are real. Warnings go out once per threshold
across restarts and reloads; an extension arms them again; a warning whose moment
passed while the daemon was down goes out once, late; a relay that hangs delays mail,
never a revocation; the digest lists what a sponsor sponsors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.audit.verify import verify
from syncd.cli import main
from tests.audit.ocsf import problems
from tests.servers.notify import Hook, MailServer, Silent, start_hook, start_mail
from tests.unit.test_daemon import (
    ANA,
    DEVS,
    Bench,
    Running,
    bench,
    contract,
    disabled_at,
    in_days,
    seconds_ahead,
    wait_for,
)

SPONSOR = "sam@corp.example"
__all__ = ["bench"]  # the fixture, used by name


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailServer]:
    server = start_mail(tmp_path / "mail-tls")
    yield server
    server.stop()


@pytest.fixture
def hook(tmp_path: Path) -> Iterator[Hook]:
    server = start_hook(tmp_path / "hook-tls")
    yield server
    server.stop()


def configure(bench: Bench, notify: dict[str, Any], **daemon: str) -> None:
    bench.write_config(**daemon)
    doc = yaml.safe_load(bench.config_path.read_text())
    doc["policy"] = {"timezone": "Europe/Berlin"}
    doc["notify"] = notify
    bench.config_path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def smtp(server: MailServer, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "ca_file": str(server.ca_file),
        "from_address": "syncd@corp.example",
        **extra,
    }


def quiet(**extra: Any) -> dict[str, Any]:
    """Kinds off but warnings, so that a test counts only what it is about."""
    kinds = {"granted": False, "revoked": False, "ops": False, "digest": False}
    return {"kinds": kinds, "extend_link": "https://desk.corp.example/extend", **extra}


def notifications(bench: Bench) -> list[dict[str, Any]]:
    return [r for r in bench.audit() if r.get("unmapped", {}).get("phase") == "notification"]


def cycles(running: Running) -> float:
    return running.sample("syncd_cycles_total", result="ok") or 0


def test_a_warning_goes_out_once_across_reload_and_restart_and_again_after_an_extension(
    bench: Bench, mail: MailServer, hook: Hook
) -> None:
    configure(
        bench,
        quiet(smtp=smtp(mail), webhook={"url": hook.url, "ca_file": str(hook.ca_file)}),
    )
    bench.contracts(contract("C-1", "ana", in_days(10), sponsor=SPONSOR, vendor="Acme"))
    running = bench.started()
    wait_for(lambda: len(mail.inbox) == 1 and len(hook.received) == 1, 10)

    (sent,) = mail.inbox.mails
    assert sent.recipients == [SPONSOR]
    assert sent.message["Subject"].startswith("Access of Ana Test ends ")
    assert "C-1" in sent.text
    assert "Acme" in sent.text
    assert f"corp: {DEVS}" in sent.text  # what stops working
    assert "(Europe/Berlin)" in sent.text  # in the recipient's terms
    assert "https://desk.corp.example/extend" in sent.html
    headers, body = hook.received[0]
    assert body["kind"] == "warning"
    assert body["threshold"] == "14d"
    assert body["contract_ids"] == ["C-1"]
    assert body["to"] == [SPONSOR]
    assert headers["Content-Type"] == "application/json"

    # a reload and a forced cycle send nothing more
    running.controls.request_reload()
    before = cycles(running)
    running.controls.request_cycle()
    wait_for(lambda: cycles(running) > before, 10)
    running.stop()
    # nor does a restart
    running = bench.started()
    running.stop()
    assert len(mail.inbox) == 1
    assert len(hook.received) == 1

    # an extension arms the thresholds again: the 14 days before the new end have begun
    bench.contracts(contract("C-1", "ana", in_days(12), sponsor=SPONSOR, vendor="Acme"))
    running = bench.started()
    wait_for(lambda: len(mail.inbox) == 2 and len(hook.received) == 2, 10)
    running.stop()

    records = notifications(bench)
    assert sorted((r["class_uid"], r["status"]) for r in records) == [
        (4002, "Success"),
        (4002, "Success"),
        (4009, "Success"),
        (4009, "Success"),
    ]
    for record in records:
        assert problems(record) == []
        assert record["unmapped"]["recipients"] == [SPONSOR]
        assert record["unmapped"]["threshold"] == "14d"
        assert "Ana" not in str(record)  # addresses only: no names, no subject, no body
    mails = [r for r in records if r["class_uid"] == 4009]
    assert mails[0]["email"]["from"] == "syncd@corp.example"
    assert mails[0]["email"]["message_uid"] == mail.inbox.mails[0].message["Message-ID"]
    assert verify([bench.trail]).ok


def test_a_warning_missed_while_down_goes_out_once_marked_late(
    bench: Bench, mail: MailServer
) -> None:
    configure(bench, quiet(smtp=smtp(mail), warn_before=["20d", "14d", "3d"]))
    bench.contracts(contract("C-1", "ana", in_days(30), sponsor=SPONSOR))
    running = bench.started()
    running.stop()
    assert len(mail.inbox) == 0  # nothing due yet
    # the daemon was down while the end came nearer (here: the end moved, as if time
    # passed; the last planning lies before both thresholds' new moments)
    state = bench.folder / "state" / "notices.json"
    kept = json.loads(state.read_text())
    kept["checked"] = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    state.write_text(json.dumps(kept))
    bench.contracts(contract("C-1", "ana", in_days(10), sponsor=SPONSOR))
    running = bench.started()
    wait_for(lambda: len(mail.inbox) == 1, 10)
    before = cycles(running)
    running.controls.request_cycle()
    wait_for(lambda: cycles(running) > before, 10)
    running.stop()

    (sent,) = mail.inbox.mails  # 20d and 14d passed: one warning, the nearest
    assert "(late notice)" in sent.message["Subject"]
    assert "This warning is late: it was due 14d before the end" in sent.text
    (record,) = notifications(bench)
    assert record["unmapped"]["threshold"] == "14d"
    assert record["unmapped"]["late"] is True


def test_a_hung_mail_server_delays_mail_but_not_a_revocation(bench: Bench) -> None:
    silent = Silent()
    try:
        relay = {"host": "127.0.0.1", "port": silent.port, "from_address": "syncd@corp.example"}
        configure(bench, {"smtp": {**relay, "timeout": "20s"}, "retries": 1})
        end = seconds_ahead(3)
        bench.contracts(
            contract("C-1", "ana", end, sponsor=SPONSOR),
            contract("C-2", "bo", in_days(5), sponsor=SPONSOR),
        )
        running = bench.started()
        wait_for(lambda: not bench.corp.accounts[ANA].enabled, 8)
        lag = (disabled_at(bench, "ana") - end).total_seconds()
        assert 0 <= lag <= 1.0
        assert running.daemon.notices.store.armed == {}  # nothing went out
        assert running.stop() < 2
    finally:
        silent.stop()


def delivered(running: Running, result: str) -> float:
    sample = running.sample(
        "syncd_notifications_total", channel="webhook", kind="warning", result=result
    )
    return sample or 0


def test_a_failed_webhook_is_counted_audited_and_sent_at_the_next_cycle(
    bench: Bench, hook: Hook
) -> None:
    hook.answer = lambda n: 503 if n == 1 else 200
    configure(bench, quiet(webhook={"url": hook.url, "ca_file": str(hook.ca_file)}, retries=1))
    bench.contracts(contract("C-1", "ana", in_days(2), sponsor=SPONSOR))
    running = bench.started()
    wait_for(lambda: notifications(bench) != [], 10)
    assert hook.received == []
    # a delivery is recorded in the trail, then counted: wait for the count
    wait_for(lambda: delivered(running, "failed") == 1, 5)
    before = cycles(running)
    running.controls.request_cycle()
    wait_for(lambda: cycles(running) > before and len(hook.received) == 1, 10)
    wait_for(lambda: len(notifications(bench)) == 2, 5)
    wait_for(lambda: delivered(running, "sent") == 1, 5)
    assert delivered(running, "failed") == 1
    running.stop()
    failed, sent = notifications(bench)
    assert (failed["status"], failed["unmapped"]["retry"]) == ("Failure", True)
    assert failed["http_response"]["code"] == 503
    assert "HTTP 503" in failed["status_detail"]
    assert sent["status"] == "Success"
    assert sent["http_response"]["code"] == 200
    for record in (failed, sent):
        assert problems(record) == []


def test_the_digest_lists_a_sponsors_people_and_who_ends_before_the_next(
    bench: Bench, mail: MailServer
) -> None:
    today = datetime.now(UTC).astimezone().strftime("%A").lower()
    notify = {
        "smtp": smtp(mail),
        "kinds": {"warning": False, "granted": False, "revoked": False, "ops": False},
        "digest": {"every": "weekly", "day": today, "hour": 0},
    }
    configure(bench, notify)
    doc = yaml.safe_load(bench.config_path.read_text())
    doc["policy"] = {"timezone": "UTC"}
    bench.config_path.write_text(yaml.safe_dump(doc))
    bench.contracts(
        contract("C-1", "ana", in_days(3), sponsor=SPONSOR),
        contract("C-2", "bo", in_days(40), sponsor=SPONSOR),
        contract("C-3", "cy", in_days(90), sponsor=SPONSOR.upper()),
        contract("C-4", "di", in_days(90), sponsor="other@corp.example"),
    )
    running = bench.started()
    wait_for(lambda: len(mail.inbox) == 2, 10)
    running.stop()
    running = bench.started()  # the same period: no second digest
    running.stop()
    assert len(mail.inbox) == 2

    (digest,) = [m for m in mail.inbox.mails if m.recipients == [SPONSOR]]
    assert digest.message["Subject"] == "People you sponsor: 3"
    text = digest.text
    assert text.index("Ana Test") < text.index("Bo Test") < text.index("Cy Test")
    assert "Di Test" not in text
    assert f"corp: {DEVS}" in text
    ending = text.split("Ending before the next digest:")[1]
    assert "Ana Test" in ending
    assert "Bo Test" not in ending


def test_grants_revocations_and_holds_are_told_once(bench: Bench, hook: Hook) -> None:
    configure(
        bench,
        {
            "webhook": {"url": hook.url, "ca_file": str(hook.ca_file)},
            "kinds": {"warning": False, "digest": False},
            "recipients": {"ops": ["ops@corp.example"]},
        },
    )
    doc = yaml.safe_load(bench.config_path.read_text())
    doc["safety"] = {"max_orphan_disables": 0, "max_source_drop": "100%"}
    bench.config_path.write_text(yaml.safe_dump(doc))
    end = seconds_ahead(2)
    bo = contract("C-2", "bo", in_days(30), sponsor=SPONSOR)
    bench.contracts(contract("C-1", "ana", end, sponsor=SPONSOR), bo)
    running = bench.started()

    def kinds() -> list[tuple[str, list[str]]]:
        return sorted((body["kind"], body["contract_ids"]) for _, body in hook.received)

    wait_for(lambda: len(hook.received) == 3, 10)  # two grants, then ana's end
    assert kinds() == [("granted", ["C-1"]), ("granted", ["C-2"]), ("revoked", ["C-1"])]
    revoked = next(body for _, body in hook.received if body["kind"] == "revoked")
    assert revoked["to"] == [SPONSOR]
    assert "has ended" in revoked["text"]
    assert "disabled in corp" in revoked["text"]

    bench.contracts(contract("C-1", "ana", end, sponsor=SPONSOR))  # bo vanishes: held
    wait_for(lambda: len(hook.received) == 4, 10)
    ops = hook.received[-1][1]
    assert (ops["kind"], ops["to"]) == ("ops", ["ops@corp.example"])
    assert "held" in ops["text"]
    running.controls.request_cycle()  # still held: no second notice
    wait_for(lambda: (running.sample("syncd_cycles_total", result="held") or 0) >= 2, 10)
    running.stop()
    assert len(hook.received) == 4


def cli(bench: Bench, *argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["-c", str(bench.config_path), *argv])
    return code, capsys.readouterr().out


def test_expiring_notify_shows_then_sends_what_is_due_once(
    bench: Bench, mail: MailServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(bench, quiet(smtp=smtp(mail), recipients={"copy_to": ["desk@corp.example"]}))
    bench.contracts(
        contract("C-1", "ana", in_days(2), sponsor=SPONSOR),
        contract("C-2", "bo", in_days(40), sponsor=SPONSOR),
    )
    code, out = cli(bench, "expiring", "--notify", "--dry-run", capsys=capsys)
    assert code == 0
    (line,) = out.splitlines()
    assert line.startswith(
        f"would send smtp: warning 3d to {SPONSOR}, desk@corp.example contract C-1: "
        "Access of Ana Test ends "
    )
    assert len(mail.inbox) == 0
    assert not bench.trail.exists()

    code, out = cli(bench, "expiring", "--notify", capsys=capsys)
    assert code == 0
    assert out == f"smtp: warning 3d to {SPONSOR}, desk@corp.example contract C-1: sent\n"
    (sent,) = mail.inbox.mails
    assert sent.recipients == [SPONSOR, "desk@corp.example"]
    code, out = cli(bench, "expiring", "--notify", capsys=capsys)
    assert (code, out) == (0, "nothing is due\n")
    # nor does the daemon send it again
    running = bench.started()
    running.stop()
    assert len(mail.inbox) == 1
    (record,) = notifications(bench)
    assert record["status"] == "Success"
    assert problems(record) == []


def test_notify_test_goes_through_each_channel(
    bench: Bench, tmp_path: Path, hook: Hook, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_mail(tmp_path / "implicit-tls", implicit=True)
    try:
        headers = tmp_path / "hook-headers"
        headers.write_text("# the receiver's token\nAuthorization: Bearer t0ken\n")
        configure(
            bench,
            {
                "smtp": smtp(server, tls="implicit"),
                "webhook": {
                    "url": hook.url,
                    "ca_file": str(hook.ca_file),
                    "headers_file": str(headers),
                },
            },
        )
        code, out = cli(bench, "notify", "test", "--to", "ops@corp.example", capsys=capsys)
    finally:
        server.stop()
    assert code == 0
    assert out.splitlines() == [
        "smtp: test to ops@corp.example: sent",
        "webhook: test to ops@corp.example: sent",
    ]
    (sent,) = server.inbox.mails
    assert sent.message["Subject"] == "syncd test message"
    (received,) = hook.received
    assert received[0]["Authorization"] == "Bearer t0ken"
    assert "t0ken" not in bench.trail.read_text()


def test_notify_test_fails_when_the_certificate_is_not_trusted(
    bench: Bench, mail: MailServer, capsys: pytest.CaptureFixture[str]
) -> None:
    relay = smtp(mail)
    del relay["ca_file"]  # the system's CAs do not know the throwaway one
    configure(bench, {"smtp": relay, "retries": 1})
    code, out = cli(bench, "notify", "test", "--to", "ops@corp.example", capsys=capsys)
    assert code == 1
    assert "smtp: test to ops@corp.example: NOT SENT" in out
    assert "CERTIFICATE_VERIFY_FAILED" in out
    assert len(mail.inbox) == 0
    (record,) = notifications(bench)
    assert (record["status"], record["unmapped"]["retry"]) == ("Failure", False)
