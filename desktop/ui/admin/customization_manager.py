"""The Customization Manager (``customizationManager``): shared settings administrators change without files.

Tabs:
    Notification Templates (``notificationTemplatesTab``): the templates with who changed each last and when;
        Edit (the :class:`~desktop.ui.notices.template_editor.TemplateEditor`), Delete (that notice is then not sent —
        ILLiad's way to switch an e-mail off), Undelete, Restore default.
    Routing: per pickup location, the delay before `In Transit to Pickup Location` moves on to
        `Awaiting Customer Contact` and the days items are held; the System Manager's poll interval.
    Library: the name, address, e-mail and phone notices are signed with.

Everything here is stored in the database, so every workstation sees the same values; the widgets only call
:mod:`desktop.services.notices.template_admin` and :mod:`desktop.services.admin.shared_settings` through ``ctx.run``.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Slot
from PySide6.QtGui import QCloseEvent, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from desktop.services.admin import shared_settings
from desktop.services.admin.shared_settings import LibraryInfo, PickupRouting, SharedSettings
from desktop.services.errors import ServiceError
from desktop.services.notices import template_admin, template_files
from desktop.services.notices.template_admin import TemplateRecord, TemplateSummary
from desktop.ui.admin.digest_settings_page import DigestSettingsPage
from desktop.ui.admin.shelf_policy_editor import ShelfPolicyEditor
from desktop.ui.admin.sms_settings_page import SmsSettingsPage
from desktop.ui.context import AppContext
from desktop.ui.notices.template_editor import TemplateEditor
from desktop.ui.widgets.colours import Tone, tone_colour
from desktop.ui.widgets.tables import record_table
from desktop.ui.window_state import restore_geometry, save_geometry

_Index = QModelIndex | QPersistentModelIndex
_NO_INDEX = QModelIndex()


def _when(summary: TemplateSummary) -> str:
    return summary.updated_at.astimezone().strftime("%Y-%m-%d %H:%M")


class _RowsModel(QAbstractTableModel):
    """A flat table over a short list of frozen dataclasses; subclasses give ``HEADERS`` and ``data``.

    These lists hold a handful of rows (templates, pickup desks), so replacing them resets the model.
    """

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[Any] = []

    def set_rows(self, rows: Sequence[Any]) -> None:
        """Show ``rows`` (as loaded or saved)."""
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: _Index = _NO_INDEX) -> int:
        """Number of rows."""
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = _NO_INDEX) -> int:
        """Number of columns."""
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class TemplateListModel(_RowsModel):
    """The Notification Templates list: one row per template, deleted ones greyed ("not sent")."""

    HEADERS = ("Name", "Channel", "Description", "Last changed by", "Last changed", "State")
    rows: list[TemplateSummary]

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text, tooltips, and grey italics for deleted templates."""
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return (
                row.name,
                "E-mail" if row.channel == "email" else "Print",
                row.description,
                row.updated_by,
                _when(row),
                "Deleted — not sent" if row.deleted else "Enabled",
            )[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            if row.deleted:
                return f"{row.name} is deleted: this notice is not sent. Undelete or Restore default to send it."
            return row.description
        if role == Qt.ItemDataRole.ForegroundRole and row.deleted:
            return tone_colour(Tone.MUTED, None, QPalette.ColorRole.Base)
        if role == Qt.ItemDataRole.FontRole and row.deleted:
            font = QFont()
            font.setItalic(True)
            return font
        return None


class RoutingModel(_RowsModel):
    """Pickup locations with their routing delay and hold days; the two numbers are edited in place."""

    HEADERS = ("Pickup location", "Code", "Delay before Awaiting Customer Contact (minutes)", "Hold days")
    EDITABLE = frozenset({2, 3})  # delay, hold days
    rows: list[PickupRouting]

    def flags(self, index: _Index) -> Qt.ItemFlag:
        """The delay and hold-days cells are editable."""
        base = super().flags(index)
        if index.isValid() and index.column() in self.EDITABLE:
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Names, codes and the numbers (as ints, so the view edits them with a spin box)."""
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.AccessibleTextRole):
            values: tuple[Any, ...] = (row.name, row.code, row.routing_delay_minutes, row.hold_days)
            value = values[index.column()]
            return str(value) if role == Qt.ItemDataRole.AccessibleTextRole else value
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in self.EDITABLE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 2:
            return "0 = patrons are told as soon as the item is in transit to this desk"
        return None

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Accept a whole number of 0 or more (the service checks the upper limits when saving)."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() not in self.EDITABLE:
            return False
        try:
            number = int(value)
        except (TypeError, ValueError):
            return False
        if number < 0:
            return False
        row = index.row()
        current = self.rows[row]
        if index.column() == 2:
            self.rows[row] = replace(current, routing_delay_minutes=number)
        else:
            self.rows[row] = replace(current, hold_days=number)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        return True


class CustomizationManager(QDialog):
    """The Customization Manager window (see the module docstring)."""

    def __init__(
        self, ctx: AppContext, parent: QWidget | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._ssl_context = ssl_context
        self.editors: dict[int, TemplateEditor] = {}
        self._confirmations: dict[str, tuple[Any, str]] = {}  # open confirmation box -> (change, done message)
        self._shared: SharedSettings | None = None
        self._routing_base: SharedSettings | None = None
        self._library_base: LibraryInfo | None = None
        self.setObjectName("customizationManager")
        self.setAccessibleName("Customization Manager")
        self.setWindowTitle("Customization Manager")
        self.setModal(False)
        self.resize(1000, 560)

        root = QVBoxLayout(self)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("customizationTabs")
        root.addWidget(self.tabs)
        self.tabs.addTab(self._build_templates_tab(), "&Notification Templates")
        self.tabs.addTab(self._build_routing_tab(), "&Routing")
        self.tabs.addTab(self._build_library_tab(), "&Library")
        self.smsPage = SmsSettingsPage(ctx, self)  # issue 18: loads and saves on its own
        self.tabs.addTab(self.smsPage, "Te&xt Messages (SMS)")
        self.digestPage = DigestSettingsPage(ctx, self)  # issue 18, part 4: loads and saves on its own
        self.tabs.addTab(self.digestPage, "One Message for Man&y Items")
        bottom = QHBoxLayout()
        self.statusLabel = QLabel("", self)
        self.statusLabel.setObjectName("customizationStatusLabel")
        self.statusLabel.setWordWrap(True)
        bottom.addWidget(self.statusLabel, 1)
        close = QPushButton("Close", self)
        close.setObjectName("closeCustomizationButton")
        close.setAccessibleName("Close Customization Manager")
        close.setAutoDefault(False)
        close.clicked.connect(self.close)
        bottom.addWidget(close)
        root.addLayout(bottom)

        ctx.changed.connect(self._on_data_changed)
        ctx.databaseChanged.connect(self.reload)
        restore_geometry(self, "customizationManager/geometry")
        self.reload()

    # ------------------------------------------------------------------------------------------------ building

    def _build_templates_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("notificationTemplatesTab")
        tab.setAccessibleName("Notification Templates")
        layout = QVBoxLayout(tab)
        intro = QLabel(
            "Notices are made from these templates. Edit one to change what patrons receive; delete one to stop "
            "sending that notice (the request then waits at Awaiting Customer Contact for staff)."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.templateModel = TemplateListModel(tab)
        self.templateTable = record_table(self.templateModel, "templateTable", "Notification templates", parent=tab)
        header = self.templateTable.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.templateTable.doubleClicked.connect(self._on_template_double_clicked)
        layout.addWidget(self.templateTable, 1)

        buttons = QHBoxLayout()
        self.editButton = QPushButton("&Edit…", tab)
        self.editButton.setObjectName("editTemplateButton")
        self.editButton.setAccessibleName("Edit template")
        self.editButton.clicked.connect(self.edit_selected)
        self.deleteButton = QPushButton("&Delete", tab)
        self.deleteButton.setObjectName("deleteTemplateButton")
        self.deleteButton.setAccessibleName("Delete template")
        self.deleteButton.clicked.connect(self.delete_or_undelete_selected)
        self.restoreButton = QPushButton("Restore De&fault", tab)
        self.restoreButton.setObjectName("restoreDefaultButton")
        self.restoreButton.setAccessibleName("Restore default template")
        self.restoreButton.clicked.connect(self.restore_selected)
        self.illiadTemplatesButton = QPushButton("Convert from &ILLiad…", tab)
        self.illiadTemplatesButton.setObjectName("convertIlliadTemplatesButton")
        self.illiadTemplatesButton.setAccessibleName("Convert ILLiad notification templates")
        self.illiadTemplatesButton.clicked.connect(self.choose_illiad_templates)
        for button in (self.editButton, self.deleteButton, self.restoreButton, self.illiadTemplatesButton):
            button.setAutoDefault(False)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.illiadResult = QPlainTextEdit(tab)
        self.illiadResult.setObjectName("illiadTemplatesResult")
        self.illiadResult.setAccessibleName("ILLiad template conversion: what was imported and what to fix")
        self.illiadResult.setReadOnly(True)
        self.illiadResult.setMaximumHeight(140)
        self.illiadResult.setVisible(False)
        layout.addWidget(self.illiadResult)
        self.templateTable.selectionModel().selectionChanged.connect(self._update_template_buttons)
        self._update_template_buttons()
        return tab

    @Slot()
    def choose_illiad_templates(self) -> None:
        """Pick an ILLiad template export (CSV of the table, or a text file) and convert it."""
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose ILLiad templates", "", "ILLiad templates (*.csv *.txt);;All files (*)"
        )
        if path:
            self.convert_illiad_templates(Path(path))

    def convert_illiad_templates(self, path: Path) -> None:
        """Convert on the task thread; the result lists what was imported and every problem to fix."""
        job = partial(template_files.import_illiad_templates, self.ctx.db, path, self.ctx.staff_name)
        self.ctx.run(job, self._on_illiad_converted, self._on_illiad_failed)

    def _on_illiad_converted(self, outcomes: object) -> None:
        if not isValid(self):
            return
        assert isinstance(outcomes, list)
        lines = [line for outcome in outcomes for line in outcome.lines()]
        self.illiadResult.setPlainText("\n".join(lines))
        self.illiadResult.setVisible(True)
        self.reload_templates()

    def _on_illiad_failed(self, error: object) -> None:
        if not isValid(self):
            return
        self.illiadResult.setPlainText(f"Nothing was converted: {error}")
        self.illiadResult.setVisible(True)

    def _build_routing_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("routingTab")
        tab.setAccessibleName("Routing")
        layout = QVBoxLayout(tab)
        intro = QLabel(
            "Requests wait at <i>In Transit to Pickup Location</i> for the delay set here, then move on to "
            "<i>Awaiting Customer Contact</i> — that is when the e-mail goes out. Double-click a number to "
            "change it."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.routingModel = RoutingModel(tab)
        self.routingTable = QTableView(tab)
        self.routingTable.setTabKeyNavigation(False)  # Tab leaves the table
        self.routingTable.setObjectName("routingTable")
        self.routingTable.setAccessibleName("Routing delay per pickup location")
        self.routingTable.setModel(self.routingModel)
        self.routingTable.verticalHeader().setVisible(False)
        self.routingTable.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.routingTable.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.routingTable.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.routingTable, 1)
        form = QFormLayout()
        self.pollSecondsSpin = QSpinBox(tab)
        self.pollSecondsSpin.setObjectName("pollSecondsSpin")
        self.pollSecondsSpin.setAccessibleName("System Manager poll interval in seconds")
        self.pollSecondsSpin.setRange(shared_settings.MIN_POLL_SECONDS, shared_settings.MAX_POLL_SECONDS)
        self.pollSecondsSpin.setSuffix(" s")
        self.pollSecondsSpin.setMaximumWidth(160)
        self.pollSecondsSpin.setToolTip(
            "How often every System Manager checks for notices to send when nothing wakes it sooner (ILLiad: 300)"
        )
        form.addRow("System Manager checks every:", self.pollSecondsSpin)
        layout.addLayout(form)
        self.shelfEditor = ShelfPolicyEditor(self.ctx, tab)  # the hold shelf (issue 17): saves on its own
        layout.addWidget(self.shelfEditor)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.revertRoutingButton = QPushButton("Re&vert", tab)
        self.revertRoutingButton.setObjectName("revertRoutingButton")
        self.revertRoutingButton.setAccessibleName("Revert routing changes")
        self.revertRoutingButton.clicked.connect(self.reload_shared)
        self.saveRoutingButton = QPushButton("&Save Routing", tab)
        self.saveRoutingButton.setObjectName("saveRoutingButton")
        self.saveRoutingButton.setAccessibleName("Save routing settings")
        self.saveRoutingButton.clicked.connect(self.save_routing)
        for button in (self.revertRoutingButton, self.saveRoutingButton):
            button.setAutoDefault(False)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        return tab

    def _build_library_tab(self) -> QWidget:
        tab = QWidget(self)
        tab.setObjectName("libraryTab")
        tab.setAccessibleName("Library")
        layout = QVBoxLayout(tab)
        intro = QLabel("Notices and printed letters are signed with these details.")
        layout.addWidget(intro)
        form = QFormLayout()
        self.libraryNameEdit = QLineEdit(tab)
        self.libraryAddressEdit = QPlainTextEdit(tab)
        self.libraryAddressEdit.setTabChangesFocus(True)
        self.libraryAddressEdit.setMaximumHeight(90)
        self.libraryEmailEdit = QLineEdit(tab)
        self.libraryPhoneEdit = QLineEdit(tab)
        for widget, name, label, accessible in (
            (self.libraryNameEdit, "libraryNameEdit", "Na&me:", "Library name"),
            (self.libraryAddressEdit, "libraryAddressEdit", "Return a&ddress:", "Library return address"),
            (self.libraryEmailEdit, "libraryEmailEdit", "&E-mail:", "Library e-mail"),
            (self.libraryPhoneEdit, "libraryPhoneEdit", "&Phone:", "Library phone"),
        ):
            widget.setObjectName(name)
            widget.setAccessibleName(accessible)
            form.addRow(label, widget)
        layout.addLayout(form)
        layout.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.saveLibraryButton = QPushButton("&Save Library Details", tab)
        self.saveLibraryButton.setObjectName("saveLibraryButton")
        self.saveLibraryButton.setAccessibleName("Save library details")
        self.saveLibraryButton.setAutoDefault(False)
        self.saveLibraryButton.clicked.connect(self.save_library)
        buttons.addWidget(self.saveLibraryButton)
        layout.addLayout(buttons)
        return tab

    # ------------------------------------------------------------------------------------------------ loading

    @Slot()
    def reload(self) -> None:
        """Load the template list and the shared settings (off the GUI thread)."""
        self.reload_templates()
        self.reload_shared()

    @Slot()
    def reload_templates(self) -> None:
        """Refresh the template list, keeping the selection."""
        self.ctx.run(partial(template_admin.list_templates, self.ctx.db), self._on_templates_loaded, self._on_failed)

    @Slot()
    def reload_shared(self) -> None:
        """Load the Routing and Library tabs again (discarding unsaved edits there)."""
        self.ctx.run(
            partial(shared_settings.load_shared_settings, self.ctx.db), self._on_shared_loaded, self._on_failed
        )

    @Slot(str)
    def _on_data_changed(self, topic: str) -> None:
        if topic == "templates":
            self.reload_templates()

    def _on_templates_loaded(self, rows: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        assert isinstance(rows, list)
        selected = self.selected_template()
        self.templateModel.set_rows(rows)
        if selected is not None:
            self.select_template(selected.name)
        elif rows:
            self.templateTable.selectRow(0)
        self._update_template_buttons()

    def _on_shared_loaded(self, result: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        assert isinstance(result, SharedSettings)
        self._shared = result
        self._routing_base = result
        self._library_base = result.library
        self.routingModel.set_rows(result.pickups)
        self.pollSecondsSpin.setValue(result.poll_seconds)
        self._show_library(result.library)

    def _show_library(self, library: LibraryInfo) -> None:
        self.libraryNameEdit.setText(library.name)
        self.libraryAddressEdit.setPlainText(library.address)
        self.libraryEmailEdit.setText(library.email)
        self.libraryPhoneEdit.setText(library.phone)

    def _on_failed(self, error: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        self.statusLabel.setText(f"⚠ {error}")

    # ------------------------------------------------------------------------------------------------ templates

    def selected_template(self) -> TemplateSummary | None:
        """The highlighted template, if any."""
        rows = self.templateTable.selectionModel().selectedRows() if self.templateTable.selectionModel() else []
        if not rows:
            return None
        return self.templateModel.rows[rows[0].row()]

    def select_template(self, name: str) -> bool:
        """Highlight the template called ``name``."""
        for row, summary in enumerate(self.templateModel.rows):
            if summary.name == name:
                self.templateTable.selectRow(row)
                return True
        return False

    @Slot()
    def _update_template_buttons(self) -> None:
        selected = self.selected_template()
        self.editButton.setEnabled(selected is not None)
        self.deleteButton.setEnabled(selected is not None)
        self.restoreButton.setEnabled(selected is not None and selected.has_default)
        if selected is not None and selected.deleted:
            self.deleteButton.setText("Un&delete")
            self.deleteButton.setAccessibleName("Undelete template")
        else:
            self.deleteButton.setText("&Delete")
            self.deleteButton.setAccessibleName("Delete template")

    @Slot(QModelIndex)
    def _on_template_double_clicked(self, _index: QModelIndex) -> None:
        self.edit_selected()

    @Slot()
    def edit_selected(self) -> None:
        """Open the editor on the highlighted template (or bring its open editor forward)."""
        selected = self.selected_template()
        if selected is None:
            return
        editor = self.editors.get(selected.id)
        if editor is not None:
            editor.raise_()
            editor.activateWindow()
            return
        self.ctx.run(
            partial(template_admin.load_template, self.ctx.db, selected.id), self._open_editor, self._on_failed
        )

    def _open_editor(self, record: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        assert isinstance(record, TemplateRecord)
        if record.id in self.editors:
            return
        editor = TemplateEditor(self.ctx, record, self, ssl_context=self._ssl_context)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        editor.finished.connect(self._on_editor_finished)
        self.editors[record.id] = editor
        editor.show()

    @Slot(int)
    def _on_editor_finished(self, _result: int) -> None:
        editor = self.sender()
        for template_id, open_editor in list(self.editors.items()):
            if open_editor is editor:
                del self.editors[template_id]

    @Slot()
    def delete_or_undelete_selected(self) -> None:
        """Delete the highlighted template after a warning, or undelete it when it is deleted."""
        selected = self.selected_template()
        if selected is None:
            return
        if selected.deleted:
            self._change(template_admin.undelete_template, selected, f"“{selected.name}” will be sent again.")
            return
        self._confirm_then_change(
            selected,
            name="confirmDeleteBox",
            icon=QMessageBox.Icon.Warning,
            title="Delete template",
            question=f"Delete the template “{selected.name}”?",
            informative=(
                "This notice will no longer be sent: requests that would get it stay at Awaiting Customer Contact "
                "and the Contact Customers form says why. Undelete or Restore default to send it again."
                if selected.channel == "email"
                else "This notice can no longer be printed until you undelete it or restore the default."
            ),
            yes_text="&Delete",
            cancel_is_default=True,
            change=template_admin.delete_template,
            done_message="“{name}” deleted: this notice is not sent.",
        )

    @Slot()
    def restore_selected(self) -> None:
        """Replace the highlighted template with the shipped default, after confirmation."""
        selected = self.selected_template()
        if selected is None or not selected.has_default:
            return
        self._confirm_then_change(
            selected,
            name="confirmRestoreBox",
            icon=QMessageBox.Icon.Question,
            title="Restore default",
            question=f"Replace “{selected.name}” with the default that ships with Callslip?",
            informative="Your edits are kept in the template's history but no longer used.",
            yes_text="&Restore",
            cancel_is_default=False,
            change=template_admin.restore_default,
            done_message="“{name}” restored to the default.",
        )

    def _confirm_then_change(
        self,
        selected: TemplateSummary,
        *,
        name: str,
        icon: QMessageBox.Icon,
        title: str,
        question: str,
        informative: str,
        yes_text: str,
        cancel_is_default: bool,
        change: Any,
        done_message: str,
    ) -> None:
        """Ask without blocking (``open()``, not ``exec()``); the answer slot makes the change on Yes."""
        box = QMessageBox(
            icon, title, question, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self
        )
        box.setObjectName(name)
        box.setInformativeText(informative)
        if cancel_is_default:
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText(yes_text)
        box.setProperty("templateId", selected.id)
        self._confirmations[name] = (change, done_message)
        box.finished.connect(self._on_confirmation_answer)
        box.open()

    @Slot(int)
    def _on_confirmation_answer(self, answer: int) -> None:
        box = self.sender()
        if not isinstance(box, QMessageBox):
            return
        template_id = box.property("templateId")
        change, done_message = self._confirmations.pop(box.objectName(), (None, ""))
        box.deleteLater()
        if answer != QMessageBox.StandardButton.Yes.value or change is None:
            return
        summary = next((r for r in self.templateModel.rows if r.id == template_id), None)
        if summary is not None:
            self._change(change, summary, done_message.format(name=summary.name))

    def _change(self, fn: Any, summary: TemplateSummary, done_message: str) -> None:
        if summary.id in self.editors:
            self.statusLabel.setText(f"Close the editor of “{summary.name}” first.")
            return
        job = partial(fn, self.ctx.db, summary.id, expected_version=summary.version, changed_by=self.ctx.staff_name)
        self.ctx.run(job, partial(self._on_changed, done_message), self._on_change_failed)

    def _on_changed(self, message: str, _record: object) -> None:
        self.ctx.changed.emit("templates")  # other windows (Contact Customers) refresh even if this one closed
        if isValid(self):
            self.statusLabel.setText(message)

    def _on_change_failed(self, error: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        self.statusLabel.setText(f"⚠ {error}")
        self.reload_templates()

    # ------------------------------------------------------------------------------------------------ shared

    def routing_settings(self) -> SharedSettings | None:
        """The Routing tab as edited (on top of what was loaded)."""
        if self._routing_base is None:
            return None
        return replace(
            self._routing_base, pickups=tuple(self.routingModel.rows), poll_seconds=self.pollSecondsSpin.value()
        )

    def library_info(self) -> LibraryInfo:
        """The Library tab as typed."""
        return LibraryInfo(
            name=self.libraryNameEdit.text(),
            address=self.libraryAddressEdit.toPlainText(),
            email=self.libraryEmailEdit.text(),
            phone=self.libraryPhoneEdit.text(),
        )

    @Slot()
    def save_routing(self) -> None:
        """Store the routing delays, hold days and poll interval (only what changed)."""
        new = self.routing_settings()
        if new is None or self._routing_base is None:
            return
        self.routingTable.setCurrentIndex(QModelIndex())  # commit a cell still being edited
        new = self.routing_settings() or new
        job = partial(
            shared_settings.save_shared_settings,
            self.ctx.db,
            self._routing_base,
            new,
            changed_by=self.ctx.staff_name,
        )
        self.saveRoutingButton.setEnabled(False)
        self.ctx.run(job, self._on_routing_saved, self._on_shared_failed)

    def _on_routing_saved(self, result: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        assert isinstance(result, SharedSettings)
        self.saveRoutingButton.setEnabled(True)
        self._routing_base = result
        self.routingModel.set_rows(result.pickups)
        self.pollSecondsSpin.setValue(result.poll_seconds)
        self.statusLabel.setText("Routing saved: every workstation uses it from its next check.")
        self.ctx.changed.emit("settings")

    @Slot()
    def save_library(self) -> None:
        """Store the library's name, address, e-mail and phone (only what changed)."""
        if self._routing_base is None or self._library_base is None:
            return
        original = replace(self._routing_base, library=self._library_base)
        new = replace(original, library=self.library_info())
        job = partial(shared_settings.save_shared_settings, self.ctx.db, original, new, changed_by=self.ctx.staff_name)
        self.saveLibraryButton.setEnabled(False)
        self.ctx.run(job, self._on_library_saved, self._on_shared_failed)

    def _on_library_saved(self, result: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        assert isinstance(result, SharedSettings)
        self.saveLibraryButton.setEnabled(True)
        self._library_base = result.library
        self._show_library(result.library)
        self.statusLabel.setText("Library details saved.")
        self.ctx.changed.emit("settings")

    def _on_shared_failed(self, error: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        self.saveRoutingButton.setEnabled(True)
        self.saveLibraryButton.setEnabled(True)
        prefix = "Not saved" if isinstance(error, ServiceError) else "Not saved (unexpected error)"
        self.statusLabel.setText(f"⚠ {prefix}: {error}")

    # ------------------------------------------------------------------------------------------------ closing

    def closeEvent(self, event: QCloseEvent) -> None:
        """Close the open editors too (each asks about its unsaved changes)."""
        for editor in list(self.editors.values()):
            editor.close()
        if self.editors:
            event.ignore()
            return
        super().closeEvent(event)

    def done(self, result: int) -> None:
        """Remember where the window was."""
        save_geometry(self, "customizationManager/geometry")
        super().done(result)


def open_customization_manager(ctx: AppContext, parent: QWidget | None = None) -> CustomizationManager:
    """Open the Customization Manager for ``ctx`` (or bring forward the one already open over ``parent``).

    The main window's System tab calls this.
    """
    if parent is not None:
        for existing in parent.findChildren(CustomizationManager):
            if existing.isVisible() and existing.ctx is ctx:
                existing.raise_()
                existing.activateWindow()
                return existing
    manager = CustomizationManager(ctx, parent)
    manager.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    manager.show()
    return manager
