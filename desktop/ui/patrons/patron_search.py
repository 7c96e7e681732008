"""Patron search (``patronSearch``): type a name, user name, e-mail or phone (any format); open the record.

The query runs off the GUI thread a moment after typing stops (or at once on Enter); answers to older queries
are dropped, so fast typing never shows stale results.
"""

from __future__ import annotations

import functools

import shiboken6
from PySide6.QtCore import QModelIndex, Qt, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.services.patrons.lookup import DEFAULT_LIMIT, PatronHit, search_patrons
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.widgets.icons import icon
from desktop.ui.widgets.record_table_model import RecordTableModel
from desktop.ui.widgets.tables import record_table
from desktop.ui.window_state import restore_geometry, save_geometry

SEARCH_DELAY_MS = 300

_open_searches: list[PatronSearch] = []


def open_patron_search(ctx: AppContext, parent: QWidget | None = None) -> PatronSearch:
    """Show the patron search window (the one already open, if any), non-modal."""
    _open_searches[:] = [w for w in _open_searches if shiboken6.isValid(w)]
    window = next((w for w in _open_searches if w.ctx is ctx), None)
    if window is None:
        window = PatronSearch(ctx, parent)
        _open_searches.append(window)
    window.show()
    window.raise_()
    window.activateWindow()
    window.edit.setFocus()
    return window


class PatronSearch(QWidget):
    """The search box, the hits, and Open."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self._generation = 0
        self.setObjectName("patronSearch")
        self.setAccessibleName("Patron search")
        self.setWindowTitle("Patron search")
        self.setWindowIcon(icon("patron-search"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(820, 520)
        restore_geometry(self, "patronSearch/geometry")

        self.edit = QLineEdit()
        self.edit.setObjectName("patronSearchEdit")
        self.edit.setAccessibleName("Search patrons by name, user name, e-mail or phone")
        self.edit.setPlaceholderText("Name, user name, e-mail or phone — e.g. Lovelace, ada@example.org, 217 555 0101")
        self.edit.setClearButtonEnabled(True)
        label = QLabel("&Find:")
        label.setBuddy(self.edit)
        self.open_button = QPushButton(icon("patron"), "&Open Record")
        self.open_button.setObjectName("openPatronRecordButton")
        self.open_button.setAccessibleName("Open the highlighted patron's record")
        self.open_button.clicked.connect(self.on_open)
        top = QHBoxLayout()
        top.addWidget(label)
        top.addWidget(self.edit, 1)
        top.addWidget(self.open_button)

        self.model: RecordTableModel[PatronHit] = RecordTableModel(
            [
                ("Name", lambda h: h.full_name),
                ("User name", lambda h: h.username),
                ("E-mail", lambda h: h.email),
                ("Phone", lambda h: h.phone),
                ("Household", lambda h: h.household_name),
                ("Notify by", lambda h: h.notification_method),
            ],
            self,
        )
        self.table = record_table(
            self.model, "patronSearchTable", "Patrons found; Enter or double-click opens the record"
        )
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.activated.connect(self.on_activated)
        self.status = QLabel()
        self.status.setObjectName("patronSearchStatus")
        self.status.setAccessibleName("Search result count")

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)

        self.timer = ctx.timer(self, SEARCH_DELAY_MS, self.search, single_shot=True)
        self.edit.textChanged.connect(self.on_text_changed)
        self.edit.returnPressed.connect(self.on_return)
        QShortcut(QKeySequence("Ctrl+W"), self, self.close)
        ctx.changed.connect(self.on_data_changed)
        self.search()

    @Slot(str)
    def on_text_changed(self, _text: str) -> None:
        """Search a moment after typing stops."""
        self.timer.start()

    @Slot()
    def on_return(self) -> None:
        """Enter in the box: search now, or open the only hit."""
        if not self.timer.isActive() and self.model.rowCount() == 1:
            self.table.selectRow(0)
            self.on_open()
            return
        self.search()

    @Slot()
    def search(self) -> None:
        """Run the query for the box's text off the GUI thread."""
        self.timer.stop()
        self._generation += 1
        job = functools.partial(search_patrons, self.ctx.db, self.edit.text(), region=self.ctx.settings.phone_region)
        self.status.setText("Searching…")
        self.ctx.run(job, functools.partial(self.on_results, self._generation), self.on_failed)

    def on_results(self, generation: int, hits: list[PatronHit]) -> None:
        """Show the hits of the latest query only."""
        if not shiboken6.isValid(self) or generation != self._generation:
            return
        self.model.set_records(hits)
        if hits:
            self.table.selectRow(0)
        more = f" (the first {DEFAULT_LIMIT}; type more to narrow down)" if len(hits) >= DEFAULT_LIMIT else ""
        self.status.setText(f"{len(hits)} patron(s) found{more}.")

    def on_failed(self, error: object) -> None:
        """The search could not run."""
        if shiboken6.isValid(self):
            self.status.setText(f"Search failed: {error}")

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Patrons changed somewhere: refresh the hits."""
        if topic == "patrons":
            self.search()

    @Slot(QModelIndex)
    def on_activated(self, index: QModelIndex) -> None:
        """Enter or double-click on a hit opens the record."""
        self._open_row(index.row())

    @Slot()
    def on_open(self) -> None:
        """Open the highlighted patron's record."""
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self._open_row(rows[0].row())

    def _open_row(self, row: int) -> None:
        hit = self.model.record(row)
        if hit is not None:
            open_window(Window.PATRON, self.ctx, self.parentWidget(), hit.id)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Remember where the window was."""
        save_geometry(self, "patronSearch/geometry")
        super().closeEvent(event)
