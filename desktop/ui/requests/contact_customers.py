"""The Contact Customers form (``contactCustomersDialog``): every request at Awaiting Customer Contact, grouped
by the patron's notification method, with ILLiad's two manual actions (Notified via Phone, Print Notifications)
and the E-Mail group's outbox state.

The list is read by one service call off the GUI thread; each group is a ``QAbstractTableModel`` updated by
rows (removed, changed, inserted) rather than reset, so a refresh every few seconds keeps the selection and
the scroll position while other workstations and the System Manager work the same list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QByteArray,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSettings,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QBrush, QHideEvent, QKeyEvent, QKeySequence, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.config import APP_NAME
from desktop.domain.methods import NotificationMethod
from desktop.services.notices.delivery_health import DeliveryHealth, short_state
from desktop.services.notices.outbox import PENDING, RETRYING, retry_notices
from desktop.services.requests.contact_customers import (
    ActionResult,
    CallOutcome,
    ContactGroups,
    ContactRow,
    load_contact_customers,
    log_calls,
    mark_printed,
    phone_refusals,
    print_refusals,
    refusal_message,
)
from desktop.services.requests.printing import PrintBatch, build_notices
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.notices.delivery_banner import DeliveryBanner
from desktop.ui.requests.print_notices import NoticePrinter
from desktop.ui.widgets.colours import Tone, set_tone, tone_colour
from desktop.ui.widgets.tables import record_table

GEOMETRY_KEY = "contactCustomers/geometry"
#: Seconds between refreshes that pick up other workstations' changes (this workstation's arrive at once).
REFRESH_SECONDS = 10
#: Topics of ``ctx.changed`` that can change this list.
TOPICS = frozenset({"requests", "patrons", "notifications", "templates"})

Index = QModelIndex | QPersistentModelIndex
ROW_ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True)
class Column:
    """One column of a group's table: its header, what it shows, and how it sorts."""

    header: str
    text: Callable[[ContactRow], str]
    key: Callable[[ContactRow], Any]
    width: int
    numeric: bool = False
    #: Shown in the warning colour when the row needs staff's attention (a failed e-mail, no address).
    warns: bool = False


def _calls_text(row: ContactRow) -> str:
    """``2× no answer, last Nov 28 14:05 — “rang twice”``: the attempts and the newest note typed with one."""
    if not row.call_attempts:
        return row.notice_reply if row.email_bounced else ""
    when = row.last_call_at.astimezone().strftime("%b %d %H:%M") if row.last_call_at else ""
    note = row.last_call_note
    return f"{row.call_attempts}× no answer, last {when}" + (f" — “{note}”" if note else "")


def _address_text(row: ContactRow) -> str:
    text = row.address if row.has_address else f"⚠ no postal address{f' ({row.address})' if row.address else ''}"
    return f"{text} — {row.notice_reply}" if row.email_bounced else text


_TN = Column("Transaction", lambda r: str(r.transaction_number), lambda r: r.transaction_number, 100, True)
_PATRON = Column("Patron", lambda r: r.patron_name, lambda r: r.patron_name.casefold(), 160)
_TITLE = Column("Title", lambda r: r.display_title, lambda r: r.display_title.casefold(), 200)
_PICKUP = Column("Pickup location", lambda r: r.pickup, lambda r: r.pickup.casefold(), 180)
_NOTICE = Column("Notice", lambda r: r.notice_text, lambda r: (r.notice_state or "", r.notice_reply), 250, warns=True)
_DAYS = Column("Days waiting", lambda r: str(r.days_waiting), lambda r: -r.waiting_since.timestamp(), 90, True)

COLUMNS: dict[NotificationMethod, tuple[Column, ...]] = {
    NotificationMethod.EMAIL: (
        _TN, _PATRON, Column("E-Mail", lambda r: r.email, lambda r: r.email.casefold(), 200),
        _NOTICE,
        _TITLE, _PICKUP, _DAYS,
    ),
    NotificationMethod.PHONE: (
        _TN, _PATRON, Column("Phone", lambda r: r.phone, lambda r: r.phone, 150),
        Column("Calls", _calls_text, lambda r: (r.call_attempts, r.last_call_at or r.waiting_since), 210),
        _TITLE, _PICKUP, _DAYS,
    ),
    NotificationMethod.MAIL: (
        _TN, _PATRON,
        Column("Address", _address_text, lambda r: (r.has_address, r.address.casefold()), 300, warns=True),
        _TITLE, _PICKUP, _DAYS,
    ),
}  # fmt: skip

GROUP_NAMES: dict[NotificationMethod, tuple[str, str, str]] = {
    # method: (group objectName, table objectName, title with mnemonic)
    NotificationMethod.EMAIL: ("emailGroup", "emailTable", "&E-Mail"),
    NotificationMethod.PHONE: ("phoneGroup", "phoneTable", "P&hone"),
    NotificationMethod.MAIL: ("mailGroup", "mailTable", "&Mail"),
}


class ContactTableModel(QAbstractTableModel):
    """The rows of one group; refreshed by row changes so views keep selection and scroll position."""

    def __init__(self, method: NotificationMethod, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = method
        self.columns = COLUMNS[method]
        self._rows: list[ContactRow] = []
        #: Why nothing is being sent right now (the banner's few words), added to waiting e-mails' Notice text.
        self.blocked_reason = ""
        self._sort: tuple[int, Qt.SortOrder] | None = None

    # -- Qt model interface

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """Rows in the group (a table has no children)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Columns of this group."""
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Text, tooltips, alignment and warning colour of one cell; ``ROW_ROLE`` gives the ContactRow."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            text = column.text(row)
            if column is _NOTICE and self.blocked_reason and row.notice_state in (None, PENDING, RETRYING):
                return f"{text} — not sent: {self.blocked_reason}"
            return text
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column.warns and self._warn(row):
            return QBrush(tone_colour(Tone.ERROR, None, QPalette.ColorRole.Base))
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column headers."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header if 0 <= section < len(self.columns) else None
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort in Python on plain keys (fast for 20,000 rows), keeping selections on the same requests."""
        if not 0 <= column < len(self.columns):
            return
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        ids = [self._rows[i.row()].request_id if i.row() < len(self._rows) else None for i in old]
        self._sort_rows()
        self._change_persistent(old, ids)
        self.layoutChanged.emit()

    # -- our interface

    def rows(self) -> list[ContactRow]:
        """The rows in display order (a copy)."""
        return list(self._rows)

    def row_at(self, row: int) -> ContactRow:
        """The ContactRow shown at ``row``."""
        return self._rows[row]

    def set_rows(self, rows: Sequence[ContactRow]) -> None:
        """Bring the model to ``rows`` by removing, updating and inserting rows (never a reset)."""
        wanted = {r.request_id: r for r in rows}
        end = len(self._rows) - 1
        while end >= 0:  # remove gone rows, contiguous runs at a time, from the bottom up
            if self._rows[end].request_id in wanted:
                end -= 1
                continue
            start = end
            while start > 0 and self._rows[start - 1].request_id not in wanted:
                start -= 1
            self.beginRemoveRows(QModelIndex(), start, end)
            del self._rows[start : end + 1]
            self.endRemoveRows()
            end = start - 1
        changed = [i for i, row in enumerate(self._rows) if wanted[row.request_id] != row]
        for i in changed:
            self._rows[i] = wanted[self._rows[i].request_id]
        if changed:
            last = self.columnCount() - 1
            self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], last))
        have = {r.request_id for r in self._rows}
        new = [r for r in rows if r.request_id not in have]
        if new:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()
            if self._sort is not None:
                self.sort(*self._sort)

    def _sort_rows(self) -> None:
        if self._sort is None:
            return
        column, order = self._sort
        key = self.columns[column].key
        self._rows.sort(key=lambda r: (key(r), r.transaction_number), reverse=order == Qt.SortOrder.DescendingOrder)

    def _change_persistent(self, old: list[QModelIndex], ids: list[int | None]) -> None:
        position = {r.request_id: i for i, r in enumerate(self._rows)}
        new = []
        for index, rid in zip(old, ids, strict=True):
            row = position.get(rid) if rid is not None else None
            new.append(self.index(row, index.column()) if row is not None else QModelIndex())
        self.changePersistentIndexList(old, new)

    def _warn(self, row: ContactRow) -> bool:
        if self.method is NotificationMethod.MAIL:
            return not row.has_address
        return row.retryable

    def set_blocked_reason(self, reason: str) -> None:
        """Say on each waiting e-mail why it is not being sent (``""``: nothing blocks sending)."""
        if reason == self.blocked_reason:
            return
        self.blocked_reason = reason
        if self._rows and self.method is NotificationMethod.EMAIL:
            column = self.columns.index(_NOTICE)
            self.dataChanged.emit(self.index(0, column), self.index(len(self._rows) - 1, column))

    @staticmethod
    def _tooltip(row: ContactRow) -> str:
        lines = [f"{row.patron_name} — {row.method.value}"]
        lines += [
            f"E-mail: {row.email}" if row.email else "No e-mail",
            f"Phone: {row.phone}" if row.phone else "No phone",
        ]
        lines.append(f"Address: {row.address}" if row.has_address else "No postal address")
        if row.method is NotificationMethod.EMAIL:
            lines.append(f"Notice: {row.notice_text}")
        if row.calls:
            lines.append("Calls in this wait:")
            lines += [f"  {call.line()}" for call in row.calls]
        lines.append(f"Waiting since {row.waiting_since.astimezone():%Y-%m-%d %H:%M}")
        return "\n".join(lines)


class CallOutcomeDialog(QDialog):
    """Asks how the call went (Reached / Left voicemail / No answer) and for an optional note."""

    def __init__(self, rows: Sequence[ContactRow], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows = tuple(rows)
        self.setObjectName("callOutcomeDialog")
        self.setAccessibleName("Phone call outcome")
        self.setWindowTitle("Notified via Phone")
        layout = QVBoxLayout(self)
        shown = "\n".join(f"{r.transaction_number}  {r.patron_name}  {r.phone or 'no phone on file'}" for r in rows[:8])
        more = f"\n… and {len(rows) - 8} more" if len(rows) > 8 else ""
        intro = QLabel(f"How did the call go?\n\n{shown}{more}")
        intro.setObjectName("callSummaryLabel")
        layout.addWidget(intro)
        self.outcomes = QButtonGroup(self)
        self.radios: dict[CallOutcome, QRadioButton] = {}
        labels = {
            CallOutcome.REACHED: ("&Reached the patron", "reachedRadio"),
            CallOutcome.LEFT_VOICEMAIL: ("Left &voicemail", "voicemailRadio"),
            CallOutcome.NO_ANSWER: ("&No answer (keep waiting, count the attempt)", "noAnswerRadio"),
        }
        for outcome, (text, name) in labels.items():
            radio = QRadioButton(text)
            radio.setObjectName(name)
            radio.setAccessibleName(outcome.value)
            self.outcomes.addButton(radio)
            self.radios[outcome] = radio
            layout.addWidget(radio)
        self.radios[CallOutcome.REACHED].setChecked(True)
        self.note_edit = QLineEdit()
        self.note_edit.setObjectName("callNoteEdit")
        self.note_edit.setAccessibleName("Call note")
        self.note_edit.setPlaceholderText("Note (optional): who answered, what was said")
        self.note_edit.setMaxLength(1000)
        note_label = QLabel("N&ote:")
        note_label.setBuddy(self.note_edit)
        layout.addWidget(note_label)
        layout.addWidget(self.note_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.setObjectName("callOutcomeButtons")
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setText("Record call")
        ok.setObjectName("recordCallButton")
        ok.setAccessibleName("Record call")
        ok.setDefault(True)
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setObjectName("cancelCallButton")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @property
    def outcome(self) -> CallOutcome:
        """The chosen outcome."""
        return next(o for o, radio in self.radios.items() if radio.isChecked())

    def set_outcome(self, outcome: CallOutcome) -> None:
        """Choose an outcome (keyboard users and tests)."""
        self.radios[outcome].setChecked(True)

    @property
    def note(self) -> str:
        """The note typed."""
        return self.note_edit.text().strip()


class ContactCustomersDialog(QDialog):
    """The Contact Customers form.

    Signals:
        loaded(): a refresh was applied to the three groups.
        actionFinished(str): an action ended; the message shown to staff.
    """

    loaded = Signal()
    actionFinished = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("contactCustomersDialog")
        self.setAccessibleName("Contact Customers")
        self.setWindowTitle("Contact Customers — Awaiting Customer Contact")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.setSizeGripEnabled(True)
        self.resize(1180, 760)
        self.groups_data = ContactGroups()
        self.last_message = ""
        self._loading = False
        self._reload_again = False
        self._busy = False
        self._pending_batch: PrintBatch | None = None
        self._pdf_target: Path | None = None
        self.call_dialog: CallOutcomeDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.notice_printer = NoticePrinter(self, paper_size=ctx.settings.paper_size)
        self.notice_printer.finished.connect(self.on_preview_finished)
        ctx.settingsChanged.connect(self.notice_printer.on_settings_changed)

        self.models: dict[NotificationMethod, ContactTableModel] = {}
        self.tables: dict[NotificationMethod, QTableView] = {}
        self.group_boxes: dict[NotificationMethod, QGroupBox] = {}
        self._build()
        self._restore_geometry()

        self._timer = ctx.timer(self, REFRESH_SECONDS * 1000, self.on_timer, name="contactCustomersRefreshTimer")
        ctx.changed.connect(self.on_data_changed)
        ctx.databaseChanged.connect(self.on_database_changed)
        self.reload()

    # ------------------------------------------------------------------------------------------ building

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary_label = QLabel("Loading…")
        self.summary_label.setObjectName("summaryLabel")
        top.addWidget(self.summary_label, 1)
        self.refresh_button = self._button("&Refresh", "refreshButton", "Refresh the list", self.reload)
        self.refresh_button.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        top.addWidget(self.refresh_button)
        layout.addLayout(top)

        self.delivery_banner = DeliveryBanner(self.ctx, self)
        self.delivery_banner.healthChanged.connect(self.on_health)
        layout.addWidget(self.delivery_banner)

        self.message_label = QLabel()
        self.message_label.setObjectName("messageLabel")
        self.message_label.setAccessibleName("Message")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.hide()
        layout.addWidget(self.message_label)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setObjectName("groupSplitter")
        splitter.setChildrenCollapsible(False)
        for method in NotificationMethod:
            splitter.addWidget(self._build_group(method))
        layout.addWidget(splitter, 1)

        actions = QHBoxLayout()
        self.phone_button = self._button(
            "Notified via &Phone…", "notifiedViaPhoneButton", "Notified via Phone", self.on_notified_via_phone
        )
        self.print_button = self._button(
            "Print &Notifications…", "printNotificationsButton", "Print Notifications", self.on_print_notifications
        )
        self.print_button.setShortcut(QKeySequence(QKeySequence.StandardKey.Print))
        self.save_pdf_button = self._button("Save as P&DF…", "savePdfButton", "Save notices as PDF", self.on_save_pdf)
        self.open_request_button = self._button(
            "Open Re&quest", "openRequestButton", "Open the request form", self.on_open_request
        )
        self.open_patron_button = self._button(
            "Open P&atron", "openPatronButton", "Open the patron record", self.on_open_patron
        )
        close = self._button("Close", "closeButton", "Close Contact Customers", self.close)
        for button in (self.phone_button, self.print_button, self.save_pdf_button):
            actions.addWidget(button)
        actions.addStretch(1)
        for button in (self.open_request_button, self.open_patron_button, close):
            actions.addWidget(button)
        layout.addLayout(actions)

    def _build_group(self, method: NotificationMethod) -> QGroupBox:
        group_name, table_name, title = GROUP_NAMES[method]
        box = QGroupBox(title)
        box.setObjectName(group_name)
        box.setAccessibleName(f"{method.value} group")
        box_layout = QVBoxLayout(box)
        model = ContactTableModel(method, self)
        view = record_table(model, table_name, f"Requests of patrons notified by {method.value}", multi=True)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self.on_context_menu)
        vertical = view.verticalHeader()
        vertical.hide()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(view.fontMetrics().height() + 8)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for number, column in enumerate(model.columns):
            view.setColumnWidth(number, column.width)
        # The title takes the spare width (it is the longest text); the other columns stay where staff put them.
        header.setSectionResizeMode(model.columns.index(_TITLE), QHeaderView.ResizeMode.Stretch)
        view.setSortingEnabled(True)
        view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        # Double-click and Enter open the request (not ``activated``: its mouse behaviour depends on the style).
        view.doubleClicked.connect(self.on_activated)
        view.installEventFilter(self)
        view.selectionModel().selectionChanged.connect(self.on_selection_changed)
        box_layout.addWidget(view)
        if method is NotificationMethod.EMAIL:
            row = QHBoxLayout()
            self.email_hint = QLabel("E-mails are sent by the System Manager; they leave this list once sent.")
            self.email_hint.setObjectName("emailHintLabel")
            row.addWidget(self.email_hint, 1)
            self.send_now_button = self._button(
                "&Send Now", "sendNowButton", "Ask the System Manager to send now", self.on_send_now
            )
            self.retry_button = self._button(
                "Retr&y Failed", "retryFailedButton", "Retry failed e-mails", self.on_retry_failed
            )
            row.addWidget(self.send_now_button)
            row.addWidget(self.retry_button)
            box_layout.addLayout(row)
        self.models[method] = model
        self.tables[method] = view
        self.group_boxes[method] = box
        return box

    def _button(self, text: str, name: str, accessible: str, slot: Callable[[], object]) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(name)
        button.setAccessibleName(accessible)
        button.setAutoDefault(False)
        button.clicked.connect(slot)
        return button

    # ---------------------------------------------------------------------------------------- loading

    @Slot()
    def reload(self) -> None:
        """Read the list again off the GUI thread; a reload asked for while one runs follows it."""
        if self._loading:
            self._reload_again = True
            return
        self._loading = True
        job = functools.partial(load_contact_customers, self.ctx.db)
        handle = self.ctx.run(job, self.on_loaded, self.on_load_failed)
        if handle.cancelled:  # the workstation is shutting down: nothing more to refresh
            self._loading = False
            self._timer.stop()

    @Slot(object)
    def on_loaded(self, groups: ContactGroups) -> None:
        """Apply a fresh list to the three groups, row by row."""
        self._loading = False
        self.groups_data = groups
        for method, model in self.models.items():
            model.set_rows(groups.group(method))
            _, _, title = GROUP_NAMES[method]
            self.group_boxes[method].setTitle(f"{title} ({len(groups.group(method)):,})")
        self.summary_label.setText(
            f"{groups.total:,} request(s) awaiting customer contact · updated {groups.loaded_at.astimezone():%H:%M:%S}"
        )
        self._update_buttons()
        self.loaded.emit()
        if self._reload_again:
            self._reload_again = False
            self.reload()

    @Slot(object)
    def on_health(self, health: DeliveryHealth) -> None:
        """The banner read why notices wait: each waiting e-mail row says it too."""
        reason = short_state(health) if health.blocked else ""
        self.models[NotificationMethod.EMAIL].set_blocked_reason(reason)

    @Slot(object)
    def on_load_failed(self, error: object) -> None:
        """Keep what is shown and say why it could not be refreshed."""
        self._loading = False
        self._reload_again = False
        self.show_message(f"Could not refresh the list: {error}", error=True)

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """Something this workstation did changed the data: refresh now."""
        if topic in TOPICS:
            self.reload()

    @Slot()
    def on_database_changed(self) -> None:
        """The workstation switched databases: start over."""
        for model in self.models.values():
            model.set_rows(())
        self.reload()

    @Slot()
    def on_timer(self) -> None:
        """Periodic refresh for other workstations' changes."""
        if self.isVisible() and not self._loading:
            self.reload()

    def group_counts(self) -> dict[NotificationMethod, int]:
        """Rows shown per group."""
        return {method: model.rowCount() for method, model in self.models.items()}

    # -------------------------------------------------------------------------------------- selection

    def selected_rows(self) -> list[ContactRow]:
        """Selected rows of all three groups (a selection may span groups, as in ILLiad's single grid)."""
        rows: list[ContactRow] = []
        for method, view in self.tables.items():
            model = self.models[method]
            rows += [model.row_at(i.row()) for i in sorted(view.selectionModel().selectedRows(), key=lambda i: i.row())]
        return rows

    def select_requests(self, transaction_numbers: Sequence[int]) -> None:
        """Select these requests wherever they are (tests, and re-selection after a search)."""
        wanted = set(transaction_numbers)
        for method, view in self.tables.items():
            view.clearSelection()
            model = self.models[method]
            for number, row in enumerate(model.rows()):
                if row.transaction_number in wanted:
                    view.selectionModel().select(
                        model.index(number, 0),
                        QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows,
                    )

    @Slot()
    def on_selection_changed(self) -> None:
        """Enable what the selection allows."""
        self._update_buttons()

    def _update_buttons(self) -> None:
        rows = self.selected_rows()
        idle = not self._busy
        self.phone_button.setEnabled(idle and bool(rows))
        self.print_button.setEnabled(idle and bool(rows))
        self.save_pdf_button.setEnabled(idle and bool(rows))
        self.open_request_button.setEnabled(len(rows) == 1)
        self.open_patron_button.setEnabled(len(rows) == 1)
        self.retry_button.setEnabled(idle and any(r.retryable for r in self.groups_data.email))

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_buttons()

    # ------------------------------------------------------------------------------------------ messages

    def show_message(self, text: str, *, error: bool = False, warning: bool = False) -> None:
        """Show a message in the bar above the groups (never a blocking box: staff keep working)."""
        self.last_message = text
        set_tone(self.message_label, Tone.ERROR if error else Tone.WARNING if warning else Tone.OK, banner=True)
        self.message_label.setText(text)
        self.message_label.show()

    # ------------------------------------------------------------------------------------ open a record

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter (or Return) in a group's table opens the current row's request form."""
        if (
            isinstance(watched, QTableView)
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and watched.currentIndex().isValid()
        ):
            self.on_activated(watched.currentIndex())
            return True
        return super().eventFilter(watched, event)

    @Slot(QModelIndex)
    def on_activated(self, index: QModelIndex) -> None:
        """Double-click or Enter on a row opens its request form."""
        row = index.data(ROW_ROLE)
        if isinstance(row, ContactRow):
            self.open_request(row.transaction_number)

    @Slot()
    def on_open_request(self) -> None:
        """Open the selected request."""
        rows = self.selected_rows()
        if len(rows) == 1:
            self.open_request(rows[0].transaction_number)

    @Slot()
    def on_open_patron(self) -> None:
        """Open the selected request's patron record."""
        rows = self.selected_rows()
        if len(rows) != 1:
            return
        open_window(Window.PATRON, self.ctx, self, rows[0].patron_id)

    def open_request(self, transaction_number: int) -> None:
        """Open the request form for ``transaction_number``."""
        open_window(Window.REQUEST, self.ctx, self, transaction_number)

    @Slot(QPoint)
    def on_context_menu(self, position: QPoint) -> None:
        """Right-click: the actions on the selection."""
        view = self.sender()
        if not isinstance(view, QTableView):
            return
        menu = QMenu(self)
        menu.setObjectName("contactCustomersMenu")
        for text, slot, button in (
            ("Open Request", self.on_open_request, self.open_request_button),
            ("Open Patron", self.on_open_patron, self.open_patron_button),
            ("Notified via Phone…", self.on_notified_via_phone, self.phone_button),
            ("Print Notifications…", self.on_print_notifications, self.print_button),
        ):
            action = QAction(text, menu)
            action.setEnabled(button.isEnabled())
            action.triggered.connect(slot)
            menu.addAction(action)
        menu.popup(view.viewport().mapToGlobal(position))

    # -------------------------------------------------------------------------------- Notified via Phone

    @Slot()
    def on_notified_via_phone(self) -> None:
        """Check the selection, then ask how the call went."""
        rows = self.selected_rows()
        if not rows:
            self.show_message("Select the Phone requests you called first.", warning=True)
            return
        refused = phone_refusals(rows)
        if refused:
            self.show_message(refusal_message(refused, "phone"), error=True)
            return
        dialog = CallOutcomeDialog(rows, self)
        dialog.finished.connect(self.on_call_dialog_finished)
        self.call_dialog = dialog
        dialog.open()

    @Slot(int)
    def on_call_dialog_finished(self, result: int) -> None:
        """Record the call outcome (one transaction) when staff confirmed it."""
        dialog, self.call_dialog = self.call_dialog, None
        if dialog is None:
            return
        dialog.deleteLater()
        if result != QDialog.DialogCode.Accepted:
            return
        ids = [r.request_id for r in dialog.rows]
        job = functools.partial(log_calls, self.ctx.db, ids, dialog.outcome, self.ctx.staff_name, note=dialog.note)
        self._set_busy(True)
        self.ctx.run(job, self.on_action_done, self.on_action_failed)

    # ------------------------------------------------------------------------------ Print Notifications

    @Slot()
    def on_print_notifications(self) -> None:
        """Render the selected requests' notices and open the print preview."""
        self.print_selected()

    @Slot()
    def on_save_pdf(self) -> None:
        """Render the selected requests' notices into a PDF file chosen by staff."""
        name, _ = QFileDialog.getSaveFileName(self, "Save notices as PDF", "notices.pdf", "PDF files (*.pdf)")
        if name:
            self.print_selected(Path(name))

    def print_selected(self, pdf_path: Path | None = None) -> None:
        """Print the selection: to the preview (``pdf_path`` None) or straight into a PDF file."""
        rows = self.selected_rows()
        if not rows:
            self.show_message("Select the requests to print notices for first.", warning=True)
            return
        refused = print_refusals(rows)
        if refused:
            self.show_message(refusal_message(refused, "print"), error=True)
            return
        self._pdf_target = pdf_path
        job = functools.partial(
            build_notices, self.ctx.db, [r.request_id for r in rows], region=self.ctx.settings.phone_region
        )
        self._set_busy(True)
        self.ctx.run(job, self.on_batch_ready, self.on_action_failed)

    @Slot(object)
    def on_batch_ready(self, batch: PrintBatch) -> None:
        """Say which requests get no page, then preview (or write the PDF of) the rest."""
        warning = ""
        if batch.warnings:
            listed = "; ".join(
                f"{w.transaction_number or ''} {w.patron_name}: {w.reason}".strip() for w in batch.warnings
            )
            warning = f"Not printed: {listed}."
        if not batch.pages:
            self._set_busy(False)
            self.show_message(warning or "Nothing to print.", error=True)
            return
        if warning:
            self.show_message(warning, warning=True)
        self._pending_batch = batch
        if self._pdf_target is not None:
            target, self._pdf_target = self._pdf_target, None
            try:
                self.notice_printer.print_to_pdf(batch.pages, target)
            except Exception as exc:  # the file could not be written: say so, move nothing
                self._pending_batch = None
                self._set_busy(False)
                self.show_message(f"Could not write {target}: {exc}", error=True)
                return
            self.ask_printed_confirmation(f"{len(batch.pages)} notice(s) were saved to {target.name}.")
            return
        self.notice_printer.preview(batch.pages, self)

    @Slot(bool)
    def on_preview_finished(self, printed: bool) -> None:
        """The preview closed: ask for confirmation if it printed; cancelled printing moves nothing."""
        if not printed:
            self._pending_batch = None
            self._set_busy(False)
            self.show_message("Printing was cancelled; nothing was changed.", warning=True)
            return
        count = len(self._pending_batch.pages) if self._pending_batch else 0
        self.ask_printed_confirmation(f"{count} notice(s) were sent to the printer.")

    def ask_printed_confirmation(self, what: str) -> None:
        """Ask whether the notices came out right before any request moves (paper jams happen)."""
        batch = self._pending_batch
        if batch is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Print Notifications",
            f"{what}\n\nDid they all print correctly? The {len(batch.pages)} request(s) will move to "
            "Customer Notified via Mail.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setObjectName("confirmPrintedBox")
        box.setAccessibleName("Confirm printed notices")
        box.setDefaultButton(QMessageBox.StandardButton.Yes)
        box.finished.connect(self.on_confirm_finished)
        self.confirm_box = box
        box.open()

    @Slot(int)
    def on_confirm_finished(self, result: int) -> None:
        """Move the printed requests (one transaction), or nothing when staff say it did not print."""
        box, self.confirm_box = self.confirm_box, None
        batch, self._pending_batch = self._pending_batch, None
        answer = box.standardButton(box.clickedButton()) if box is not None else QMessageBox.StandardButton.No
        if box is not None:
            box.deleteLater()
        if batch is None or answer != QMessageBox.StandardButton.Yes:
            self._set_busy(False)
            self.show_message("Not marked as notified; the requests are still waiting.", warning=True)
            return
        job = functools.partial(mark_printed, self.ctx.db, list(batch.request_ids), self.ctx.staff_name)
        self.ctx.run(job, self.on_action_done, self.on_action_failed)

    # -------------------------------------------------------------------------------------- e-mail group

    @Slot()
    def on_send_now(self) -> None:
        """Wake the System Manager poller (ILLiad's every-5-minutes without the wait)."""
        self.ctx.request_send_now()
        self.show_message("Asked the System Manager to route and send e-mail notices now.")

    @Slot()
    def on_retry_failed(self) -> None:
        """Queue failed e-mails again (the selected ones, or all failed ones when none is selected)."""
        failed = [r for r in self.selected_rows() if r.retryable]
        if not failed:
            failed = [r for r in self.groups_data.email if r.retryable]
        if not failed:
            self.show_message("No failed e-mail to retry.", warning=True)
            return
        self._set_busy(True)
        job = functools.partial(retry_notices, self.ctx.db, [r.request_id for r in failed], self.ctx.staff_name)
        self.ctx.run(job, self.on_retry_done, self.on_action_failed)

    @Slot(object)
    def on_retry_done(self, count: object) -> None:
        """Failed notices are queued again: wake the System Manager."""
        self._set_busy(False)
        self.ctx.request_send_now()
        self.ctx.changed.emit("requests")
        self.show_message(f"{count} failed e-mail(s) queued again; the System Manager is sending them now.")
        self.actionFinished.emit(self.last_message)

    # ------------------------------------------------------------------------------------ action results

    @Slot(object)
    def on_action_done(self, result: ActionResult) -> None:
        """Report what moved and what was skipped, and tell every window."""
        self._set_busy(False)
        self.show_message(result.summary(), warning=bool(result.skipped))
        if result.moved or result.logged or result.reminded or result.ended:  # hold-shelf calls and letters too
            self.ctx.changed.emit("requests")
        self.actionFinished.emit(self.last_message)

    @Slot(object)
    def on_action_failed(self, error: object) -> None:
        """Nothing was changed (each action is one transaction): say why."""
        self._pending_batch = None
        self._set_busy(False)
        self.show_message(f"Nothing was changed: {error}", error=True)
        self.actionFinished.emit(self.last_message)

    # --------------------------------------------------------------------------------- window lifecycle

    def showEvent(self, event: QShowEvent) -> None:
        """Refresh periodically only while visible."""
        super().showEvent(event)
        self._timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        """Closed (or minimised away): stop refreshing and remember where the form was."""
        self._timer.stop()
        _settings().setValue(GEOMETRY_KEY, self.saveGeometry())
        super().hideEvent(event)

    def _restore_geometry(self) -> None:
        geometry = _settings().value(GEOMETRY_KEY)
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)


def _settings() -> QSettings:
    return QSettings(APP_NAME, APP_NAME)


_DIALOG_ATTRIBUTE = "_contact_customers_dialog"


def open_contact_customers(ctx: AppContext, parent: QWidget | None = None) -> ContactCustomersDialog:
    """Show the Contact Customers form; one per workstation context: opening it again raises and refreshes it.

    The form is remembered on ``ctx`` (not in a module global) so it lives and dies with its workstation.
    """
    dialog = getattr(ctx, _DIALOG_ATTRIBUTE, None)
    if isinstance(dialog, ContactCustomersDialog):
        try:
            dialog.reload()
        except RuntimeError:  # its C++ side is gone (the parent window was destroyed)
            dialog = None
    if not isinstance(dialog, ContactCustomersDialog):
        dialog = ContactCustomersDialog(ctx, parent)
        setattr(ctx, _DIALOG_ATTRIBUTE, dialog)
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog
