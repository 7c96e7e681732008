"""Contact Customers at the desk all day (issue 21): the filter and Ctrl+F, collapsible groups remembered, a
patron's items grouped (one call, one letter listing them all, each request marked on its own), refreshes that
change only what changed and keep the selection, and a window that fits its screen."""

from __future__ import annotations

import gc
from datetime import timedelta
from pathlib import Path

from pypdf import PdfReader
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select, update

from desktop.db.models import Patron, Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.requests.contact_customers import (
    CallOutcome,
    ContactRow,
    as_row,
    load_contact_customers,
    load_contact_rows,
)
from desktop.services.requests.printing import build_notices
from desktop.services.requests.status import route_request
from desktop.ui.context import AppContext
from desktop.ui.requests.contact_customers import (
    ContactCustomersDialog,
    ContactTreeModel,
    fit_to_screen,
)
from tests.contact_customers_helpers import ctx, dialog

__all__ = ["ctx", "dialog"]  # fixtures

WAITING = Status.AWAITING_CUSTOMER_CONTACT.value
PHONE, MAIL, EMAIL = NotificationMethod.PHONE, NotificationMethod.MAIL, NotificationMethod.EMAIL


def make_waiting(db: Database, method: str, count: int, *, address: bool = True) -> tuple[int, list[int]]:
    """A patron of ``method`` with exactly ``count`` requests waiting (others of theirs moved to waiting as
    another workstation would have routed them); returns the patron id and the transaction numbers."""
    with db.write() as session:
        patron = session.scalars(
            select(Patron)
            .where(Patron.notification_method == method, Patron.address1 != "" if address else Patron.id > 0)
            .join(Request, Request.patron_id == Patron.id)
            .group_by(Patron.id)
            .having(func.count(Request.id) >= count)
            .order_by(Patron.id)
        ).first()
        assert patron is not None, f"the seeded data has no {method} patron with {count} requests"
        numbers = list(
            session.scalars(
                select(Request.transaction_number)
                .where(Request.patron_id == patron.id)
                .order_by(Request.transaction_number)
                .limit(count)
            )
        )
        session.execute(
            update(Request)
            .where(Request.patron_id == patron.id)
            .values(status=Status.REQUEST_FINISHED.value)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Request)
            .where(Request.transaction_number.in_(numbers))
            .values(status=WAITING, status_changed_at=utcnow() - timedelta(days=1))
            .execution_options(synchronize_session=False)
        )
        return patron.id, numbers


def refresh(form: ContactCustomersDialog, qtbot: QtBot) -> None:
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        form.reload()


def top_row_of(model: ContactTreeModel, patron_id: int) -> QModelIndex:
    return next(
        model.index(i, 0) for i in range(model.rowCount()) if model.rows_at(model.index(i, 0))[0].patron_id == patron_id
    )


def statuses(db: Database, numbers: list[int]) -> dict[int, str]:
    with db.read() as session:
        rows = session.execute(
            select(Request.transaction_number, Request.status).where(Request.transaction_number.in_(numbers))
        )
        return {tn: status for tn, status in rows}


# ------------------------------------------------------------------------------------------------ grouping


def test_one_letter_lists_a_patrons_three_items_and_marks_each(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    patron_id, numbers = make_waiting(seeded_db, "Mail", 3)
    refresh(dialog, qtbot)
    model = dialog.models[MAIL]
    top = top_row_of(model, patron_id)
    assert model.rowCount(top) == 3  # one expandable row for the patron, the three items below it
    assert model.index(top.row(), 0).data() == "3 items"
    assert sum(1 for r in model.rows() if r.patron_id == patron_id) == 3
    dialog.tables[MAIL].selectionModel().select(
        top, dialog.tables[MAIL].selectionModel().SelectionFlag.ClearAndSelect
        | dialog.tables[MAIL].selectionModel().SelectionFlag.Rows,
    )  # fmt: skip
    assert sorted(r.transaction_number for r in dialog.selected_rows()) == numbers

    pdf = tmp_path / "letters.pdf"
    dialog.print_selected(pdf)
    qtbot.waitUntil(lambda: dialog.confirm_box is not None, timeout=10_000)
    reader = PdfReader(pdf)
    assert len(reader.pages) == 1  # one letter, one envelope
    text = " ".join(reader.pages[0].extract_text().split())
    assert "The 3 items you requested are ready" in text
    for number in numbers:
        assert str(number) in text
    assert statuses(seeded_db, numbers) == dict.fromkeys(numbers, WAITING)  # nothing moves before staff confirm
    box = dialog.confirm_box
    assert box is not None and "The 3 request(s) they list" in box.text()
    with qtbot.waitSignal(dialog.actionFinished, timeout=10_000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert statuses(seeded_db, numbers) == dict.fromkeys(numbers, Status.NOTIFIED_VIA_MAIL.value)
    with seeded_db.read() as session:  # each request marked on its own: a Tracking row each
        tracked = session.scalars(
            select(Request.transaction_number)
            .join(Tracking, Tracking.request_id == Request.id)
            .where(Tracking.to_status == Status.NOTIFIED_VIA_MAIL.value, Tracking.changed_by == "tester")
        ).all()
    assert sorted(tracked) == numbers
    assert "3 moved to Customer Notified via Mail" in dialog.last_message


def test_notified_via_phone_on_a_patron_marks_each_selected_request(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot
) -> None:
    patron_id, numbers = make_waiting(seeded_db, "Phone", 3)
    refresh(dialog, qtbot)
    model, view = dialog.models[PHONE], dialog.tables[PHONE]
    top = top_row_of(model, patron_id)
    view.expand(top)
    dialog.select_requests(numbers[:2])  # two of the patron's three items, chosen below their row
    assert [r.transaction_number for r in dialog.selected_rows()] == numbers[:2]
    dialog.on_notified_via_phone()
    call = dialog.call_dialog
    assert call is not None
    call.set_outcome(CallOutcome.REACHED)
    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        call.accept()
    phoned = Status.NOTIFIED_VIA_PHONE.value
    assert statuses(seeded_db, numbers) == {numbers[0]: phoned, numbers[1]: phoned, numbers[2]: WAITING}
    assert "2 moved to Customer Notified via Phone" in dialog.last_message
    assert model.rows_at(top_row_of(model, patron_id))[0].transaction_number == numbers[2]  # one item left


def test_a_template_naming_one_request_still_prints_a_page_each(seeded_db: Database) -> None:
    from desktop.db.models import NoticeTemplate

    _patron, numbers = make_waiting(seeded_db, "Mail", 3)
    with seeded_db.read() as session:
        ids = list(session.scalars(select(Request.id).where(Request.transaction_number.in_(numbers))))
    batch = build_notices(seeded_db, ids)
    assert len(batch.pages) == 1 and sorted(batch.request_ids) == sorted(ids)
    with seeded_db.write() as session:  # a template staff wrote before letters could list items
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == "Print Notice"))
        assert template is not None
        template.body_html = (
            "<p>Dear {{ patron.full_name }}: {{ request.title }} ({{ request.transaction_number }})</p>"
        )
    batch = build_notices(seeded_db, ids)
    assert len(batch.pages) == 3 and sorted(batch.request_ids) == sorted(ids)
    assert [str(n) in page.html for page, n in zip(batch.pages, numbers, strict=True)] == [True] * 3


# --------------------------------------------------------------------------------------- filter, collapse


def test_filter_narrows_every_group_and_ctrl_f_focuses_it(dialog: ContactCustomersDialog, qtbot: QtBot) -> None:
    everything = {m: {r.request_id for r in model.rows()} for m, model in dialog.models.items()}
    target = dialog.models[PHONE].row_at(0)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    dialog.tables[PHONE].setFocus()
    qtbot.keyClick(dialog.tables[PHONE], Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is dialog.filter_edit

    qtbot.keyClicks(dialog.filter_edit, str(target.transaction_number))
    qtbot.waitUntil(lambda: dialog.models[PHONE].rowCount() == 1, timeout=5_000)  # applied once typing pauses
    assert [r.transaction_number for r in dialog.models[PHONE].rows()] == [target.transaction_number]
    dialog.filter_edit.setText(target.patron_name.upper())  # a name, in any case
    qtbot.waitUntil(lambda: all(r.patron_name == target.patron_name for r in dialog.models[PHONE].rows()),
                    timeout=5_000)  # fmt: skip
    assert target.request_id in {r.request_id for r in dialog.models[PHONE].rows()}
    assert "match the filter" in dialog.group_summaries[PHONE].text()
    dialog.filter_edit.setText(target.pickup)  # a location
    qtbot.waitUntil(lambda: all(r.pickup == target.pickup for m in dialog.models.values() for r in m.rows()),
                    timeout=5_000)  # fmt: skip
    dialog.filter_edit.clear()
    qtbot.waitUntil(lambda: {m: {r.request_id for r in mod.rows()} for m, mod in dialog.models.items()} == everything,
                    timeout=5_000)  # fmt: skip


def test_groups_collapse_and_the_state_is_remembered(ctx: AppContext, qtbot: QtBot) -> None:
    form = ContactCustomersDialog(ctx)
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        pass
    form.resize(1100, 700)
    form.show()
    qtbot.waitExposed(form)
    # The E-Mail group needs no action: collapsed by default to its one line (count, Send Now, Retry Failed).
    assert form.is_collapsed(EMAIL) and not form.tables[EMAIL].isVisible()
    assert form.send_now_button.isVisible()
    assert form.group_boxes[EMAIL].height() < form.height() / 6
    assert form.tables[PHONE].isVisible() and form.tables[MAIL].isVisible()
    qtbot.mouseClick(form.toggles[PHONE], Qt.MouseButton.LeftButton)
    assert form.is_collapsed(PHONE) and not form.tables[PHONE].isVisible()
    qtbot.mouseClick(form.toggles[EMAIL], Qt.MouseButton.LeftButton)
    assert not form.is_collapsed(EMAIL) and form.tables[EMAIL].isVisible()
    form.close()

    again = ContactCustomersDialog(ctx)  # a new form remembers how staff left the groups
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.loaded, timeout=10_000):
        pass
    try:
        assert again.is_collapsed(PHONE) and not again.is_collapsed(EMAIL) and not again.is_collapsed(MAIL)
    finally:  # leave the workstation's settings as the other tests expect them
        again.set_collapsed(PHONE, False)
        again.set_collapsed(EMAIL, True)


# ------------------------------------------------------------------------------------------------ refresh


def test_refresh_changes_only_what_changed_and_keeps_the_selection(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot
) -> None:
    patron_id, numbers = make_waiting(seeded_db, "Phone", 3)
    refresh(dialog, qtbot)
    model, view = dialog.models[PHONE], dialog.tables[PHONE]
    signals: list[str] = []
    for name in ("rowsInserted", "rowsRemoved", "dataChanged", "modelReset", "layoutChanged"):
        getattr(model, name).connect(lambda *_args, name=name: signals.append(name))
    refresh(dialog, qtbot)  # nothing changed: the model is not touched at all
    assert signals == []

    top = top_row_of(model, patron_id)
    view.expand(top)
    dialog.select_requests(numbers[1:2])
    other = next(r for r in model.rows() if r.patron_id != patron_id)
    route_request(seeded_db, other.transaction_number, Status.NOTIFIED_VIA_PHONE, "desk2")  # another desk called
    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        dialog.on_timer()  # the periodic refresh
    assert other.request_id not in {r.request_id for r in model.rows()}
    assert "rowsRemoved" in signals and "modelReset" not in signals
    assert [r.transaction_number for r in dialog.selected_rows()] == [numbers[1]]
    assert view.isExpanded(top_row_of(model, patron_id))


# ---------------------------------------------------------------------------------------------- the screen


def test_the_window_fits_the_available_screen(dialog: ContactCustomersDialog, qtbot: QtBot) -> None:
    screen = dialog.screen().availableGeometry()
    dialog.resize(screen.width() * 3, screen.height() * 3)
    dialog.move(screen.right() - 10, screen.bottom() - 10)
    fit_to_screen(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert screen.contains(dialog.frameGeometry()) or dialog.minimumSizeHint().height() > screen.height()
    for button in (dialog.phone_button, dialog.print_button, dialog.open_request_button):
        corner = button.mapToGlobal(button.rect().bottomRight())
        assert screen.contains(corner), f"{button.objectName()} is off the screen at {corner}"


# ------------------------------------------------------------------------------------------------- memory


def test_rows_are_kept_as_plain_tuples_the_collector_untracks(seeded_db: Database) -> None:
    plain = load_contact_rows(seeded_db)
    rows = load_contact_customers(seeded_db, now=plain.loaded_at)
    for method in NotificationMethod:
        assert [as_row(r) for r in plain.group(method)] == list(rows.group(method))
    gc.collect()  # the collector untracks tuples of plain values when it passes over them
    calls = ContactRow._fields.index("calls")
    kept = [r for m in NotificationMethod for r in plain.group(m) if not r[calls]]
    assert kept and all(type(r) is tuple and not gc.is_tracked(r) for r in kept)
