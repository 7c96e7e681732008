"""What a bounce does, on SQLite and PostgreSQL: a notice really sent through the SMTP sink, then the report
the remote server would send back, handled the way the System Manager handles it."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, PatronChannelPreference, Tracking
from desktop.domain.channels import NoticeEvent
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.errors import ValidationError
from desktop.services.notices import outbox
from desktop.services.notices.bounces import (
    BOUNCE_ACTOR,
    Outcome,
    bounced_addresses,
    clear_flag,
    handle_bounce,
    verp_address,
    verp_token,
)
from desktop.services.notices.dispatch import run_cycle
from desktop.services.requests.contact_customers import load_contact_customers
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

_reports = itertools.count(1)


def dsn(
    message_id: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 user unknown",
    to: str = "ill@library.example.org",
    report_id: str | None = None,
) -> bytes:
    """An RFC 3464 report shaped like Postfix's (tests/bounces/postfix_rfc3464.eml) about one sent message."""
    report_id = report_id or f"<report.{next(_reports)}@mx.example.net>"
    return f"""\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Delivered-To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-Id: {report_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B
Content-Type: text/rfc822-headers

From: ill@library.example.org
To: {recipient}
Message-ID: {message_id}

--B--
""".replace("\n", "\r\n").encode()


def sent_notice(db: Database, sink: SmtpSink, *, phone: bool = True, email: str = "patron@example.org") -> int:
    """A request whose arrival e-mail the sink accepted (request at Customer Notified via E-Mail)."""
    patron_id = add_patron(db, email=email)
    if phone:
        with db.write() as session:
            session.add(ContactPoint(patron_id=patron_id, kind="phone", value="(555) 010-0100",
                                     normalized="+15550100100", is_primary=True))  # fmt: skip
    request_id = add_request(db, patron_id)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    assert run_cycle(db, sink_settings(sink), worker="test").sent == 1
    assert request_status(db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    return request_id


def email_point(db: Database, address: str = "patron@example.org") -> ContactPoint:
    with db.read() as session:
        point = session.scalars(select(ContactPoint).where(ContactPoint.value == address)).one()
        session.expunge(point)
        return point


def history(db: Database, notice_id: int) -> list[tuple[str, str]]:
    return [(a.outcome, a.reply) for a in outbox.notice_history(db, notice_id)]


def test_hard_bounce_flags_the_address_and_sends_the_request_back_to_the_phone_group(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    request_id = sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)

    result = handle_bounce(any_db, dsn(notice.message_id, "Patron@Example.org"), worker="bounce-test")

    assert result.outcome is Outcome.FLAGGED and result.handled
    assert result.detail == (
        "patron@example.org flagged: 550 5.1.1 user unknown; its request is back at Awaiting Customer Contact"
    )
    bounced = notices(any_db, id=notice.id)[0]
    assert bounced.state == outbox.BOUNCED
    assert bounced.last_reply == "bounced: 550 5.1.1 user unknown"
    assert history(any_db, notice.id)[-1] == ("bounced", "bounced for patron@example.org: 550 5.1.1 user unknown")
    point = email_point(any_db)
    assert point.bounced_at is not None and point.bounce_reason == "550 5.1.1 user unknown"
    assert outbox.flag_text(point.bounced_at, point.bounce_reason) == (
        f"bounced on {point.bounced_at:%Y-%m-%d}: 550 5.1.1 user unknown"
    )
    # The request is back at the desk with the reason, and the new arrival notice is not e-mailed.
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    with any_db.read() as session:
        last = session.scalars(
            select(Tracking).where(Tracking.request_id == request_id).order_by(Tracking.id.desc())
        ).first()
        assert last is not None and last.changed_by == BOUNCE_ACTOR
        assert last.note.startswith("e-mail bounced: patron@example.org: 550 5.1.1 user unknown")
    renewed = notices(any_db)[-1]
    assert renewed.id != notice.id and renewed.state == outbox.FAILED
    assert renewed.last_reply.startswith("e-mail bounced: patron@example.org bounced on ")
    assert run_cycle(any_db, sink_settings(smtp_sink), worker="test").sent == 0
    assert len(smtp_sink.messages) == 1, "nothing more goes to the bounced address"
    groups = load_contact_customers(any_db)
    assert [r.request_id for r in groups.phone] == [request_id] and not groups.email
    [row] = groups.phone
    assert row.email_bounced and "550 5.1.1 user unknown" in row.notice_reply


def test_hard_bounce_without_a_phone_goes_to_the_mail_group(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = sent_notice(any_db, smtp_sink, phone=False)
    [notice] = notices(any_db)
    assert handle_bounce(any_db, dsn(notice.message_id, "patron@example.org")).outcome is Outcome.FLAGGED
    groups = load_contact_customers(any_db)
    assert [r.request_id for r in groups.mail] == [request_id] and not groups.email and not groups.phone


def test_the_same_report_counts_once_even_from_a_second_system_manager(any_db: Database, smtp_sink: SmtpSink) -> None:
    sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    report = dsn(notice.message_id, "patron@example.org", status="4.2.2", diagnostic="452 4.2.2 mailbox full")
    first = handle_bounce(any_db, report, worker="desk-1")
    # A second System Manager (its own engine on the same database) reads the same message.
    other = Database(any_db.engine.url)
    try:
        again = handle_bounce(other, report, worker="desk-2")
    finally:
        other.dispose()
    assert (first.outcome, again.outcome) == (Outcome.COUNTED, Outcome.DUPLICATE)
    assert again.handled, "a duplicate is marked handled in the mailbox too"
    point = email_point(any_db)
    assert point.soft_bounces == 1 and point.bounced_at is None


def test_a_soft_bounce_counts_and_only_a_repeat_flags(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    soft = {"status": "4.2.2", "diagnostic": "452 4.2.2 mailbox full"}
    first = handle_bounce(any_db, dsn(notice.message_id, "patron@example.org", **soft))
    assert first.outcome is Outcome.COUNTED
    assert notices(any_db, id=notice.id)[0].state == outbox.SENT
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    assert history(any_db, notice.id)[-1][0] == "soft_bounce"
    second = handle_bounce(any_db, dsn(notice.message_id, "patron@example.org", **soft))
    assert second.outcome is Outcome.FLAGGED
    point = email_point(any_db)
    assert point.soft_bounces == 2 and point.bounced_at is not None
    assert point.bounce_reason == "452 4.2.2 mailbox full (soft bounce, 2 or more times)"
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


@pytest.mark.parametrize("name", ["delayed.eml", "out_of_office.eml"])
def test_delayed_and_out_of_office_change_nothing(any_db: Database, smtp_sink: SmtpSink, name: str) -> None:
    from tests.test_bounce_parsing import read

    sent_notice(any_db, smtp_sink)
    result = handle_bounce(any_db, read(name))
    assert result.outcome is Outcome.NOT_A_FAILURE and result.handled
    delayed = dsn(notices(any_db)[0].message_id, "patron@example.org", action="delayed", status="4.4.1")
    assert handle_bounce(any_db, delayed).outcome is Outcome.NOT_A_FAILURE
    assert email_point(any_db).bounced_at is None and email_point(any_db).soft_bounces == 0
    assert notices(any_db)[0].state == outbox.SENT


def test_a_report_naming_someone_else_or_an_unknown_message_is_left(any_db: Database, smtp_sink: SmtpSink) -> None:
    sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    other = handle_bounce(any_db, dsn(notice.message_id, "helpdesk@example.org"))
    assert other.outcome is Outcome.UNMATCHED and not other.handled
    assert other.detail == (
        f"left: the bounce names helpdesk@example.org, but notice {notice.id} went to patron@example.org"
    )
    unknown = handle_bounce(any_db, dsn("<callslip.ffff.42.abc@elsewhere.example>", "patron@example.org"))
    assert unknown.outcome is Outcome.UNMATCHED
    assert unknown.detail == "left: a bounce for patron@example.org matches no notice of this database"
    malformed = handle_bounce(any_db, b"\x00\x01 not mail")
    assert malformed.outcome is Outcome.MALFORMED and not malformed.handled
    assert email_point(any_db).bounced_at is None


def test_verp_token_matches_its_notice_and_a_forged_one_does_not(any_db: Database, smtp_sink: SmtpSink) -> None:
    sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    with any_db.read() as session:
        from desktop.services.notices.bounces import _installation_id

        installation = _installation_id(session)
    assert installation, "migration 0007 made the installation id"
    token = verp_token(notice.id, notice.dedupe_key, installation)
    assert verp_address("ill@library.example.org", token) == f"ill+n-{token}@library.example.org"
    forged = verp_address("ill@library.example.org", f"{notice.id}-00000000")
    # Without the Message-ID, only the return address can match the report.
    assert handle_bounce(any_db, dsn("", "patron@example.org", to=forged)).outcome is Outcome.UNMATCHED
    good = handle_bounce(any_db, dsn("", "patron@example.org", to=verp_address("ill@library.example.org", token)))
    assert good.outcome is Outcome.FLAGGED and good.notice_id == notice.id


def test_bounced_addresses_list_and_clearing_the_flag(any_db: Database, smtp_sink: SmtpSink) -> None:
    sent_notice(any_db, smtp_sink)
    [notice] = notices(any_db)
    handle_bounce(any_db, dsn(notice.message_id, "patron@example.org"))
    [listed] = bounced_addresses(any_db)
    assert listed.address == "patron@example.org" and listed.patron_name.startswith("Ada Tester")
    assert listed.flag.endswith(": 550 5.1.1 user unknown")
    assert utcnow() - listed.bounced_at < timedelta(days=1)
    with pytest.raises(ValidationError, match=r"Choose the address whose bounce flag to clear\."):
        clear_flag(any_db, [])
    assert clear_flag(any_db, [listed.contact_id]) == 1
    assert bounced_addresses(any_db) == []
    point = email_point(any_db)
    assert (point.bounced_at, point.bounce_reason, point.soft_bounces) == (None, "", 0)
    assert clear_flag(any_db, [listed.contact_id, 10**9]) == 0, "nothing flagged any more; a missing id is skipped"


QMAIL = """\
From: MAILER-DAEMON@old-mx.example.org
To: {to}
Delivered-To: {to}
Subject: failure notice
Message-ID: <qmail.{n}@old-mx.example.org>

Hi. This is the qmail-send program at old-mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<patron@example.org>:
550 5.1.1 Sorry, no mailbox here by that name.

--- Below this line is a copy of the message.

Subject: (the copy is cut off by this server)
"""


def test_with_verp_a_bounce_that_returns_nothing_still_finds_its_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    patron_id = add_patron(any_db)
    request_id = add_request(any_db, patron_id)
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    assert run_cycle(any_db, sink_settings(smtp_sink, bounce_verp=True), worker="test").sent == 1
    [received] = smtp_sink.messages
    [notice] = notices(any_db)
    assert received.mail_from.startswith(f"ill+n-{notice.id}-") and received.mail_from.endswith("@library.example.org")
    assert received.message["From"].endswith("<ill@library.example.org>"), "only the envelope sender changes"
    report = QMAIL.format(to=received.mail_from, n=1).replace("\n", "\r\n").encode()
    result = handle_bounce(any_db, report)
    assert result.outcome is Outcome.FLAGGED and result.notice_id == notice.id
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


def test_without_verp_the_envelope_sender_is_the_from_address(any_db: Database, smtp_sink: SmtpSink) -> None:
    sent_notice(any_db, smtp_sink)
    [received] = smtp_sink.messages
    assert received.mail_from == "ill@library.example.org"
    report = QMAIL.format(to=received.mail_from, n=2).replace("\n", "\r\n").encode()
    unmatched = handle_bounce(any_db, report)
    assert unmatched.outcome is Outcome.UNMATCHED, "nothing in it names the notice: left for a person"


def test_a_bounced_digest_sends_back_every_item_it_carried_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    """One e-mail listed three arrivals (a leader and two riders sharing its Message-ID): its bounce handles all
    three — each notice bounced, each request back at the desk — and each falls back once, however often the
    report is read."""
    patron_id = add_patron(any_db, email="patron@example.org")
    with any_db.write() as session:
        session.add(ContactPoint(patron_id=patron_id, kind="phone", value="(555) 010-0100",
                                 normalized="+15550100100", is_primary=True))  # fmt: skip
        session.add(PatronChannelPreference(patron_id=patron_id, event=NoticeEvent.READY_FOR_PICKUP.value,
                                            channels="E-Mail>Phone"))  # fmt: skip
    requests = [add_request(any_db, patron_id, title=title) for title in ("Book Alpha", "Book Beta", "Book Gamma")]
    t0 = utcnow()
    for request_id in requests:
        move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=t0)
    assert run_cycle(any_db, sink_settings(smtp_sink), worker="test", now=t0 + timedelta(seconds=1)).sent == 3
    [message] = smtp_sink.messages
    sent = notices(any_db)
    leader = next(n for n in sent if n.digest_leader_id is None)
    assert len(sent) == 3 and {n.message_id for n in sent} == {leader.message_id}
    assert sorted(n.digest_leader_id or 0 for n in sent) == [0, leader.id, leader.id]
    report = dsn(str(message.message["Message-ID"]), "patron@example.org")

    result = handle_bounce(any_db, report, worker="bounce-test")

    assert result.outcome is Outcome.FLAGGED and result.notice_id == leader.id
    assert result.detail.endswith("; 3 of its 3 requests are back at Awaiting Customer Contact")
    for notice in sent:
        bounced = notices(any_db, id=notice.id)[0]
        assert (bounced.state, bounced.last_reply) == (outbox.BOUNCED, "bounced: 550 5.1.1 user unknown")
        assert history(any_db, notice.id)[-1] == (
            "bounced",
            "bounced for patron@example.org: 550 5.1.1 user unknown (one message with 3 items)",
        )
    for request_id in requests:
        assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    # Read again (this System Manager, then another): nothing more happens.
    assert handle_bounce(any_db, report, worker="bounce-test").outcome is Outcome.DUPLICATE
    other = Database(any_db.engine.url)
    try:
        assert handle_bounce(other, report, worker="desk-2").outcome is Outcome.DUPLICATE
    finally:
        other.dispose()
    with any_db.read() as session:
        moves = session.scalars(select(Tracking.request_id).where(Tracking.changed_by == BOUNCE_ACTOR)).all()
    assert sorted(moves) == sorted(requests)
    # Each request's new arrival notice (not e-mailed: the address is flagged) falls back once, to a call.
    assert run_cycle(any_db, sink_settings(smtp_sink), worker="test").fallbacks == 3
    assert run_cycle(any_db, sink_settings(smtp_sink), worker="test").fallbacks == 0
    for request_id in requests:
        calls = [n for n in notices(any_db, request_id=request_id) if n.dedupe_key.startswith("fallback:")]
        assert [(n.channel, n.state) for n in calls] == [("phone", "pending")]
        assert calls[0].last_reply.startswith("e-mail bounced: patron@example.org bounced on ")
    groups = load_contact_customers(any_db)
    assert sorted(r.request_id for r in groups.phone) == sorted(requests) and not groups.email
    assert len(smtp_sink.messages) == 1
