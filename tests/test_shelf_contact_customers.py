"""Hold-shelf reminders for Phone and Mail patrons in Contact Customers: rows to call or print, the actions
completing them, the call log per step; the form itself through pytest-qt."""

from __future__ import annotations

from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.db.models import CallLogEntry, Request
from desktop.domain.methods import NotificationMethod
from desktop.domain.shelf import ReminderStep, ShelfPolicy, StepKind
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.requests.contact_customers import CallOutcome, load_contact_customers, log_calls, mark_printed
from desktop.services.requests.printing import build_notices
from desktop.ui.context import AppContext
from desktop.ui.requests.contact_customers import open_contact_customers
from tests.contact_customers_helpers import ctx
from tests.outbox_support import move, notices, request_status
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
