"""The duplicates view (``duplicatesView``): e-mail addresses shared across households, with the patrons concerned.

A password reset to such an address is refused (it would let one household set another's password), so staff
come here to de-duplicate: open either patron and remove or correct the address on the Contact Card.
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

from desktop.services.patrons.duplicates import SharedEmail, find_shared_emails
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.widgets.icons import icon

PATRON_ROLE = Qt.ItemDataRole.UserRole + 1

_open_views: list[DuplicatesView] = []


def open_duplicates_view(ctx: AppContext, parent: QWidget | None = None) -> DuplicatesView:
    """Show the duplicates view (the one already open, if any, refreshed), non-modal."""
    _open_views[:] = [w for w in _open_views if shiboken6.isValid(w)]
    view = next((w for w in _open_views if w.ctx is ctx), None)
    if view is None:
        view = DuplicatesView(ctx, parent)
        _open_views.append(view)
    else:
        view.reload()
    view.show()
    view.raise_()
    view.activateWindow()
    return view


class DuplicatesView(QWidget):
    """Shared e-mail addresses → patrons; double-click (or Open) a patron to open the record."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.shared: list[SharedEmail] = []
        self._loading = False
        self.setObjectName("duplicatesView")
        self.setAccessibleName("E-mail addresses shared across households")
        self.setWindowTitle("Duplicates — e-mail addresses shared across households")
        self.setWindowIcon(icon("duplicates"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(760, 480)

        intro = QLabel(
            "These e-mail addresses belong to patrons in different households. Password resets to them are refused "
            "until only one household holds each address. Open a patron and correct the address on the Contact Card."
        )
        intro.setWordWrap(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("duplicatesTree")
        self.tree.setAccessibleName("Shared e-mail addresses and their patrons")
        self.tree.setHeaderLabels(["E-mail / patron", "User name", "Household"])
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemActivated.connect(self.on_item_activated)
        self.tree.currentItemChanged.connect(self.on_current_changed)
        self.open_button = QPushButton(icon("patron"), "&Open Patron")
        self.open_button.setObjectName("openDuplicatePatronButton")
        self.open_button.setAccessibleName("Open the highlighted patron's record")
        self.open_button.clicked.connect(self.on_open)
        self.refresh_button = QPushButton(icon("refresh"), "&Refresh")
        self.refresh_button.setObjectName("refreshDuplicatesButton")
        self.refresh_button.setAccessibleName("Look for shared addresses again")
        self.refresh_button.clicked.connect(self.reload)
        self.status = QLabel()
        self.status.setObjectName("duplicatesStatus")
        self.status.setAccessibleName("How many shared addresses")
        buttons = QHBoxLayout()
        buttons.addWidget(self.status, 1)
        buttons.addWidget(self.refresh_button)
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
        """Look for shared addresses (off the GUI thread)."""
        if self._loading:
            return
        self._loading = True
        self.status.setText("Looking…")
        self.ctx.run(functools.partial(find_shared_emails, self.ctx.db), self.on_loaded, self.on_failed)

    def on_loaded(self, shared: list[SharedEmail]) -> None:
        """Show the shared addresses, each with its patrons."""
        if not shiboken6.isValid(self):
            return
        self._loading = False
        self.shared = shared
        self.tree.clear()
        for item in shared:
            top = QTreeWidgetItem([item.email, "", f"{item.household_count} households"])
            top.setIcon(0, icon("email"))
            for patron in item.patrons:
                child = QTreeWidgetItem([patron.full_name, patron.username, patron.household_name or "(none)"])
                child.setIcon(0, icon("patron"))
                child.setData(0, PATRON_ROLE, patron.id)
                top.addChild(child)
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)
        self.status.setText(
            f"{len(shared)} address(es) shared across households."
            if shared
            else "No address is shared across households."
        )
        self.on_current_changed()

    def on_failed(self, error: object) -> None:
        """The list could not be read."""
        if shiboken6.isValid(self):
            self._loading = False
            self.status.setText(f"Could not read the list: {error}")

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Patrons changed (an address removed, perhaps): refresh."""
        if topic == "patrons":
            self.reload()

    @Slot()
    def on_current_changed(self) -> None:
        """Open is for patron lines."""
        item = self.tree.currentItem()
        self.open_button.setEnabled(item is not None and item.data(0, PATRON_ROLE) is not None)

    @Slot(QTreeWidgetItem, int)
    def on_item_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        """Double-click or Enter on a patron opens the record."""
        self._open(item)

    @Slot()
    def on_open(self) -> None:
        """Open the highlighted patron."""
        item = self.tree.currentItem()
        if item is not None:
            self._open(item)

    def _open(self, item: QTreeWidgetItem) -> None:
        patron_id = item.data(0, PATRON_ROLE)
        if patron_id is None:
            return
        open_window(Window.PATRON, self.ctx, self.parentWidget(), int(patron_id))
