"""The patron record (``patronRecord``): who the patron is, their household, and the Contact Info and Requests tabs.

Opened from the request form, the patron search, the duplicates view and the Contact Customers form. One window
per patron: opening a patron already shown raises that window. It reloads whenever another window (or another
workstation, through the System Manager) reports that patrons or requests changed.
"""

from __future__ import annotations

import functools
import html

import shiboken6
from PySide6.QtCore import QModelIndex, Qt, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.config import Settings
from desktop.services.database import Database
from desktop.services.patrons.locations import LocationRow, list_locations
from desktop.services.patrons.lookup import PatronRecord, PatronRequest, get_patron_record
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.patrons.contact_info_tab import ContactInfoTab
from desktop.ui.widgets.icons import icon
from desktop.ui.widgets.record_table_model import RecordTableModel, local_time
from desktop.ui.widgets.tables import record_table
from desktop.ui.window_state import restore_geometry, save_geometry

_open_records: list[PatronRecordWindow] = []


def open_patron_record(ctx: AppContext, patron_id: int, parent: QWidget | None = None) -> PatronRecordWindow:
    """Show the record of ``patron_id`` (raising the window already open for that patron), non-modal."""
    _open_records[:] = [w for w in _open_records if shiboken6.isValid(w)]
    window = next((w for w in _open_records if w.ctx is ctx and w.patron_id == patron_id), None)
    if window is None:
        window = PatronRecordWindow(ctx, patron_id, parent)
        _open_records.append(window)
    window.show()
    window.raise_()
    window.activateWindow()
    return window


def load_record(db: Database, patron_id: int, settings: Settings) -> tuple[PatronRecord, list[LocationRow]]:
    """What the window needs, read off the GUI thread."""
    return get_patron_record(db, patron_id, region=settings.phone_region), list_locations(db)


class PatronRecordWindow(QWidget):
    """One patron's record."""

    def __init__(self, ctx: AppContext, patron_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.patron_id = patron_id
        self.record: PatronRecord | None = None
        self._loading = False
        self._again = False
        self.setObjectName("patronRecord")
        self.setAccessibleName("Patron record")
        self.setWindowTitle("Patron record")
        self.setWindowIcon(icon("patron"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(900, 640)
        restore_geometry(self, "patronRecord/geometry")

        self.heading = QLabel("Loading…")
        self.heading.setObjectName("patronHeading")
        self.heading.setAccessibleName("Patron name")
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.heading.setFont(font)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("patronTabs")
        self.contact_tab = ContactInfoTab(ctx, patron_id)
        self.contact_tab.message.connect(self.on_message)
        self.tabs.addTab(self.contact_tab, icon("email"), "&Contact Info")
        self.tabs.addTab(self._build_requests_tab(), icon("open"), "Re&quests")

        self.status = QLabel()
        self.status.setObjectName("patronRecordStatus")
        self.status.setAccessibleName("Patron record messages")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self._build_details())
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.status)

        QShortcut(QKeySequence.StandardKey.Refresh, self, self.reload)
        QShortcut(QKeySequence("Ctrl+W"), self, self.close)
        ctx.changed.connect(self.on_data_changed)
        ctx.databaseChanged.connect(self.close)
        self.reload()

    def _value(self, name: str, accessible: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setAccessibleName(accessible)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setWordWrap(True)
        return label

    def _build_details(self) -> QGroupBox:
        box = QGroupBox("Patron")
        box.setObjectName("patronDetails")
        grid = QGridLayout(box)
        left, right = QFormLayout(), QFormLayout()
        self.username_label = self._value("patronUsername", "User name")
        self.status_label = self._value("patronStatus", "Status")
        self.department_label = self._value("patronDepartment", "Department")
        self.household_label = self._value("patronHousehold", "Household and its other members")
        self.household_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextBrowserInteraction | Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.household_label.linkActivated.connect(self.on_member_link)
        self.notification_label = self._value("patronNotificationMethod", "Notification method")
        self.delivery_label = self._value("patronDeliveryMethod", "Delivery method")
        self.pickup_label = self._value("patronPickupLocation", "Pickup location")
        self.address_label = self._value("patronAddress", "Postal address")
        left.addRow("User name:", self.username_label)
        left.addRow("Status:", self.status_label)
        left.addRow("Department:", self.department_label)
        left.addRow("Household:", self.household_label)
        right.addRow("Notification:", self.notification_label)
        right.addRow("Delivery:", self.delivery_label)
        right.addRow("Pickup location:", self.pickup_label)
        right.addRow("Address:", self.address_label)
        grid.addLayout(left, 0, 0)
        grid.addLayout(right, 0, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        return box

    def _build_requests_tab(self) -> QWidget:
        tab = QWidget()
        tab.setObjectName("patronRequestsTab")
        tab.setAccessibleName("Requests")
        self.requests_model: RecordTableModel[PatronRequest] = RecordTableModel(
            [
                ("Transaction", lambda r: str(r.transaction_number)),
                ("Type", lambda r: r.request_type),
                ("Title", lambda r: r.title),
                ("Status", lambda r: r.status),
                ("Since", lambda r: local_time(r.status_changed_at)),
            ],
            self,
        )
        self.requests_table = record_table(
            self.requests_model, "patronRequestsTable", "The patron's requests; double-click opens one"
        )
        header = self.requests_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.requests_table.doubleClicked.connect(self.on_request_double_clicked)
        self.requests_table.activated.connect(self.on_request_double_clicked)
        layout = QVBoxLayout(tab)
        layout.addWidget(self.requests_table)
        return tab

    # --- loading ----------------------------------------------------------------------------------------------
    @Slot()
    def reload(self) -> None:
        """Read the record again (coalesced: one read at a time)."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        job = functools.partial(load_record, self.ctx.db, self.patron_id, self.ctx.settings)
        self.ctx.run(job, self.on_loaded, self.on_load_failed)

    def on_loaded(self, result: tuple[PatronRecord, list[LocationRow]]) -> None:
        """Show the record."""
        if not shiboken6.isValid(self):
            return
        self._loading = False
        record, locations = result
        self.record = record
        self.setWindowTitle(f"Patron record — {record.full_name}")
        self.heading.setText(record.full_name)
        self.username_label.setText(record.username)
        self.status_label.setText(record.status)
        self.department_label.setText(record.department)
        self.household_label.setText(self._household_html(record))
        self.notification_label.setText(record.notification_method)
        self.delivery_label.setText(record.delivery_method)
        self.pickup_label.setText(record.pickup_location or "(none)")
        self.address_label.setText("\n".join(record.address_lines) or "(no postal address)")
        self.contact_tab.set_data(record, locations)
        self.requests_model.set_records(record.requests)
        self.tabs.setTabText(1, f"Re&quests ({len(record.requests)})")
        if self._again:
            self._again = False
            self.reload()

    def on_load_failed(self, error: object) -> None:
        """The patron could not be read (deleted elsewhere, database gone)."""
        if not shiboken6.isValid(self):
            return
        self._loading = False
        self.status.setText(f"Could not read the patron: {error}")

    @staticmethod
    def _household_html(record: PatronRecord) -> str:
        if record.household_id is None:
            return "(none)"
        members = ", ".join(
            f'<a href="patron:{m.id}">{html.escape(m.full_name)}</a> ({html.escape(m.username)})'
            for m in record.household_members
        )
        name = html.escape(record.household_name)
        return f"{name}<br>Also: {members}" if members else f"{name} (no other members)"

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Another window changed patrons or requests: show the current state."""
        if topic in {"patrons", "requests"}:
            self.reload()

    @Slot(str)
    def on_message(self, text: str) -> None:
        """A tab's result, on the status line."""
        self.status.setText(text)

    # --- navigation -------------------------------------------------------------------------------------------
    @Slot(str)
    def on_member_link(self, link: str) -> None:
        """Open another household member's record."""
        if link.startswith("patron:"):
            open_patron_record(self.ctx, int(link.split(":", 1)[1]), self.parentWidget())

    @Slot(QModelIndex)
    def on_request_double_clicked(self, index: QModelIndex) -> None:
        """Open the request form of the request double-clicked."""
        request = self.requests_model.record(index.row())
        if request is None:
            return
        open_window(Window.REQUEST, self.ctx, self, request.transaction_number)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Remember where the window was."""
        save_geometry(self, "patronRecord/geometry")
        super().closeEvent(event)
