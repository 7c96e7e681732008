"""The Bounced addresses list (``bouncedView``): every e-mail address a bounce flagged, with its patron.

Like the duplicates view, a place to work through a list: open the patron, fix the address with them (on the
Contact Card), then clear the flag here or on the Contact Info tab so notices are e-mailed to it again.
"""

from __future__ import annotations

import functools

import shiboken6
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.services.notices.bounces import BouncedAddress, bounced_addresses, clear_flag
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.widgets.icons import icon

PATRON_ROLE = Qt.ItemDataRole.UserRole + 1
CONTACT_ROLE = Qt.ItemDataRole.UserRole + 2

_open_views: list[BouncedView] = []


def open_bounced_view(ctx: AppContext, parent: QWidget | None = None) -> BouncedView:
    """Show the Bounced addresses list (the one already open, if any, refreshed), non-modal."""
    _open_views[:] = [w for w in _open_views if shiboken6.isValid(w)]
    view = next((w for w in _open_views if w.ctx is ctx), None)
    if view is None:
        view = BouncedView(ctx, parent)
        _open_views.append(view)
    else:
        view.reload()
    view.show()
    view.raise_()
    view.activateWindow()
    return view


class BouncedView(QWidget):
    """Flagged addresses, newest bounce first; Open the patron, or Clear the flag of the highlighted address."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.rows: list[BouncedAddress] = []
        self._loading = False
        self.setObjectName("bouncedView")
        self.setAccessibleName("E-mail addresses that bounced")
        self.setWindowTitle("Bounced addresses")
        self.setWindowIcon(icon("email"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(860, 480)

        intro = QLabel(
            "Mail to these addresses bounced. Notices are not e-mailed to them: their requests wait on Contact "
            "Customers in the Phone or Mail group. Fix the address with the patron, then clear the flag."
        )
        intro.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("bouncedTree")
        self.tree.setAccessibleName("Bounced e-mail addresses and their patrons")
        self.tree.setRootIsDecorated(False)
        self.tree.setHeaderLabels(["E-mail", "Patron", "User name", "Bounce"])
        for column in range(3):
            self.tree.header().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemActivated.connect(self.on_item_activated)
        self.tree.currentItemChanged.connect(self.on_current_changed)
        self.open_button = QPushButton(icon("patron"), "&Open Patron")
        self.open_button.setObjectName("openBouncedPatronButton")
        self.open_button.setAccessibleName("Open the highlighted patron's record")
        self.open_button.clicked.connect(self.on_open)
        self.clear_button = QPushButton("&Clear Flag")
        self.clear_button.setObjectName("clearBouncedFlagButton")
        self.clear_button.setAccessibleName("Clear the bounce flag of the highlighted address")
        self.clear_button.clicked.connect(self.on_clear)
        self.refresh_button = QPushButton(icon("refresh"), "&Refresh")
        self.refresh_button.setObjectName("refreshBouncedButton")
        self.refresh_button.setAccessibleName("Read the list again")
        self.refresh_button.clicked.connect(self.reload)
        self.status = QLabel()
        self.status.setObjectName("bouncedStatus")
        self.status.setAccessibleName("How many bounced addresses")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.clear_button)
        buttons.addWidget(self.open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        QShortcut(QKeySequence.StandardKey.Refresh, self, self.reload)
        QShortcut(QKeySequence("Ctrl+W"), self, self.close)
        ctx.changed.connect(self.on_data_changed)
        self.on_current_changed()
        self.reload()

    @Slot()
    def reload(self) -> None:
        """Read the flagged addresses (off the GUI thread)."""
        if self._loading:
            return
        self._loading = True
        self.status.setText("Looking…")
        self.ctx.run(functools.partial(bounced_addresses, self.ctx.db), self.on_loaded, self.on_failed)

    def on_loaded(self, rows: list[BouncedAddress]) -> None:
        """Show one line per flagged address."""
        if not shiboken6.isValid(self):
            return
        self._loading = False
        self.rows = rows
        self.tree.clear()
        for row in rows:
            item = QTreeWidgetItem([row.address, row.patron_name, row.username, row.flag])
            item.setIcon(0, icon("email"))
            item.setData(0, PATRON_ROLE, row.patron_id)
            item.setData(0, CONTACT_ROLE, row.contact_id)
            item.setToolTip(3, row.flag)
            self.tree.addTopLevelItem(item)
        self.status.setText(f"{len(rows)} bounced address(es)." if rows else "No address has bounced.")
        self.on_current_changed()

    def on_failed(self, error: object) -> None:
        """The list could not be read, or the flag not cleared."""
        if shiboken6.isValid(self):
            self._loading = False
            self.status.setText(f"Could not do it: {error}")
            self.on_current_changed()

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Patrons changed (a flag cleared elsewhere, an address fixed): refresh."""
        if topic == "patrons":
            self.reload()

    @Slot()
    def on_current_changed(self) -> None:
        """Open and Clear act on the highlighted line."""
        has = self.tree.currentItem() is not None
        self.open_button.setEnabled(has)
        self.clear_button.setEnabled(has)

    @Slot(QTreeWidgetItem, int)
    def on_item_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        """Double-click or Enter opens the patron."""
        self._open(item)

    @Slot()
    def on_open(self) -> None:
        """Open the highlighted patron."""
        item = self.tree.currentItem()
        if item is not None:
            self._open(item)

    @Slot()
    def on_clear(self) -> None:
        """Clear the highlighted address's flag (one transaction, off the GUI thread)."""
        item = self.tree.currentItem()
        if item is None:
            return
        self.clear_button.setEnabled(False)
        self.status.setText(f"Clearing the flag of {item.text(0)}…")
        job = functools.partial(clear_flag, self.ctx.db, [int(item.data(0, CONTACT_ROLE))])
        self.ctx.run(job, self.on_cleared, self.on_failed)

    def on_cleared(self, _count: object) -> None:
        """Every window reloads (this one too, through ``changed``)."""
        if shiboken6.isValid(self):
            self.ctx.changed.emit("patrons")

    def _open(self, item: QTreeWidgetItem) -> None:
        open_window(Window.PATRON, self.ctx, self.parentWidget(), int(item.data(0, PATRON_ROLE)))
