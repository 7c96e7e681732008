"""A server that refuses every message for now (421, a rate limit at MAIL FROM, a dropped connection, no answer)
is backed off as a whole: the batch stops, no attempt is charged, and every System Manager waits a growing delay
(kept in the database) before connecting again. Real aiosmtpd server with fault injection, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import Notification, SystemSetting
from desktop.domain.clock import utcnow
from desktop.services.notices import smtp_backoff
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from tests.outbox_support import bulk_arrivals, notices, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]


def waiting_uncharged(db: Database) -> int:
    """Notices still pending, free (no lease) and with no attempt spent."""
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    Notification.state == "pending", Notification.attempts == 0, Notification.lease_owner.is_(None)
                )
            )
            or 0
        )


def server(sink: SmtpSink) -> str:
    return f"{sink.host}:{sink.port}"


def test_the_delay_grows_and_is_capped() -> None:
    delays = [smtp_backoff.delay(n).total_seconds() for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 900, 900, 900]
    assert smtp_backoff.delay(10_000) == smtp_backoff.MAX_DELAY


def test_421_for_200_notices_is_a_handful_of_connections_not_200(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The issue's case: 200 notices and a server answering 421 to MAIL FROM (and closing, as Postfix does)."""
    bulk_arrivals(any_db, 200)
    settings = sink_settings(smtp_sink)
    smtp_sink.behaviour.mail_reply = "421 4.3.2 Service busy, closing connection"
    before = smtp_sink.connections
    first = run_cycle(any_db, settings, worker="A")
    assert (first.sent, first.retrying, first.failed, first.pending) == (0, 0, 0, 200)
    assert first.problem is DeliveryProblem.SERVER_BUSY and first.backoff_until is not None
    assert "421 4.3.2" in " ".join(first.errors) and "backing off" in " ".join(first.errors)
    assert (smtp_sink.connections - before, smtp_sink.mail_commands) == (1, 1)  # one try, not 200
    assert waiting_uncharged(any_db) == 200  # every claim given back, no attempt spent
    assert "refused every message for now" in notices(any_db)[0].last_reply
    assert first.next_due_at == first.backoff_until  # the loops sleep until then
    # Any System Manager (another worker, same database) honours it: no connection at all.
    for worker in ("A", "B", "C"):
        held = run_cycle(any_db, settings, worker=worker)
        assert held.problem is DeliveryProblem.SERVER_BUSY and held.backoff_until == first.backoff_until
    assert smtp_sink.mail_commands == 1 and smtp_sink.connections - before == 1
    # When it ends, one connection tries again; still busy: the delay doubles.
    second = run_cycle(any_db, settings, worker="B", now=first.backoff_until + timedelta(seconds=1))
    assert second.backoff_until is not None
    assert second.backoff_until - (first.backoff_until + timedelta(seconds=1)) >= timedelta(seconds=60)
    stored = smtp_backoff.current(any_db, server(smtp_sink))
    assert stored is not None and stored.failures == 2 and stored.until == second.backoff_until
    assert (smtp_sink.connections - before, smtp_sink.mail_commands) == (2, 2)
    # The server recovers: after the back-off everything goes out on one connection and the back-off is gone.
    smtp_sink.behaviour.mail_reply = None
    done = run_cycle(any_db, settings, worker="C", now=second.backoff_until + timedelta(seconds=1))
    assert (done.sent, done.pending, done.errors, done.problem) == (200, 0, [], None)
    assert smtp_sink.connections - before == 3 and len(smtp_sink.messages) == 200
    assert {n.attempts for n in notices(any_db)} == {1}  # the refusals cost no notice an attempt
    assert smtp_backoff.current(any_db, server(smtp_sink)) is None


def test_a_rate_limit_at_mail_from_stops_the_batch(any_db: Database, smtp_sink: SmtpSink) -> None:
    """Postfix's smtpd_client_message_rate_limit: 450 to MAIL FROM after N messages. One refusal, then wait."""
    bulk_arrivals(any_db, 20)
    smtp_sink.behaviour.mail_limit = 5
    smtp_sink.behaviour.mail_reply = "450 4.7.1 Error: too much mail from 127.0.0.1"
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.pending, summary.problem) == (5, 15, DeliveryProblem.SERVER_BUSY)
    assert smtp_sink.mail_commands == 6  # not a MAIL FROM per remaining notice
    assert waiting_uncharged(any_db) == 15
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 0 and smtp_sink.mail_commands == 6


def test_a_dropped_connection_backs_off_and_an_unknown_verdict_is_retried_not_lost(
    sqlite_db: Database, smtp_sink: SmtpSink
) -> None:
    bulk_arrivals(sqlite_db, 10)
    smtp_sink.behaviour.drop_after_data = True
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink))
    # The first message's fate is unknown (dropped after its dot): it is retried with its Message-ID kept.
    assert (summary.retrying, summary.pending, summary.problem) == (1, 10, DeliveryProblem.SERVER_BUSY)
    assert waiting_uncharged(sqlite_db) == 9 and smtp_sink.connections == 2  # the readiness check and ours


def test_per_recipient_refusals_stay_per_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    """A 451 or 550 to one RCPT TO is about that address: the others still go out, nobody backs off."""
    bulk_arrivals(any_db, 4)
    patrons = sorted(n.patron_id for n in notices(any_db) if n.patron_id is not None)
    smtp_sink.behaviour.refuse = {f"patron{patrons[0]}@example.org": "451 4.3.0 mailbox busy",
                                  f"patron{patrons[1]}@example.org": "550 5.1.1 no such user"}  # fmt: skip
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.retrying, summary.failed) == (2, 1, 1)
    assert summary.problem is None and summary.backoff_until is None and summary.errors == []
    assert smtp_backoff.current(any_db, server(smtp_sink)) is None


@pytest.mark.parametrize("reply", ["421 4.4.2 timeout", "452 4.3.1 insufficient storage"])
def test_reply_to_mail_from_decides_server_wide_or_not(sqlite_db: Database, smtp_sink: SmtpSink, reply: str) -> None:
    """421 anywhere and any 4xx to MAIL FROM are server-wide; a 5xx to MAIL FROM stays with the notice."""
    bulk_arrivals(sqlite_db, 3)
    smtp_sink.behaviour.mail_reply = reply
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink))
    assert summary.problem is DeliveryProblem.SERVER_BUSY and waiting_uncharged(sqlite_db) == 3
    smtp_backoff.clear(sqlite_db)
    smtp_sink.behaviour.mail_reply = "553 5.7.1 sender not allowed"
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink), now=utcnow() + timedelta(minutes=1))
    assert summary.problem is None and summary.failed == 3


def test_a_back_off_about_another_server_does_not_hold_this_one(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    """Staff who switch to another SMTP server in Settings are not held back by the old server's refusals."""
    bulk_arrivals(sqlite_db, 2)
    smtp_backoff.record_refusal(sqlite_db, "old.example.org:25", DeliveryProblem.SERVER_BUSY, "421", utcnow())
    assert run_cycle(sqlite_db, sink_settings(smtp_sink)).sent == 2


@pytest.mark.parametrize("stored", ["not json", "{}", '{"server": "x", "until": "yesterday", "failures": 1}', "[1, 2]"])
def test_a_damaged_back_off_row_counts_as_none(sqlite_db: Database, smtp_sink: SmtpSink, stored: str) -> None:
    """Another version or a hand edit left something unreadable: no crash, no wait; the next refusal rewrites it."""
    with sqlite_db.write() as session:
        session.add(SystemSetting(key=smtp_backoff.KEY, value=stored))
    assert smtp_backoff.current(sqlite_db, server(smtp_sink)) is None
    bulk_arrivals(sqlite_db, 1)
    assert run_cycle(sqlite_db, sink_settings(smtp_sink)).sent == 1
    again = smtp_backoff.record_refusal(sqlite_db, server(smtp_sink), DeliveryProblem.SERVER_BUSY, "421", utcnow())
    assert again.failures == 1 and smtp_backoff.current(sqlite_db, server(smtp_sink)) == again
