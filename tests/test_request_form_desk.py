"""The request form's ILLiad habits (issue 21): Send E-mail, E-mail History with Resend, History/Notes, Print
Request, Previous/Next by Alt+Left/Right — on a real SQLite file, with a real SMTP server receiving the mail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtPrintSupport import QPrintPreviewDialog
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.config import Settings
from desktop.db.models import NoticeTemplate, NotificationAttempt, Request, RequestNote, Tracking
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.errors import ConcurrentEditError
from desktop.services.notices import outbox
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.templates import LOAN_PICKUP, LOAN_PICKUP_REMINDER, PASSWORD_RESET
from desktop.services.requests.email_actions import email_templates, plan_email, send_email
from desktop.services.requests.queues import QueueQuery
from desktop.services.requests.record import get_request
from desktop.ui.context import AppContext
from desktop.ui.requests.request_form import RequestForm, open_request_form, print_request_pdf
from tests.outbox_support import add_patron, add_request, move, notices, request_status, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

ACC = Status.AWAITING_CUSTOMER_CONTACT


@pytest.fixture
def desk(sqlite_db: Database, smtp_sink: SmtpSink) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, sink_settings(smtp_sink).with_changes(run_poller=False))
    yield context
    context.shutdown()


def tn_of(db: Database, request_id: int) -> int:
    with db.read() as session:
        request = session.get(Request, request_id)
        assert request is not None
        return request.transaction_number


def opened(qtbot: QtBot, ctx: AppContext, tn: int, query: QueueQuery | None = None) -> RequestForm:
    form = open_request_form(ctx, tn, query=query)
    qtbot.addWidget(form, before_close_func=lambda w: w.revert())
    qtbot.waitUntil(lambda: form.details is not None and not form.busy and not form.email_menu.isEmpty())
    return form


def settle(qtbot: QtBot, form: RequestForm) -> None:
    qtbot.waitUntil(lambda: not form.busy and not form.ctx.runner.busy)


def waiting_request(db: Database) -> int:
    """A request of an e-mail patron at Awaiting Customer Contact, with its arrival notice pending."""
    request_id = add_request(db, add_patron(db, email="ada@example.org"))
    move(db, request_id, Status.IN_TRANSIT_TO_PICKUP)
    move(db, request_id, ACC)
    return request_id


def test_send_email_menu_previews_sends_once_and_routes(
    qtbot: QtBot, desk: AppContext, sqlite_db: Database, smtp_sink: SmtpSink, settings: Settings
) -> None:
    request_id = waiting_request(sqlite_db)
    form = opened(qtbot, desk, tn_of(sqlite_db, request_id))
    names = [a.data() for a in form.email_menu.actions()]
    assert LOAN_PICKUP in names and LOAN_PICKUP_REMINDER in names and PASSWORD_RESET not in names
    assert form.email_button.isEnabled()
    form.email_menu.findChild(object, "sendTemplate:" + LOAN_PICKUP).trigger()
    qtbot.waitUntil(lambda: form.email_dialog is not None and form.email_dialog.isVisible())
    dialog = form.email_dialog
    assert dialog is not None
    assert "Notes on the Analytical Engine" in dialog.body.toPlainText()  # rendered for this very request
    assert Status.NOTIFIED_VIA_EMAIL.value in dialog.after_label.text()
    assert dialog.send_button.isEnabled()
    qtbot.mouseClick(dialog.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: form.details is not None and form.details.status == Status.NOTIFIED_VIA_EMAIL.value)
    settle(qtbot, form)
    assert "is in the outbox" in form.message_text()
    last = form.details.tracking[-1]
    assert (last.from_status, last.to_status, last.changed_by) == (ACC.value, Status.NOTIFIED_VIA_EMAIL.value, "tester")
    staff = [n for n in notices(sqlite_db, request_id=request_id) if outbox.is_staff_notice(n.dedupe_key)]
    assert len(staff) == 1 and staff[0].template_name == LOAN_PICKUP
    # The System Manager sends it once; the arrival notice, now over, is not sent as well.
    run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test")
    run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test")
    assert smtp_sink.recipients() == ["ada@example.org"]
    assert request_status(sqlite_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    states = {n.dedupe_key.split(":")[0]: n.state for n in notices(sqlite_db, request_id=request_id)}
    assert states == {"staff": outbox.SENT, "arrival": outbox.CANCELLED}
    with sqlite_db.read() as session:
        audit = session.scalars(select(NotificationAttempt).where(NotificationAttempt.notification_id == staff[0].id))
        assert next((a.outcome, a.worker) for a in audit) == ("queued", "tester")


def test_a_template_that_routes_nowhere_leaves_the_status_and_is_still_sent(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    request_id = waiting_request(any_db)
    move(any_db, request_id, Status.NOTIFIED_VIA_EMAIL)
    tn = tn_of(any_db, request_id)
    settings = sink_settings(smtp_sink)
    plan = plan_email(any_db, settings, tn, LOAN_PICKUP_REMINDER)
    assert plan.route_to is None and plan.preview.ok
    send_email(any_db, tn, LOAN_PICKUP_REMINDER, "tester", expected_version=plan.version, token="t1")
    send_email(any_db, tn, LOAN_PICKUP_REMINDER, "tester", expected_version=plan.version, token="t1")  # again
    run_cycle(any_db, settings, worker="test")
    assert smtp_sink.recipients() == ["ada@example.org"]  # one confirmation, one e-mail
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    # A plan older than the request is refused: nothing is queued.
    move(any_db, request_id, Status.CHECKED_OUT)
    with pytest.raises(ConcurrentEditError):
        send_email(any_db, tn, LOAN_PICKUP_REMINDER, "tester", expected_version=plan.version, token="t2")
    assert PASSWORD_RESET not in email_templates(any_db)


def test_email_history_resend_queues_a_new_audited_notice(
    qtbot: QtBot, desk: AppContext, sqlite_db: Database, smtp_sink: SmtpSink
) -> None:
    request_id = waiting_request(sqlite_db)
    run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test")  # the arrival e-mail goes out
    assert smtp_sink.recipients() == ["ada@example.org"]
    form = opened(qtbot, desk, tn_of(sqlite_db, request_id))
    assert form.tabs.tabText(form.email_tab_index) == "E-mail &History"
    assert not form.resend_button.isEnabled()  # nothing chosen yet
    model = form.notifications_model
    assert model.rowCount() == 1
    form.notifications_table.selectionModel().select(
        model.index(0, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    assert form.resend_button.isEnabled()
    old = form.selected_notice()
    assert old is not None and old.state == outbox.SENT
    qtbot.mouseClick(form.resend_button, Qt.MouseButton.LeftButton)
    box = form.findChild(QMessageBox, "confirmResendBox")
    assert isinstance(box, QMessageBox) and box.isVisible()
    box.button(QMessageBox.StandardButton.Cancel).click()  # asked first: Cancel sends nothing
    settle(qtbot, form)
    assert len(notices(sqlite_db, request_id=request_id)) == 1
    qtbot.mouseClick(form.resend_button, Qt.MouseButton.LeftButton)
    box = next(b for b in form.findChildren(QMessageBox, "confirmResendBox") if b.isVisible())
    box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: form.notifications_model.rowCount() == 2)
    settle(qtbot, form)
    assert "Queued again as notice" in form.message_text()
    run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test")
    run_cycle(sqlite_db, sink_settings(smtp_sink), worker="test")
    assert smtp_sink.recipients() == ["ada@example.org", "ada@example.org"]  # exactly one more
    assert request_status(sqlite_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    with sqlite_db.read() as session:
        lines = {(a.notification_id, a.outcome, a.worker) for a in session.scalars(select(NotificationAttempt))}
    new = next(n for n in notices(sqlite_db, request_id=request_id) if n.id != old.id)
    assert (old.id, "resent", "tester") in lines and (new.id, "queued", "tester") in lines


def test_history_notes_tab_shows_tracking_and_imported_notes_and_adds_one(
    qtbot: QtBot, desk: AppContext, sqlite_db: Database
) -> None:
    request_id = waiting_request(sqlite_db)
    with sqlite_db.write() as session:
        session.add(RequestNote(request_id=request_id, noted_at=datetime(2020, 6, 15, 18, 34, tzinfo=UTC),
                                note="Patron asked for large print", added_by="jsmith", note_type="Staff",
                                source_key="illiad:77"))  # fmt: skip
    form = opened(qtbot, desk, tn_of(sqlite_db, request_id))
    assert form.tabs.tabText(form.notes_tab_index) == "History/Not&es (1)"
    texts = [form.history_model.index(r, 3).data() for r in range(form.history_model.rowCount())]
    assert texts[0] == "Patron asked for large print"  # 2020: the oldest line comes first
    assert any(ACC.value in text for text in texts) and len(texts) == 4  # the note and three status changes
    form.tabs.setCurrentIndex(form.notes_tab_index)
    qtbot.keyClicks(form.note_edit, "Called the lender about the due date")
    qtbot.mouseClick(form.add_note_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: form.history_model.rowCount() == 5)
    settle(qtbot, form)
    assert form.note_edit.toPlainText() == ""
    with sqlite_db.read() as session:
        note = session.scalars(select(RequestNote).where(RequestNote.source_key.is_(None))).one()
        assert (note.note, note.added_by, note.note_type) == ("Called the lender about the due date", "tester", "Staff")
        assert note.noted_at is not None
    assert form.history_model.index(4, 2).data() == "tester"
    form.add_note()  # an empty note is refused with a word, not saved
    assert "Type the note first" in form.message_text()


def test_send_email_menu_follows_templates_deleted_elsewhere(
    qtbot: QtBot, qtmodeltester: object, desk: AppContext, sqlite_db: Database
) -> None:
    form = opened(qtbot, desk, tn_of(sqlite_db, waiting_request(sqlite_db)))
    qtmodeltester.check(form.history_model)  # type: ignore[attr-defined]
    with sqlite_db.write() as session:
        template = session.scalars(select(NoticeTemplate).where(NoticeTemplate.name == LOAN_PICKUP_REMINDER)).one()
        template.deleted = True
    desk.changed.emit("templates")
    qtbot.waitUntil(lambda: LOAN_PICKUP_REMINDER not in [a.data() for a in form.email_menu.actions()])
    assert LOAN_PICKUP in [a.data() for a in form.email_menu.actions()]


def test_print_request_makes_one_page(qtbot: QtBot, desk: AppContext, sqlite_db: Database, tmp_path: Path) -> None:
    request_id = waiting_request(sqlite_db)
    form = opened(qtbot, desk, tn_of(sqlite_db, request_id))
    assert form.details is not None
    pdf = tmp_path / "request.pdf"
    print_request_pdf(form.details, pdf)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type /Page/") == 1
    form.print_action.trigger()  # Ctrl+P: the preview, where Print is
    preview = form.findChild(QPrintPreviewDialog, "printRequestPreview")
    assert preview is not None
    qtbot.waitUntil(preview.isVisible)
    preview.close()


def test_previous_and_next_follow_alt_left_and_right_in_the_list_it_came_from(
    qtbot: QtBot, desk: AppContext, sqlite_db: Database
) -> None:
    ids = [waiting_request(sqlite_db) for _ in range(3)]
    tns = [tn_of(sqlite_db, i) for i in ids]
    form = opened(qtbot, desk, tns[1], QueueQuery(ACC.value))
    qtbot.keyClick(form, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: form.transaction_number == tns[2] and not form.busy)
    qtbot.keyClick(form, Qt.Key.Key_Left, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: form.transaction_number == tns[1] and not form.busy)
    qtbot.keyClick(form, Qt.Key.Key_PageUp, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: form.transaction_number == tns[0] and not form.busy)
    form.edits["call_number"].setText("typed")
    form.on_field_edited()
    qtbot.keyClick(form, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    settle(qtbot, form)
    assert form.transaction_number == tns[0] and "Save or revert" in form.message_text()  # edits are kept
    assert form.edits["call_number"].text() == "typed"


def test_tracking_of_a_hand_sent_email_names_the_template(any_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = waiting_request(any_db)
    tn = tn_of(any_db, request_id)
    plan = plan_email(any_db, sink_settings(smtp_sink), tn, LOAN_PICKUP)
    send_email(any_db, tn, LOAN_PICKUP, "alice", expected_version=plan.version, token="x")
    with any_db.read() as session:
        last = session.scalars(select(Tracking).where(Tracking.request_id == request_id).order_by(Tracking.id)).all()[
            -1
        ]
        assert (last.to_status, last.changed_by, last.note) == (
            Status.NOTIFIED_VIA_EMAIL.value,
            "alice",
            f"E-mail {LOAN_PICKUP!r} sent by hand",
        )
    assert get_request(any_db, tn).status == Status.NOTIFIED_VIA_EMAIL.value
