"""Reading the bounce mailbox on a real Dovecot IMAPS server on loopback (.ci/dovecot_imap.sh): every report
shape in tests/bounces/, handled once, even by two System Managers at once; bad servers give one clear line."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

from desktop.db.engine import Database
from desktop.services.notices.bounce_mailbox import MailboxCycle, read_bounce_mailbox
from desktop.services.notices.delivery_problems import DeliveryProblem
from tests.imap_support import DONE_FOLDER, ImapBox, imap_box
from tests.outbox_support import manager_env, notices
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_bounce_parsing import BOUNCES
from tests.test_bounces import dsn, email_point, sent_notice

__all__ = ["imap_box", "smtp_sink"]


def fixtures() -> list[bytes]:
    return [p.read_bytes() for p in sorted(BOUNCES.glob("*.eml"))]


def test_every_report_shape_is_read_and_only_the_real_bounce_flags(
    sqlite_db: Database, smtp_sink: SmtpSink, imap_box: ImapBox
) -> None:
    sent_notice(sqlite_db, smtp_sink)
    [notice] = notices(sqlite_db)
    imap_box.append(*fixtures(), dsn(notice.message_id, "patron@example.org"))
    settings = imap_box.settings()

    first = read_bounce_mailbox(sqlite_db, settings, imap_box.password, worker="desk-1")

    assert first.ok, first.message
    # delayed + out of office: handled, no effect; the four real-shaped reports are about notices of another
    # database (left, counted); the malformed one is left; ours flags.
    assert first.counts == {"flagged": 1, "not_a_failure": 2, "unmatched": 4, "malformed": 1}
    assert len(first.left) == 5
    assert email_point(sqlite_db).bounced_at is not None
    assert imap_box.unhandled() == 5, "what could not be matched stays unflagged for a person"
    # The next cycle never counts a handled report again; what is left is counted again (it is still there).
    second = read_bounce_mailbox(sqlite_db, settings, imap_box.password, worker="desk-1")
    assert second.counts == {"unmatched": 4, "malformed": 1}
    assert second.describe().startswith("bounce mailbox read: 0 flagged, 0 counted, 0 not a failure")


def test_handled_reports_move_to_the_done_folder(sqlite_db: Database, smtp_sink: SmtpSink, imap_box: ImapBox) -> None:
    sent_notice(sqlite_db, smtp_sink)
    [notice] = notices(sqlite_db)
    imap_box.append(dsn(notice.message_id, "patron@example.org"), BOUNCES.joinpath("delayed.eml").read_bytes())
    cycle = read_bounce_mailbox(sqlite_db, imap_box.settings(bounce_imap_done_folder=DONE_FOLDER), imap_box.password)
    assert cycle.counts == {"flagged": 1, "not_a_failure": 1}
    assert (imap_box.count("INBOX"), imap_box.count(DONE_FOLDER)) == (0, 2)


def test_two_system_managers_reading_one_mailbox_count_each_report_once(
    any_db: Database, smtp_sink: SmtpSink, imap_box: ImapBox
) -> None:
    sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    soft = {"status": "4.2.2", "diagnostic": "452 4.2.2 mailbox full"}
    imap_box.append(*(dsn(notice.message_id, "patron@example.org", **soft) for _ in range(1)))
    other = Database(any_db.engine.url)
    results: list[MailboxCycle] = []
    start = threading.Barrier(2)

    def run(db: Database, worker: str) -> None:
        start.wait()
        results.append(read_bounce_mailbox(db, imap_box.settings(), imap_box.password, worker=worker))

    threads = [threading.Thread(target=run, args=(db, w)) for db, w in ((any_db, "desk-1"), (other, "desk-2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    assert all(r.ok for r in results), [r.message for r in results]
    assert sum(r.counts.get("counted", 0) for r in results) == 1
    assert email_point(any_db).soft_bounces == 1, "one report, counted once"
    assert imap_box.unhandled() == 0


def test_wrong_password_gives_one_line_and_loses_nothing(sqlite_db: Database, imap_box: ImapBox) -> None:
    imap_box.append(BOUNCES.joinpath("postfix_rfc3464.eml").read_bytes())
    cycle = read_bounce_mailbox(sqlite_db, imap_box.settings(), "not-the-password")
    assert cycle.problem is DeliveryProblem.AUTH_REFUSED
    assert cycle.message.startswith(
        f"the bounce mailbox {imap_box.user}@127.0.0.1:{imap_box.port}: the server refused the user name or password"
    )
    assert cycle.message.endswith("check them in Settings → Bounces") and "\n" not in cycle.message
    assert imap_box.unhandled() == 1


def test_no_password_untrusted_certificate_and_unreachable_server(sqlite_db: Database, imap_box: ImapBox) -> None:
    settings = imap_box.settings()
    none = read_bounce_mailbox(sqlite_db, settings, None)
    assert none.problem is DeliveryProblem.AUTH_REFUSED and none.message.endswith(
        "no password stored; enter it in Settings → Bounces"
    )
    untrusted = read_bounce_mailbox(sqlite_db, settings.with_changes(smtp_ca_file=""), imap_box.password)
    assert untrusted.problem is DeliveryProblem.TLS_FAILED
    assert "the server's certificate was refused" in untrusted.message
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    closed = read_bounce_mailbox(sqlite_db, settings.with_changes(bounce_imap_port=port), imap_box.password)
    assert closed.problem is DeliveryProblem.UNREACHABLE
    assert closed.message == (
        f"the bounce mailbox {imap_box.user}@127.0.0.1:{port}: connection refused (is the IMAP server running, "
        "the port right?)"
    )
    assert read_bounce_mailbox(sqlite_db, settings.with_changes(bounce_imap_host=""), "x").message == (
        "no bounce mailbox in Settings"
    )


def _cli(url: str, box: ImapBox, sink: SmtpSink, password: str) -> subprocess.CompletedProcess[str]:
    env = manager_env(sink, CALLSLIP_BOUNCE_IMAP_HOST=box.host, CALLSLIP_BOUNCE_IMAP_PORT=str(box.port),
                      CALLSLIP_BOUNCE_IMAP_USER=box.user, CALLSLIP_SMTP_CA_FILE=str(box.cafile),
                      CALLSLIP_BOUNCE_IMAP_PASSWORD=password)  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "desktop.manager", "--database", url, "read-bounces"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_read_bounces_as_an_administrator_runs_it(sqlite_db: Database, smtp_sink: SmtpSink, imap_box: ImapBox) -> None:
    sent_notice(sqlite_db, smtp_sink)
    [notice] = notices(sqlite_db)
    imap_box.append(dsn(notice.message_id, "patron@example.org"), BOUNCES.joinpath("exchange.eml").read_bytes())
    url = str(sqlite_db.engine.url)
    wrong = _cli(url, imap_box, smtp_sink, "wrong")
    assert wrong.returncode != 0 and wrong.stdout == ""
    assert wrong.stderr.strip().splitlines() == [
        f"callslip-manager: the bounce mailbox {imap_box.user}@127.0.0.1:{imap_box.port}: the server refused the "
        "user name or password ([AUTHENTICATIONFAILED] Authentication failed.); check them in Settings → Bounces"
    ]
    assert imap_box.unhandled() == 2, "nothing touched"
    done = _cli(url, imap_box, smtp_sink, imap_box.password)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "bounce mailbox read: 1 flagged, 0 counted, 0 not a failure, 1 unmatched, 0 duplicate, 0 malformed"
    )
    assert lines[1].endswith("left: a bounce for j.smith@campus.example.edu matches no notice of this database")
    assert email_point(sqlite_db).bounced_at is not None
