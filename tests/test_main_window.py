"""The main window and Borrowing tab on a real seeded SQLite file: counts, queues, opening requests, refresh."""

from __future__ import annotations

import functools
import threading

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLineEdit,
    QToolButton,
)
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.config import Settings, default_database_path
from desktop.db.engine import sqlite_url
from desktop.db.models import Request
from desktop.domain.statuses import QUEUE_ORDER, Status
from desktop.services.database import Database, open_database
from desktop.services.requests.status import route_request
from desktop.ui.context import AppContext
from desktop.ui.main_window import MainWindow
from desktop.ui.requests.queue_model import COUNT_ROLE
from desktop.ui.requests.request_form import RequestForm
from desktop.ui.requests.request_table_model import MAX_PAGES, PAGE
from tests.main_window_helpers import close_window, main_window, open_window, second_db, sql, wait_idle

__all__ = ["main_window", "second_db"]  # fixtures used below

ACC = Status.AWAITING_CUSTOMER_CONTACT.value


def choose(qtbot: QtBot, window: MainWindow, status: str | None) -> None:
    window.workspace.select_queue(status)
    wait_idle(qtbot, window)


def form_for(window: MainWindow, qtbot: QtBot) -> RequestForm:
    qtbot.waitUntil(lambda: bool(window.findChildren(RequestForm)))
    form = window.findChildren(RequestForm)[-1]
    qtbot.waitUntil(lambda: form.details is not None and not form.busy)
    return form


def test_queue_counts_match_the_database(qtbot: QtBot, main_window: MainWindow, seeded_db: Database) -> None:
    expected = dict(sql(seeded_db, "SELECT status, COUNT(*) FROM requests GROUP BY status"))
    model = main_window.workspace.queue_model
    shown = {status.value: model.index_of(status.value).siblingAtColumn(1).data(COUNT_ROLE) for status in QUEUE_ORDER}
    assert {k: v for k, v in shown.items() if v} == expected
    assert model.index_of(None).data(COUNT_ROLE) == 300
    assert model.index_of(ACC).siblingAtColumn(1).data() == f"{expected[ACC]:,}"
    assert main_window.workspace.table_model.total == 300  # "All borrowing requests" is shown first


def test_choosing_a_queue_shows_only_its_requests(qtbot: QtBot, main_window: MainWindow, seeded_db: Database) -> None:
    choose(qtbot, main_window, ACC)
    model = main_window.workspace.table_model
    expected = [tn for (tn,) in sql(seeded_db, "SELECT transaction_number FROM requests WHERE status = ? "
                                    "ORDER BY transaction_number", ACC)]  # fmt: skip
    assert model.total == len(expected) > 0
    assert [model.transaction_number(row) for row in range(model.total)] == expected
    assert ACC in main_window.workspace.title.text()


def test_double_click_opens_the_right_request(qtbot: QtBot, main_window: MainWindow) -> None:
    table = main_window.workspace.table
    row = 4
    tn = main_window.workspace.table_model.transaction_number(row)
    rect = table.visualRect(main_window.workspace.table_model.index(row, 2))
    # A real double-click: press/release, then the second press arrives as a double-click event.
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    form = form_for(main_window, qtbot)
    assert form.objectName() == "requestForm"
    assert form.transaction_number == tn
    assert form.tn_label.text() == str(tn)
    assert form.isVisible()


def test_enter_opens_the_current_request(qtbot: QtBot, main_window: MainWindow) -> None:
    table = main_window.workspace.table
    model = main_window.workspace.table_model
    table.setFocus()
    table.selectionModel().setCurrentIndex(
        model.index(7, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
    )
    qtbot.keyClick(table, Qt.Key.Key_Return)
    form = form_for(main_window, qtbot)
    assert form.transaction_number == model.transaction_number(7)
    # Opening it again raises the same form instead of a second one.
    qtbot.keyClick(table, Qt.Key.Key_Return)
    assert len([f for f in main_window.findChildren(RequestForm) if f.isVisible()]) == 1


def test_models_pass_the_model_tester(qtbot: QtBot, qtmodeltester: object, main_window: MainWindow) -> None:
    qtmodeltester.check(main_window.workspace.queue_model)  # type: ignore[attr-defined]
    qtmodeltester.check(main_window.workspace.table_model)  # type: ignore[attr-defined]
    choose(qtbot, main_window, ACC)
    qtmodeltester.check(main_window.workspace.table_model)  # type: ignore[attr-defined]


def test_models_pass_the_model_tester_through_a_refresh(
    qtbot: QtBot, qtmodeltester: object, main_window: MainWindow, second_db: Database
) -> None:
    model = main_window.workspace.table_model
    choose(qtbot, main_window, ACC)
    qtmodeltester.check(model, force_py=True)  # type: ignore[attr-defined]  # keeps watching signals
    for row in (0, 2):
        route_request(second_db, model.transaction_number(row) or 0, Status.NOTIFIED_VIA_PHONE, "elsewhere")
    main_window.workspace.refresh()
    wait_idle(qtbot, main_window)
    assert model.total > 0


def test_change_from_another_workstation_shows_after_refresh_keeping_selection(
    qtbot: QtBot, main_window: MainWindow, second_db: Database, seeded_db: Database
) -> None:
    workspace = main_window.workspace
    choose(qtbot, workspace.window(), ACC)  # type: ignore[arg-type]
    model = workspace.table_model
    before = model.total
    gone = model.transaction_number(1)
    kept = model.transaction_number(3)
    assert gone is not None and kept is not None
    workspace.select_transaction(kept)
    route_request(second_db, gone, Status.NOTIFIED_VIA_PHONE, "other desk")  # another workstation
    qtbot.keyClick(main_window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: model.total == before - 1)
    wait_idle(qtbot, main_window)
    assert gone not in [model.transaction_number(r) for r in range(model.total)]
    assert workspace.selected_transaction_numbers() == [kept]  # followed its request up one row
    assert workspace.table.currentIndex().row() == 2
    count = workspace.queue_model.index_of(ACC).siblingAtColumn(1).data(COUNT_ROLE)
    assert count == sql(seeded_db, "SELECT COUNT(*) FROM requests WHERE status = ?", ACC)[0][0] == before - 1


def test_poll_picks_up_other_workstations_without_a_signal(
    qtbot: QtBot, main_window: MainWindow, second_db: Database
) -> None:
    choose(qtbot, main_window, ACC)
    model = main_window.workspace.table_model
    before = model.total
    route_request(second_db, model.transaction_number(0) or 0, Status.NOTIFIED_VIA_PHONE, "other desk")
    main_window.workspace._poll.setInterval(50)
    main_window.workspace._poll.start()
    qtbot.waitUntil(lambda: model.total == before - 1, timeout=5000)


def test_poll_picks_up_an_edit_made_elsewhere(qtbot: QtBot, main_window: MainWindow, second_db: Database) -> None:
    """A title corrected on another workstation (no status change) reaches this window by the poll alone."""
    choose(qtbot, main_window, ACC)
    model = main_window.workspace.table_model
    title_column = next(
        c for c in range(model.columnCount()) if model.headerData(c, Qt.Orientation.Horizontal) == "Title"
    )
    tn = model.transaction_number(0)
    assert tn is not None
    with second_db.write() as session:  # another workstation edits the title (Request.updated_at moves)
        request = session.scalars(select(Request).where(Request.transaction_number == tn)).one()
        request.request_type, request.loan_title = "Loan", "Corrected Title"
    main_window.workspace._poll.setInterval(50)
    main_window.workspace._poll.start()
    qtbot.waitUntil(lambda: model.index(0, title_column).data() == "Corrected Title", timeout=5000)


def test_new_rows_from_elsewhere_are_appended_without_a_reset(
    qtbot: QtBot, main_window: MainWindow, second_db: Database
) -> None:
    choose(qtbot, main_window, Status.NOTIFIED_VIA_PHONE.value)
    model = main_window.workspace.table_model
    before = model.total
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    acc = [tn for (tn,) in sql(second_db, "SELECT transaction_number FROM requests WHERE status = ?", ACC)][:2]
    for tn in acc:
        route_request(second_db, tn, Status.NOTIFIED_VIA_PHONE, "other desk")
    main_window.workspace.refresh()
    qtbot.waitUntil(lambda: model.total == before + 2)
    assert not resets


def test_filter_and_sort_are_done_by_the_database(qtbot: QtBot, main_window: MainWindow, seeded_db: Database) -> None:
    workspace = main_window.workspace
    model = workspace.table_model
    tn = model.transaction_number(10)
    qtbot.keyClicks(workspace.filter_edit, str(tn))
    qtbot.keyClick(workspace.filter_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: model.query is not None and model.query.text == str(tn))
    wait_idle(qtbot, main_window)
    assert model.transaction_number(0) == tn
    workspace.filter_edit.clear()
    workspace.apply_filter()
    wait_idle(qtbot, main_window)
    workspace.table.horizontalHeader().setSortIndicator(2, Qt.SortOrder.DescendingOrder)  # Patron
    wait_idle(qtbot, main_window)
    assert model.query is not None and model.query.sort == "patron" and model.query.descending
    rows = [model.row_data(r) for r in range(min(model.total, PAGE))]
    expected = sql(seeded_db, "SELECT r.transaction_number FROM requests r JOIN patrons p ON p.id = r.patron_id "
                   "ORDER BY p.last_name DESC, p.first_name DESC, r.transaction_number DESC LIMIT ?", PAGE)  # fmt: skip
    assert [r.transaction_number for r in rows if r] == [tn for (tn,) in expected]


def test_large_queue_is_read_in_pages(qtbot: QtBot, sqlite_db: Database, settings: Settings) -> None:
    from desktop.services.admin.demo import seed_demo

    seed_demo(sqlite_db, patrons=20, requests=6_500, status_weights={Status.REQUEST_SENT: 1})
    window = open_window(qtbot, sqlite_db, settings)
    try:
        choose(qtbot, window, Status.REQUEST_SENT.value)
        model = window.workspace.table_model
        assert model.total == 6_500
        assert model.cached_rows() <= 2 * PAGE  # the first rows only, not the queue
        table = window.workspace.table
        for row in range(0, 6_500, PAGE):  # scroll through the whole queue
            table.scrollTo(model.index(row, 0))
            qtbot.waitUntil(lambda row=row: model.row_data(row) is not None)  # type: ignore[misc]
        assert model.cached_rows() <= MAX_PAGES * PAGE
        table.scrollToBottom()
        qtbot.waitUntil(lambda: model.row_data(6_499) is not None)
        first = sql(sqlite_db, "SELECT MIN(transaction_number), MAX(transaction_number) FROM requests")[0]
        assert model.transaction_number(6_499) == first[1]
        table.scrollToTop()
        qtbot.waitUntil(lambda: model.row_data(0) is not None)
        assert model.transaction_number(0) == first[0]
    finally:
        close_window(window)


def test_keyboard_shortcuts(qtbot: QtBot, main_window: MainWindow) -> None:
    assert main_window.refresh_action.shortcut() == QKeySequence(QKeySequence.StandardKey.Refresh)
    main_window.activateWindow()
    qtbot.waitUntil(main_window.isActiveWindow)
    main_window.workspace.select_queue(ACC)
    wait_idle(qtbot, main_window)
    qtbot.keyClick(main_window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # Search requests
    assert QApplication.focusWidget() is main_window.workspace.filter_edit
    assert main_window.workspace.current_query().status is None  # searches every queue
    refreshed: list[bool] = []
    main_window.refresh_action.triggered.connect(lambda: refreshed.append(True))
    qtbot.keyClick(main_window, Qt.Key.Key_F5)
    assert refreshed == [True]
    for action in (main_window.open_action, main_window.search_action, main_window.refresh_action,
                   main_window.contact_action, main_window.quit_action):  # fmt: skip
        assert not action.shortcut().isEmpty(), action.objectName()


def test_contact_customers_split_button(qtbot: QtBot, main_window: MainWindow) -> None:
    button = main_window.findChild(QToolButton, "contactCustomersButton")
    assert button is not None
    assert button.popupMode() == QToolButton.ToolButtonPopupMode.MenuButtonPopup
    names = [a.objectName() for a in button.menu().actions()]
    assert names == ["manuallyNotifyAction", "sendNowAction"]
    # This window does not run the System Manager, so "send now" says why instead of doing nothing.
    assert not main_window.send_now_action.isEnabled()
    assert "System Manager" in main_window.send_now_action.toolTip()


def test_contact_customers_opens_the_form(qtbot: QtBot, main_window: MainWindow) -> None:
    from PySide6.QtWidgets import QWidget

    if not main_window.contact_action.isEnabled():
        assert "not available yet" in main_window.contact_action.toolTip()
        return
    main_window.manually_notify_action.trigger()
    qtbot.waitUntil(lambda: main_window.findChild(QWidget, "contactCustomersDialog") is not None)
    dialog = main_window.findChild(QWidget, "contactCustomersDialog")
    assert dialog is not None
    qtbot.waitUntil(lambda: not main_window.ctx.runner.busy)
    dialog.close()


def test_every_widget_people_use_has_names(main_window: MainWindow) -> None:
    for kind in (QAbstractButton, QLineEdit, QAbstractItemView):
        for widget in main_window.findChildren(kind):
            if widget.parent() is None or not widget.isVisibleTo(main_window):
                continue
            if isinstance(widget, QHeaderView) or widget.objectName().startswith("qt_"):
                continue  # parts of a view, and Qt's own (tab scroll arrows, …)
            assert widget.objectName(), widget
            assert widget.accessibleName(), widget.objectName()
    for name in ("borrowingTab", "contactCustomersButton", "queueTree", "requestTable"):
        assert main_window.findChild(object, name) is not None, name  # type: ignore[arg-type]
    assert main_window.objectName() == "mainWindow"


def test_status_bar_names_database_and_staff(main_window: MainWindow, seeded_db: Database) -> None:
    assert seeded_db.display_name in main_window.database_label.text()
    assert "default" not in main_window.database_label.text()
    assert main_window.staff_label.text() == "Signed in: tester"


def test_empty_database_offers_demo_data(qtbot: QtBot, settings: Settings) -> None:
    db, _ = open_database(sqlite_url(default_database_path()))
    try:
        window = open_window(qtbot, db, settings)
        try:
            workspace = window.workspace
            assert workspace.stack.currentWidget() is workspace.empty_page
            assert "(default local SQLite file)" in window.database_label.text()
            import_button = workspace.import_button
            assert import_button.isEnabled() or "not available yet" in import_button.toolTip()
            qtbot.mouseClick(workspace.demo_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: workspace.stack.currentWidget() is workspace.table, timeout=20_000)
            wait_idle(qtbot, window)
            assert workspace.table_model.total == sql(db, "SELECT COUNT(*) FROM requests")[0][0] > 0
        finally:
            close_window(window)
    finally:
        db.dispose()


def test_unreachable_database_shows_a_clear_error_and_recovers(
    qtbot: QtBot, settings: Settings, seeded_db: Database
) -> None:
    db = Database("postgresql://callslip@127.0.0.1:9/nowhere")  # nothing listens on port 9
    window = MainWindow(AppContext(db, settings.with_changes(run_poller=False)))
    window.show()
    try:
        banner = window.workspace.error_banner
        qtbot.waitUntil(banner.isVisible, timeout=15_000)
        # The counts and the list are read separately; whichever fails first names what it could not read.
        text = window.workspace.error_label.text()
        assert "Cannot read the queues from" in text or "Cannot read the requests from" in text
        assert "127.0.0.1" in window.workspace.error_label.text()
        assert not window.grab().isNull()  # still painting
        qtbot.waitUntil(lambda: not window.ctx.runner.busy, timeout=15_000)
        qtbot.waitUntil(lambda: window.workspace.table_model.failed, timeout=15_000)
        # The database is reachable again (here: the workstation is pointed at a working one).
        window.ctx.switch_database(Database(seeded_db.url))
        qtbot.waitUntil(lambda: window.workspace.table_model.total == 300, timeout=15_000)
        assert not banner.isVisible()
    finally:
        window.close()
        window.ctx.db.dispose()


def test_slow_work_shows_busy_and_the_window_keeps_painting(qtbot: QtBot, main_window: MainWindow) -> None:
    gate = threading.Event()
    main_window.ctx.run(functools.partial(gate.wait, 60))  # a slow database call stands in the worker's queue
    main_window.workspace.refresh()  # queued behind it
    try:
        qtbot.waitUntil(main_window.busy_bar.isVisible)
        # The window paints while the slow call is still running: the GUI thread does not wait for it (no clock
        # involved: the call ends only when the test lets it).
        assert not main_window.grab().isNull()
        assert main_window.ctx.runner.busy and main_window.busy_bar.isVisible()
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not main_window.busy_bar.isVisible())


def test_a_new_list_is_painted_when_its_rows_arrive_or_empty_after_a_moment(
    qtbot: QtBot, main_window: MainWindow
) -> None:
    """Choosing a queue does not paint the table empty while the rows are read; it paints once they arrive, and
    shows the empty (loading) table after all when they take longer than a moment."""
    workspace = main_window.workspace
    table, model = workspace.table, workspace.table_model
    scroll_bar = table.verticalScrollBar()
    assert scroll_bar.isVisible()  # all 300 requests: more than fit
    gate = threading.Event()
    main_window.ctx.run(functools.partial(gate.wait, 60))  # the worker is busy: the new list cannot arrive yet
    try:
        workspace.select_queue(ACC)
        assert model.loading and not table.updatesEnabled()
        assert table.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOn  # kept through the reset
        qtbot.waitUntil(table.updatesEnabled)  # no rows after a moment: the empty table is shown
        assert model.loading and model.rowCount() == 0
        assert table.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not model.loading)
    choose(qtbot, main_window, None)
    qtbot.waitUntil(scroll_bar.isVisible)  # from the short list to a long one: the bar comes back
    with qtbot.waitSignal(model.loaded):
        workspace.reload()  # the same long list read again: the scroll bar never goes away meanwhile
        assert not table.updatesEnabled() and scroll_bar.isVisible()
    # Painted with its bar; waited for, not asserted at once: on a loaded machine the read may take longer than
    # the moment, and then the empty table (without the bar) is shown first, as it should be.
    qtbot.waitUntil(lambda: table.updatesEnabled() and scroll_bar.isVisible())
    assert table.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAsNeeded
    assert model.total == 300


def test_geometry_and_splitter_are_remembered(qtbot: QtBot, seeded_db: Database, settings: Settings) -> None:
    window = open_window(qtbot, seeded_db, settings)
    qtbot.addWidget(window, before_close_func=close_window)
    width = max(780, window.minimumSizeHint().width())  # the ribbon's buttons set the least width
    assert width <= 800
    window.resize(width, 560)  # inside the offscreen platform's 800×600 screen, which restoreGeometry clamps to
    qtbot.wait(20)  # let the layout follow the new size, as it does on screen
    window.workspace.splitter.setSizes([220, 540])
    qtbot.wait(20)
    sizes = window.workspace.splitter.sizes()
    assert sizes[0] == 220
    close_window(window)
    again = open_window(qtbot, seeded_db, settings)
    try:
        assert (again.size().width(), again.size().height()) == (width, 560)
        assert again.workspace.splitter.sizes() == sizes
    finally:
        close_window(again)


def test_closing_stops_background_threads(qtbot: QtBot, seeded_db: Database, settings: Settings) -> None:
    from desktop.ui.threads import running_threads

    window = open_window(qtbot, seeded_db, settings)
    assert running_threads()
    close_window(window)
    assert not running_threads()


def test_switching_database_reloads_everything(qtbot: QtBot, main_window: MainWindow, tmp_path: object) -> None:
    from pathlib import Path

    from desktop.services.admin.demo import seed_demo

    other, _ = open_database(sqlite_url(Path(str(tmp_path)) / "other.sqlite3"))
    seed_demo(other, patrons=5, requests=17)
    main_window.ctx.switch_database(other)  # the old handle is disposed by the context
    qtbot.waitUntil(lambda: main_window.workspace.table_model.total == 17)
    wait_idle(qtbot, main_window)
    assert main_window.workspace.queue_model.index_of(None).data(COUNT_ROLE) == 17
    assert "other.sqlite3" in main_window.database_label.text()
    close_window(main_window)
    other.dispose()


def test_window_runs_and_stops_this_workstations_system_manager(
    qtbot: QtBot, seeded_db: Database, settings: Settings
) -> None:
    from PySide6.QtWidgets import QWidget

    from desktop.ui.threads import running_threads

    window = MainWindow(AppContext(seeded_db, settings))  # run_poller is on by default; no SMTP server set up
    qtbot.addWidget(window, before_close_func=close_window)
    try:
        assert window.poller is not None and window.poller.running
        assert window.statusBar().findChild(QWidget, "pollerIndicator") is not None
        assert "callslip-system-manager" in running_threads()
        asked: list[bool] = []
        window.ctx.sendNowRequested.connect(lambda: asked.append(True))
        assert window.send_now_action.isEnabled()
        window.send_now_action.trigger()
        assert asked == [True]
        assert "System Manager" in window.statusBar().currentMessage()
    finally:
        close_window(window)
    assert not running_threads()
