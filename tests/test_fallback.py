"""Fallback to the patron's next channel (issue 18, part 3), end to end on real SQLite files and real PostgreSQL:
the SMTP sink refuses or the bounce report comes back, the System Manager's cycle moves the notice on, Contact
Customers shows the call or letter to make with the reason, staff complete it, and every step is in the history."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Location, Notification, NotificationAttempt, Patron, Tracking
from desktop.domain.channels import Channel, NoticeEvent, parse_preference
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.notices import outbox
from desktop.services.notices.bounces import handle_bounce
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.fallback import (
    NO_MOBILE_REASON,
    advance_fallbacks,
    failure_reason,
    falls_back,
)
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
from desktop.services.requests.contact_customers import (
    CallOutcome,
    ContactRow,
    load_contact_customers,
    log_calls,
    mark_printed,
)
from desktop.services.requests.record import get_request
from desktop.services.requests.status import route_request
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_bounces import dsn

__all__ = ["smtp_sink"]

GONE = "gone@example.org"
REFUSAL = "550 5.1.1 user unknown"
#: How the e-mail sender words the sink's refusal of the one recipient.
REFUSED = f"recipient refused: {GONE}: {REFUSAL}"


def patron(
    db: Database,
    prefs: str | None,
    *,
    email: str | None = GONE,
    home: str | None = "+15550100100",
    cell: str | None = None,
    address: bool = True,
) -> int:
    """A patron notified by E-Mail with the stored preference ``prefs`` (None: none stored) and these phones."""
    patron_id = add_patron(db, email=email)
    with db.write() as session:
        locations = {name: id_ for id_, name in session.execute(select(Location.id, Location.name))}
        for number, where, primary in ((home, "Home", True), (cell, "Cell", False)):
            if number:
                session.add(ContactPoint(patron_id=patron_id, kind="phone", value=number, normalized=number,
                                         location_id=locations[where], is_primary=primary))  # fmt: skip
        if address:
            record = session.get(Patron, patron_id)
            assert record is not None
            record.address1, record.city, record.zip = "1 Main St", "Springfield", "01101"
    if prefs is not None:
        version = load_preferences(db, patron_id).version
        save_preferences(db, patron_id, version, {NoticeEvent.READY_FOR_PICKUP: parse_preference(prefs)},
                         staff="tester")  # fmt: skip
    return patron_id


def arrive(db: Database, patron_id: int) -> int:
    request_id = add_request(db, patron_id)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def history(db: Database, notice_id: int) -> list[tuple[str, str]]:
    return [(a.outcome, a.reply) for a in outbox.notice_history(db, notice_id)]


def row_of(db: Database, request_id: int) -> ContactRow:
    groups = load_contact_customers(db)
    [row] = [r for g in (groups.email, groups.phone, groups.mail) for r in g if r.request_id == request_id]
    return row


def fail(db: Database, notice_id: int, reply: str, state: str = outbox.FAILED) -> None:
    """Record a permanent failure as a sender would (the SMS loop, a sender that gave up)."""
    with db.write() as session:
        session.execute(update(Notification).where(Notification.id == notice_id).values(state=state, last_reply=reply))


def successors(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(Notification.dedupe_key.like("fallback:%"))) or 0)


# ------------------------------------------------------------------------------------------ end to end


def test_email_550_moves_to_the_phone_group_and_phoning_completes_it(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Phone"))
    smtp_sink.behaviour.refuse[GONE] = REFUSAL

    summary = run_cycle(any_db, sink_settings(smtp_sink), worker="sm-1")

    assert (summary.failed, summary.fallbacks, summary.errors) == (1, 1, []), summary.errors
    assert "fallbacks 1" in summary.describe()
    email, call = notices(any_db)
    assert (email.channel, email.state) == ("email", "failed")
    assert (call.channel, call.state, call.dedupe_key) == ("phone", "pending", f"fallback:{email.id}")
    assert call.last_reply == f"e-mail failed: {REFUSED}"
    assert (call.tracking_id, call.to_address) == (email.tracking_id, "+15550100100")
    row = row_of(any_db, request_id)
    assert row.method is NotificationMethod.PHONE and row.notice_reply == f"e-mail failed: {REFUSED}"
    assert row.fell_back and not row.email_bounced
    # A call to make is staff's work, not the sender's: nothing left to send, nothing due.
    assert (outbox.count_waiting(any_db), outbox.next_due_at(any_db)) == (0, None)
    # Another cycle moves nothing again.
    assert run_cycle(any_db, sink_settings(smtp_sink), worker="sm-2").fallbacks == 0

    result = log_calls(any_db, [request_id], CallOutcome.REACHED, "Grace")

    assert len(result.moved) == 1 and not result.skipped
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_PHONE.value
    [call] = notices(any_db, id=call.id)
    assert call.state == "sent" and "Grace" in call.last_reply
    assert [o for o, _ in history(any_db, email.id)] == ["failed", "fallback"]
    assert history(any_db, email.id)[1][1] == f"moved on to Phone: notice {call.id}"
    assert history(any_db, call.id) == [
        ("fallback", f"after e-mail failed: {REFUSED} (notice {email.id})"),
        ("sent", "notified via phone (Reached) by Grace"),
    ]
    details = get_request(any_db, row.transaction_number)
    assert [text for _, _, text in details.fallbacks] == [
        f"e-mail failed: {REFUSED} (notice {email.id}) → phone call (notice {call.id})"
    ]
    assert run_cycle(any_db, sink_settings(smtp_sink)).cancelled == 0  # the done call stays done


def test_email_then_sms_then_phone(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>SMS>Phone", cell="+15550100199"))
    smtp_sink.behaviour.refuse[GONE] = REFUSAL
    assert run_cycle(any_db, sink_settings(smtp_sink)).fallbacks == 1
    _email, text = notices(any_db)
    assert (text.channel, text.state, text.to_address) == ("sms", "pending", "+15550100199")
    assert text.last_reply == f"after e-mail failed: {REFUSED}"
    row = row_of(any_db, request_id)  # an automatic channel still at work: the E-Mail group, said as a text
    assert row.method is NotificationMethod.EMAIL and row.notice_text == "text message pending"

    refusal = "SMS provider refused the text: 400 Bad Request (error 21614)\nmore detail"
    fail(any_db, text.id, refusal)  # as the SMS loop records a permanent refusal
    run = advance_fallbacks(any_db, now=utcnow())

    assert run.moved == {"Phone": 1} and run.lines[0].endswith("→ Phone")
    [call] = notices(any_db, channel="phone")
    assert call.dedupe_key == f"fallback:{text.id}"
    assert call.last_reply == "text failed: SMS provider refused the text: 400 Bad Request (error 21614)"
    row = row_of(any_db, request_id)
    assert row.method is NotificationMethod.PHONE and row.notice_reply == call.last_reply
    lines = [t for _, _, t in get_request(any_db, row.transaction_number).fallbacks]
    assert [line.rsplit("→ ", 1)[1] for line in lines] == [f"text message (notice {text.id})",
                                                           f"phone call (notice {call.id})"]  # fmt: skip


def test_a_failed_text_moves_on_to_e_mail_which_the_next_cycle_sends(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrive(any_db, patron(any_db, "SMS>E-Mail", email="patron@example.org", cell="+15550100199"))
    [first] = notices(any_db)
    with any_db.write() as session:  # the arrival's notice as the SMS sender leaves it after a permanent refusal
        session.execute(update(Notification).where(Notification.id == first.id).values(
            channel="sms", to_address="+15550100199", state="failed",
            last_reply="SMS provider refused the text: 400 (error 21610: unsubscribed)"))  # fmt: skip

    assert run_cycle(any_db, sink_settings(smtp_sink)).fallbacks == 1
    [email] = notices(any_db, dedupe_key=f"fallback:{first.id}")
    assert (email.channel, email.state, email.to_address) == ("email", "pending", "patron@example.org")
    assert outbox.count_waiting(any_db) == 1  # an e-mail to send: the System Manager wakes for it

    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 1
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["patron@example.org"]]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def test_no_address_on_file_moves_on_and_printing_completes_the_letter(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>SMS>Mail", email=None))
    [email] = notices(any_db)
    assert (email.state, email.last_reply) == ("failed", outbox.NO_EMAIL_REASON)

    first = advance_fallbacks(any_db, now=utcnow())
    [text] = notices(any_db, channel="sms")  # no phone at a mobile location: the primary (Home) one is tried
    assert first.created == 1 and (text.state, text.to_address) == ("pending", "+15550100100")
    fail(any_db, text.id, "SMS provider refused the text: 400 (error 21614): landline")
    second = advance_fallbacks(any_db, now=utcnow())

    [letter] = notices(any_db, channel="print")
    assert second.moved == {"Mail": 1} and letter.state == "pending" and "Springfield" in letter.to_address
    row = row_of(any_db, request_id)
    assert row.method is NotificationMethod.MAIL and row.notice_reply.startswith("text failed: SMS provider")
    [text] = notices(any_db, channel="sms")
    assert (
        history(any_db, text.id)[0][1]
        == f"after e-mail failed: no e-mail address on file for this patron (notice {email.id})"
    )
    result = mark_printed(any_db, [request_id], "Grace")
    assert len(result.moved) == 1
    [letter] = notices(any_db, id=letter.id)
    assert letter.state == "sent" and letter.last_reply == "notice printed by Grace"


def test_no_mobile_number_fails_the_text_at_once_and_moves_on_again(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>SMS>Phone", email=None, home=None))
    advance_fallbacks(any_db, now=utcnow())
    [text] = notices(any_db, channel="sms")
    assert (text.state, text.last_reply) == ("failed", NO_MOBILE_REASON)
    assert [o for o, _ in history(any_db, text.id)] == ["fallback", "failed"]
    advance_fallbacks(any_db, now=utcnow())
    [call] = notices(any_db, channel="phone")
    assert call.last_reply == "text failed: no mobile number on file for this patron"  # the advice is for texts
    assert row_of(any_db, request_id).phone == ""  # shown in the Phone group as "no contact details"


def test_a_bounce_sends_the_request_back_and_the_next_channel_takes_over(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Phone"))
    assert run_cycle(any_db, sink_settings(smtp_sink)).sent == 1
    [sent] = notices(any_db)
    handle_bounce(any_db, dsn(sent.message_id, GONE), worker="bounce-test")
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value

    assert run_cycle(any_db, sink_settings(smtp_sink)).fallbacks == 1

    bounced, held, call = notices(any_db)
    assert bounced.state == "bounced" and held.state == "failed"  # the new arrival's e-mail: address flagged
    assert call.dedupe_key == f"fallback:{held.id}" and call.channel == "phone"
    assert call.last_reply.startswith(f"e-mail bounced: {GONE} bounced on ") and "phone or write" not in call.last_reply
    assert row_of(any_db, request_id).notice_reply == call.last_reply


def test_a_bounced_notice_of_a_request_still_waiting_moves_on(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Mail"))
    [email] = notices(any_db)
    fail(any_db, email.id, "bounced: 550 5.1.1 user unknown", state=outbox.BOUNCED)
    assert advance_fallbacks(any_db, now=utcnow()).moved == {"Mail": 1}
    assert row_of(any_db, request_id).notice_reply == "e-mail bounced: 550 5.1.1 user unknown"


def test_too_many_temporary_failures_move_on(any_db: Database) -> None:
    arrive(any_db, patron(any_db, "E-Mail>Phone"))
    [email] = notices(any_db)
    fail(any_db, email.id, "gave up after 12 attempts: 451 4.3.0 try again later")
    assert advance_fallbacks(any_db, now=utcnow()).moved == {"Phone": 1}
    [call] = notices(any_db, channel="phone")
    assert call.last_reply == "e-mail failed: gave up after 12 attempts: 451 4.3.0 try again later"


def test_a_used_up_preference_creates_nothing(any_db: Database, smtp_sink: SmtpSink) -> None:
    no_preference = arrive(any_db, patron(any_db, None))  # follows the method: a one-channel list
    last_one = arrive(any_db, patron(any_db, "SMS>E-Mail", home=None))  # no number: E-Mail is the last channel
    smtp_sink.behaviour.refuse[GONE] = REFUSAL
    summary = run_cycle(any_db, sink_settings(smtp_sink))
    assert (summary.failed, summary.fallbacks, summary.next_due_at is not None) == (1, 1, True)
    # The text failed at once (no number); its e-mail successor, due at once, is refused in the next cycle.
    assert run_cycle(any_db, sink_settings(smtp_sink)).failed == 1
    assert advance_fallbacks(any_db, now=utcnow()).used_up == 2
    assert successors(any_db) == 1
    row = row_of(any_db, no_preference)
    assert row.method is NotificationMethod.EMAIL and row.retryable and not row.fell_back
    assert row_of(any_db, last_one).method is NotificationMethod.EMAIL  # its last channel failed: Retry shows there


def test_a_request_no_longer_waiting_gets_no_successor(any_db: Database, smtp_sink: SmtpSink) -> None:
    phoned = arrive(any_db, patron(any_db, "E-Mail>Phone"))
    returned = arrive(any_db, patron(any_db, "E-Mail>Phone"))
    smtp_sink.behaviour.refuse[GONE] = REFUSAL
    run_cycle(any_db, sink_settings(smtp_sink))
    # Both fell back already; undo that to look at the rule on its own (the same failed e-mails, no successor).
    with any_db.write() as session:
        session.execute(Notification.__table__.delete().where(Notification.dedupe_key.like("fallback:%")))
        session.execute(NotificationAttempt.__table__.delete().where(NotificationAttempt.outcome == "fallback"))
    log_calls(any_db, [phoned], CallOutcome.REACHED, "Grace")  # the e-mail failed: staff may phone
    move(any_db, returned, Status.NOTIFIED_VIA_PHONE)
    move(any_db, returned, Status.AWAITING_CUSTOMER_CONTACT)  # back again: the new arrival has its own notice
    run = advance_fallbacks(any_db, now=utcnow())
    assert run.created == 0
    [fresh] = [n for n in notices(any_db) if n.request_id == returned and n.state == "pending"]
    assert fresh.channel == "email"


def test_failures_that_are_not_the_patrons_channel_do_not_move_on(any_db: Database) -> None:
    arrive(any_db, patron(any_db, "E-Mail>Phone"))
    [email] = notices(any_db)
    fail(any_db, email.id, "template 'Loan Pickup' cannot be rendered: 'patron' is undefined")
    assert advance_fallbacks(any_db, now=utcnow()).created == 0
    assert not falls_back("cannot prepare the e-mail: boom") and not falls_back("no From address: give one")
    assert falls_back(REFUSAL) and falls_back(outbox.NO_EMAIL_REASON) and falls_back("gave up after 12 attempts")


def test_staff_sent_notices_do_not_move_on(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Phone"))
    [email] = notices(any_db)
    with any_db.write() as session:
        session.execute(update(Notification).where(Notification.id == email.id)
                        .values(dedupe_key=f"staff:{request_id}:abc", state="failed", last_reply=REFUSAL))  # fmt: skip
    assert advance_fallbacks(any_db, now=utcnow()).created == 0


def test_two_system_managers_at_once_make_one_successor_each(any_db: Database) -> None:
    requests = [arrive(any_db, patron(any_db, "E-Mail>Phone", email=None)) for _ in range(12)]
    barrier = threading.Barrier(2)
    runs: list[int] = []
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            barrier.wait()
            runs.append(advance_fallbacks(any_db, now=utcnow(), worker=name, batch=5).created)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"sm-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(runs) == len(requests) == successors(any_db)
    with any_db.read() as session:
        lines = session.scalar(select(func.count()).where(NotificationAttempt.outcome == "fallback"))
    assert lines == 2 * len(requests)  # one on each failed notice and one on each successor, never twice


def test_tidy_cancels_an_open_call_when_the_request_moves_on_another_way(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Phone", email=None))
    advance_fallbacks(any_db, now=utcnow())
    [details_tn] = [row_of(any_db, request_id).transaction_number]
    version = get_request(any_db, details_tn).version
    route_request(any_db, details_tn, Status.CANCELLED_BY_CUSTOMER, "Grace", expected_version=version)

    upkeep = outbox.tidy(any_db, now=utcnow() + timedelta(seconds=1))

    [call] = notices(any_db, channel="phone")
    assert upkeep.cancelled == 1 and call.state == "cancelled"
    assert call.last_reply == "cancelled: the request left Awaiting Customer Contact before the call or letter was made"


def test_failure_reason_is_the_first_line_trimmed() -> None:
    assert failure_reason("email", "failed", "  550  5.1.1\tuser unknown \nsecond line") == (
        "e-mail failed: 550 5.1.1 user unknown"
    )
    assert failure_reason("sms", "failed", "") == "text failed"
    assert len(failure_reason("email", "failed", "x" * 1000)) == 300
    assert Channel.PHONE.value == "Phone"


def test_no_answer_keeps_the_fallback_call_open(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>Phone", email=None))
    advance_fallbacks(any_db, now=utcnow())
    result = log_calls(any_db, [request_id], CallOutcome.NO_ANSWER, "Grace", note="rang twice")
    assert len(result.logged) == 1 and not result.moved and not result.skipped
    [call] = notices(any_db, channel="phone")
    assert call.state == "pending"
    row = row_of(any_db, request_id)
    assert row.method is NotificationMethod.PHONE and row.call_attempts == 1 and row.fell_back
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


def test_a_text_still_being_sent_cannot_be_marked_as_phoned(any_db: Database) -> None:
    request_id = arrive(any_db, patron(any_db, "E-Mail>SMS", email=None, cell="+15550100199"))
    advance_fallbacks(any_db, now=utcnow())
    result = log_calls(any_db, [request_id], CallOutcome.REACHED, "Grace")
    assert not result.moved and [s.reason for s in result.skipped] == [
        "its text message has not failed (it is being sent)"
    ]


def test_a_text_being_sent_lists_the_row_with_the_automatic_channels(any_db: Database) -> None:
    request_id = arrive(any_db, add_patron(any_db, method="Phone", email=None))
    assert notices(any_db) == []  # a Phone patron: no automatic notice of their own
    with any_db.write() as session:  # the text the SMS sender would queue for an "SMS>Phone" patron
        tracking_id = session.scalar(select(func.max(Tracking.id)).where(Tracking.request_id == request_id))
        session.add(Notification(dedupe_key=f"arrival:{request_id}:Loan Pickup:{tracking_id}", channel="sms",
                                 template_name="Loan Pickup", request_id=request_id, tracking_id=tracking_id,
                                 state="retrying", to_address="+15550100199", last_reply="429 Too Many Requests"))  # fmt: skip
    row = row_of(any_db, request_id)
    assert row.method is NotificationMethod.EMAIL and row.notice_text.startswith("text message retrying")
    fail(any_db, notices(any_db)[0].id, "SMS provider refused the text: 400 (error 21614)")
    row = row_of(any_db, request_id)  # given up: back with the patron's own method, the reason shown
    assert row.method is NotificationMethod.PHONE and row.notice_text.startswith("text message failed: SMS provider")


def test_a_phone_first_patron_waits_in_the_phone_group_without_any_notice(any_db: Database) -> None:
    """A patron notified by E-Mail who asked to be phoned first gets no e-mail: the row is a call to make."""
    phoned = arrive(any_db, patron(any_db, "Phone>E-Mail"))
    written = arrive(any_db, patron(any_db, "Mail"))
    assert [n for n in notices(any_db) if n.request_id in (phoned, written)] == []
    assert row_of(any_db, phoned).method is NotificationMethod.PHONE
    assert row_of(any_db, written).method is NotificationMethod.MAIL
