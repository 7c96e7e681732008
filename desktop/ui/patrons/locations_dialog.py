"""The Locations code table (``locationsDialog``, System tab): names, order, allowed kinds, defaults, active.

Each change is saved at once by its own service call (a code table is edited a line at a time, and several
workstations may have it open); a refused change (a kind still in use, a duplicate name) is explained and the
table shows the saved state again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.domain.contacts import ALL_PERMISSIONS
from desktop.services.patrons import locations as svc
from desktop.services.patrons.locations import KIND_LABELS, LocationRow
from desktop.ui.context import AppContext
from desktop.ui.widgets.icons import icon

NAME_COLUMN = 0
KIND_COLUMNS = {kind: n + 1 for n, kind in enumerate(ALL_PERMISSIONS)}
ACTIVE_COLUMN = len(ALL_PERMISSIONS) + 1
USE_COLUMN = ACTIVE_COLUMN + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 1

_open_dialogs: list[LocationsDialog] = []


def open_locations_dialog(ctx: AppContext, parent: QWidget | None = None) -> LocationsDialog:
    """Show the Locations code table (the one already open, if any), non-modal."""
    _open_dialogs[:] = [d for d in _open_dialogs if shiboken6.isValid(d)]
    dialog = next((d for d in _open_dialogs if d.ctx is ctx), None)
    if dialog is None:
        dialog = LocationsDialog(ctx, parent)
        _open_dialogs.append(dialog)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


class LocationsDialog(QDialog):
    """Edit the Locations code table."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.rows: list[LocationRow] = []
        self._filling = False
        self._busy = False
        self._select_after: int | None = None
        self.setObjectName("locationsDialog")
        self.setAccessibleName("Locations code table")
        self.setWindowTitle("Locations")
        self.setWindowIcon(icon("locations"))
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(820, 480)

        self.table = QTableWidget(0, USE_COLUMN + 1)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table
        self.table.setObjectName("locationsTable")
        self.table.setAccessibleName("Locations and the kinds of contact each allows")
        self.table.setHorizontalHeaderLabels(
            ["Location", *(KIND_LABELS[k] for k in ALL_PERMISSIONS), "Active", "In use"]
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(NAME_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self.on_item_changed)
        self.table.itemSelectionChanged.connect(self.on_selection_changed)

        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("locationNameEdit")
        self.name_edit.setAccessibleName("Location name")
        self.name_edit.setPlaceholderText("Name of a new location, or the new name of the highlighted one")
        name_label = QLabel("&Name:")
        name_label.setBuddy(self.name_edit)
        self.add_button = self._button("&Add", "addLocationButton", "add", "Add a location with this name")
        self.rename_button = self._button("Rena&me", "renameLocationButton", "edit", "Rename the highlighted location")
        self.up_button = self._button("Move &Up", "moveLocationUpButton", "previous", "Move the location up")
        self.down_button = self._button("Move Do&wn", "moveLocationDownButton", "next", "Move the location down")
        self.active_button = self._button("&Deactivate", "deactivateLocationButton", "remove", "Deactivate it")
        self.delete_button = self._button("De&lete", "deleteLocationButton", "delete", "Delete an unused location")
        self.add_button.clicked.connect(self.on_add)
        self.rename_button.clicked.connect(self.on_rename)
        self.up_button.clicked.connect(functools.partial(self.on_move, -1))
        self.down_button.clicked.connect(functools.partial(self.on_move, 1))
        self.active_button.clicked.connect(self.on_toggle_active)
        self.delete_button.clicked.connect(self.on_delete)
        self.name_edit.returnPressed.connect(self.on_add)

        edit_row = QHBoxLayout()
        edit_row.addWidget(name_label)
        edit_row.addWidget(self.name_edit, 1)
        edit_row.addWidget(self.add_button)
        edit_row.addWidget(self.rename_button)
        order_row = QHBoxLayout()
        for button in (self.up_button, self.down_button, self.active_button, self.delete_button):
            order_row.addWidget(button)
        order_row.addStretch(1)

        defaults = QGroupBox("Default location for a new field")
        defaults.setObjectName("locationDefaults")
        grid = QGridLayout(defaults)
        self.default_combos: dict[str, QComboBox] = {}
        for n, kind in enumerate(ALL_PERMISSIONS):
            combo = QComboBox()
            combo.setObjectName(f"{kind}DefaultCombo")
            combo.setAccessibleName(f"Default location for {KIND_LABELS[kind].lower()}")
            combo.activated.connect(functools.partial(self.on_default_chosen, kind))
            self.default_combos[kind] = combo
            form = QFormLayout()
            form.addRow(f"{KIND_LABELS[kind]}:", combo)
            grid.addLayout(form, n // 3, n % 3)

        self.status = QLabel()
        self.status.setObjectName("locationsStatus")
        self.status.setAccessibleName("Locations messages")
        self.status.setWordWrap(True)
        close = QPushButton("&Close")
        close.setObjectName("closeLocationsButton")
        close.setAccessibleName("Close the Locations code table")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(edit_row)
        layout.addLayout(order_row)
        layout.addWidget(defaults)
        layout.addLayout(bottom)
        QShortcut(QKeySequence.StandardKey.Refresh, self, self.reload)
        self.on_selection_changed()
        self.reload()

    def _button(self, text: str, name: str, icon_name: str, accessible: str) -> QPushButton:
        button = QPushButton(icon(icon_name), text)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setAutoDefault(False)
        return button

    # --- loading ----------------------------------------------------------------------------------------------
    @Slot()
    def reload(self) -> None:
        """Read the table again."""
        self.ctx.run(functools.partial(svc.list_locations, self.ctx.db), self.on_loaded, self.on_failed)

    def on_loaded(self, rows: list[LocationRow]) -> None:
        """Fill the table and the default choosers, keeping the highlighted location."""
        if not shiboken6.isValid(self):
            return
        current = self.current()
        self.rows = rows
        self._filling = True
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = QTableWidgetItem(row.name)
            name.setData(ID_ROLE, row.id)
            name.setToolTip(f"{row.name}: {'active' if row.active else 'deactivated: kept where used, not offered'}")
            if not row.active:
                font = name.font()
                font.setItalic(True)
                name.setFont(font)
            self.table.setItem(r, NAME_COLUMN, name)
            for kind, column in KIND_COLUMNS.items():
                cell = QTableWidgetItem("default" if kind in row.default_for else "")
                cell.setFlags(
                    Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
                )
                cell.setCheckState(Qt.CheckState.Checked if kind in row.kinds else Qt.CheckState.Unchecked)
                cell.setData(Qt.ItemDataRole.AccessibleTextRole, f"{row.name} allows {KIND_LABELS[kind].lower()}")
                self.table.setItem(r, column, cell)
            self.table.setItem(r, ACTIVE_COLUMN, QTableWidgetItem("yes" if row.active else "no"))
            used = ", ".join(f"{n} {KIND_LABELS.get(k, k).lower()}" for k, n in row.in_use) or "—"
            self.table.setItem(r, USE_COLUMN, QTableWidgetItem(used))
        self._filling = False
        for kind, combo in self.default_combos.items():
            combo.clear()
            combo.addItem("(none)", None)
            for row in rows:
                if row.active and kind in row.kinds:
                    combo.addItem(row.name, row.id)
            chosen = next((row.id for row in rows if kind in row.default_for), None)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        if current is not None:
            self.select(current.id)
        self._busy = False
        self.on_selection_changed()

    def on_failed(self, error: object) -> None:
        """A change was refused or failed: say why and show the saved state again."""
        if not shiboken6.isValid(self):
            return
        self._busy = False
        self.status.setText(f"Not changed: {error}")
        self.reload()

    # --- selection --------------------------------------------------------------------------------------------
    def current(self) -> LocationRow | None:
        """The highlighted location."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        n = rows[0].row()
        return self.rows[n] if 0 <= n < len(self.rows) else None

    def select(self, location_id: int) -> None:
        """Highlight a location by id."""
        for n, row in enumerate(self.rows):
            if row.id == location_id:
                self.table.selectRow(n)
                return

    @Slot()
    def on_selection_changed(self) -> None:
        """Buttons follow the highlighted location."""
        row = self.current()
        has = row is not None and not self._busy
        for button in (self.rename_button, self.up_button, self.down_button, self.active_button):
            button.setEnabled(has)
        self.delete_button.setEnabled(has and row is not None and row.use_count == 0)
        self.delete_button.setToolTip(
            "In use: deactivate it instead" if row is not None and row.use_count else "Delete an unused location"
        )
        self.active_button.setText("R&eactivate" if row is not None and not row.active else "&Deactivate")
        if row is not None and not self.name_edit.hasFocus():
            self.name_edit.setText(row.name)

    # --- changes ----------------------------------------------------------------------------------------------
    def _change(self, message: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._busy = True
        self.on_selection_changed()
        self.status.setText(message)
        self.ctx.run(functools.partial(fn, self.ctx.db, *args, **kwargs), self.on_changed, self.on_failed)

    def on_changed(self, result: object) -> None:
        """Saved: reload, and tell other windows (Contact Cards offer locations)."""
        if not shiboken6.isValid(self):
            return
        self.status.setText("Saved.")
        if isinstance(result, int) and not isinstance(result, bool):
            self._select_after = result
        self.ctx.changed.emit("patrons")
        self.ctx.run(functools.partial(svc.list_locations, self.ctx.db), self.on_reloaded_after_change, self.on_failed)

    def on_reloaded_after_change(self, rows: list[LocationRow]) -> None:
        """Show the saved table; a just-added location is highlighted."""
        self.on_loaded(rows)
        if self._select_after is not None:
            self.select(self._select_after)
            self._select_after = None

    @Slot()
    def on_add(self) -> None:
        """Add a location with the typed name (allowing every kind; untick what does not apply)."""
        name = self.name_edit.text()
        if any(r.name.casefold() == " ".join(name.split()).casefold() for r in self.rows):
            self.status.setText(f"There is already a location called {name.strip()}.")
            return
        self._change(f"Adding {name.strip()}…", svc.add_location, name)

    @Slot()
    def on_rename(self) -> None:
        """Rename the highlighted location to the typed name."""
        row = self.current()
        if row is not None:
            self._change(f"Renaming {row.name}…", svc.rename_location, row.id, self.name_edit.text())

    def on_move(self, offset: int, _checked: bool = False) -> None:
        """Move the highlighted location up or down."""
        row = self.current()
        if row is not None:
            self._change(f"Moving {row.name}…", svc.move_location, row.id, offset)

    @Slot()
    def on_toggle_active(self) -> None:
        """Deactivate (kept where used, no longer offered) or reactivate."""
        row = self.current()
        if row is not None:
            self._change(f"Updating {row.name}…", svc.set_active, row.id, not row.active)

    @Slot()
    def on_delete(self) -> None:
        """Delete an unused location (the service refuses one in use)."""
        row = self.current()
        if row is not None:
            self._change(f"Deleting {row.name}…", svc.delete_location, row.id)

    @Slot(QTableWidgetItem)
    def on_item_changed(self, item: QTableWidgetItem) -> None:
        """A kind was ticked or unticked."""
        if self._filling or item.column() not in KIND_COLUMNS.values():
            return
        row = self.rows[item.row()] if 0 <= item.row() < len(self.rows) else None
        if row is None:
            return
        kinds = [
            kind
            for kind, column in KIND_COLUMNS.items()
            if (cell := self.table.item(item.row(), column)) is not None and cell.checkState() == Qt.CheckState.Checked
        ]
        self._change(f"Updating {row.name}…", svc.set_kinds, row.id, kinds)

    def on_default_chosen(self, kind: str, index: int) -> None:
        """A default was chosen for ``kind`` (or none)."""
        combo = self.default_combos[kind]
        chosen = combo.itemData(index)
        if chosen is None:
            current = next((r.id for r in self.rows if kind in r.default_for), None)
            if current is not None:
                self._change("Clearing the default…", svc.set_default, current, kind, default=False)
            return
        self._change("Setting the default…", svc.set_default, int(chosen), kind)
