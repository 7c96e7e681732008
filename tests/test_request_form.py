"""The request form on real seeded data: what it shows, routing (Tracking), saving, conflicts, Previous/Next."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QDate, QItemSelectionModel, QLocale, Qt
from PySide6.QtWidgets import QDateEdit
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.models import Notification, Request
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status, allowed_transitions
from desktop.services.database import Database
from desktop.services.requests.queues import QueueQuery
from desktop.services.requests.record import get_request, save_request
from desktop.services.requests.status import route_request
from desktop.ui.context import AppContext
from desktop.ui.requests.request_form import RequestForm, open_request_form
from tests.main_window_helpers import main_window, second_db, sql, wait_idle

__all__ = ["main_window", "second_db"]  # fixtures used below

ACC = Status.AWAITING_CUSTOMER_CONTACT.value


@pytest.fixture
def ctx(seeded_db: Database, settings: Settings) -> Iterator[AppContext]:
    context = AppContext(seeded_db, settings.with_changes(run_poller=False))
    yield context
    context.shutdown()


def first_at(db: Database, status: str, n: int = 0) -> int:
    rows = sql(db, "SELECT transaction_number FROM requests WHERE status = ? ORDER BY transaction_number", status)
    return int(rows[n][0])  # type: ignore[call-overload]


def opened(qtbot: QtBot, ctx: AppContext, tn: int, query: QueueQuery | None = None) -> RequestForm:
    form = open_request_form(ctx, tn, query=query)
    qtbot.addWidget(form, before_close_func=lambda w: w.revert())  # no "discard edits?" question at teardown
    qtbot.waitUntil(lambda: form.details is not None and not form.busy)
    return form


def settle(qtbot: QtBot, form: RequestForm) -> None:
    qtbot.waitUntil(lambda: not form.busy and not form.ctx.runner.busy)


def test_form_shows_request_patron_and_tracking(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    tn = first_at(seeded_db, ACC)
    form = opened(qtbot, ctx, tn)
    details = get_request(seeded_db, tn)
    assert form.objectName() == "requestForm"
    assert form.tn_label.text() == str(tn)
    assert form.status_label.text().startswith(ACC)
    assert form.patron_name_label.text() == details.patron_name
    assert form.email_label.text() == details.primary_email != ""
    assert form.phone_label.text() == details.primary_phone
    assert form.method_label.text() == details.notification_method
    assert form.tracking_model.rowCount() == len(details.tracking) == 1
    title_field = "photo_article_title" if details.is_article else "loan_title"
    assert form.edits[title_field].text() == getattr(details, title_field)
    assert form.edits[title_field].isVisibleTo(form)
    assert not form.dirty and not form.save_action.isEnabled()


def test_route_menu_lists_only_allowed_moves(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    form = opened(qtbot, ctx, first_at(seeded_db, Status.CHECKED_OUT.value))
    offered = [a.data() for a in form.route_menu.actions()]
    assert offered == [s.value for s in Status if s in allowed_transitions(Status.CHECKED_OUT)]
    assert offered == [Status.REQUEST_FINISHED.value]


def test_route_from_the_form_writes_tracking(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    tn = first_at(seeded_db, ACC)
    form = opened(qtbot, ctx, tn)
    changed: list[str] = []
    ctx.changed.connect(changed.append)
    action = next(a for a in form.route_menu.actions() if a.data() == Status.NOTIFIED_VIA_PHONE.value)
    action.trigger()
    settle(qtbot, form)
    rows = sql(seeded_db, "SELECT t.from_status, t.to_status, t.changed_by FROM tracking t "
               "JOIN requests r ON r.id = t.request_id WHERE r.transaction_number = ? ORDER BY t.id", tn)  # fmt: skip
    assert rows[-1] == (ACC, Status.NOTIFIED_VIA_PHONE.value, "tester")
    assert sql(seeded_db, "SELECT status FROM requests WHERE transaction_number = ?", tn)[0][0] == rows[-1][1]
    assert form.tracking_model.rowCount() == 2
    assert form.tracking_model.index(1, 2).data() == Status.NOTIFIED_VIA_PHONE.value
    assert form.status_label.text().startswith(Status.NOTIFIED_VIA_PHONE.value)
    assert "requests" in changed


def test_route_refused_when_another_workstation_moved_it(
    qtbot: QtBot, ctx: AppContext, seeded_db: Database, second_db: Database
) -> None:
    tn = first_at(seeded_db, ACC)
    form = opened(qtbot, ctx, tn)
    route_request(second_db, tn, Status.NOTIFIED_VIA_MAIL, "other desk")
    form.route_to(Status.NOTIFIED_VIA_PHONE.value)
    settle(qtbot, form)
    assert "changed on another workstation" in form.message_text()
    assert sql(seeded_db, "SELECT status FROM requests WHERE transaction_number = ?", tn)[0][0] == (
        Status.NOTIFIED_VIA_MAIL.value
    )
    qtbot.waitUntil(lambda: form.details is not None and form.details.status == Status.NOTIFIED_VIA_MAIL.value)


def test_unsaved_fields_are_marked_and_saved(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    tn = first_at(seeded_db, Status.REQUEST_SENT.value)
    form = opened(qtbot, ctx, tn)
    edit = form.edits["call_number"]
    edit.clear()
    qtbot.keyClicks(edit, "QA76.9 .D3")
    assert form.modified_fields() == ["call_number"]
    assert edit.property("unsaved") is True
    assert form.labels["call_number"].text().startswith("• ")
    assert form.windowTitle().startswith("* ")
    assert form.save_action.isEnabled()
    qtbot.keyClick(form, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, form)
    assert sql(seeded_db, "SELECT call_number, version_id FROM requests WHERE transaction_number = ?", tn)[0] == (
        "QA76.9 .D3",
        2,
    )
    assert not form.dirty and edit.property("unsaved") is False
    assert not form.windowTitle().startswith("* ")
    assert "saved" in form.message_text()


def test_stale_save_is_refused_and_keeps_what_was_typed(
    qtbot: QtBot, ctx: AppContext, seeded_db: Database, second_db: Database
) -> None:
    tn = first_at(seeded_db, Status.REQUEST_SENT.value)
    form = opened(qtbot, ctx, tn)
    theirs = get_request(second_db, tn)
    save_request(second_db, tn, theirs.edit().__class__(**{**theirs.edit().__dict__, "lending_library": "Elsewhere U"}),
                 expected_version=theirs.version)  # fmt: skip
    form.edits["call_number"].setText("MINE-1")
    form.on_field_edited()
    form.save()
    settle(qtbot, form)
    qtbot.waitUntil(lambda: form.theirs is not None)
    message = form.message_text()
    assert "changed on another workstation" in message and "Lending library" in message
    assert form.edits["call_number"].text() == "MINE-1"  # nothing lost
    assert form.dirty
    assert sql(seeded_db, "SELECT call_number, lending_library FROM requests WHERE transaction_number = ?", tn)[0] == (
        theirs.call_number,
        "Elsewhere U",
    )
    assert form.overwrite_button.isVisible() and form.discard_button.isVisible()
    # Staff decide: keep mine (over the newer version), which now saves.
    qtbot.mouseClick(form.overwrite_button, Qt.MouseButton.LeftButton)
    settle(qtbot, form)
    assert sql(seeded_db, "SELECT call_number FROM requests WHERE transaction_number = ?", tn)[0][0] == "MINE-1"
    assert not form.dirty


def test_due_date_is_picked_from_a_calendar_in_the_locale_format(
    qtbot: QtBot, ctx: AppContext, seeded_db: Database
) -> None:
    tn = first_at(seeded_db, Status.REQUEST_SENT.value)
    form = opened(qtbot, ctx, tn)
    picker = form.due_edit
    assert isinstance(picker, QDateEdit) and picker.calendarPopup() and picker.calendarWidget() is not None
    assert picker.displayFormat() == QLocale().dateFormat(QLocale.FormatType.ShortFormat)
    picker.setDate(QDate(2026, 3, 31))
    assert picker.text() == QLocale().toString(QDate(2026, 3, 31), picker.displayFormat())
    assert form.modified_fields() == ["due_date"] and picker.property("unsaved") is True
    qtbot.keyClick(form, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    settle(qtbot, form)
    assert sql(seeded_db, "SELECT due_date FROM requests WHERE transaction_number = ?", tn)[0][0] == "2026-03-31"
    assert not form.dirty
    qtbot.mouseClick(form.no_due_button, Qt.MouseButton.LeftButton)  # "No date": the request has none
    assert picker.text() == "No due date" and form.modified_fields() == ["due_date"]
    form.save()
    settle(qtbot, form)
    assert sql(seeded_db, "SELECT due_date FROM requests WHERE transaction_number = ?", tn)[0][0] is None


def test_validation_problem_from_the_service_is_shown(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    with seeded_db.read() as session:
        loan = session.query(Request).filter(Request.request_type == "Loan").order_by(Request.id).first()
        assert loan is not None
        tn = loan.transaction_number
    form = opened(qtbot, ctx, tn)
    form.edits["loan_title"].setText("   ")
    form.on_field_edited()
    form.save()
    settle(qtbot, form)
    assert "a loan needs a title" in form.message_text()
    assert form.edits["loan_title"].property("invalid") is True
    assert form.edits["loan_title"].text() == "   "


def test_previous_and_next_walk_the_list(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    order = [int(tn) for (tn,) in sql(seeded_db, "SELECT transaction_number FROM requests WHERE status = ? "
                                      "ORDER BY transaction_number", ACC)]  # fmt: skip
    form = opened(qtbot, ctx, order[1], QueueQuery(ACC))
    seen: list[int] = []
    form.transactionChanged.connect(seen.append)
    qtbot.keyClick(form, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: form.transaction_number == order[2] and not form.busy)
    form.go_previous()
    qtbot.waitUntil(lambda: form.transaction_number == order[1] and not form.busy)
    form.go_previous()
    qtbot.waitUntil(lambda: form.transaction_number == order[0] and not form.busy)
    form.go_previous()
    settle(qtbot, form)
    assert form.transaction_number == order[0]
    assert "first request" in form.message_text()
    assert seen == [order[2], order[1], order[0]]


def test_moving_with_unsaved_edits_is_refused(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    tn = first_at(seeded_db, ACC)
    form = opened(qtbot, ctx, tn)
    form.edits["lending_library"].setText("typed")
    form.on_field_edited()
    form.go_next()
    assert form.transaction_number == tn and "Save or revert" in form.message_text()
    form.route_to(Status.NOTIFIED_VIA_PHONE.value)
    assert "Save or revert" in form.message_text()
    form.revert()
    assert not form.dirty


def test_notifications_tab_shows_every_notice_and_its_text(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    tn = first_at(seeded_db, Status.NOTIFIED_VIA_EMAIL.value)
    with seeded_db.write() as session:
        request = session.query(Request).filter(Request.transaction_number == tn).one()
        for n, (state, reply) in enumerate([("failed", "550 mailbox unavailable"), ("sent", "250 OK queued")]):
            session.add(Notification(dedupe_key=f"test:{tn}:{n}", template_name="Loan Pickup", request_id=request.id,
                                     patron_id=request.patron_id, state=state, to_address="ada@example.org",
                                     subject=f"Your item is here ({n})", body_text=f"Dear Ada, body {n}",
                                     attempts=n + 1, last_reply=reply,
                                     sent_at=utcnow() if state == "sent" else None))  # fmt: skip
    form = opened(qtbot, ctx, tn)
    model = form.notifications_model
    assert model.rowCount() == 2
    headers = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert headers == ["Created", "Channel", "Template", "To", "Subject", "State", "Attempts", "Last reply", "Sent"]
    assert [model.index(r, 5).data() for r in range(2)] == [
        "failed: 550 mailbox unavailable",
        "sent",
    ]  # the state in words, with the reason
    assert model.index(0, 7).data() == "550 mailbox unavailable"
    assert model.index(1, 8).data() != "" and model.index(0, 8).data() == ""
    form.notifications_table.selectionModel().select(
        model.index(1, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    assert "Dear Ada, body 1" in form.notification_text.toPlainText()
    assert "Subject: Your item is here (1)" in form.notification_text.toPlainText()


def test_form_models_pass_the_model_tester(
    qtbot: QtBot, qtmodeltester: object, ctx: AppContext, seeded_db: Database
) -> None:
    form = opened(qtbot, ctx, first_at(seeded_db, ACC))
    qtmodeltester.check(form.tracking_model)  # type: ignore[attr-defined]
    qtmodeltester.check(form.notifications_model)  # type: ignore[attr-defined]


def test_form_follows_changes_made_elsewhere_when_not_editing(
    qtbot: QtBot, ctx: AppContext, seeded_db: Database, second_db: Database
) -> None:
    tn = first_at(seeded_db, ACC)
    form = opened(qtbot, ctx, tn)
    route_request(second_db, tn, Status.NOTIFIED_VIA_PHONE, "other desk")
    ctx.changed.emit("requests")
    qtbot.waitUntil(lambda: form.details is not None and form.details.status == Status.NOTIFIED_VIA_PHONE.value)
    assert form.tracking_model.rowCount() == 2


def test_patron_button_opens_the_record(qtbot: QtBot, ctx: AppContext, seeded_db: Database) -> None:
    from PySide6.QtWidgets import QWidget

    form = opened(qtbot, ctx, first_at(seeded_db, ACC))
    form.patron_button.click()
    qtbot.waitUntil(lambda: form.findChild(QWidget, "patronRecord") is not None)


def test_form_opened_from_the_main_window_keeps_the_list_selection_in_step(qtbot: QtBot, main_window: object) -> None:
    from desktop.ui.main_window import MainWindow

    assert isinstance(main_window, MainWindow)
    main_window.workspace.select_queue(ACC)
    wait_idle(qtbot, main_window)
    model = main_window.workspace.table_model
    form = main_window.open_request(model.transaction_number(0) or 0)
    qtbot.waitUntil(lambda: form.details is not None and not form.busy)
    form.go_next()
    qtbot.waitUntil(lambda: form.transaction_number == model.transaction_number(1))
    qtbot.waitUntil(lambda: main_window.workspace.selected_transaction_numbers() == [model.transaction_number(1)])
