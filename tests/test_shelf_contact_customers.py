"""Hold-shelf reminders for Phone and Mail patrons in Contact Customers: rows to call or print, the actions
completing them, the call log per step; the form itself through pytest-qt."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.db.models import CallLogEntry, Request
from desktop.domain.methods import NotificationMethod
from desktop.domain.shelf import ReminderStep, ShelfPolicy, StepKind
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.notices.delivery_health import current_counts
from desktop.services.notices.dispatch import run_cycle
from desktop.services.requests.contact_customers import CallOutcome, load_contact_customers, log_calls, mark_printed
from desktop.services.requests.printing import build_notices
from desktop.ui.context import AppContext
from desktop.ui.requests.contact_customers import open_contact_customers
from tests.contact_customers_helpers import ctx
from tests.outbox_support import move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_shelf_reminders import at, cycle, set_shelf, shelve

__all__ = ["ctx", "smtp_sink"]

TWO_STEPS = ShelfPolicy(steps=(ReminderStep(StepKind.AFTER_NOTIFIED, 3), ReminderStep(StepKind.BEFORE_END, 2)))


def _row(db: Database, method: NotificationMethod, request_id: int, now: object) -> object | None:
    groups = load_contact_customers(db, now=now)  # type: ignore[arg-type]
    return next((r for r in groups.group(method) if r.request_id == request_id), None)


def test_phone_reminders_are_calls_to_make_counted_per_step(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(sqlite_db, smtp_sink, method="Phone")
    set_shelf(sqlite_db, TWO_STEPS)
    assert _row(sqlite_db, NotificationMethod.PHONE, request_id, at(3)) is None  # on the shelf, nothing to do
    cycle(sqlite_db, smtp_sink, at(4))
    row = _row(sqlite_db, NotificationMethod.PHONE, request_id, at(4))
    assert row is not None and row.reminder == 1 and row.display_title.startswith("Reminder 1 · ")  # type: ignore[attr-defined]
    result = log_calls(sqlite_db, [request_id], CallOutcome.NO_ANSWER, "ann", now=at(4, 11))
    assert result.logged and not result.reminded
    row = _row(sqlite_db, NotificationMethod.PHONE, request_id, at(4, 12))
    assert row is not None and row.call_attempts == 1  # type: ignore[attr-defined]
    result = log_calls(sqlite_db, [request_id], CallOutcome.REACHED, "ann", now=at(4, 13))
    assert "1 pickup reminder(s) recorded" in result.summary()
    assert request_status(sqlite_db, request_id) == Status.NOTIFIED_VIA_PHONE.value  # still on the shelf
    assert _row(sqlite_db, NotificationMethod.PHONE, request_id, at(4, 14)) is None
    [first] = notices(sqlite_db, request_id=request_id)
    assert (first.state, first.last_reply) == ("sent", "reminder 1 by phone (Reached) by ann")
    cycle(sqlite_db, smtp_sink, at(9))  # the second step: its calls are counted afresh
    row = _row(sqlite_db, NotificationMethod.PHONE, request_id, at(9, 11))
    assert row is not None and row.reminder == 2 and row.call_attempts == 0  # type: ignore[attr-defined]
    with sqlite_db.read() as session:
        notes = list(session.scalars(select(CallLogEntry.note).where(CallLogEntry.request_id == request_id)))
    assert notes == ["Reminder 1: No answer", "Reminder 1: Reached"]
    assert smtp_sink.messages == []


def test_mail_reminders_print_the_reminder_letter(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(sqlite_db, smtp_sink, method="Mail")
    set_shelf(sqlite_db)
    cycle(sqlite_db, smtp_sink, at(9))
    row = _row(sqlite_db, NotificationMethod.MAIL, request_id, at(9))
    assert row is not None and row.reminder == 1  # type: ignore[attr-defined]
    with sqlite_db.write() as session:
        request = session.get(Request, request_id)
        assert request is not None
        request.patron.address1, request.patron.city, request.patron.zip = "1 Main St", "Springfield", "12345"
    batch = build_notices(sqlite_db, [request_id])
    assert batch.warnings == ()
    [page] = batch.pages  # the reminder letter, not the arrival notice
    assert "is still waiting for you" in page.html and "1 Main St" in page.html
    result = mark_printed(sqlite_db, [request_id], "bob", now=at(9, 12))
    assert result.reminded and not result.moved
    assert request_status(sqlite_db, request_id) == Status.NOTIFIED_VIA_MAIL.value
    assert _row(sqlite_db, NotificationMethod.MAIL, request_id, at(9, 13)) is None


def test_the_form_lists_reminder_calls(ctx: AppContext, seeded_db: Database, smtp_sink: SmtpSink, qtbot: QtBot) -> None:
    request_id = shelve(seeded_db, smtp_sink, method="Phone")
    set_shelf(seeded_db)
    cycle(seeded_db, smtp_sink, at(9))
    form = open_contact_customers(ctx)
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        pass
    model = form.models[NotificationMethod.PHONE]
    rows = [r for r in model.rows() if r.request_id == request_id]
    assert len(rows) == 1 and rows[0].reminder == 1
    titles = [model.index(n, c).data() for n in range(model.rowCount()) for c in range(model.columnCount())]
    assert any(str(t).startswith("Reminder 1 · ") for t in titles)


def test_a_call_not_made_is_withdrawn_when_the_item_is_checked_out(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(sqlite_db, smtp_sink, method="Phone")
    set_shelf(sqlite_db)
    cycle(sqlite_db, smtp_sink, at(9))
    move(sqlite_db, request_id, Status.CHECKED_OUT, now=at(9, 12))
    cycle(sqlite_db, smtp_sink, at(9, 13))
    [reminder] = notices(sqlite_db, request_id=request_id)
    assert reminder.state == "cancelled" and "left the hold shelf" in reminder.last_reply


def _give_address(db: Database, request_id: int) -> None:
    with db.write() as session:
        request = session.get(Request, request_id)
        assert request is not None
        request.patron.address1, request.patron.city, request.patron.zip = "1 Main St", "Springfield", "12345"


def test_a_phone_patrons_ended_hold_is_a_call_to_make(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink, method="Phone")
    set_shelf(any_db, ShelfPolicy(steps=()))
    cycle(any_db, smtp_sink, at(12, 0, 1))
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    row = _row(any_db, NotificationMethod.PHONE, request_id, at(12, 9))
    assert row is not None and row.hold_ended and row.display_title.startswith("Hold ended · ")  # type: ignore[attr-defined]
    result = log_calls(any_db, [request_id], CallOutcome.NO_ANSWER, "ann", now=at(12, 10))
    assert result.logged and not result.ended
    row = _row(any_db, NotificationMethod.PHONE, request_id, at(12, 11))
    assert row is not None and row.call_attempts == 1  # type: ignore[attr-defined]
    result = log_calls(any_db, [request_id], CallOutcome.REACHED, "ann", now=at(12, 12))
    assert result.ended and not result.reminded and not result.moved
    assert "1 patron(s) told the hold ended" in result.summary()
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value  # still going back
    assert _row(any_db, NotificationMethod.PHONE, request_id, at(12, 13)) is None
    [expired] = notices(any_db, request_id=request_id)
    assert (expired.channel, expired.state, expired.last_reply) == (
        "phone",
        "sent",
        "hold ended by phone (Reached) by ann",
    )
    with any_db.read() as session:
        notes = list(session.scalars(select(CallLogEntry.note).where(CallLogEntry.request_id == request_id)))
    assert notes == ["Hold ended: No answer", "Hold ended: Reached"]
    cycle(any_db, smtp_sink, at(13))
    assert len(notices(any_db, request_id=request_id)) == 1 and smtp_sink.messages == []  # once, and no e-mail


def test_a_mail_patrons_ended_hold_prints_the_expiry_letter(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink, method="Mail")
    set_shelf(any_db, ShelfPolicy(steps=()))
    cycle(any_db, smtp_sink, at(12, 0, 1))
    row = _row(any_db, NotificationMethod.MAIL, request_id, at(12, 9))
    assert row is not None and row.hold_ended  # type: ignore[attr-defined]
    _give_address(any_db, request_id)
    batch = build_notices(any_db, [request_id])
    assert batch.warnings == ()
    [page] = batch.pages  # the expiry letter, not the arrival notice nor a reminder
    assert "was not picked up" in page.html and "until <b>2026-12-11</b>" in page.html and "1 Main St" in page.html
    result = mark_printed(any_db, [request_id], "bob", now=at(12, 10))
    assert result.ended and not result.reminded and not result.moved
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    assert _row(any_db, NotificationMethod.MAIL, request_id, at(12, 11)) is None
    [expired] = notices(any_db, request_id=request_id)
    assert (expired.channel, expired.template_name, expired.state) == ("print", "Print Pickup Expired", "sent")


def test_an_expiry_call_is_withdrawn_when_staff_undo_the_expiry(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink, method="Phone")
    set_shelf(any_db, ShelfPolicy(steps=()))
    cycle(any_db, smtp_sink, at(12, 0, 1))
    move(any_db, request_id, Status.NOTIFIED_VIA_PHONE, now=at(12, 9))  # staff put it back on the shelf
    assert _row(any_db, NotificationMethod.PHONE, request_id, at(12, 9, 30)) is None
    cycle(any_db, smtp_sink, at(12, 10))
    [expired] = notices(any_db, request_id=request_id)
    assert expired.state == "cancelled" and "no longer at Awaiting Return to Lender" in expired.last_reply


def test_no_expiry_call_when_the_library_wants_no_expiry_notices(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(any_db, smtp_sink, method="Mail")
    set_shelf(any_db, ShelfPolicy(steps=(), expired_notice=False))
    cycle(any_db, smtp_sink, at(12, 0, 1))
    assert request_status(any_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value
    assert notices(any_db, request_id=request_id) == []
    assert _row(any_db, NotificationMethod.MAIL, request_id, at(12, 9)) is None


def test_the_form_lists_an_expiry_call(ctx: AppContext, seeded_db: Database, smtp_sink: SmtpSink, qtbot: QtBot) -> None:
    request_id = shelve(seeded_db, smtp_sink, method="Phone")
    set_shelf(seeded_db, ShelfPolicy(steps=()))
    cycle(seeded_db, smtp_sink, at(12, 0, 1))
    form = open_contact_customers(ctx)
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        pass
    model = form.models[NotificationMethod.PHONE]
    [row] = [r for r in model.rows() if r.request_id == request_id]
    assert row.hold_ended
    titles = [model.index(n, c).data() for n in range(model.rowCount()) for c in range(model.columnCount())]
    assert any(str(t).startswith("Hold ended · ") for t in titles)
    # Notified via Phone completes the call; the form refreshes itself and the row is gone.
    form.select_requests([row.transaction_number])
    qtbot.mouseClick(form.findChild(QPushButton, "notifiedViaPhoneButton"), Qt.MouseButton.LeftButton)
    call = form.call_dialog
    assert call is not None and call.outcome is CallOutcome.REACHED
    with qtbot.waitSignal(form.actionFinished, timeout=10_000), qtbot.waitSignal(form.loaded, timeout=10_000):
        qtbot.mouseClick(call.findChild(QPushButton, "recordCallButton"), Qt.MouseButton.LeftButton)
    assert "told the hold ended" in form.last_message
    assert all(r.request_id != request_id for r in form.models[NotificationMethod.PHONE].rows())
    assert request_status(seeded_db, request_id) == Status.AWAITING_RETURN_TO_LENDER.value


def test_calls_and_letters_to_make_do_not_keep_the_sender_busy(any_db: Database, smtp_sink: SmtpSink) -> None:
    """A call or letter waits for staff, not for the e-mail sender: it is not a notice "waiting" to be sent, so the
    run loop does not wake at once for it and the delivery banner does not count it."""
    shelve(any_db, smtp_sink, method="Phone")
    set_shelf(any_db)
    cycle(any_db, smtp_sink, at(9, 10))
    assert [n.channel for n in notices(any_db)] == ["phone"]
    summary = run_cycle(any_db, sink_settings(smtp_sink), worker="test", now=at(9, 11))
    assert (summary.pending, summary.next_due_at) == (0, None)
    assert current_counts(any_db) == (0, 0)
