"""Hold-shelf reminders and expiry in full System Manager cycles: real SQLite and PostgreSQL, the real SMTP
sink, time moved by the cycle's ``now``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import event, select

from desktop.db.engine import Database
from desktop.db.models import Patron, PickupLocation, Request, Tracking
from desktop.domain.shelf import ClosedDays, ReminderStep, ShelfPolicy, StepKind
from desktop.domain.statuses import Status
from desktop.services.admin.shelf_settings import load_shelf_settings, save_shelf_settings
from desktop.services.notices.dispatch import run_cycle
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

#: A Tuesday: notified on 1 December, a 10-day hold ends on the 11th; the default reminder is on the 9th.
ARRIVAL = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def shelve(db: Database, sink: SmtpSink, *, method: str = "E-Mail", request_type: str = "Loan") -> int:
    """A request that arrived at ARRIVAL and whose arrival notice the cycle sent (or a Phone/Mail patron's,
    marked notified by staff)."""
    patron_id = add_patron(db, method=method, pickup_delay=0)
    request_id = add_request(db, patron_id, status=Status.IN_TRANSIT_TO_PICKUP, request_type=request_type)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT, now=ARRIVAL)
    if method == "E-Mail":
        summary = run_cycle(db, sink_settings(sink), worker="test", now=ARRIVAL)
        assert summary.errors == [] and summary.sent >= 1
    else:
        move(db, request_id, Status.NOTIFIED_VIA_PHONE if method == "Phone" else Status.NOTIFIED_VIA_MAIL, now=ARRIVAL)
    assert request_status(db, request_id).startswith("Customer Notified")
    return request_id


def set_shelf(db: Database, policy: ShelfPolicy | None = None, closed: ClosedDays | None = None) -> None:
    """The library's shelf settings, counted in UTC so the test's days are the library's."""
    original = load_shelf_settings(db)
    with db.read() as session:
        pickups = set(session.scalars(select(Patron.pickup_location_id)))
    policies = {int(p): policy for p in pickups if p is not None} if policy else {}
    new = replace(original, policies=policies, closed=closed or ClosedDays(), timezone="UTC")
    save_shelf_settings(db, original, new, changed_by="admin")


def subjects(sink: SmtpSink) -> list[str]:
    return [" ".join(str(m.message["Subject"]).split()) for m in sink.messages]


def cycle(db: Database, sink: SmtpSink, now: datetime) -> list[str]:
    summary = run_cycle(db, sink_settings(sink), worker="test", now=now)
    assert summary.errors == [], summary.errors
    return summary.skipped


def test_default_reminder_goes_out_on_its_day_once(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db)
    for now in (at(2), at(8, 23, 59), at(9, 8, 59)):
        cycle(any_db, smtp_sink, now)
    assert len(smtp_sink.messages) == 1  # the arrival only
    cycle(any_db, smtp_sink, at(9, 9, 30))
    cycle(any_db, smtp_sink, at(9, 15))
    assert len(smtp_sink.messages) == 2
    assert subjects(smtp_sink)[1].startswith("Reminder: your interlibrary loan is waiting")
    assert "until 2026-12-11" in smtp_sink.messages[1].text
    [reminder] = notices(any_db, template_name="Loan Pickup Reminder")
    assert reminder.state == "sent" and reminder.request_id == request_id
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value  # a reminder moves nothing


def test_schedule_with_several_steps_and_articles(any_db: Database, smtp_sink: SmtpSink) -> None:
    shelve(any_db, smtp_sink, request_type="Article")
    policy = ShelfPolicy(steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 3), ReminderStep(StepKind.BEFORE_END, 1)))
    set_shelf(any_db, policy)
    for day in range(2, 12):
        cycle(any_db, smtp_sink, at(day))
    assert [s.split(":")[0] for s in subjects(smtp_sink)] == ["Your article has arrived", "Reminder", "Reminder"]
    sent = notices(any_db, template_name="Article Pickup Reminder")
    assert [n.created_at.day for n in sent] == [4, 10]


def test_closed_days_move_the_reminder_and_the_hold(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db, closed=ClosedDays(dates=frozenset({date(2026, 12, 11)}), yearly=frozenset({(12, 9)})))
    cycle(any_db, smtp_sink, at(9))
    assert len(smtp_sink.messages) == 1  # the 9th is closed
    cycle(any_db, smtp_sink, at(10))  # the hold ends on the 12th (the 11th is closed): reminder on the 10th
    assert len(smtp_sink.messages) == 2 and "until 2026-12-12" in smtp_sink.messages[1].text
    cycle(any_db, smtp_sink, at(12, 23))
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value  # still held on the 12th
    cycle(any_db, smtp_sink, at(13, 0, 5))
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value


def test_no_reminder_after_checkout(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db)
    move(any_db, request_id, Status.CHECKED_OUT, now=at(5))
    for day in range(5, 15):
        cycle(any_db, smtp_sink, at(day))
    assert len(smtp_sink.messages) == 1
    assert request_status(any_db, request_id) == Status.CHECKED_OUT.value


def test_expiry_on_the_right_day_with_tracking_and_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db, ShelfPolicy(steps=()))
    cycle(any_db, smtp_sink, at(11, 23, 59))
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    summary = run_cycle(any_db, sink_settings(smtp_sink), worker="test", now=at(12, 0, 1))
    assert summary.expired == 1 and summary.errors == []
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    with any_db.read() as session:
        last = session.scalars(select(Tracking).where(Tracking.request_id == request_id).order_by(Tracking.id)).all()[
            -1
        ]
        assert (last.to_status, last.changed_by) == (Status.AWAITING_RETURN_TO_LENDER.value, "System")
        assert "hold ended 2026-12-11 without checkout" in last.note
    assert subjects(smtp_sink)[-1].startswith("The hold on your interlibrary loan has ended")
    body = smtp_sink.messages[-1].message.get_body(("plain",))
    assert body is not None
    assert "until 2026-12-11 " in " ".join(body.get_content().split())  # the hold's end, not counted from expiry
    cycle(any_db, smtp_sink, at(13))
    assert len(smtp_sink.messages) == 2  # once
    # staff put it back on the shelf: a new hold starts, with its own reminders
    move(any_db, request_id, Status.NOTIFIED_VIA_EMAIL, now=at(14, 8))
    cycle(any_db, smtp_sink, at(15))
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def test_expired_notice_can_be_turned_off(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db, ShelfPolicy(steps=(), expired_notice=False))
    cycle(any_db, smtp_sink, at(12, 1))
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    assert len(smtp_sink.messages) == 1 and notices(any_db, template_name="Pickup Expired") == []


def test_stale_guard_cancels_a_reminder_whose_request_left_the_shelf(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink)
    set_shelf(any_db)
    run_cycle(any_db, sink_settings(smtp_sink), worker="test", now=at(9, 9, 30), send=False)
    [reminder] = notices(any_db, template_name="Loan Pickup Reminder")
    assert reminder.state == "pending"
    move(any_db, request_id, Status.CHECKED_OUT, now=at(9, 9, 40))
    cycle(any_db, smtp_sink, at(9, 9, 45))
    [reminder] = notices(any_db, template_name="Loan Pickup Reminder")
    assert reminder.state == "cancelled"
    assert reminder.last_reply == f"cancelled: the request left the hold shelf (now {Status.CHECKED_OUT.value})"
    assert len(smtp_sink.messages) == 1


def test_stale_guard_cancels_a_reminder_no_longer_due(any_db: Database, smtp_sink: SmtpSink) -> None:
    shelve(any_db, smtp_sink)
    set_shelf(any_db)
    run_cycle(any_db, sink_settings(smtp_sink), worker="test", now=at(9, 9, 30), send=False)
    cycle(any_db, smtp_sink, at(10, 0, 30))  # the SMTP server was unreachable until after its day
    [reminder] = notices(any_db, template_name="Loan Pickup Reminder")
    assert reminder.state == "cancelled" and reminder.last_reply.startswith("skipped: the reminder of 2026-12-09")
    assert len(smtp_sink.messages) == 1


def test_outage_sends_arrivals_and_lists_skipped_reminders(any_db: Database, smtp_sink: SmtpSink) -> None:
    waiting = shelve(any_db, smtp_sink)
    set_shelf(any_db)
    cycle(any_db, smtp_sink, at(9, 8))  # the last cycle before a 24-hour outage
    patron = add_patron(any_db, pickup_delay=0)
    newcomer = add_request(any_db, patron, status=Status.IN_TRANSIT_TO_PICKUP)
    move(any_db, newcomer, Status.AWAITING_CUSTOMER_CONTACT, now=at(9, 12))  # staff work on during the outage
    skipped = cycle(any_db, smtp_sink, at(10, 8))
    assert subjects(smtp_sink)[1].startswith("Your interlibrary loan has arrived")  # the arrival always goes
    assert len(smtp_sink.messages) == 2  # and the reminder of the 9th does not
    assert len(skipped) == 1 and skipped[0].startswith("TN ") and "reminder 1: skipped" in skipped[0]
    [reminder] = notices(any_db, request_id=waiting, template_name="Loan Pickup Reminder")
    assert reminder.state == "cancelled" and reminder.last_reply.startswith("skipped:")
    assert cycle(any_db, smtp_sink, at(10, 9)) == []  # listed once


def test_the_cycle_line_lists_skipped_reminders(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    shelve(sqlite_db, smtp_sink)
    set_shelf(sqlite_db)
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test", now=at(10, 8))
    assert "skipped reminders: TN " in summary.describe() and "reminders 0, expired 0, skipped 1" in summary.describe()


@pytest.mark.parametrize(("method", "channel"), [("Phone", "phone"), ("Mail", "print")])
def test_phone_and_mail_patrons_get_reminders_to_make_not_emails(
    any_db: Database, smtp_sink: SmtpSink, method: str, channel: str
) -> None:
    request_id = shelve(any_db, smtp_sink, method=method)
    set_shelf(any_db)
    cycle(any_db, smtp_sink, at(9, 10))
    [reminder] = notices(any_db, request_id=request_id)
    assert (reminder.channel, reminder.state) == (channel, "pending")
    assert smtp_sink.messages == []


def test_the_stale_guard_reads_nothing_per_notice(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The check at sending time decides from what the claimed batch already read: a cycle sending three
    reminders reads the settings as often as one sending one."""
    shelve(any_db, smtp_sink)  # notified on the 1st: its reminder is on the 9th
    later = []
    for _ in range(3):  # notified on the 2nd: reminders on the 10th
        patron = add_patron(any_db, pickup_delay=0)
        later.append(add_request(any_db, patron, status=Status.IN_TRANSIT_TO_PICKUP))
        move(any_db, later[-1], Status.AWAITING_CUSTOMER_CONTACT, now=at(2, 8))
    cycle(any_db, smtp_sink, at(2, 8, 5))
    set_shelf(any_db)
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(any_db.engine, "before_cursor_execute", record)
    try:
        cycle(any_db, smtp_sink, at(9, 10))
        one = [s for s in statements if "system_settings" in s or "FROM tracking" in s]
        statements.clear()
        cycle(any_db, smtp_sink, at(10, 10))
        three = [s for s in statements if "system_settings" in s or "FROM tracking" in s]
    finally:
        event.remove(any_db.engine, "before_cursor_execute", record)
    assert len(notices(any_db, template_name="Loan Pickup Reminder", state="sent")) == 4
    assert len(one) == len(three), (one, three)


def test_each_desk_keeps_its_own_hold_and_schedule(any_db: Database, smtp_sink: SmtpSink) -> None:
    """The scan reads only requests old enough to need something, by a bound over every desk's policy and hold
    length: a desk with a short hold and an early reminder is not cut off by another desk's longer one."""
    long_hold = shelve(any_db, smtp_sink)  # 10 days, one reminder 2 days before the end (the default)
    short_hold = shelve(any_db, smtp_sink)
    with any_db.write() as session:
        request = session.get(Request, short_hold)
        assert request is not None and request.patron.pickup_location_id is not None
        pickup = session.get(PickupLocation, request.patron.pickup_location_id)
        assert pickup is not None
        pickup.hold_days, short_desk = 6, pickup.id
    original = load_shelf_settings(any_db)
    early = ShelfPolicy(steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 1),))
    save_shelf_settings(any_db, original, replace(original, policies={short_desk: early}, timezone="UTC"),
                        changed_by="admin")  # fmt: skip
    cycle(any_db, smtp_sink, at(2, 10))
    assert [n.request_id for n in notices(any_db, template_name="Loan Pickup Reminder")] == [short_hold]
    cycle(any_db, smtp_sink, at(8, 0, 1))  # the short hold ended on the 7th; the long one runs to the 11th
    assert request_status(any_db, short_hold) == Status.AWAITING_RETURN_TO_LENDER.value
    assert request_status(any_db, long_hold) == Status.NOTIFIED_VIA_EMAIL.value
    cycle(any_db, smtp_sink, at(9, 10))
    assert sorted(n.request_id for n in notices(any_db, template_name="Loan Pickup Reminder")) == [
        long_hold,
        short_hold,
    ]
