"""The Contact Info tab of the patron record: one row per e-mail, phone, fax and web site.

Modelled on Theatre Manager's Contact Info tab: Type (icon), Location, value, primary marker; buttons to open
the Contact Card, add a point of a kind (the card opens at the new field), remove, make primary, and reset the
patron's web password by e-mail. Every change runs through a service off the GUI thread, then
``ctx.changed.emit("patrons")`` lets every window (this one included) reload.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain.contacts import ContactKind
from desktop.services.notices.bounces import clear_flag
from desktop.services.patrons.contact_card import make_primary, remove_contact
from desktop.services.patrons.locations import LocationRow
from desktop.services.patrons.lookup import ContactRow, PatronRecord
from desktop.services.patrons.password_reset import (
    ResetPreview,
    ResetRefusedError,
    ResetResult,
    format_utc,
    preview_reset,
)
from desktop.services.patrons.password_reset import reset_password as do_reset
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.widgets.icons import icon
from desktop.ui.widgets.tables import record_table

Index = QModelIndex | QPersistentModelIndex

#: Custom role: True on the primary row of its kind (tests and accessibility tools read it).
PrimaryRole = Qt.ItemDataRole.UserRole + 1
#: Custom role: the contact point id of the row.
IdRole = Qt.ItemDataRole.UserRole + 2

KIND_ICONS = {"email": "email", "phone": "phone", "fax": "fax", "web": "web"}
COLUMNS = ("Type", "Location", "Phone / E-mail / Web site", "Primary", "Notes")
TYPE, LOCATION, VALUE, PRIMARY, NOTES = range(len(COLUMNS))


def kind_label(kind: str) -> str:
    """``E-mail``, ``Phone``, … for a stored kind (what screen readers say for the Type icon)."""
    try:
        return ContactKind(kind).label
    except ValueError:
        return kind


class ContactInfoModel(QAbstractTableModel):
    """Contact points of one patron; updated by rows when the same points come back changed."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: tuple[ContactRow, ...] = ()

    @property
    def rows(self) -> tuple[ContactRow, ...]:
        """What the model shows."""
        return self._rows

    def set_rows(self, rows: Sequence[ContactRow]) -> None:
        """Show ``rows``: changed cells only when the points are the same ones, else a reset."""
        new = tuple(rows)
        if [r.id for r in new] == [r.id for r in self._rows]:
            old, self._rows = self._rows, new
            for n, (before, after) in enumerate(zip(old, new, strict=True)):
                if before != after:
                    self.dataChanged.emit(self.index(n, 0), self.index(n, len(COLUMNS) - 1))
            return
        self.beginResetModel()
        self._rows = new
        self.endResetModel()

    def row_of(self, contact_id: int) -> int:
        """Row of a contact point, or -1."""
        return next((n for n, r in enumerate(self._rows) if r.id == contact_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """One row per contact point."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Type, Location, value, Primary, Notes."""
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Icons for Type and Primary with text for screen readers; the rest as text."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row, column = self._rows[index.row()], index.column()
        if role == PrimaryRole:
            return row.is_primary
        if role == IdRole:
            return row.id
        if column == TYPE:
            if role == Qt.ItemDataRole.DecorationRole:
                return icon(KIND_ICONS.get(row.kind, "edit"))
            if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
                return kind_label(row.kind)
            return None
        if column == PRIMARY:
            if role == Qt.ItemDataRole.DecorationRole and row.is_primary:
                return icon("primary")
            if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
                return f"Primary {kind_label(row.kind).lower()}" if row.is_primary else "Not primary"
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole):
            if column == LOCATION:
                return row.location_name
            if column == VALUE:
                return row.display
            if column == NOTES:
                flag = f"⚠ {row.bounce_flag}" if row.bounce_flag else ""
                return "; ".join(n for n in (flag, row.reset_note) if n)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 5:
            return COLUMNS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, read-only (editing happens on the Contact Card)."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class ContactInfoTab(QWidget):
    """The tab: table and buttons for one patron.

    Signals:
        message(str): a result for the record window's status line.
    """

    message = Signal(str)

    def __init__(self, ctx: AppContext, patron_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.patron_id = patron_id
        self.record: PatronRecord | None = None
        self.locations: tuple[LocationRow, ...] = ()
        self.confirm_box: QMessageBox | None = None
        self.refusal_box: QMessageBox | None = None
        self._pending: tuple[str, int] | None = None
        self._busy = False
        self.setObjectName("contactInfoTab")
        self.setAccessibleName("Contact Info")

        self.model = ContactInfoModel(self)
        self.table = record_table(self.model, "contactInfoTable", "Contact information")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(TYPE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(LOCATION, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(VALUE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(PRIMARY, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NOTES, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self.on_double_clicked)
        self.table.selectionModel().selectionChanged.connect(self.on_selection_changed)

        self.open_button = self._button("&Open Contact Card", "openContactCardButton", "edit", "Open the Contact Card")
        self.open_button.clicked.connect(self.on_open_card)
        self.add_button = self._button("&Add", "addContactButton", "add", "Add contact information")
        self.add_menu = QMenu(self.add_button)
        self.add_menu.setObjectName("addContactMenu")
        self.add_menu.setAccessibleName("Kind of contact information to add")
        self.add_button.setMenu(self.add_menu)
        self._build_add_menu()
        self.remove_button = self._button("&Remove", "removeContactButton", "remove", "Remove the highlighted line")
        self.remove_button.clicked.connect(self.on_remove)
        self.primary_button = self._button("Make &Primary", "makePrimaryButton", "primary", "Make it the primary")
        self.primary_button.clicked.connect(self.on_make_primary)
        self.reset_button = self._button(
            "Reset E-mail Pass&word", "resetPasswordButton", "reset-password", "Reset the patron's web password"
        )
        self.reset_button.clicked.connect(self.on_reset)
        self.clear_bounce_button = self._button(
            "Clear &Bounce Flag", "clearBounceButton", "primary", "Clear the bounce flag of the highlighted e-mail"
        )
        self.clear_bounce_button.clicked.connect(self.on_clear_bounce)

        buttons = QHBoxLayout()
        for button in (self.open_button, self.add_button, self.remove_button, self.primary_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_bounce_button)
        buttons.addWidget(self.reset_button)
        self.status = QLabel()
        self.status.setObjectName("contactInfoStatus")
        self.status.setAccessibleName("Contact Info messages")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

        delete = QAction(self)
        delete.setShortcut(QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        delete.triggered.connect(self.on_remove)
        self.table.addAction(delete)
        self._update_buttons()

    def _button(self, text: str, name: str, icon_name: str, accessible: str) -> QPushButton:
        button = QPushButton(icon(icon_name), text)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setToolTip(accessible)
        return button

    # --- data -------------------------------------------------------------------------------------------------
    def set_data(self, record: PatronRecord, locations: Sequence[LocationRow]) -> None:
        """Show a freshly read record, keeping the highlighted row."""
        current = self.current_row()
        self.record = record
        if tuple(locations) != self.locations:
            self.locations = tuple(locations)
            self._build_add_menu()
        self.model.set_rows(record.contacts)
        row = self.model.row_of(current.id) if current is not None else -1
        if row < 0 and self.model.rowCount() and current is None:
            row = 0
        if row >= 0:
            self.table.selectRow(row)
        self._update_buttons()

    def current_row(self) -> ContactRow | None:
        """The highlighted contact point."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        n = rows[0].row()
        return self.model.rows[n] if 0 <= n < len(self.model.rows) else None

    def select_contact(self, contact_id: int) -> bool:
        """Highlight a contact point (by id); False when it is not shown."""
        row = self.model.row_of(contact_id)
        if row >= 0:
            self.table.selectRow(row)
        return row >= 0

    def _build_add_menu(self) -> None:
        """E-mail, Phone ▸ (each location allowing phones), Fax, Web site; rebuilt when the Locations change."""
        self.add_menu.clear()
        if not hasattr(self, "phone_menu"):
            self.phone_menu = QMenu("&Phone", self.add_menu)
            self.phone_menu.setIcon(icon("phone"))
            self.phone_menu.setObjectName("addPhoneMenu")
            self.phone_menu.setAccessibleName("Location of the phone to add")
        self.phone_menu.clear()
        for loc in self._locations_for(ContactKind.PHONE.value):
            action = self.phone_menu.addAction(loc.name)
            action.setObjectName(f"addPhone{loc.name.replace(' ', '')}Action")
            action.triggered.connect(functools.partial(self.on_add, ContactKind.PHONE.value, loc.id))
        self.phone_menu.setEnabled(bool(self.phone_menu.actions()))
        for kind in ContactKind:
            if kind is ContactKind.PHONE:
                self.add_menu.addMenu(self.phone_menu)
                continue
            text = {"email": "&E-mail", "fax": "&Fax", "web": "&Web site"}[kind.value]
            action = self.add_menu.addAction(icon(KIND_ICONS[kind.value]), text)
            action.setObjectName(f"add{kind.name.title()}Action")
            action.triggered.connect(functools.partial(self.on_add, kind.value, None))

    def _locations_for(self, kind: str) -> list[LocationRow]:
        return [loc for loc in self.locations if loc.active and kind in loc.kinds]

    @Slot()
    def on_selection_changed(self) -> None:
        """Buttons follow the highlighted row."""
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.current_row()
        idle = not self._busy and self.record is not None
        self.open_button.setEnabled(idle)
        self.add_button.setEnabled(idle)
        self.remove_button.setEnabled(idle and row is not None)
        self.primary_button.setEnabled(idle and row is not None and not row.is_primary)
        self.reset_button.setEnabled(idle and row is not None and row.kind == ContactKind.EMAIL.value)
        self.clear_bounce_button.setEnabled(idle and row is not None and bool(row.bounce_flag))

    def _start(self, text: str) -> None:
        self._busy = True
        self.status.setText(text)
        self._update_buttons()

    def _done(self, text: str = "") -> None:
        self._busy = False
        self.status.setText(text)
        self._update_buttons()
        if text:
            self.message.emit(text)

    def on_failed(self, error: object) -> None:
        """A service refused or failed: say so, in the tab."""
        self._done(f"Not done: {error}")
        self.ctx.changed.emit("patrons")  # what is shown may be out of date: reload

    # --- the Contact Card -------------------------------------------------------------------------------------
    @Slot(QModelIndex)
    def on_double_clicked(self, index: QModelIndex) -> None:
        """Double-click opens the Contact Card at that line."""
        row = self.model.rows[index.row()] if index.isValid() else None
        self._open_card(focus_id=row.id if row else None)

    @Slot()
    def on_open_card(self) -> None:
        """Open the Contact Card at the highlighted line."""
        row = self.current_row()
        self._open_card(focus_id=row.id if row else None)

    def on_add(self, kind: str, location_id: int | None, _checked: bool = False) -> None:
        """Open the Contact Card with a new, focused field of ``kind`` (and location, for phones)."""
        self._open_card(add=(kind, location_id))

    def _open_card(self, *, focus_id: int | None = None, add: tuple[str, int | None] | None = None) -> None:
        card = open_window(
            Window.CONTACT_CARD, self.ctx, self.window(), self.patron_id, focus_contact_id=focus_id, add=add
        )
        card.saved.connect(self.on_card_saved)

    @Slot(object)
    def on_card_saved(self, warnings: object) -> None:
        """The card saved: say so (with any cross-household warning)."""
        notes = [str(w) for w in warnings] if isinstance(warnings, (list, tuple)) else []
        self.status.setText(" ".join(["Contact information saved.", *notes]))

    # --- remove -----------------------------------------------------------------------------------------------
    @Slot()
    def on_remove(self) -> None:
        """Ask, then remove the highlighted line (a primary hands over to the next of its kind)."""
        row = self.current_row()
        if row is None or self._busy:
            return
        text = f"Remove {kind_label(row.kind).lower()} {row.display} from {self._patron_name()}?"
        same = [r for r in self.model.rows if r.kind == row.kind and r.id != row.id]
        if row.is_primary and same:
            text += f"\n\n{same[0].display} will become the primary {kind_label(row.kind).lower()}."
        elif row.is_primary and row.kind == ContactKind.EMAIL.value:
            text += "\n\nThis is the patron's only e-mail address: e-mail notices cannot be sent until one is added."
        self._ask("Remove contact information", text, "Remove", ("remove", row.id))

    def _ask(self, title: str, text: str, accept: str, pending: tuple[str, int]) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("contactInfoConfirm")
        yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        yes.setObjectName("confirmButton")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self._pending = pending
        self.confirm_box = box
        box.finished.connect(self.on_confirm_finished)
        box.open()

    @Slot(int)
    def on_confirm_finished(self, _result: int) -> None:
        """The question was answered: run what it asked about, if accepted."""
        box, pending = self.confirm_box, self._pending
        self.confirm_box, self._pending = None, None
        if box is None or pending is None:
            return
        accepted = box.buttonRole(box.clickedButton()) == QMessageBox.ButtonRole.AcceptRole
        box.deleteLater()
        if not accepted:
            return
        action, target = pending
        if action == "remove":
            self._start("Removing…")
            self.ctx.run(functools.partial(remove_contact, self.ctx.db, target), self.on_changed, self.on_failed)
        elif action == "reset":
            self._start("Resetting the web password…")
            job = functools.partial(
                do_reset,
                self.ctx.db,
                target,
                staff=self.ctx.staff_name,
                settings=self.ctx.settings,
            )
            self.ctx.run(job, self.on_reset_done, self.on_reset_failed)

    def on_changed(self, _result: object) -> None:
        """A change was saved: every window reloads."""
        self._done("Done.")
        self.ctx.changed.emit("patrons")

    # --- bounce flag ------------------------------------------------------------------------------------------
    @Slot()
    def on_clear_bounce(self) -> None:
        """Staff fixed the address with the patron: e-mail it again (the flag and the soft-bounce count go)."""
        row = self.current_row()
        if row is None or not row.bounce_flag or self._busy:
            return
        self._start(f"Clearing the bounce flag of {row.display}…")
        self.ctx.run(functools.partial(clear_flag, self.ctx.db, [row.id]), self.on_changed, self.on_failed)

    # --- make primary -----------------------------------------------------------------------------------------
    @Slot()
    def on_make_primary(self) -> None:
        """Make the highlighted line the primary of its kind (one transaction)."""
        row = self.current_row()
        if row is None or row.is_primary or self._busy:
            return
        self._start(f"Making {row.display} the primary {kind_label(row.kind).lower()}…")
        self.ctx.run(functools.partial(make_primary, self.ctx.db, row.id), self.on_changed, self.on_failed)

    # --- reset e-mail password --------------------------------------------------------------------------------
    @Slot()
    def on_reset(self) -> None:
        """Check who holds the address, then ask (or refuse with the list of patrons)."""
        row = self.current_row()
        if row is None or row.kind != ContactKind.EMAIL.value or self._busy:
            return
        self._start("Checking the address…")
        self.ctx.run(
            functools.partial(preview_reset, self.ctx.db, row.id, self.ctx.settings),
            self.on_reset_preview,
            self.on_failed,
        )

    def on_reset_preview(self, preview: ResetPreview) -> None:
        """Ask for confirmation, saying what will happen, unless the address is shared across households."""
        self._done()
        if preview.undeliverable:  # before asking: the reset would lock the patron out with no e-mail to come
            self.show_refusal(ResetRefusedError(preview.undeliverable))
            return
        if preview.refused:
            self.show_refusal(
                ResetRefusedError(
                    f"{preview.email} belongs to patrons in different households, so no reset is sent to it.",
                    preview.holders,
                )
            )
            return
        text = (
            f"Reset the web password of {preview.patron_name} by e-mail to {preview.email}?\n\n"
            "• The patron's current web password stops working at once (a safety measure).\n"
            "• Any earlier reset link stops working.\n"
            f'• A "Password Reset" e-mail is queued with a single-use link valid for {preview.hours} hours; '
            "the patron chooses a new password there.\n"
            f"• If the link is not used within {preview.hours} hours, reset again to send a new one."
        )
        self._ask("Reset E-mail Password", text, "Reset and send", ("reset", preview.contact_id))

    def on_reset_done(self, result: ResetResult) -> None:
        """Queued: wake the System Manager so it goes out now, and show the row's note."""
        self.ctx.request_send_now()
        self._done(f"Reset e-mail queued for {result.email}; the link expires {format_utc(result.expires_at)}.")
        self.ctx.changed.emit("patrons")

    def on_reset_failed(self, error: object) -> None:
        """Refused (shared address, template) or failed: nothing was changed."""
        if isinstance(error, ResetRefusedError):
            self._done("Reset refused; nothing was changed.")
            self.show_refusal(error)
        else:
            self.on_failed(error)

    def show_refusal(self, error: ResetRefusedError) -> None:
        """Say why no reset was done, list the patrons concerned, offer the duplicates view."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Reset refused", str(error), QMessageBox.StandardButton.Close, self)
        box.setObjectName("resetRefusedBox")
        if error.patrons:
            box.setInformativeText(
                "Patrons holding this address:\n"
                + "\n".join(f"• {p.label}" for p in error.patrons)
                + "\n\nNothing was changed and no e-mail was queued. Remove the duplicate address, then reset again."
            )
            dup = box.addButton("Open &Duplicates…", QMessageBox.ButtonRole.ActionRole)
            dup.setObjectName("openDuplicatesButton")
            dup.clicked.connect(self.on_open_duplicates)
        self.confirm_box = None
        self.refusal_box = box
        box.open()

    @Slot()
    def on_open_duplicates(self) -> None:
        """The de-dup list, to fix the shared address."""
        open_window(Window.DUPLICATES, self.ctx, self.window())

    def _patron_name(self) -> str:
        return self.record.full_name if self.record is not None else "the patron"
