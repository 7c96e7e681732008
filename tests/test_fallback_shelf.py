"""Fallback for the hold shelf's notices (issue 18, part 3 follow-up): a pickup reminder or "hold ended" notice
that was texted or e-mailed and failed for good moves on to the patron's next channel, while it still applies.

End to end on real SQLite files and real PostgreSQL: the local Twilio API server refuses the text, the SMTP sink
refuses the e-mail, the System Manager's cycle moves the notice on, Contact Customers lists the call as that
reminder step's with the reason, and "Notified via Phone" completes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import select, update

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import CallLogEntry, NoticeTemplate, Notification, PatronChannelPreference
from desktop.domain.channels import NoticeEvent
from desktop.domain.methods import NotificationMethod
from desktop.domain.shelf import ShelfPolicy
from desktop.domain.statuses import Status
from desktop.services.admin.sms_settings import SmsSettings, load_sms_settings, save_sms_settings
from desktop.services.notices import outbox
from desktop.services.notices.bounces import Outcome, handle_bounce
from desktop.services.notices.dispatch import CycleSummary, run_cycle
from desktop.services.notices.fallback import advance_fallbacks
from desktop.services.notices.shelf import base_key, is_successor_key, reminder_step, run_shelf, successor_key
from desktop.services.requests.contact_customers import CallOutcome, ContactRow, load_contact_customers, log_calls
from desktop.services.requests.shelf_contacts import step_number
from tests.outbox_support import add_request, add_sms_patron, move, notices, request_status, sink_settings
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, ERRORS, ProviderLog, twilio_server
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_bounces import dsn
from tests.test_shelf_reminders import ARRIVAL, at, set_shelf

__all__ = ["smtp_sink"]

MOBILE = "+16175551234"
REFUSED_NUMBER = "+15005550001"  # the provider answers 400 / 21211: not a valid phone number
GONE = "gone@example.org"
REFUSAL = "550 5.1.1 user unknown"
REMINDER_DAY = at(9, 9, 30)  # the default policy's reminder: day 9 of a 10-day hold from ARRIVAL (1 December)


@pytest.fixture
def provider() -> Iterator[tuple[str, ProviderLog]]:
    with twilio_server(slow_seconds=2.0) as server:
        yield server


def use_twilio(db: Database, url: str) -> None:
    values = {"quiet_start": "00:00", "quiet_end": "00:00", "transport": "twilio", "account_sid": ACCOUNT_SID,
              "sender": "+15005550006", "api_base": url}  # fmt: skip
    save_sms_settings(db, load_sms_settings(db), SmsSettings(**values), changed_by="tester")  # type: ignore[arg-type]


def settings(sink: SmtpSink) -> Settings:
    return sink_settings(sink)


def cycle(db: Database, sink: SmtpSink, now: datetime) -> CycleSummary:
    summary = run_cycle(db, settings(sink), worker="test", sms_token=AUTH_TOKEN, now=now)
    assert summary.errors == [], summary.errors
    return summary


def shelved(db: Database, sink: SmtpSink, *, number: str, email: str, reminder: str, ready: str = "E-Mail") -> int:
    """A patron with ``number`` at Cell, ``email``, "Item ready for pickup" ``ready`` and "Pickup reminder"
    ``reminder``; their request arrived on 1 December and its arrival e-mail was sent (the request is on the
    shelf at Customer Notified via E-Mail)."""
    patron_id = add_sms_patron(db, number, email=email, channels=ready, pickup_delay=0)
    with db.write() as session:
        session.add(PatronChannelPreference(patron_id=patron_id, event=NoticeEvent.PICKUP_REMINDER.value,
                                            channels=reminder))  # fmt: skip
        # A database made before issue 18 has reminder templates without an SMS part.
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup Reminder")
                        .values(body_sms='Reminder: "{{ request.title }}" waits until {{ pickup.hold_until }}.'))  # fmt: skip
    request_id = add_request(db, patron_id, status=Status.IN_TRANSIT_TO_PICKUP)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=ARRIVAL)
    assert cycle(db, sink, ARRIVAL).sent == 1
    assert request_status(db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    return request_id


def history(db: Database, notice_id: int) -> list[tuple[str, str]]:
    return [(a.outcome, a.reply) for a in outbox.notice_history(db, notice_id)]


def phone_row(db: Database, request_id: int, now: datetime) -> ContactRow | None:
    groups = load_contact_customers(db, now=now)
    return next((r for r in groups.group(NotificationMethod.PHONE) if r.request_id == request_id), None)


def shelf_notices(db: Database, request_id: int) -> list[Notification]:
    return [n for n in notices(db, request_id=request_id) if not n.dedupe_key.startswith("arrival:")]


# ------------------------------------------------------------------------------------------ reminders


def test_a_refused_text_reminder_becomes_that_steps_call_with_the_reason(
    any_db: Database, smtp_sink: SmtpSink, provider: tuple[str, ProviderLog]
) -> None:
    use_twilio(any_db, provider[0])
    set_shelf(any_db)
    request_id = shelved(any_db, smtp_sink, number=REFUSED_NUMBER, email="patron@example.org", reminder="SMS>Phone")
    summary = cycle(any_db, smtp_sink, REMINDER_DAY)
    assert (summary.reminders, summary.failed, summary.fallbacks) == (1, 1, 1)
    text, call = shelf_notices(any_db, request_id)
    sentence = ERRORS[REFUSED_NUMBER][2]
    assert (text.channel, text.state) == ("sms", "failed") and sentence in text.last_reply
    assert call.dedupe_key == successor_key(text.dedupe_key, text.id) == f"{text.dedupe_key}:fb{text.id}"
    assert (call.channel, call.state, call.to_address) == ("phone", "pending", REFUSED_NUMBER)
    assert call.last_reply.startswith("text failed: ") and sentence in call.last_reply
    assert ("fallback", f"moved on to Phone: notice {call.id}") in history(any_db, text.id)
    assert history(any_db, call.id)[0] == ("fallback", f"after {call.last_reply} (notice {text.id})")
    # Contact Customers: the Phone group lists the call as reminder 1's, with why the text did not do.
    row = phone_row(any_db, request_id, at(9, 10))
    assert row is not None and row.reminder == 1 and not row.hold_ended
    assert row.display_title.startswith("Reminder 1 · ")
    assert row.shows_reason and row.notice_reply == call.last_reply
    # The calls count from this step on; Notified via Phone completes the reminder, the request stays shelved.
    assert log_calls(any_db, [request_id], CallOutcome.NO_ANSWER, "ann", now=at(9, 11)).logged
    row = phone_row(any_db, request_id, at(9, 12))
    assert row is not None and row.call_attempts == 1 and row.reminder == 1
    result = log_calls(any_db, [request_id], CallOutcome.REACHED, "ann", now=at(9, 13))
    assert result.reminded and "1 pickup reminder(s) recorded" in result.summary()
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    assert phone_row(any_db, request_id, at(9, 14)) is None
    [_text, call] = shelf_notices(any_db, request_id)
    assert (call.state, call.last_reply) == ("sent", "reminder 1 by phone (Reached) by ann")
    with any_db.read() as session:
        notes = list(session.scalars(select(CallLogEntry.note).where(CallLogEntry.request_id == request_id)
                                    .order_by(CallLogEntry.id)))  # fmt: skip
    assert notes == ["Reminder 1: No answer", "Reminder 1: Reached"]
    # Later cycles make nothing more: the reminder moved on once.
    assert cycle(any_db, smtp_sink, at(9, 15)).fallbacks == 0
    assert len(shelf_notices(any_db, request_id)) == 2
    assert len(provider[1].accepted) == 0


def test_a_refused_reminder_e_mail_moves_on_to_a_text_that_is_sent(
    any_db: Database, smtp_sink: SmtpSink, provider: tuple[str, ProviderLog]
) -> None:
    use_twilio(any_db, provider[0])
    set_shelf(any_db)
    request_id = shelved(any_db, smtp_sink, number=MOBILE, email=GONE, reminder="E-Mail>SMS")
    smtp_sink.behaviour.refuse[GONE] = REFUSAL  # the mailbox is gone since the arrival e-mail
    summary = cycle(any_db, smtp_sink, REMINDER_DAY)
    assert (summary.reminders, summary.fallbacks) == (1, 1)
    if not provider[1].accepted:  # the text goes in the same cycle's text loop or in the next cycle
        cycle(any_db, smtp_sink, at(9, 9, 35))
    email, text = shelf_notices(any_db, request_id)
    assert (email.channel, email.state) == ("email", "failed") and REFUSAL in email.last_reply
    assert text.dedupe_key == f"{email.dedupe_key}:fb{email.id}"
    assert (text.channel, text.template_name, text.to_address) == ("sms", "Loan Pickup Reminder", MOBILE)
    assert text.state == "sent", text.last_reply
    [form] = provider[1].accepted
    assert form["To"] == MOBILE and "2026-12-11" in form["Body"]
    assert any(reply.startswith("after e-mail failed: ") for _o, reply in history(any_db, text.id))
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value  # a reminder moves nothing
    assert phone_row(any_db, request_id, at(9, 10)) is None


def _failed_reminder(db: Database, sink: SmtpSink) -> tuple[int, int]:
    """A shelved request whose reminder e-mail failed for good (as the sender records it), not yet moved on."""
    set_shelf(db)
    request_id = shelved(db, sink, number="+15550100100", email="patron@example.org", reminder="E-Mail>Phone")
    assert run_shelf(db, now=REMINDER_DAY).reminders == 1
    [reminder] = shelf_notices(db, request_id)
    with db.write() as session:
        session.execute(update(Notification).where(Notification.id == reminder.id)
                        .values(state=outbox.FAILED, last_reply=f"recipient refused: {GONE}: {REFUSAL}"))  # fmt: skip
    return request_id, reminder.id


def test_a_reminder_whose_request_left_the_shelf_gets_no_successor(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id, _reminder = _failed_reminder(any_db, smtp_sink)
    move(any_db, request_id, Status.CHECKED_OUT, now=at(9, 10))
    assert advance_fallbacks(any_db, now=at(9, 11)).created == 0
    assert len(shelf_notices(any_db, request_id)) == 1
    assert phone_row(any_db, request_id, at(9, 11)) is None


def test_a_reminder_whose_window_passed_gets_no_late_successor(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id, _reminder = _failed_reminder(any_db, smtp_sink)
    assert advance_fallbacks(any_db, now=at(10, 8)).created == 0  # the reminder of the 9th is not made late
    assert len(shelf_notices(any_db, request_id)) == 1


def test_a_failed_reminder_still_current_moves_on_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The control of the two tests above: the same reminder, still on the shelf on its day, moves on once."""
    request_id, reminder = _failed_reminder(any_db, smtp_sink)
    assert advance_fallbacks(any_db, now=at(9, 11)).moved == {"Phone": 1}
    assert advance_fallbacks(any_db, now=at(9, 12)).created == 0
    [_failed, call] = shelf_notices(any_db, request_id)
    assert call.dedupe_key.endswith(f":fb{reminder}") and call.template_name == "Loan Pickup Reminder"
    row = phone_row(any_db, request_id, at(9, 12))
    assert (
        row is not None
        and row.reminder == 1
        and row.notice_reply == f"e-mail failed: recipient refused: {GONE}: {REFUSAL}"
    )
    # Checked out before the call was made: the hold shelf withdraws the call like any reminder call.
    move(any_db, request_id, Status.CHECKED_OUT, now=at(9, 13))
    cycle(any_db, smtp_sink, at(9, 14))
    [_failed, call] = shelf_notices(any_db, request_id)
    assert call.state == "cancelled" and "left the hold shelf" in call.last_reply


# ------------------------------------------------------------------------------------------ the hold ended


def test_a_refused_hold_ended_e_mail_becomes_a_hold_ended_call(any_db: Database, smtp_sink: SmtpSink) -> None:
    set_shelf(any_db, ShelfPolicy(steps=()))  # no reminders: only the expiry notice
    request_id = shelved(any_db, smtp_sink, number="+15550100100", email=GONE, reminder="E-Mail",
                         ready="E-Mail>Phone")  # fmt: skip
    smtp_sink.behaviour.refuse[GONE] = REFUSAL
    summary = cycle(any_db, smtp_sink, at(12, 0, 1))
    assert summary.expired == 1 and summary.fallbacks == 1
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    email, call = shelf_notices(any_db, request_id)
    assert email.dedupe_key.startswith("expired:") and email.state == "failed"
    assert call.dedupe_key == f"{email.dedupe_key}:fb{email.id}" and call.channel == "phone"
    assert call.template_name == email.template_name
    row = phone_row(any_db, request_id, at(12, 9))
    assert row is not None and row.hold_ended and row.display_title.startswith("Hold ended · ")
    assert row.notice_reply.startswith("e-mail failed: ") and REFUSAL in row.notice_reply
    result = log_calls(any_db, [request_id], CallOutcome.REACHED, "ann", now=at(12, 10))
    assert result.ended and not result.moved
    [_email, call] = shelf_notices(any_db, request_id)
    assert call.state == "sent" and request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value


def test_shelf_successor_keys_keep_their_step() -> None:
    first = successor_key("reminder:7:31:1", 120)
    second = successor_key(first, 121)
    assert (first, second) == ("reminder:7:31:1:fb120", "reminder:7:31:1:fb121")  # never grows along a chain
    assert reminder_step(second) == 1 and step_number(second) == 2 and step_number("reminder:7:31:1") == 2
    assert base_key(second) == "reminder:7:31:1" and is_successor_key(second)
    assert not is_successor_key("reminder:7:31:1") and not is_successor_key("arrival:7:fbi:3")
    assert step_number(successor_key("expired:7:40", 9)) == 0


def test_a_bounced_reminder_keeps_the_request_on_the_shelf_and_moves_on(any_db: Database, smtp_sink: SmtpSink) -> None:
    """A reminder e-mail accepted, then bounced: the item was announced already, so the request stays on the shelf
    (its hold is not restarted) and the reminder moves on to the next "Pickup reminder" channel."""
    set_shelf(any_db)
    request_id = shelved(any_db, smtp_sink, number="+15550100100", email=GONE, reminder="E-Mail>Phone")
    assert cycle(any_db, smtp_sink, REMINDER_DAY).sent == 1
    [reminder] = shelf_notices(any_db, request_id)
    assert reminder.state == "sent" and reminder.message_id
    result = handle_bounce(any_db, dsn(reminder.message_id, GONE), worker="bounce-test", now=at(9, 10))
    assert result.outcome is Outcome.FLAGGED and "back at Awaiting Customer Contact" not in result.detail
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    assert cycle(any_db, smtp_sink, at(9, 11)).fallbacks == 1
    bounced, call = shelf_notices(any_db, request_id)
    assert bounced.state == "bounced" and call.dedupe_key == f"{bounced.dedupe_key}:fb{bounced.id}"
    row = phone_row(any_db, request_id, at(9, 12))
    assert row is not None and row.reminder == 1 and row.notice_reply == f"e-mail bounced: {REFUSAL}"
