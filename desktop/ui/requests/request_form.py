"""The request form (``requestForm``): one request with its patron summary, Tracking and Notifications.

Opened by double-click or Enter from any list of requests (:func:`open_request_form`). Staff edit a few
bibliographic fields (marked while unsaved), route the request to an allowed status, and walk the list they
came from with Previous/Next. Saves carry the version that was shown: when another workstation got there
first, the save is refused, the typed values stay, and staff choose to keep theirs or reload.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path

import shiboken6
from PySide6.QtCore import QAbstractItemModel, QDate, QItemSelection, QLocale, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QFont, QKeySequence, QPalette, QTextDocument
from PySide6.QtPrintSupport import QPrinter, QPrintPreviewDialog
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.errors import ConcurrentEditError, ValidationError
from desktop.services.requests.contact_customers import CallNote
from desktop.services.requests.email_actions import EmailPlan, email_templates, plan_email, resend_notice, send_email
from desktop.services.requests.queues import QueueQuery, adjacent_request
from desktop.services.requests.record import (
    NoteEntry,
    NotificationEntry,
    PickupChoice,
    RequestDetails,
    RequestEdit,
    TrackingEntry,
    add_note,
    get_request,
    pickup_choices,
    save_request,
)
from desktop.services.requests.request_sheet import request_sheet_html
from desktop.services.requests.status import route_request
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.notices.delivery_banner import DeliveryBanner
from desktop.ui.requests.send_email_dialog import SendEmailDialog
from desktop.ui.widgets.colours import Tone, set_banner_frame, set_modified_tint, tone_colour
from desktop.ui.widgets.paper import page_size_for
from desktop.ui.widgets.record_table_model import RecordTableModel, local_time
from desktop.ui.widgets.tables import record_table

#: Field name → label, in form order; articles show the journal rows, loans the title rows.
_TEXT_FIELDS = {
    "loan_title": "&Title",
    "photo_journal_title": "&Journal",
    "photo_article_title": "A&rticle title",
    "loan_author": "&Author",
    "call_number": "&Call number",
    "lending_library": "&Lending library",
}
_LOAN_ONLY = {"loan_title"}
_ARTICLE_ONLY = {"photo_journal_title", "photo_article_title"}
#: The due date edit shows this (its minimum date) for "no due date": a QDateEdit always holds a date.
_NO_DUE = QDate(2000, 1, 1)


def _form_style(form: QWidget) -> str:
    """Invalid fields framed in an error colour that shows on the field (changed ones are tinted through their
    palette: :func:`~desktop.ui.widgets.colours.set_modified_tint`)."""
    error = tone_colour(Tone.ERROR, form, QPalette.ColorRole.Base).name()
    return f"QLineEdit[invalid='true'] {{ border: 2px solid {error}; }}"


_open_forms: list[RequestForm] = []


def open_request_form(
    ctx: AppContext, transaction_number: int, parent: QWidget | None = None, *, query: QueueQuery | None = None
) -> RequestForm:
    """Show the request form for ``transaction_number`` (raising the one already open for it).

    Args:
        query: the list the request was opened from, walked by Previous/Next; default: the request's queue.
    """
    _open_forms[:] = [form for form in _open_forms if shiboken6.isValid(form)]
    for form in _open_forms:
        if form.ctx is ctx and form.transaction_number == transaction_number:
            form.show()
            form.raise_()
            form.activateWindow()
            return form
    form = RequestForm(ctx, transaction_number, parent, query=query)
    _open_forms.append(form)
    form.show()
    return form


def load_form_data(db: Database, transaction_number: int) -> tuple[RequestDetails, list[PickupChoice]]:
    """What the form needs, read off the GUI thread."""
    return get_request(db, transaction_number), pickup_choices(db)


def route_and_reload(
    db: Database, transaction_number: int, target: Status, changed_by: str, expected_version: int
) -> RequestDetails:
    """Route (writing Tracking) and read the request back as it now is."""
    route_request(db, transaction_number, target, changed_by, expected_version=expected_version)
    return get_request(db, transaction_number)


@dataclass(frozen=True)
class HistoryLine:
    """One line of the History/Notes tab: a Tracking row or a note, in time order."""

    when: datetime
    kind: str
    by: str
    text: str


def history_lines(details: RequestDetails) -> list[HistoryLine]:
    """Tracking, notes and fallbacks to the next channel merged oldest first (what happened and what was said)."""
    lines = [
        HistoryLine(t.changed_at, "Status", t.changed_by, f"{t.from_status or '(new)'} → {t.to_status}"
                    + (f" ({t.note})" if t.note else ""))
        for t in details.tracking
    ]  # fmt: skip
    lines += [HistoryLine(n.noted_at, f"Note ({n.note_type})", n.added_by, n.note) for n in details.notes]
    lines += [HistoryLine(when, "Fallback", by, text) for when, by, text in details.fallbacks]
    return sorted(lines, key=lambda line: line.when)


def print_request_pdf(details: RequestDetails, path: Path, paper_size: str = "") -> None:
    """Print Request to a PDF file (what the print dialog does, without asking: tests and "Save as PDF")."""
    printer = _request_printer(paper_size)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(path))
    _request_document(details).print_(printer)


def _request_printer(paper_size: str = "") -> QPrinter:
    """A printer on the workstation's paper (the ``paper_size`` setting, else the locale's: Letter or A4)."""
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setPageSize(page_size_for(paper_size))
    return printer


def _request_document(details: RequestDetails) -> QTextDocument:
    document = QTextDocument()
    document.setHtml(request_sheet_html(details))
    return document


class RequestForm(QWidget):
    """One request, editable, with Tracking and Notifications.

    Signals:
        transactionChanged(int): another request is shown (Previous/Next), so lists can follow.
        saved(int): edits were saved.
        routed(int, str): the request was routed to a status.
    """

    transactionChanged = Signal(int)
    saved = Signal(int)
    routed = Signal(int, str)

    def __init__(
        self,
        ctx: AppContext,
        transaction_number: int,
        parent: QWidget | None = None,
        *,
        query: QueueQuery | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.transaction_number = transaction_number
        self.details: RequestDetails | None = None
        self.theirs: RequestDetails | None = None
        self._query = query
        self._busy = False
        self._filling = False
        self.setObjectName("requestForm")
        self.setAccessibleName("Request form")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setStyleSheet(_form_style(self))
        self.resize(980, 720)

        self._build_actions()
        self._build_toolbar()
        self._build_banner()
        self.heading = QLabel(f"Transaction {transaction_number}")
        self.heading.setObjectName("requestHeading")
        font = self.heading.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.heading.setFont(font)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(self._build_request_group(), 3)
        top.addWidget(self._build_patron_group(), 2)
        self.tabs = self._build_tabs()

        self.delivery_banner = DeliveryBanner(ctx, self)
        self.delivery_banner.set_relevant(False)  # until the request is read

        layout = QVBoxLayout(self)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.banner)
        layout.addWidget(self.delivery_banner)
        layout.addWidget(self.heading)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        self._set_enabled(False)
        ctx.changed.connect(self.on_data_changed)
        self._email_token = ""
        self._pending_message = ""
        self.email_dialog: SendEmailDialog | None = None
        self._printer: QPrinter | None = None
        self._print_document: QTextDocument | None = None
        self.load(transaction_number)
        self.ctx.run(functools.partial(email_templates, ctx.db), self.on_templates_loaded, self.on_failed)

    # --- construction -----------------------------------------------------------------------------------------
    def _action(self, text: str, name: str, shortcut: QKeySequence | QKeySequence.StandardKey | str) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{text.replace('&', '')} ({QKeySequence(shortcut).toString()})")
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.previous_action = self._action("&Previous", "previousRequestAction", "Ctrl+PgUp")
        self.previous_action.triggered.connect(self.go_previous)
        self.next_action = self._action("&Next", "nextRequestAction", "Ctrl+PgDown")
        self.next_action.triggered.connect(self.go_next)
        self.save_action = self._action("&Save", "saveRequestAction", QKeySequence.StandardKey.Save)
        self.save_action.triggered.connect(self.save)
        self.revert_action = self._action("Re&vert", "revertRequestAction", "Ctrl+Shift+Z")
        self.revert_action.setToolTip("Undo unsaved edits (Ctrl+Shift+Z)")
        self.revert_action.triggered.connect(self.revert)
        self.reload_action = self._action("Re&load", "reloadRequestAction", QKeySequence.StandardKey.Refresh)
        self.reload_action.triggered.connect(self.reload)
        self.route_action = self._action("R&oute", "routeRequestAction", "Ctrl+R")
        self.route_action.setToolTip("Route to another status (Ctrl+R); only allowed moves are listed")
        self.route_action.triggered.connect(self.show_route_menu)
        self.patron_action = self._action("Patron &record", "openPatronRecordAction", "Ctrl+Shift+P")
        self.patron_action.triggered.connect(self.open_patron)
        self.close_action = self._action("Close", "closeRequestAction", QKeySequence.StandardKey.Close)
        self.close_action.triggered.connect(self.close)
        # Previous/Next: Ctrl+PgUp/PgDown (as between tabs) and Alt+Left/Right (a browser's Back/Forward). Not
        # QKeySequence.Back/Forward: on X11 those include Backspace, which would leave the request when a
        # keystroke meant for a field lands on the table instead.
        for action, extra in ((self.previous_action, "Alt+Left"), (self.next_action, "Alt+Right")):
            action.setShortcuts([action.shortcut(), QKeySequence(extra)])
            action.setToolTip(action.toolTip().removesuffix(")") + ", " + extra + ")")
        self.email_action = self._action("Send E-&mail", "sendEmailAction", "Ctrl+Shift+M")
        self.email_action.setToolTip("Send a notification template to the patron (Ctrl+Shift+M)")
        self.email_action.triggered.connect(self.show_email_menu)
        self.print_action = self._action("Pr&int Request…", "printRequestAction", QKeySequence.StandardKey.Print)
        self.print_action.triggered.connect(self.print_request)

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Request")
        self.toolbar.setObjectName("requestToolbar")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.toolbar.addAction(self.previous_action)
        self.toolbar.addAction(self.next_action)
        self.toolbar.addSeparator()
        self.route_menu = QMenu("Route to", self)
        self.route_menu.setObjectName("routeMenu")
        self.route_button = QToolButton()
        self.route_button.setObjectName("routeButton")
        self.route_button.setAccessibleName("Route to another status")
        self.route_button.setText("R&oute to…")
        self.route_button.setToolTip(self.route_action.toolTip())
        self.route_button.setMenu(self.route_menu)
        self.route_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.toolbar.addWidget(self.route_button)
        self.email_menu = QMenu("Send E-mail", self)
        self.email_menu.setObjectName("sendEmailMenu")
        self.email_button = QToolButton()
        self.email_button.setObjectName("sendEmailMenuButton")
        self.email_button.setAccessibleName("Send an e-mail to the patron")
        self.email_button.setText("Send E-&mail")
        self.email_button.setToolTip(self.email_action.toolTip())
        self.email_button.setMenu(self.email_menu)
        self.email_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.toolbar.addWidget(self.email_button)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.save_action)
        self.toolbar.addAction(self.revert_action)
        self.toolbar.addAction(self.reload_action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.patron_action)
        self.toolbar.addAction(self.print_action)
        for action, name in (
            (self.print_action, "printRequestButton"),
            (self.previous_action, "previousRequestButton"),
            (self.next_action, "nextRequestButton"),
            (self.save_action, "saveRequestButton"),
            (self.revert_action, "revertRequestButton"),
            (self.reload_action, "reloadRequestButton"),
            (self.patron_action, "patronRecordButton"),
        ):
            widget = self.toolbar.widgetForAction(action)
            widget.setObjectName(name)
            widget.setAccessibleName(action.text().replace("&", ""))

    def _build_banner(self) -> None:
        self.banner = QFrame()
        self.banner.setObjectName("formMessageBanner")
        self.message = QLabel()
        self.message.setObjectName("formMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.overwrite_button = QPushButton("Save &mine anyway")
        self.overwrite_button.setObjectName("overwriteButton")
        self.overwrite_button.setAccessibleName("Save my edits over the other workstation's version")
        self.overwrite_button.clicked.connect(self.save_over_theirs)
        self.discard_button = QPushButton("&Discard mine and reload")
        self.discard_button.setObjectName("discardButton")
        self.discard_button.setAccessibleName("Discard my edits and show the other workstation's version")
        self.discard_button.clicked.connect(self.reload)
        row = QHBoxLayout(self.banner)
        row.addWidget(self.message, 1)
        row.addWidget(self.overwrite_button)
        row.addWidget(self.discard_button)
        self.banner.hide()

    def _line(self, name: str, accessible: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setAccessibleName(accessible)
        edit.textEdited.connect(self.on_field_edited)
        return edit

    def _value(self, name: str, accessible: str) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setAccessibleName(accessible)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _build_request_group(self) -> QGroupBox:
        group = QGroupBox("Request")
        self.request_layout = QFormLayout(group)
        self.tn_label = self._value("transactionNumber", "Transaction number")
        self.status_label = self._value("requestStatus", "Status")
        bold = QFont(self.status_label.font())
        bold.setBold(True)
        self.status_label.setFont(bold)
        self.type_label = self._value("requestType", "Request type")
        self.request_layout.addRow("Transaction number:", self.tn_label)
        self.request_layout.addRow("Status:", self.status_label)
        self.request_layout.addRow("Request type:", self.type_label)
        self.edits: dict[str, QLineEdit] = {}
        self.labels: dict[str, QLabel] = {}
        for name, label in _TEXT_FIELDS.items():
            words = label.replace("&", "")
            self.edits[name] = self._line(name.replace("_", "") + "Edit", words)
            self.labels[name] = QLabel(label + ":")
            self.labels[name].setBuddy(self.edits[name])
            self.request_layout.addRow(self.labels[name], self.edits[name])
        self.due_edit = QDateEdit()
        self.due_edit.setObjectName("dueDateEdit")
        self.due_edit.setAccessibleName("Due date")
        self.due_edit.setCalendarPopup(True)  # F4 or Alt+Down opens the calendar
        self.due_edit.setDisplayFormat(QLocale().dateFormat(QLocale.FormatType.ShortFormat))
        self.due_edit.setMinimumDate(_NO_DUE)
        self.due_edit.setSpecialValueText("No due date")
        self.due_edit.setDate(_NO_DUE)
        self.due_edit.setToolTip("Pick the date from the calendar (F4); the earliest date means no due date")
        self.due_edit.dateChanged.connect(self.on_field_edited)
        self.labels["due_date"] = QLabel("D&ue date:")
        self.labels["due_date"].setBuddy(self.due_edit)
        self.no_due_button = QToolButton()
        self.no_due_button.setObjectName("noDueDateButton")
        self.no_due_button.setText("No date")
        self.no_due_button.setAccessibleName("Clear the due date")
        self.no_due_button.setToolTip("Clear the due date")
        self.no_due_button.clicked.connect(self.clear_due_date)
        due_row = QHBoxLayout()
        due_row.addWidget(self.due_edit, 1)
        due_row.addWidget(self.no_due_button)
        self.request_layout.addRow(self.labels["due_date"], due_row)
        self.pickup_combo = QComboBox()
        self.pickup_combo.setObjectName("pickupLocationCombo")
        self.pickup_combo.setAccessibleName("Pickup location")
        self.pickup_combo.activated.connect(self.on_field_edited)
        self.labels["pickup_location_id"] = QLabel("Pic&kup location:")
        self.labels["pickup_location_id"].setBuddy(self.pickup_combo)
        self.request_layout.addRow(self.labels["pickup_location_id"], self.pickup_combo)
        self.transaction_date_label = self._value("transactionDate", "Transaction date")
        self.request_layout.addRow("Requested:", self.transaction_date_label)
        return group

    def _build_patron_group(self) -> QGroupBox:
        group = QGroupBox("Patron")
        form = QFormLayout(group)
        self.patron_name_label = self._value("patronName", "Patron name")
        bold = QFont(self.patron_name_label.font())
        bold.setBold(True)
        self.patron_name_label.setFont(bold)
        self.username_label = self._value("patronUsername", "User name")
        self.method_label = self._value("notificationMethod", "Notification method")
        self.delivery_label = self._value("deliveryMethod", "Delivery method")
        self.email_label = self._value("primaryEmail", "Primary e-mail")
        self.phone_label = self._value("primaryPhone", "Primary phone")
        form.addRow("Name:", self.patron_name_label)
        form.addRow("User name:", self.username_label)
        form.addRow("Notify by:", self.method_label)
        form.addRow("Delivery:", self.delivery_label)
        form.addRow("E-mail:", self.email_label)
        form.addRow("Phone:", self.phone_label)
        self.patron_button = QPushButton("Open &Patron Record")
        self.patron_button.setObjectName("openPatronRecordButton")
        self.patron_button.setAccessibleName("Open the patron record")
        self.patron_button.clicked.connect(self.open_patron)
        form.addRow(self.patron_button)
        return group

    def _build_tabs(self) -> QTabWidget:
        tabs = QTabWidget()
        tabs.setObjectName("requestTabs")
        tabs.setAccessibleName("Request history")
        self.tracking_model: RecordTableModel[TrackingEntry] = RecordTableModel(
            [
                ("When", lambda t: local_time(t.changed_at)),
                ("From", lambda t: t.from_status or "(new)"),
                ("To", lambda t: t.to_status),
                ("By", lambda t: t.changed_by),
                ("Note", lambda t: t.note),
            ],
            self,
        )
        self.tracking_table = self._table("trackingTable", "Tracking: every status change", self.tracking_model)
        for column, width in enumerate((130, 210, 210, 110)):
            self.tracking_table.setColumnWidth(column, width)
        self.notifications_model: RecordTableModel[NotificationEntry] = RecordTableModel(
            [
                ("Created", lambda n: local_time(n.created_at)),
                ("Channel", lambda n: n.channel),
                ("Template", lambda n: n.template_name),
                ("To", lambda n: n.to_address),
                ("Subject", lambda n: n.subject),
                ("State", lambda n: n.state_text),
                ("Attempts", lambda n: str(n.attempts)),
                ("Last reply", lambda n: n.last_reply),
                ("Sent", lambda n: local_time(n.sent_at)),
            ],
            self,
        )
        self.notifications_table = self._table("notificationsTable", "Notifications", self.notifications_model)
        self.notifications_table.selectionModel().selectionChanged.connect(self.on_notification_selected)
        self.notification_text = QPlainTextEdit()
        self.notification_text.setObjectName("notificationText")
        self.notification_text.setAccessibleName("Full text of the selected notice")
        self.notification_text.setReadOnly(True)
        self.notification_text.setPlaceholderText("Select a notice to read its full text.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.notifications_table)
        split.addWidget(self.notification_text)
        self.calls_model: RecordTableModel[CallNote] = RecordTableModel(
            [
                ("When", lambda c: local_time(c.called_at)),
                ("Outcome", lambda c: c.outcome),
                ("By", lambda c: c.staff),
                ("Note", lambda c: c.note),
            ],
            self,
        )
        self.calls_table = self._table("callsTable", "Phone calls and their notes", self.calls_model)
        for column, width in enumerate((130, 120, 110)):
            self.calls_table.setColumnWidth(column, width)
        self.resend_button = QPushButton("&Resend…")
        self.resend_button.setObjectName("resendNoticeButton")
        self.resend_button.setAccessibleName("Send the selected notice again")
        self.resend_button.setToolTip("Send the selected e-mail again, as a new notice rendered from its template now")
        self.resend_button.setEnabled(False)
        self.resend_button.clicked.connect(self.resend_selected)
        history = QWidget()
        history_layout = QVBoxLayout(history)
        history_layout.setContentsMargins(0, 0, 0, 0)
        history_layout.addWidget(split, 1)
        resend_row = QHBoxLayout()
        resend_row.addStretch(1)
        resend_row.addWidget(self.resend_button)
        history_layout.addLayout(resend_row)
        tabs.addTab(self.tracking_table, "Trackin&g")
        self.email_tab_index = tabs.addTab(history, "E-mail &History")
        self.calls_tab_index = tabs.addTab(self.calls_table, "Call&s")
        self.notes_tab_index = tabs.addTab(self._build_notes_tab(), "History/Not&es")
        return tabs

    def _build_notes_tab(self) -> QWidget:
        self.history_model: RecordTableModel[HistoryLine] = RecordTableModel(
            [
                ("When", lambda h: local_time(h.when)),
                ("What", lambda h: h.kind),
                ("By", lambda h: h.by),
                ("Text", lambda h: h.text),
            ],
            self,
        )
        self.history_table = self._table("historyTable", "History: status changes and notes", self.history_model)
        for column, width in enumerate((130, 110, 110)):
            self.history_table.setColumnWidth(column, width)
        self.note_edit = QPlainTextEdit()
        self.note_edit.setObjectName("noteEdit")
        self.note_edit.setAccessibleName("New note")
        self.note_edit.setPlaceholderText("Type a note about this request; it is saved with your name and the time.")
        self.note_edit.setTabChangesFocus(True)
        self.note_edit.setMaximumHeight(self.note_edit.fontMetrics().lineSpacing() * 4)
        self.add_note_button = QPushButton("Add &Note")
        self.add_note_button.setObjectName("addNoteButton")
        self.add_note_button.setAccessibleName("Add the note")
        self.add_note_button.clicked.connect(self.add_note)
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.history_table, 1)
        row = QHBoxLayout()
        row.addWidget(self.note_edit, 1)
        row.addWidget(self.add_note_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(row)
        return tab

    def _table(self, name: str, accessible: str, model: QAbstractItemModel) -> QTableView:
        table = record_table(model, name, accessible)
        table.horizontalHeader().setStretchLastSection(True)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        return table

    # --- loading ----------------------------------------------------------------------------------------------
    def load(self, transaction_number: int) -> None:
        """Read a request in the background and show it."""
        self._start(f"Loading request {transaction_number}…")
        self.ctx.run(
            functools.partial(load_form_data, self.ctx.db, transaction_number),
            self.on_loaded,
            self.on_failed,
        )

    @Slot()
    def reload(self) -> None:
        """Show the request as the database has it now (unsaved edits are dropped: the button says so)."""
        self.load(self.transaction_number)

    def on_loaded(self, result: tuple[RequestDetails, list[PickupChoice]]) -> None:
        """Show freshly read data."""
        if not shiboken6.isValid(self):
            return
        details, choices = result
        self._fill_pickups(choices)
        self._show(details)
        self._hide_message()
        self._finish()
        if self._pending_message:  # what the action that reloaded the form did
            self._show_message(self._pending_message, error=False)
            self._pending_message = ""

    def on_failed(self, error: object) -> None:
        """Reading or writing failed; what was typed stays."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        if isinstance(error, ValidationError):
            for name in error.problems:
                self._mark_invalid(name, True)
        self._show_message(str(error) or type(error).__name__, error=True)

    def _fill_pickups(self, choices: list[PickupChoice]) -> None:
        self.pickup_combo.clear()
        self.pickup_combo.addItem("(the patron's pickup location)", None)
        for choice in choices:
            self.pickup_combo.addItem(f"{choice.name} ({choice.code})", choice.id)

    def _show(self, details: RequestDetails) -> None:
        """Put ``details`` into every field; nothing is marked unsaved afterwards."""
        changed_request = details.transaction_number != self.transaction_number
        self.details = details
        self.theirs = None
        self.transaction_number = details.transaction_number
        if self._query is None:
            self._query = QueueQuery(status=details.status)
        self._filling = True
        try:
            self.setWindowTitle(f"Request {details.transaction_number} — {details.title or '(no title)'}")
            self.heading.setText(f"{details.transaction_number} · {details.title or '(no title)'}")
            self.tn_label.setText(str(details.transaction_number))
            since = local_time(details.status_changed_at)
            self.status_label.setText(f"{details.status}  (since {since})" if since else details.status)
            self.type_label.setText(details.request_type)
            self.transaction_date_label.setText(local_time(details.transaction_date))
            for name, edit in self.edits.items():
                edit.setText(getattr(details, name))
            due = details.due_date
            self.due_edit.setDate(QDate(due.year, due.month, due.day) if due else _NO_DUE)
            found = self.pickup_combo.findData(details.pickup_location_id)
            self.pickup_combo.setCurrentIndex(max(found, 0))
            self.pickup_combo.setItemText(
                0, f"(the patron's: {details.pickup_location_name})" if details.pickup_location_name else "(none)"
            )
            for name in _LOAN_ONLY:
                self.request_layout.setRowVisible(self.edits[name], not details.is_article)
            for name in _ARTICLE_ONLY:
                self.request_layout.setRowVisible(self.edits[name], details.is_article)
            self.patron_name_label.setText(details.patron_name)
            self.username_label.setText(details.patron_username)
            self.method_label.setText(details.notification_method)
            self.delivery_label.setText(details.delivery_method)
            self.email_label.setText(details.primary_email or "(none)")
            self.phone_label.setText(details.primary_phone or "(none)")
            self.tracking_model.set_records(details.tracking)
            self.notifications_model.set_records(details.notifications)
            if not details.notifications:
                self.notification_text.clear()
            self.calls_model.set_records(details.calls)
            self.tabs.setTabText(self.calls_tab_index, f"Call&s ({len(details.calls)})" if details.calls else "Call&s")
            self.history_model.set_records(history_lines(details))
            self.tabs.setTabText(
                self.notes_tab_index, f"History/Not&es ({len(details.notes)})" if details.notes else "History/Not&es"
            )
            self._update_resend()
            # Why this request's e-mail waits is said on the form only when it has one waiting or failed.
            self.delivery_banner.set_relevant(any(n.waiting_or_failed for n in details.notifications))
            self._rebuild_route_menu(details)
        finally:
            self._filling = False
        for name in (*_TEXT_FIELDS, "due_date"):
            self._mark_invalid(name, False)
        self._update_modified()
        if changed_request:
            self.transactionChanged.emit(details.transaction_number)

    def _rebuild_route_menu(self, details: RequestDetails) -> None:
        self.route_menu.clear()
        for target in details.allowed_routes:
            action = self.route_menu.addAction(target)
            action.setObjectName("routeTo:" + target)
            action.setData(target)
            action.triggered.connect(self.on_route_chosen)
        self.route_button.setEnabled(bool(details.allowed_routes))
        self.route_action.setEnabled(bool(details.allowed_routes))

    # --- editing ----------------------------------------------------------------------------------------------
    def current_edit(self) -> RequestEdit:
        """The editable fields as typed (the due date as picked)."""
        values: dict[str, object] = {name: edit.text() for name, edit in self.edits.items()}
        values["due_date"] = self.due_date()
        values["pickup_location_id"] = self.pickup_combo.currentData()
        return RequestEdit(**values)  # type: ignore[arg-type]

    def modified_fields(self) -> list[str]:
        """Names of fields whose typed value differs from the loaded one."""
        if self.details is None:
            return []
        shown = self.details.edit()
        found = [name for name, edit in self.edits.items() if edit.text() != getattr(shown, name)]
        if self.due_date() != shown.due_date:
            found.append("due_date")
        if self.pickup_combo.currentData() != shown.pickup_location_id:
            found.append("pickup_location_id")
        return found

    def due_date(self) -> date | None:
        """The due date picked (None for "No due date", the edit's minimum)."""
        picked = self.due_edit.date()
        return None if picked == _NO_DUE else date(picked.year(), picked.month(), picked.day())

    @Slot()
    def clear_due_date(self) -> None:
        """ "No date": the request has no due date."""
        self.due_edit.setDate(_NO_DUE)

    @property
    def dirty(self) -> bool:
        """True while there are unsaved edits."""
        return bool(self.modified_fields())

    @Slot()
    def on_field_edited(self) -> None:
        """Mark what differs from the saved request."""
        if not self._filling:
            self._mark_invalid("due_date", False)
            self._update_modified()

    def _field_widget(self, name: str) -> QWidget | None:
        if name in self.edits:
            return self.edits[name]
        return {"due_date": self.due_edit, "pickup_location_id": self.pickup_combo}.get(name)

    def _update_modified(self) -> None:
        modified = set(self.modified_fields())
        for f in fields(RequestEdit):
            widget = self._field_widget(f.name)
            label = self.labels.get(f.name)
            if widget is None or label is None:
                continue
            on = f.name in modified
            if widget.property("unsaved") is not on:
                set_modified_tint(widget, on)
            text = label.text().removeprefix("• ")
            label.setText(("• " + text) if on else text)
            widget.setAccessibleDescription("unsaved change" if on else "")
        title = self.windowTitle().removeprefix("* ")
        self.setWindowTitle(("* " + title) if modified else title)
        self.save_action.setEnabled(bool(modified) and not self._busy)
        self.revert_action.setEnabled(bool(modified) and not self._busy)

    def _mark_invalid(self, name: str, on: bool) -> None:
        widget = self._field_widget(name)
        if widget is not None and widget.property("invalid") != on:
            widget.setProperty("invalid", on)
            widget.style().unpolish(widget)
            widget.style().polish(widget)

    @Slot()
    def revert(self) -> None:
        """Undo unsaved edits (show the loaded request again)."""
        if self.details is not None:
            self._show(self.details)
            self._hide_message()

    @Slot()
    def save(self) -> None:
        """Save the edits with the version that was shown."""
        if self.details is not None:
            self._save(self.details.version)

    @Slot()
    def save_over_theirs(self) -> None:
        """After a conflict: save the typed values over the other workstation's newer version."""
        if self.theirs is not None:
            self._save(self.theirs.version)

    def _save(self, expected_version: int) -> None:
        if self._busy or self.details is None:
            return
        edit = self.current_edit()
        self._start("Saving…")
        self.ctx.run(
            functools.partial(
                save_request, self.ctx.db, self.transaction_number, edit, expected_version=expected_version
            ),
            self.on_saved,
            self.on_save_failed,
        )

    def on_saved(self, details: RequestDetails) -> None:
        """Saved: show what the database holds now and tell other windows."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self._show(details)
        self._show_message(f"Request {details.transaction_number} saved.", error=False)
        self.saved.emit(details.transaction_number)
        self.ctx.changed.emit("requests")

    def on_save_failed(self, error: object) -> None:
        """A refused save keeps every typed value; a conflict fetches the other version to compare."""
        if not shiboken6.isValid(self):
            return
        if isinstance(error, ConcurrentEditError):
            self._finish()
            self._show_message(str(error), error=True)
            self.ctx.run(functools.partial(get_request, self.ctx.db, self.transaction_number), self.on_theirs_loaded)
            return
        self.on_failed(error)

    def on_theirs_loaded(self, theirs: RequestDetails) -> None:
        """Show what the other workstation changed and offer both ways out."""
        if not shiboken6.isValid(self) or self.details is None:
            return
        self.theirs = theirs
        ours, now = self.details.edit(), theirs.edit()
        differ = [_TEXT_FIELDS.get(f.name, f.name).replace("&", "").replace("_", " ")
                  for f in fields(RequestEdit) if getattr(ours, f.name) != getattr(now, f.name)]  # fmt: skip
        if theirs.status != self.details.status:
            differ.insert(0, f"status (now {theirs.status})")
        what = ", ".join(differ) if differ else "nothing you can edit here"
        self._show_message(
            f"Request {theirs.transaction_number} was changed on another workstation (changed there: {what}). "
            "Your edits were not saved and are still in the form.",
            error=True,
            conflict=True,
        )

    # --- routing ----------------------------------------------------------------------------------------------
    @Slot()
    def show_route_menu(self) -> None:
        """Ctrl+R: drop down the list of allowed statuses."""
        if self.route_button.isEnabled():
            self.route_button.showMenu()

    @Slot()
    def on_route_chosen(self) -> None:
        """A status was picked from the Route menu."""
        action = self.sender()
        if isinstance(action, QAction):
            self.route_to(str(action.data()))

    def route_to(self, target: str) -> None:
        """Route the request (allowed moves only; the service checks again and writes Tracking)."""
        if self._busy or self.details is None:
            return
        if target not in self.details.allowed_routes:
            self._show_message(f"A request at {self.details.status!r} cannot be routed to {target!r}.", error=True)
            return
        if self.dirty:
            self._show_message("Save or revert your edits before routing the request.", error=True)
            return
        self._start(f"Routing to {target}…")
        self.ctx.run(
            functools.partial(
                route_and_reload,
                self.ctx.db,
                self.transaction_number,
                Status(target),
                self.ctx.staff_name,
                self.details.version,
            ),
            self.on_routed,
            self.on_route_failed,
        )

    def on_routed(self, details: RequestDetails) -> None:
        """Routed: show the new status and Tracking; wake the System Manager for a new arrival."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self._show(details)
        self._show_message(f"Routed to {details.status}.", error=False)
        self.routed.emit(details.transaction_number, details.status)
        self.ctx.changed.emit("requests")
        if details.status == Status.AWAITING_CUSTOMER_CONTACT.value:
            self.ctx.request_send_now()

    def on_route_failed(self, error: object) -> None:
        """A refused route (another workstation moved it, or the move is not allowed) says why and reloads."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self._show_message(str(error), error=True)
        if isinstance(error, ConcurrentEditError) and not self.dirty:
            self.ctx.run(
                functools.partial(load_form_data, self.ctx.db, self.transaction_number), self.on_reloaded_after_error
            )

    def on_reloaded_after_error(self, result: tuple[RequestDetails, list[PickupChoice]]) -> None:
        """Show the current version while keeping the error message visible."""
        if shiboken6.isValid(self):
            self._fill_pickups(result[1])
            self._show(result[0])

    # --- moving through the list ------------------------------------------------------------------------------
    @Slot()
    def go_next(self) -> None:
        """Ctrl+PgDown: the next request of the list this form was opened from."""
        self._go(forward=True)

    @Slot()
    def go_previous(self) -> None:
        """Ctrl+PgUp: the previous request of that list."""
        self._go(forward=False)

    def _go(self, *, forward: bool) -> None:
        if self._busy or self._query is None:
            return
        if self.dirty:
            self._show_message("Save or revert your edits before moving to another request.", error=True)
            return
        self._start("Finding the next request…" if forward else "Finding the previous request…")
        self.ctx.run(
            functools.partial(adjacent_request, self.ctx.db, self._query, self.transaction_number, forward=forward),
            functools.partial(self.on_adjacent, forward),
            self.on_failed,
        )

    def on_adjacent(self, forward: bool, transaction_number: int | None) -> None:
        """Show the neighbour, or say this is the end of the list."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        if transaction_number is None:
            where = "last" if forward else "first"
            self._show_message(f"This is the {where} request in {self._query_name()}.", error=False)
            return
        self.load(transaction_number)

    def _query_name(self) -> str:
        if self._query is None or self._query.status is None:
            return "the list"
        return f"the {self._query.status!r} queue"

    # --- Send E-mail and E-mail History -----------------------------------------------------------------------
    def on_templates_loaded(self, names: list[str]) -> None:
        """Fill the Send E-mail menu with the templates staff may send by hand."""
        if not shiboken6.isValid(self):
            return
        self.email_menu.clear()
        for name in names:
            action = self.email_menu.addAction(name)
            action.setObjectName("sendTemplate:" + name)
            action.setData(name)
            action.triggered.connect(self.on_email_chosen)
        self._set_enabled(self.details is not None and not self._busy)

    @Slot()
    def show_email_menu(self) -> None:
        """Ctrl+Shift+M: drop down the list of templates."""
        if self.email_button.isEnabled():
            self.email_button.showMenu()

    @Slot()
    def on_email_chosen(self) -> None:
        """A template was picked from the Send E-mail menu: preview it."""
        action = self.sender()
        if isinstance(action, QAction):
            self.prepare_email(str(action.data()))

    def prepare_email(self, template_name: str) -> None:
        """Render ``template_name`` for this request (off the GUI thread), then show the preview."""
        if self._busy or self.details is None:
            return
        if self.dirty:
            self._show_message("Save or revert your edits before sending an e-mail.", error=True)
            return
        self._start(f"Preparing “{template_name}”…")
        self.ctx.run(
            functools.partial(plan_email, self.ctx.db, self.ctx.settings, self.transaction_number, template_name),
            self.on_email_planned,
            self.on_failed,
        )

    def on_email_planned(self, plan: EmailPlan) -> None:
        """Show the preview; Send queues it."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self._email_token = uuid.uuid4().hex  # one per preview: a repeated Send queues nothing more
        self.email_dialog = SendEmailDialog(plan, self)
        self.email_dialog.accepted.connect(self.on_email_confirmed)
        self.email_dialog.open()

    @Slot()
    def on_email_confirmed(self) -> None:
        """Send pressed in the preview."""
        if self.email_dialog is not None:
            self.send_planned(self.email_dialog.plan)

    def send_planned(self, plan: EmailPlan) -> None:
        """Queue the previewed e-mail in the outbox and route the request, in one transaction."""
        if self._busy:
            return
        self._start(f"Sending “{plan.template_name}”…")
        self.ctx.run(
            functools.partial(
                send_email,
                self.ctx.db,
                plan.transaction_number,
                plan.template_name,
                self.ctx.staff_name,
                expected_version=plan.version,
                token=self._email_token,
            ),
            functools.partial(self.on_email_queued, plan),
            self.on_failed,
        )

    def on_email_queued(self, plan: EmailPlan, _notice_id: int) -> None:
        """Queued: wake the System Manager, show the request as it now is, and tell other windows."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self.ctx.request_send_now()
        self.ctx.changed.emit("requests")
        moved = f" The request moved to {plan.route_to}." if plan.route_to else ""
        self.load(self.transaction_number)
        self._pending_message = f"“{plan.template_name}” is in the outbox and goes out with the next send.{moved}"

    def selected_notice(self) -> NotificationEntry | None:
        """The notice selected on the E-mail History tab."""
        rows = self.notifications_table.selectionModel().selectedRows()
        return self.notifications_model.record(rows[0].row()) if rows else None

    def _update_resend(self) -> None:
        notice = self.selected_notice()
        self.resend_button.setEnabled(
            not self._busy and self.details is not None and notice is not None and notice.channel == "email"
        )

    @Slot()
    def resend_selected(self) -> None:
        """Resend…: ask first (a second e-mail reaches the patron), then send the selected notice again."""
        notice = self.selected_notice()
        if notice is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Send again",
            f"Send “{notice.template_name}” to the patron again? It is rendered from the template as it is now "
            "and sent once, like any notice.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setObjectName("confirmResendBox")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setProperty("noticeId", notice.id)
        box.accepted.connect(self.on_resend_confirmed)
        box.open()

    @Slot()
    def on_resend_confirmed(self) -> None:
        """Yes in the Send again question."""
        box = self.sender()
        if isinstance(box, QMessageBox):
            self.resend(int(box.property("noticeId")))

    def resend(self, notice_id: int) -> None:
        """Queue a new notice copying notice ``notice_id``'s template (audited on both)."""
        if self._busy:
            return
        self._start("Queueing the e-mail again…")
        self.ctx.run(
            functools.partial(resend_notice, self.ctx.db, notice_id, self.ctx.staff_name, token=uuid.uuid4().hex),
            self.on_resent,
            self.on_failed,
        )

    def on_resent(self, notice_id: int) -> None:
        """Resent: the new notice shows in the history once read back."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self.ctx.request_send_now()
        self.load(self.transaction_number)
        self._pending_message = f"Queued again as notice {notice_id}; it goes out with the next send."

    # --- notes and printing ------------------------------------------------------------------------------------
    @Slot()
    def add_note(self) -> None:
        """Add the typed note (with staff's name and the time) to the request."""
        if self._busy or self.details is None:
            return
        text = self.note_edit.toPlainText()
        if not text.strip():
            self._show_message("Type the note first.", error=True)
            self.note_edit.setFocus()
            return
        self._start("Adding the note…")
        self.ctx.run(
            functools.partial(add_note, self.ctx.db, self.transaction_number, text, self.ctx.staff_name),
            self.on_note_added,
            self.on_failed,
        )

    def on_note_added(self, note: NoteEntry) -> None:
        """The note is saved: clear the box and show it in the history."""
        if not shiboken6.isValid(self):
            return
        self._finish()
        self.note_edit.clear()
        self.load(self.transaction_number)
        self._pending_message = f"Note added by {note.added_by}."

    @Slot()
    def print_request(self) -> None:
        """Print Request: one page with the request's details, through the print preview (Print from there)."""
        if self.details is None:
            return
        self._printer = _request_printer(
            self.ctx.settings.paper_size
        )  # kept: PySide deletes a printer whose last reference goes
        self._print_document = _request_document(self.details)
        preview = QPrintPreviewDialog(self._printer, self)
        preview.setObjectName("printRequestPreview")
        preview.setWindowTitle(f"Print Request {self.details.transaction_number}")
        preview.paintRequested.connect(self._print_document.print_)
        preview.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        preview.open()

    # --- patron and refresh -----------------------------------------------------------------------------------
    @Slot()
    def open_patron(self) -> None:
        """Open the patron record."""
        if self.details is None:
            return
        open_window(Window.PATRON, self.ctx, self, self.details.patron_id)

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Another window changed requests or patrons: show it, unless staff are in the middle of an edit.

        A template deleted or restored elsewhere changes what Send E-mail offers.
        """
        if topic == "templates":
            self.ctx.run(functools.partial(email_templates, self.ctx.db), self.on_templates_loaded)
        if topic in {"requests", "patrons"} and not self._busy and not self.dirty and self.details is not None:
            self.ctx.run(
                functools.partial(load_form_data, self.ctx.db, self.transaction_number),
                self.on_quietly_reloaded,
            )

    def on_quietly_reloaded(self, result: tuple[RequestDetails, list[PickupChoice]]) -> None:
        """A background reload: applied only if staff did not start typing meanwhile."""
        if shiboken6.isValid(self) and not self._busy and not self.dirty and result[0] != self.details:
            self._fill_pickups(result[1])
            self._show(result[0])

    # --- busy state and messages ------------------------------------------------------------------------------
    def _start(self, message: str) -> None:
        self._busy = True
        self._set_enabled(False)
        self.setCursor(Qt.CursorShape.BusyCursor)
        self.heading.setToolTip(message)

    def _finish(self) -> None:
        self._busy = False
        self._set_enabled(self.details is not None)
        self.unsetCursor()
        self._update_modified()

    def _set_enabled(self, on: bool) -> None:
        for action in (self.previous_action, self.next_action, self.reload_action):
            action.setEnabled(on)
        self.route_button.setEnabled(on and bool(self.details and self.details.allowed_routes))
        self.route_action.setEnabled(self.route_button.isEnabled())
        patron = on
        self.patron_button.setEnabled(patron)
        self.patron_action.setEnabled(patron)
        self.overwrite_button.setEnabled(on)
        self.discard_button.setEnabled(on)
        self.email_button.setEnabled(on and not self.email_menu.isEmpty())
        self.email_action.setEnabled(self.email_button.isEnabled())
        self.print_action.setEnabled(on)
        self.add_note_button.setEnabled(on)
        self._update_resend()

    @property
    def busy(self) -> bool:
        """True while a load, save or route is running."""
        return self._busy

    def _show_message(self, text: str, *, error: bool, conflict: bool = False) -> None:
        set_banner_frame(self.banner, Tone.ERROR if error else Tone.OK, [self.message])
        self.message.setText(text)
        self.overwrite_button.setVisible(conflict)
        self.discard_button.setVisible(conflict)
        self.banner.show()

    def _hide_message(self) -> None:
        self.banner.hide()

    def message_text(self) -> str:
        """The message shown above the form ("" when none), for tests and screen readers."""
        return self.message.text() if self.banner.isVisibleTo(self) else ""

    @Slot(QItemSelection, QItemSelection)
    def on_notification_selected(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        """Show the full text of the selected notice."""
        rows = self.notifications_table.selectionModel().selectedRows()
        notice = self.notifications_model.record(rows[0].row()) if rows else None
        self._update_resend()
        if notice is None:
            self.notification_text.clear()
            return
        header = [f"To: {notice.to_address}", f"Subject: {notice.subject}", f"State: {notice.state_text}"]
        if notice.last_reply:
            header.append(f"Server reply: {notice.last_reply}")
        self.notification_text.setPlainText("\n".join(header) + "\n\n" + notice.body_text)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask before unsaved edits are thrown away."""
        if self.dirty:
            answer = QMessageBox.question(
                self,
                "Unsaved changes",
                f"Request {self.transaction_number} has unsaved changes. Discard them?",
                QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Discard:
                event.ignore()
                return
        with contextlib.suppress(RuntimeError, TypeError):  # already gone with the context
            self.ctx.changed.disconnect(self.on_data_changed)
        super().closeEvent(event)
