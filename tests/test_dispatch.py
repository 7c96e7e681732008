"""Full System Manager cycles against the real SMTP sink, on real SQLite files and real PostgreSQL."""

from __future__ import annotations

import gc
import io
import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from desktop.db.engine import Database, sqlite_url
from desktop.db.models import NoticeTemplate, Notification, NotificationAttempt, Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.manager import main as manager_main
from desktop.services.notices import outbox, smtp_backoff
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import CycleSummary, run_cycle
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]


def arrived(db: Database, **patron: object) -> int:
    request_id = add_request(db, add_patron(db, **patron))  # type: ignore[arg-type]
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def tracking_of(db: Database, request_id: int) -> list[tuple[str, str, str]]:
    with db.read() as session:
        rows = session.execute(
            select(Tracking.to_status, Tracking.changed_by, Tracking.note)
            .where(Tracking.request_id == request_id)
            .order_by(Tracking.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def history(db: Database, notice_id: int) -> list[str]:
    return [a.outcome for a in outbox.notice_history(db, notice_id)]


def test_arrival_is_sent_and_the_request_moves_on(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db)
    summary = run_cycle(any_db, sink_settings(smtp_sink), worker="test")
    assert isinstance(summary, CycleSummary)
    assert (summary.sent, summary.failed, summary.retrying, summary.pending, summary.errors) == (1, 0, 0, 0, [])
    assert summary.describe().startswith("routed 0, sent 1, failed 0, retrying 0, pending 0")
    [received] = smtp_sink.messages
    [notice] = notices(any_db)
    assert notice.state == "sent" and notice.attempts == 1 and notice.sent_at is not None
    assert received.message["Message-ID"] == notice.message_id
    assert received.rcpt_tos == ["patron@example.org"]
    assert "Notes on the Analytical Engine" in received.message["Subject"]
    assert notice.subject == received.message["Subject"] and "Dear Ada" in notice.body_text
    assert notice.last_reply.startswith("250")
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    to_status, by, note = tracking_of(any_db, request_id)[-1]
    assert (to_status, by) == (Status.NOTIFIED_VIA_EMAIL.value, "System") and "accepted: 250" in note
    assert history(any_db, notice.id) == ["sent"]
    # Nothing twice.
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 0
    assert len(smtp_sink.messages) == 1


def test_routing_waits_for_the_pickup_delay(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = add_request(any_db, add_patron(any_db, pickup_delay=30))
    move(any_db, request_id, Status.IN_TRANSIT_TO_PICKUP)
    settings = sink_settings(smtp_sink)
    assert run_cycle(any_db, settings).routed == 0
    assert request_status(any_db, request_id) == Status.IN_TRANSIT_TO_PICKUP.value
    later = utcnow() + timedelta(minutes=31)
    summary = run_cycle(any_db, settings, now=later)
    assert (summary.routed, summary.sent) == (1, 1)
    statuses = [row[0] for row in tracking_of(any_db, request_id)]
    assert statuses[-2:] == [Status.AWAITING_CUSTOMER_CONTACT.value, Status.NOTIFIED_VIA_EMAIL.value]
    assert tracking_of(any_db, request_id)[-2][1] == "System"


def test_mail_to_address_in_transit_is_routed_at_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = add_request(any_db, add_patron(any_db, delivery="Mail to Address", pickup_delay=600))
    with any_db.write() as session:  # put there by an import: change_status(check=False) keeps In Transit
        session.execute(update(Request).where(Request.id == request_id)
                        .values(status=Status.IN_TRANSIT_TO_PICKUP.value))  # fmt: skip
    assert run_cycle(any_db, sink_settings(smtp_sink)).routed == 1


def test_temporary_failure_retries_with_backoff(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db)
    smtp_sink.behaviour.refuse["patron@example.org"] = "451 4.3.0 mailbox busy"
    settings = sink_settings(smtp_sink)
    first = run_cycle(any_db, settings)
    assert (first.sent, first.retrying, first.pending) == (0, 1, 1)
    [notice] = notices(any_db)
    assert notice.state == "retrying" and "451" in notice.last_reply
    assert first.next_due_at == notice.next_attempt_at
    assert notice.next_attempt_at - utcnow() > timedelta(seconds=50)
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    smtp_sink.behaviour.refuse.clear()
    assert run_cycle(any_db, settings).sent == 0  # not due yet
    assert run_cycle(any_db, settings, now=utcnow() + timedelta(minutes=2)).sent == 1
    assert history(any_db, notice.id) == ["retrying", "sent"]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def test_permanent_failure_keeps_the_request_for_staff(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db, email="gone@example.org")
    smtp_sink.behaviour.refuse["gone@example.org"] = "550 5.1.1 no such user"
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.failed, summary.pending) == (1, 0)
    [notice] = notices(any_db)
    assert notice.state == "failed" and "550 5.1.1 no such user" in notice.last_reply
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    # Staff fix the address and press Retry.
    smtp_sink.behaviour.refuse.clear()
    assert outbox.retry_notices(any_db, [request_id], "tester") == 1
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 1
    assert history(any_db, notice.id) == ["failed", "retry", "sent"]


def test_server_down_then_back(any_db: Database, smtp_sink: SmtpSink) -> None:
    arrived(any_db)
    settings = sink_settings(smtp_sink)
    smtp_sink.stop()
    down = run_cycle(any_db, settings)
    assert down.sent == 0 and down.pending == 1
    assert len(down.errors) == 1 and "connection refused" in down.errors[0]
    [notice] = notices(any_db)
    assert notice.state == "pending" and notice.lease_owner is None and "not sent yet" in notice.last_reply
    assert notice.attempts == 0  # the server's absence is not the notice's attempt
    # Unreachable backs off (shared through the database): the next cycle does not even try.
    assert down.problem is DeliveryProblem.UNREACHABLE and down.backoff_until is not None
    assert down.next_due_at == down.backoff_until  # the run loop and the poller sleep until then, not in a loop
    smtp_sink.start()
    held = run_cycle(any_db, settings)
    assert held.sent == 0 and held.backoff_until == down.backoff_until and "backing off" in held.errors[0]
    assert not smtp_sink.messages
    back = run_cycle(any_db, settings, now=down.backoff_until + timedelta(seconds=1))
    assert back.sent == 1 and back.errors == [] and back.problem is None
    assert smtp_backoff.current(any_db, f"{smtp_sink.host}:{smtp_sink.port}") is None  # success clears it


def test_drop_after_data_is_retried_with_the_same_message_id(any_db: Database, smtp_sink: SmtpSink) -> None:
    arrived(any_db)
    arrived(any_db, email="second@example.org")
    settings = sink_settings(smtp_sink)
    smtp_sink.behaviour.drop_after_data = True
    first = run_cycle(any_db, settings)
    # The first may have been accepted (the connection dropped after its final dot): retried, same Message-ID.
    # A dropped connection refuses every message, so the second is given back uncharged and the server rests.
    assert (first.retrying, first.pending, first.problem) == (1, 2, DeliveryProblem.SERVER_BUSY)
    assert not smtp_sink.messages
    assert sorted(n.attempts for n in notices(any_db)) == [0, 1]
    [kept] = [n.message_id for n in notices(any_db) if n.attempts == 1]
    smtp_sink.behaviour.drop_after_data = False
    assert run_cycle(any_db, settings, now=utcnow() + timedelta(minutes=2)).sent == 2
    assert kept in [m.message["Message-ID"] for m in smtp_sink.messages]
    assert sorted(m.message["Message-ID"] for m in smtp_sink.messages) == sorted(n.message_id for n in notices(any_db))


def test_request_changed_before_sending_cancels_the_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db)
    move(any_db, request_id, Status.NOTIFIED_VIA_PHONE)
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.cancelled) == (0, 1)
    assert notices(any_db)[0].state == "cancelled" and not smtp_sink.messages


def test_arrival_written_by_another_program_is_found(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = add_request(any_db, add_patron(any_db))
    with any_db.write() as session:  # no Tracking, no notice: another program wrote the status
        session.execute(text("UPDATE requests SET status = :s WHERE id = :i"),
                        {"s": Status.AWAITING_CUSTOMER_CONTACT.value, "i": request_id})  # fmt: skip
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.created, summary.sent) == (1, 1)
    outside = tracking_of(any_db, request_id)[-2]
    assert outside[0] == Status.AWAITING_CUSTOMER_CONTACT.value and "outside Callslip" in outside[2]


def test_imported_arrival_without_a_notice_is_found(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db)
    with any_db.write() as session:  # e.g. restored from a backup taken before the notice existed
        session.execute(text("DELETE FROM notifications"))
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.created, summary.sent) == (1, 1)
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ requst.title }}", "unknown name"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ patron|attr('__class__') }}", "not allowed"),
        ("{{ '{0.__class__}'.format(patron) }}", "not allowed"),
        ("{% for i in range(90000) %}xxxx{% endfor %}", "characters"),
    ],
)
def test_template_failures_and_sandbox_escapes_fail_the_notice(
    sqlite_db: Database, smtp_sink: SmtpSink, body: str, reason: str
) -> None:
    with sqlite_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup")
                        .values(body_text=body, body_html=""))  # fmt: skip
    request_id = arrived(sqlite_db)
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink))
    assert summary.failed == 1 and not smtp_sink.messages
    [notice] = notices(sqlite_db)
    assert notice.state == "failed" and "cannot be rendered" in notice.last_reply and reason in notice.last_reply
    assert request_status(sqlite_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


def test_subject_with_a_line_break_is_refused(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    with sqlite_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup")
                        .values(subject="Hello\r\nBcc: everyone@example.org"))  # fmt: skip
    arrived(sqlite_db)
    assert run_cycle(sqlite_db, sink_settings(smtp_sink)).failed == 1
    assert "line break" in notices(sqlite_db)[0].last_reply and not smtp_sink.messages


def test_template_deleted_after_the_notice_was_queued(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrived(any_db)
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(deleted=True))
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert summary.no_template == 1 and not smtp_sink.messages
    assert notices(any_db)[0].state == "no_template"
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(deleted=False))
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 1
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def queue_reset(db: Database, patron_id: int, link: str) -> int:
    secret = json.dumps({"link": link, "expires_at": "2026-11-26 10:00 UTC", "hours": 48})
    with db.write() as session:
        return outbox.queue_patron_notice(session, patron_id=patron_id, template_name="Password Reset",
                                          to_address="chosen@example.org", dedupe_key="reset:99", secret=secret)  # fmt: skip


def test_password_reset_is_sent_to_the_chosen_address_and_the_link_is_not_kept(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    link = "https://library.example.org/reset?token=SECRET-TOKEN-123"
    notice_id = queue_reset(any_db, add_patron(any_db, email="primary@example.org"), link)
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 1
    [received] = smtp_sink.messages
    assert received.rcpt_tos == ["chosen@example.org"]
    assert link in received.text
    [notice] = notices(any_db, id=notice_id)
    assert notice.secret is None
    assert link not in notice.body_text and outbox.REDACTED_LINK in notice.body_text
    with any_db.read() as session:
        replies = session.scalars(select(NotificationAttempt.reply)).all()
    assert all("SECRET-TOKEN" not in r for r in replies)


def test_password_reset_template_without_the_link_fails_loudly(any_db: Database, smtp_sink: SmtpSink) -> None:
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Password Reset")
                        .values(body_text="Hello {{ patron.first_name }}, call us.", body_html=""))  # fmt: skip
    notice_id = queue_reset(any_db, add_patron(any_db), "https://library.example.org/reset?token=T0KEN")
    assert run_cycle(any_db, sink_settings(smtp_sink)).failed == 1
    [notice] = notices(any_db, id=notice_id)
    assert notice.state == "failed" and "reset.link" in notice.last_reply
    assert notice.secret is None and not smtp_sink.messages


def test_no_smtp_server_configured_is_one_clear_error(sqlite_db: Database) -> None:
    arrived(sqlite_db)
    summary = run_cycle(sqlite_db, sink_settings(SmtpSink(), smtp_host=""))
    assert summary.pending == 1 and summary.errors == [
        "e-mail sending is not configured (no SMTP server in Settings): 1 notice(s) waiting"
    ]
    assert summary.problem is DeliveryProblem.NOT_CONFIGURED


def test_unreachable_server_and_refused_password_are_named_problems(sqlite_db: Database, tmp_path: Path) -> None:
    """The summary says which problem kept notices waiting, so the desk can show the action that fixes it."""
    user, password = "callslip", "s3cret-Pa55"
    starttls_sink = SmtpSink(tls="starttls", credentials=(user, password), cert_dir=tmp_path).start()
    try:
        _named_problems(sqlite_db, starttls_sink, user, password)
    finally:
        starttls_sink.stop()


def _named_problems(sqlite_db: Database, starttls_sink: SmtpSink, user: str, password: str) -> None:
    arrived(sqlite_db)
    with socket.socket() as unused:  # a port nobody listens on: bound, never accepting
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        summary = run_cycle(sqlite_db, sink_settings(starttls_sink, smtp_port=port, smtp_security="none"))
    assert summary.problem is DeliveryProblem.UNREACHABLE and summary.pending == 1
    settings = sink_settings(starttls_sink, smtp_security="starttls", smtp_username=user)
    summary = run_cycle(sqlite_db, settings, password="wrong", ssl_context=starttls_sink.client_context())
    assert summary.problem is DeliveryProblem.AUTH_REFUSED and summary.pending == 1
    summary = run_cycle(sqlite_db, settings, password="wrong")  # the sink's certificate is not trusted
    assert summary.problem is DeliveryProblem.TLS_FAILED
    summary = run_cycle(sqlite_db, settings, password=password, ssl_context=starttls_sink.client_context())
    assert summary.problem is None and summary.sent == 1


def test_stop_request_releases_what_was_claimed(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    for i in range(3):
        arrived(sqlite_db, email=f"p{i}@example.org")
    sent: list[int] = []

    def stop_after_one() -> bool:
        sent.append(len(smtp_sink.messages))
        return len(smtp_sink.messages) >= 1

    summary = run_cycle(sqlite_db, sink_settings(smtp_sink), should_stop=stop_after_one)
    assert summary.sent == 1 and summary.pending == 2
    assert all(n.lease_owner is None for n in notices(sqlite_db))
    assert run_cycle(sqlite_db, sink_settings(smtp_sink)).sent == 2


def test_stopping_mid_batch_gives_this_and_later_batches_back(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    """Batches of two: stopping after the first message leaves nothing claimed, in this batch or later ones."""
    for i in range(5):
        arrived(sqlite_db, email=f"p{i}@example.org")
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink), batch_size=2,
                        should_stop=lambda: len(smtp_sink.messages) >= 1)  # fmt: skip
    assert (summary.sent, summary.pending, summary.errors) == (1, 4, [])
    assert all(n.lease_owner is None for n in notices(sqlite_db))  # nothing waits for a lease to run out
    assert run_cycle(sqlite_db, sink_settings(smtp_sink), batch_size=2).sent == 4
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [f"p{i}@example.org" for i in range(5)]


def test_each_accepted_message_is_recorded_before_the_next_is_accepted(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The delivery guarantee, checked by the server: when it is asked to accept a message, every message it
    accepted before is already committed as sent (a crash then leaves at most this one unrecorded)."""
    for i in range(7):
        arrived(any_db, email=f"p{i}@example.org")
    checked: list[tuple[int, int]] = []

    def before_accepting(_sender: str) -> None:
        with any_db.read() as session:  # another connection: it sees only what was committed
            recorded = session.scalar(select(func.count()).where(Notification.state == "sent"))
        checked.append((len(smtp_sink.messages), int(recorded or 0)))

    smtp_sink.behaviour.before_accepting = before_accepting
    summary = run_cycle(any_db, sink_settings(smtp_sink), batch_size=3)  # batches of 3, 3 and 1
    assert (summary.sent, summary.errors) == (7, [])
    assert checked == [(n, n) for n in range(7)]  # accepted so far == recorded so far, every time


@pytest.mark.postgres
def test_a_database_connection_lost_mid_cycle_loses_no_notice(pg_db: Database, smtp_sink: SmtpSink) -> None:
    """The PostgreSQL server drops every other connection while the third message waits for acceptance: its
    result is recorded on a fresh connection (the lease has time left), the cycle stops there and says so, and
    the rest goes out in the next cycle: every notice exactly once (tests/test_recording_retry.py does it again
    and again)."""
    for i in range(6):
        arrived(pg_db, email=f"p{i}@example.org")

    def drop_connections(_sender: str) -> None:
        if len(smtp_sink.messages) == 2:
            with pg_db.engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = current_database() AND pid <> pg_backend_pid()"))  # fmt: skip

    smtp_sink.behaviour.before_accepting = drop_connections
    first = run_cycle(pg_db, sink_settings(smtp_sink))
    assert any("recording notice 3" in e and "fresh connection" in e for e in first.errors), first.errors
    assert first.sent == 3 and len(smtp_sink.messages) == 3
    assert all(n.lease_owner is None for n in notices(pg_db))  # nothing waits for a lease to run out
    smtp_sink.behaviour.before_accepting = None
    rest = run_cycle(pg_db, sink_settings(smtp_sink))
    assert rest.errors == [] and rest.pending == 0
    assert all(n.state == "sent" for n in notices(pg_db))
    ids = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert sorted(ids) == sorted(n.message_id for n in notices(pg_db))  # every notice arrived, none twice


def test_starttls_and_auth_end_to_end(sqlite_db: Database, tmp_path: Path, memory_keyring: object) -> None:
    sink = SmtpSink(tls="starttls", credentials=("ill", "pw-1"), cert_dir=tmp_path).start()
    try:
        arrived(sqlite_db)
        settings = sink_settings(sink, smtp_security="starttls", smtp_username="ill")
        summary = run_cycle(sqlite_db, settings, password="pw-1", ssl_context=sink.client_context())
        assert summary.sent == 1 and len(sink.messages) == 1
        bad = run_cycle(sqlite_db, settings, password="nope", ssl_context=sink.client_context())
        assert bad.errors == []  # nothing was due, so nothing connected
    finally:
        sink.stop()


def test_manager_run_once_prints_the_summary(
    db_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop.services.database import open_database

    db, _ = open_database(sqlite_url(db_path))
    try:
        arrived(db)
    finally:
        db.dispose()
    for name, value in {"CALLSLIP_SMTP_HOST": smtp_sink.host, "CALLSLIP_SMTP_PORT": str(smtp_sink.port),
                        "CALLSLIP_SMTP_FROM": "ill@library.example.org"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    assert manager_main(["--database", str(db_path), "run", "--once"], out=out) == 0
    assert out.getvalue().startswith("routed 0, sent 1, failed 0, retrying 0, pending 0")
    assert gc.get_freeze_count() == 0  # the manager's frozen start-up state does not outlive it
    assert len(smtp_sink.messages) == 1
    smtp_sink.stop()
    db, _ = open_database(sqlite_url(db_path))
    try:
        arrived(db, email="later@example.org")
    finally:
        db.dispose()
    out = io.StringIO()
    assert manager_main(["--database", str(db_path), "run", "--once"], out=out) == 1
    assert "pending 1" in out.getvalue() and "connection refused" in out.getvalue()


def test_notices_of_other_channels_are_left_alone(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    arrived(sqlite_db)
    with sqlite_db.write() as session:
        session.execute(update(Notification).values(channel="sms"))
    assert run_cycle(sqlite_db, sink_settings(smtp_sink)).sent == 0
