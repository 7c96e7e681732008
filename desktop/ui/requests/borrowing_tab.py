"""The Borrowing workspace: queues with counts on the left, the chosen queue's requests in the middle.

Everything shown comes from services run with ``ctx.run``; this widget only decides what to ask for and when:
counts every :data:`POLL_MS` (so other workstations' work appears), counts and rows when ``ctx.changed`` says
requests or patrons moved, everything when the database is switched. An empty database shows a first-run page
(load demo data, import CSV) in place of the table.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import shiboken6
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from desktop.services.admin.demo import seed_demo
from desktop.services.requests.queues import QueueQuery
from desktop.services.requests.queues_count import QueueSnapshot, queue_snapshot
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, is_registered, open_window
from desktop.ui.requests.queue_model import ALL_REQUESTS, QueueModel
from desktop.ui.requests.request_table_model import COLUMNS, RequestTableModel
from desktop.ui.widgets.colours import Tone, set_banner_frame
from desktop.ui.widgets.tables import record_table, selected_rows

#: How often counts are re-read so other workstations' changes show up.
POLL_MS = 10_000
#: Filter typing pause before the database is asked.
FILTER_DELAY_MS = 300
#: How long the table keeps its last picture while a new list loads before it is painted empty.
BLANK_DELAY_MS = 100
_COLUMN_WIDTHS = (100, 190, 150, 80, 60, 260, 150, 90, 170, 125)


class BorrowingWorkspace(QWidget):
    """Queue tree, filter, request table (or the first-run page) and an error line.

    Signals:
        snapshotChanged(object): new queue counts were read (a :class:`QueueSnapshot`).
        openRequested(int): staff asked to open a request (double-click, Enter, Open button).
        statusMessage(str): something to show in the status bar for a while.
    """

    snapshotChanged = Signal(object)
    openRequested = Signal(int)
    statusMessage = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("borrowingWorkspace")
        self.setAccessibleName("Borrowing queues and requests")
        self.snapshot: QueueSnapshot | None = None
        self._counting = False
        self._seeding = False

        self.queue_model = QueueModel(self)
        self.queue_tree = QTreeView()
        self.queue_tree.setObjectName("queueTree")
        self.queue_tree.setAccessibleName("Queues")
        self.queue_tree.setModel(self.queue_model)
        self.queue_tree.setUniformRowHeights(True)
        self.queue_tree.setRootIsDecorated(False)
        self.queue_tree.setItemsExpandable(False)
        self.queue_tree.expandAll()
        self.queue_tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.queue_tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.queue_tree.selectionModel().currentChanged.connect(self.on_queue_chosen)

        self.table_model = RequestTableModel(ctx, self)
        self.table = record_table(self.table_model, "requestTable", "Requests in the chosen queue", multi=True)
        # Fixed row heights and column widths: nothing may measure all 100,000 rows.
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        table_header = self.table.horizontalHeader()
        table_header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        table_header.setStretchLastSection(True)
        table_header.setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        for column, width in enumerate(_COLUMN_WIDTHS[: len(COLUMNS)]):
            self.table.setColumnWidth(column, width)
        self.table.setSortingEnabled(True)
        self.table.doubleClicked.connect(self.on_table_double_clicked)
        self.open_action = QAction("Open request", self.table)
        self.open_action.setObjectName("openRequestAction")
        self.open_action.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        self.open_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.open_action.triggered.connect(self.open_current)
        self.table.addAction(self.open_action)
        self.table_model.modelAboutToBeReset.connect(self.on_list_reset)
        self.table_model.modelReset.connect(self.on_list_reset_done)
        self.table_model.loaded.connect(self.on_rows_loaded)
        self.table_model.refreshed.connect(self.on_rows_loaded)
        self.table_model.loadFailed.connect(self.on_load_failed)

        self.title = QLabel(ALL_REQUESTS)
        self.title.setObjectName("queueTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the pane
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("requestFilter")
        self.filter_edit.setAccessibleName("Filter requests")
        self.filter_edit.setPlaceholderText("Filter by transaction number, patron or title  (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(220)
        self.filter_edit.setMaximumWidth(440)
        self.filter_edit.textChanged.connect(self.on_filter_typed)
        self.filter_edit.returnPressed.connect(self.apply_filter)
        self._filter_timer = ctx.timer(self, FILTER_DELAY_MS, self.apply_filter, single_shot=True)

        self.error_label = QLabel()
        self.error_label.setObjectName("errorMessage")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.retry_button = QPushButton("&Retry")
        self.retry_button.setObjectName("retryButton")
        self.retry_button.setAccessibleName("Retry reading the database")
        self.retry_button.clicked.connect(self.reload)
        self.error_banner = QFrame()
        self.error_banner.setObjectName("errorBanner")
        set_banner_frame(self.error_banner, Tone.ERROR, [self.error_label])
        banner = QHBoxLayout(self.error_banner)
        banner.addWidget(self.error_label, 1)
        banner.addWidget(self.retry_button)
        self.error_banner.hide()

        self.empty_page = self._build_empty_page()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty_page)

        right = QWidget()
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.filter_edit, 1)
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(4, 0, 0, 0)
        right_column.addLayout(top)
        right_column.addWidget(self.error_banner)
        right_column.addWidget(self.stack, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("borrowingSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.queue_tree)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([300, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.splitter)

        # Owned by this tab and stopped by the context when the workstation shuts down (see AppContext.timer).
        self._poll = ctx.timer(self, POLL_MS, self.poll, name="queuePollTimer")
        self._changed_timer = ctx.timer(self, 100, self.refresh, single_shot=True)
        self._blank_timer = ctx.timer(self, BLANK_DELAY_MS, self.resume_table_painting, single_shot=True)
        ctx.changed.connect(self.on_data_changed)
        ctx.databaseChanged.connect(self.reload)

    def _build_empty_page(self) -> QWidget:
        page = QWidget()
        page.setObjectName("emptyState")
        page.setAccessibleName("The database has no requests yet")
        heading = QLabel("<h2>No requests yet</h2>")
        text = QLabel(
            "This database holds no interlibrary-loan requests. Load demo data to look around, or import your "
            "patrons and requests from ILLiad CSV exports."
        )
        text.setWordWrap(True)
        # A wrapped label placed with an alignment flag gets a one-line height; centre it with stretches instead.
        text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        text.setMaximumWidth(520)
        text_row = QHBoxLayout()
        text_row.addStretch(1)
        text_row.addWidget(text, 10)
        text_row.addStretch(1)
        self.demo_button = QPushButton("Load &demo data")
        self.demo_button.setObjectName("loadDemoButton")
        self.demo_button.setAccessibleName("Load demo data")
        self.demo_button.clicked.connect(self.load_demo_data)
        self.import_button = QPushButton("&Import patrons/requests from CSV…")
        self.import_button.setObjectName("importCsvButton")
        self.import_button.setAccessibleName("Import patrons and requests from CSV")
        self.import_button.clicked.connect(self.open_import)
        if not is_registered(Window.IMPORT_CSV):
            self.import_button.setEnabled(False)
            self.import_button.setToolTip(
                "The CSV import window is not available yet; use callslip-manager import-patrons / import-requests."
            )
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.demo_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        box = QVBoxLayout(page)
        box.addStretch(1)
        box.addWidget(heading, 0, Qt.AlignmentFlag.AlignHCenter)
        box.addLayout(text_row)
        box.addLayout(buttons)
        box.addStretch(2)
        return page

    # --- what other parts call --------------------------------------------------------------------------------
    def start(self) -> None:
        """Read counts and show all requests; start polling."""
        self.queue_tree.setCurrentIndex(self.queue_model.index_of(None))
        self.poll()
        self._poll.start()

    def stop(self) -> None:
        """Stop polling (the window is closing)."""
        self._poll.stop()
        self._filter_timer.stop()
        self._changed_timer.stop()
        self.resume_table_painting()
        self.ctx.release(self)
        self.ctx.release(self.table_model)

    def current_query(self) -> QueueQuery:
        """The list on screen (its queue, filter and order)."""
        return self.table_model.query or QueueQuery()

    def select_queue(self, status: str | None) -> None:
        """Show a queue (``None``: all requests)."""
        index = self.queue_model.index_of(status)
        if index.isValid():
            self.queue_tree.setCurrentIndex(index)

    def focus_filter(self) -> None:
        """Search requests: put the cursor in the filter box."""
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def selected_transaction_numbers(self) -> list[int]:
        """Loaded requests selected in the table, in row order."""
        rows = selected_rows(self.table)  # from the ranges: selectedRows() is slow on a Ctrl+A of thousands
        found = (self.table_model.transaction_number(row) for row in rows)
        return [tn for tn in found if tn is not None]

    def current_transaction_number(self) -> int | None:
        """The request under the table's cursor (else the first selected one)."""
        current = self.table.currentIndex()
        if current.isValid():
            tn = self.table_model.transaction_number(current.row())
            if tn is not None:
                return tn
        selected = self.selected_transaction_numbers()
        return selected[0] if selected else None

    def select_transaction(self, transaction_number: int) -> bool:
        """Select a request if its row is loaded (used after Previous/Next in the form)."""
        row = self.table_model.row_of(transaction_number)
        if row is None:
            return False
        index = self.table_model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.scrollTo(index)
        return True

    # --- slots ------------------------------------------------------------------------------------------------
    @Slot()
    def poll(self) -> None:
        """Re-read counts (cheap); rows follow when the counts or the change marker moved."""
        if self._counting or self.ctx.is_stopped:
            return
        self._counting = True
        handle = self.ctx.run(functools.partial(queue_snapshot, self.ctx.db), self.on_snapshot, self.on_count_failed)
        self._counting = not handle.cancelled

    @Slot()
    def refresh(self) -> None:
        """F5: counts and the rows on screen, in place (nothing once the workstation is shutting down)."""
        if self.ctx.is_stopped:
            return
        self.poll()
        self.table_model.refresh()

    @Slot()
    def reload(self) -> None:
        """Start over (database switched, Retry after an error): counts, then the current list from scratch."""
        self.error_banner.hide()
        self.poll()
        self.table_model.set_query(self.current_query(), force=True)

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Requests or patrons changed in this app: refresh soon (several changes in a row refresh once)."""
        if topic in {"requests", "patrons"}:
            self._changed_timer.start()

    @Slot(QModelIndex, QModelIndex)
    def on_queue_chosen(self, current: QModelIndex, _previous: QModelIndex) -> None:
        """Show the chosen queue's requests (keeping the filter and the order)."""
        status = self.queue_model.status_at(current)
        self.table_model.set_query(replace(self.current_query(), status=status))
        self._update_title()

    @Slot(str)
    def on_filter_typed(self, _text: str) -> None:
        """Wait for a pause in typing before asking the database."""
        self._filter_timer.start()

    @Slot()
    def apply_filter(self) -> None:
        """Filter the list by what was typed (done by the database)."""
        self._filter_timer.stop()
        text = " ".join(self.filter_edit.text().split())
        self.table_model.set_query(replace(self.current_query(), text=text))

    @Slot(QModelIndex)
    def on_table_double_clicked(self, index: QModelIndex) -> None:
        """Double-click opens the request form."""
        tn = self.table_model.transaction_number(index.row())
        if tn is not None:
            self.openRequested.emit(tn)

    @Slot()
    def open_current(self) -> None:
        """Enter / Open request: open the request under the cursor."""
        tn = self.current_transaction_number()
        if tn is not None:
            self.openRequested.emit(tn)

    def on_snapshot(self, snapshot: QueueSnapshot) -> None:
        """New counts: update the tree, the first-run page, and the rows if anything moved."""
        if not shiboken6.isValid(self):
            return
        self._counting = False
        previous, self.snapshot = self.snapshot, snapshot
        self.queue_model.apply(snapshot)
        self.queue_tree.expandAll()
        self.error_banner.hide()
        self.stack.setCurrentWidget(self.table if snapshot.total else self.empty_page)
        if self.table_model.failed:  # the database is back: read the list that failed
            self.table_model.set_query(self.current_query(), force=True)
        elif previous is not None and previous.marker != snapshot.marker:
            self.table_model.refresh()
        self._update_title()
        self.snapshotChanged.emit(snapshot)

    def on_count_failed(self, error: object) -> None:
        """Counting failed: the database is unreachable or broken; say so and offer Retry."""
        if not shiboken6.isValid(self):
            return
        self._counting = False
        self._show_error(f"Cannot read the queues from {self.ctx.db.display_name}: {error}")

    @Slot()
    def on_list_reset(self) -> None:
        """A new list started loading: keep the table's last picture, and its scroll bar, for a moment.

        The first page usually arrives within a few milliseconds. Painting the empty table in the meantime was
        thrown away at once, and so was the layout of the table without its scroll bar (hidden for the empty
        list, shown again for the rows): the table was laid out and painted twice, on the CPU the worker reading
        the page needed. After :data:`BLANK_DELAY_MS` without rows the empty table is shown after all. Done
        before the reset, so that the view's own reaction to it paints nothing either.
        """
        if not self.table.updatesEnabled():
            return
        self.table.setUpdatesEnabled(False)
        if self.table.verticalScrollBar().isVisible():
            self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._blank_timer.start()

    @Slot()
    def on_list_reset_done(self) -> None:
        """The reset is over: a reset that started no loading has nothing to wait for."""
        if not self.table_model.loading:
            self.resume_table_painting()

    @Slot()
    def resume_table_painting(self) -> None:
        """Lay out and paint the table again (its rows arrived, reading failed, or loading takes a while)."""
        self._blank_timer.stop()
        if self.table.updatesEnabled():
            return
        if self.table.verticalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOn:
            self.table.doItemsLayout()  # the scroll range of the new list first, so the bar goes only if it fits
            self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setUpdatesEnabled(True)

    @Slot(int)
    def on_rows_loaded(self, _total: int) -> None:
        """The list arrived or was refreshed."""
        self.resume_table_painting()
        self._update_title()

    @Slot(str)
    def on_load_failed(self, message: str) -> None:
        """Reading rows failed."""
        self.resume_table_painting()
        self._show_error(f"Cannot read the requests from {self.ctx.db.display_name}: {message}")

    @Slot()
    def load_demo_data(self) -> None:
        """First-run page: fill the empty database with demo data, then show it."""
        if self._seeding:
            return
        self._seeding = True
        self.demo_button.setEnabled(False)
        self.statusMessage.emit("Loading demo data…")
        self.ctx.run(functools.partial(seed_demo, self.ctx.db), self.on_demo_loaded, self.on_demo_failed)

    def on_demo_loaded(self, _result: object) -> None:
        """Demo data is in: tell every window."""
        if not shiboken6.isValid(self):
            return
        self._seeding = False
        self.demo_button.setEnabled(True)
        self.statusMessage.emit("Demo data loaded.")
        self.ctx.changed.emit("patrons")
        self.ctx.changed.emit("requests")

    def on_demo_failed(self, error: object) -> None:
        """Seeding failed (nothing was written: it is one transaction)."""
        if not shiboken6.isValid(self):
            return
        self._seeding = False
        self.demo_button.setEnabled(True)
        self._show_error(f"Demo data could not be loaded: {error}")

    @Slot()
    def open_import(self) -> None:
        """First-run page: the CSV import window."""
        open_window(Window.IMPORT_CSV, self.ctx, self.window())

    # --- helpers ----------------------------------------------------------------------------------------------
    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_banner.show()
        self.statusMessage.emit(message)

    def _update_title(self) -> None:
        query = self.current_query()
        name = query.status or ALL_REQUESTS
        if self.table_model.loading:
            detail = "loading…"
        else:
            total = self.table_model.total
            detail = f"{total:,} request{'s' if total != 1 else ''}"
            if query.text:
                detail += f" matching “{query.text}”"
        self.title.setText(f"{name} — {detail}")
        self.table.setAccessibleDescription(self.title.text())
