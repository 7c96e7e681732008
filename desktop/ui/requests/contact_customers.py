"""The Contact Customers form (``contactCustomersDialog``): every request at Awaiting Customer Contact, grouped
by the patron's notification method, with ILLiad's two manual actions (Notified via Phone, Print Notifications)
and the E-Mail group's outbox state.

The Phone and Mail groups show one row per patron (their items below it), so staff make one call and print one
letter per patron while each request is still marked on its own. Groups fold to one line (the E-Mail group,
which needs no action, starts folded; what staff fold is remembered), and a filter box (Ctrl+F) narrows all three.

The list is read by one service call off the GUI thread as plain tuples (ContactRows are made only for the rows
shown or acted on); each group's model is brought to a refresh by rows (removed, changed, inserted), not reset,
and is not touched at all when nothing changed, so a refresh every few seconds keeps the selection, the opened
patrons and the scroll position while other workstations and the System Manager work the same list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, overload

from PySide6.QtCore import (
    QAbstractItemModel,
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
from PySide6.QtGui import (
    QAction,
    QBrush,
    QGuiApplication,
    QHideEvent,
    QKeyEvent,
    QKeySequence,
    QPalette,
    QShortcut,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
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
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from desktop.config import APP_NAME
from desktop.domain.methods import NotificationMethod
from desktop.services.database import Database
from desktop.services.notices.delivery_health import DeliveryHealth, short_state
from desktop.services.notices.outbox import PENDING, RETRYABLE_STATES, RETRYING, retry_notices
from desktop.services.requests.contact_customers import (
    ActionResult,
    CallOutcome,
    ContactRow,
    PlainGroups,
    PlainRow,
    as_row,
    load_contact_rows,
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
from desktop.ui.requests.print_notices import NoticePrinter, PrintJob
from desktop.ui.widgets.colours import Tone, set_tone, tone_colour

GEOMETRY_KEY = "contactCustomers/geometry"
COLLAPSED_KEY = "contactCustomers/collapsed/"
#: Groups collapsed until staff open them: the E-Mail group needs no action (the System Manager sends them).
COLLAPSED_BY_DEFAULT = frozenset({NotificationMethod.EMAIL})
#: Milliseconds after the last keystroke before the filter applies (50,000 rows are not filtered per key).
FILTER_DELAY_MS = 200
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
        return row.notice_reply if row.shows_reason else ""
    when = row.last_call_at.astimezone().strftime("%b %d %H:%M") if row.last_call_at else ""
    note = row.last_call_note
    return f"{row.call_attempts}× no answer, last {when}" + (f" — “{note}”" if note else "")


def _address_text(row: ContactRow) -> str:
    text = row.address if row.has_address else f"⚠ no postal address{f' ({row.address})' if row.address else ''}"
    return f"{text} — {row.notice_reply}" if row.shows_reason else text


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


#: More separate runs of removed rows than this in one update: the model is rebuilt (a reset) instead.
MAX_REMOVED_RUNS = 64
#: Methods whose rows are grouped by patron: one call, one letter for all of a patron's waiting items.
GROUPED = frozenset({NotificationMethod.PHONE, NotificationMethod.MAIL})


def _node_text(column: Column, rows: Sequence[ContactRow]) -> str:
    """What a patron's row shows for several items: a count, their titles, the longest wait."""
    if column is _TN:
        return f"{len(rows)} items"
    if column is _TITLE:
        titles = [r.display_title for r in rows]
        return "; ".join(titles[:3]) + (f"; … (+{len(titles) - 3})" if len(titles) > 3 else "")
    if column is _PICKUP:
        return "; ".join(dict.fromkeys(r.pickup for r in rows))
    if column is _DAYS:
        return str(max(r.days_waiting for r in rows))
    return column.text(max(rows, key=lambda r: r.call_attempts) if column.header == "Calls" else rows[0])


#: Where a plain row (:data:`PlainRow`, ContactRow's field order) keeps what the form reads without making a
#: ContactRow: the request id, the patron id, the texts the filter searches, the e-mail notice's state.
_ID, _PATRON_ID, _STATE = (ContactRow._fields.index(n) for n in ("request_id", "patron_id", "notice_state"))
_SEARCHED = itemgetter(*(ContactRow._fields.index(n) for n in ("patron_name", "title", "pickup", "email", "phone",
                                                                "address", "transaction_number")))  # fmt: skip


def _matches(row: PlainRow, needle: str) -> bool:
    """The filter: patron name, title, pickup location, e-mail, phone, address, transaction number."""
    return any(needle in str(text).casefold() for text in _SEARCHED(row))


def group_nodes(rows: Sequence[PlainRow], grouped: bool) -> dict[int, tuple[PlainRow, ...]]:
    """A group's top-level rows: its requests by patron id (``grouped``) or each request by its id, in order.
    Pure, so a refresh's worker can do it off the GUI thread."""
    if not grouped:
        return {row[_ID]: (row,) for row in rows}
    lists: dict[int, list[PlainRow]] = {}
    for row in rows:
        lists.setdefault(row[_PATRON_ID], []).append(row)
    return {key: tuple(items) for key, items in lists.items()}


class ContactTreeModel(QAbstractItemModel):
    """The rows of one group; in the Phone and Mail groups one top-level row per patron, their items below.

    A patron with one waiting item is one plain row; with several, the patron's row sums them up and expands to
    the items. Selecting the patron's row selects all of their items; selecting items selects just those.

    Refreshes and filtering bring the model to the new rows by removing, changing and inserting rows (never a
    reset), and do nothing at all when nothing changed, so views keep selection, expansion and scroll position.
    A child's ``internalId`` is its patron key + 1 (stable across moves); top-level rows have ``internalId`` 0.
    """

    def __init__(self, method: NotificationMethod, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.method = method
        self.grouped = method in GROUPED
        self.columns = COLUMNS[method]
        self._source: tuple[PlainRow, ...] = ()
        self._filter = ""
        self._keys: list[int] = []  # top-level keys in display order (patron ids, or request ids when flat)
        self._nodes: dict[int, tuple[PlainRow, ...]] = {}
        self._position: dict[int, int] = {}
        #: Why nothing is being sent right now (the banner's few words), added to waiting e-mails' Notice text.
        self.blocked_reason = ""
        self._sort: tuple[int, Qt.SortOrder] | None = None
        self._sorted_by = -1  # the column ``_sort_values`` were computed for
        self._sort_values: dict[int, Any] = {}

    # -- Qt model interface

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        """Top-level rows (patrons) and, under a patron with several items, those items."""
        if column < 0 or column >= len(self.columns) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0) if row < len(self._keys) else QModelIndex()
        if parent.internalId() != 0 or parent.row() >= len(self._keys):
            return QModelIndex()
        key = self._keys[parent.row()]
        items = self._nodes[key]
        return self.createIndex(row, column, key + 1) if len(items) > 1 and row < len(items) else QModelIndex()

    @overload
    def parent(self) -> QObject | None: ...
    @overload
    def parent(self, child: Index) -> QModelIndex: ...
    def parent(self, child: Index | None = None) -> QObject | QModelIndex | None:
        """The patron row of an item row; an invalid index for top-level rows (no argument: the QObject parent)."""
        if child is None:
            return super().parent()
        ident = child.internalId() if child.isValid() else 0
        if ident == 0:
            return QModelIndex()
        position = self._position.get(ident - 1)
        return QModelIndex() if position is None else self.createIndex(position, 0, 0)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """Patrons (or requests) at the top; a patron's items below it when there are several."""
        if not parent.isValid():
            return len(self._keys)
        if parent.internalId() != 0 or parent.column() != 0 or parent.row() >= len(self._keys):
            return 0
        items = self._nodes[self._keys[parent.row()]]
        return len(items) if len(items) > 1 else 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Columns of this group."""
        return len(self.columns)

    def rows_at(self, index: Index) -> tuple[ContactRow, ...]:
        """The requests behind an index: a patron's row means all of their items."""
        if not index.isValid():
            return ()
        ident = index.internalId()
        if ident == 0:
            return tuple(map(as_row, self._nodes[self._keys[index.row()]])) if index.row() < len(self._keys) else ()
        items = self._nodes.get(ident - 1, ())
        return (as_row(items[index.row()]),) if index.row() < len(items) else ()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Text, tooltips, alignment and warning colour of one cell; ``ROW_ROLE`` gives the ContactRow."""
        rows = self.rows_at(index)
        if not rows:
            return None
        row = rows[0]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            if len(rows) > 1:
                return _node_text(column, rows)
            text = column.text(row)
            if column is _NOTICE and self.blocked_reason and row.notice_state in (None, PENDING, RETRYING):
                return f"{text} — not sent: {self.blocked_reason}"
            return text
        if role == ROW_ROLE:
            return row if len(rows) == 1 else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return (
                self._tooltip(row)
                if len(rows) == 1
                else "\n".join(
                    [f"{row.patron_name}: {len(rows)} items waiting (one call / one letter for all)"]
                    + [f"  {r.transaction_number}  {r.display_title}" for r in rows]
                )
            )
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
        """Sort in Python on plain keys (fast for 50,000 rows), keeping selections on the same requests."""
        if not 0 <= column < len(self.columns):
            return
        self._sort = (column, order)
        before = list(self._keys)
        self._sort_keys()
        if self._keys == before:  # already in order (new arrivals usually are): no relayout for the views
            return
        self._keys, after = before, self._keys
        self._position = {k: i for i, k in enumerate(self._keys)}
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        where = [self._identify(i) for i in old]
        self._keys = after
        self._position = {k: i for i, k in enumerate(self._keys)}
        self.changePersistentIndexList(old, [self._locate(w, i.column()) for w, i in zip(where, old, strict=True)])
        self.layoutChanged.emit()

    # -- our interface

    def rows(self) -> list[ContactRow]:
        """Every request shown, in display order (patrons' items one after the other)."""
        return [as_row(row) for key in self._keys for row in self._nodes[key]]

    def row_at(self, row: int) -> ContactRow:
        """The ``row``-th request shown (counting every patron's items)."""
        return self.rows()[row]

    def index_of(self, request_id: int, column: int = 0) -> QModelIndex:
        """The index showing one request (its patron's row when that patron has only this item)."""
        for position, key in enumerate(self._keys):
            items = self._nodes[key]
            for number, row in enumerate(items):
                if row[_ID] == request_id:
                    if len(items) == 1:
                        return self.index(position, column)
                    return self.index(number, column, self.index(position, 0))
        return QModelIndex()

    def request_count(self) -> int:
        """Requests shown (every patron's items)."""
        return sum(len(items) for items in self._nodes.values())

    def patron_count(self) -> int:
        """Top-level rows: patrons in the grouped groups."""
        return len(self._keys)

    def set_filter(self, text: str) -> None:
        """Show only requests matching ``text`` (case-insensitive; "" shows all)."""
        needle = text.strip().casefold()
        if needle != self._filter:
            self._filter = needle
            self._apply()

    @property
    def source(self) -> tuple[PlainRow, ...]:
        """The rows last given to :meth:`set_rows` (before filtering); a tuple, never changed in place."""
        return self._source

    def set_rows(
        self, rows: Sequence[PlainRow], *, changed: bool = False, nodes: dict[int, tuple[PlainRow, ...]] | None = None
    ) -> None:
        """Bring the model to ``rows`` by removing, updating and inserting rows (never a reset; nothing when
        nothing changed).

        Args:
            changed: the caller knows ``rows`` differ from the rows shown (the refresh's worker compared them).
            nodes: ``rows`` already grouped by :func:`group_nodes` (on the worker); used when no filter is set.
                The model takes the dictionary over.
        """
        rows = tuple(rows)
        if not changed and rows == self._source:
            return
        self._source = rows
        self._apply(None if self._filter else nodes)

    def _apply(self, prepared: dict[int, tuple[PlainRow, ...]] | None = None) -> None:
        wanted = prepared
        if wanted is None:
            shown = [r for r in self._source if _matches(r, self._filter)] if self._filter else self._source
            wanted = group_nodes(shown, self.grouped)
        runs: list[tuple[int, int]] = []  # gone rows as contiguous runs, bottom-up
        end = len(self._keys) - 1
        while end >= 0:
            if self._keys[end] in wanted:
                end -= 1
                continue
            start = end
            while start > 0 and self._keys[start - 1] not in wanted:
                start -= 1
            runs.append((start, end))
            end = start - 1
        if len(runs) > MAX_REMOVED_RUNS:  # a new filter or database: rebuilding is cheaper than thousands of moves
            self.beginResetModel()
            self._keys = list(wanted)
            self._nodes = wanted
            self._sort_values = {}
            self._sort_keys()
            self.endResetModel()
            return
        for start, end in runs:
            self.beginRemoveRows(QModelIndex(), start, end)
            for key in self._keys[start : end + 1]:
                del self._nodes[key]
                self._sort_values.pop(key, None)
            del self._keys[start : end + 1]
            self._position = {k: i for i, k in enumerate(self._keys)}
            self.endRemoveRows()
        nodes = self._nodes
        changed = [position for position, key in enumerate(self._keys) if nodes[key] != wanted[key]]
        for position in changed:
            key = self._keys[position]
            old, new = nodes[key], wanted[key]
            self._sort_values.pop(key, None)
            if [r[_ID] for r in old] != [r[_ID] for r in new]:
                parent = self.index(position, 0)
                if len(old) > 1:
                    self.beginRemoveRows(parent, 0, len(old) - 1)
                    self._nodes[key] = old[:1]
                    self.endRemoveRows()
                if len(new) > 1:
                    self.beginInsertRows(parent, 0, len(new) - 1)
                    self._nodes[key] = new
                    self.endInsertRows()
            self._nodes[key] = new
            if len(new) > 1:
                parent = self.index(position, 0)
                self.dataChanged.emit(self.index(0, 0, parent), self.index(len(new) - 1, len(self.columns) - 1, parent))
        if changed:
            self.dataChanged.emit(self.index(changed[0], 0), self.index(changed[-1], len(self.columns) - 1))
        new_keys = [key for key in wanted if key not in self._nodes]
        if new_keys:
            self.beginInsertRows(QModelIndex(), len(self._keys), len(self._keys) + len(new_keys) - 1)
            for key in new_keys:
                self._position[key] = len(self._keys)
                self._keys.append(key)
                self._nodes[key] = wanted[key]
            self.endInsertRows()
            if self._sort is not None:
                self.sort(*self._sort)

    def _sort_keys(self) -> None:
        if self._sort is not None:
            column, order = self._sort
            key = self.columns[column].key
            nodes = self._nodes
            make = ContactRow._make  # the sort keys never read ``method``: no need to convert it

            def node_key(k: int) -> Any:
                items = nodes[k]
                first = make(items[0])
                sort_key = key(first) if len(items) == 1 else min(key(make(r)) for r in items)
                return (sort_key, first.transaction_number)

            # Sort values are kept between refreshes: a refresh computes only those of new and changed rows, and
            # the (nearly sorted) keys are then ordered by C-level lookups (300 ms → a few at 50,000 rows).
            if self._sorted_by != column:
                self._sort_values = {}
                self._sorted_by = column
            values = self._sort_values
            for k in self._keys:
                if k not in values:
                    values[k] = node_key(k)
            self._keys.sort(key=values.__getitem__, reverse=order == Qt.SortOrder.DescendingOrder)
        self._position = {k: i for i, k in enumerate(self._keys)}

    def _identify(self, index: QModelIndex) -> tuple[int, int | None]:
        """(top-level key, request id of a child or None) of a persistent index, before rows move."""
        ident = index.internalId()
        if ident == 0:
            return (self._keys[index.row()] if index.row() < len(self._keys) else -1, None)
        items = self._nodes.get(ident - 1, ())
        return (ident - 1, items[index.row()][_ID] if index.row() < len(items) else None)

    def _locate(self, where: tuple[int, int | None], column: int) -> QModelIndex:
        key, request_id = where
        position = self._position.get(key)
        if position is None:
            return QModelIndex()
        if request_id is None:
            return self.index(position, column)
        items = self._nodes[key]
        number = next((n for n, r in enumerate(items) if r[_ID] == request_id), None)
        return QModelIndex() if number is None else self.createIndex(number, column, key + 1)

    def _warn(self, row: ContactRow) -> bool:
        if self.method is NotificationMethod.MAIL:
            return not row.has_address
        return row.retryable

    def set_blocked_reason(self, reason: str) -> None:
        """Say on each waiting e-mail why it is not being sent (``""``: nothing blocks sending)."""
        if reason == self.blocked_reason:
            return
        self.blocked_reason = reason
        if self._keys and self.method is NotificationMethod.EMAIL:
            column = self.columns.index(_NOTICE)
            self.dataChanged.emit(self.index(0, column), self.index(len(self._keys) - 1, column))

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
        elif row.shows_reason:  # why the patron is phoned or written to instead (bounce, fallback)
            lines.append(f"Why: {row.notice_reply}")
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
        self.groups_data = PlainGroups()
        self.last_message = ""
        self._loading = False
        self._reload_again = False
        self._busy = False
        self._pending_batch: PrintBatch | None = None
        self._pdf_target: Path | None = None
        self._pdf_written: Path | None = None
        self._pdf_warning = ""
        #: Save as PDF while it writes (a few pages per event-loop turn).
        self.pdf_job: PrintJob | None = None
        self.call_dialog: CallOutcomeDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.notice_printer = NoticePrinter(self, paper_size=ctx.settings.paper_size)
        self.notice_printer.finished.connect(self.on_preview_finished)
        ctx.settingsChanged.connect(self.notice_printer.on_settings_changed)

        self.models: dict[NotificationMethod, ContactTreeModel] = {}
        self.tables: dict[NotificationMethod, QTreeView] = {}
        self.group_boxes: dict[NotificationMethod, QGroupBox] = {}
        self.toggles: dict[NotificationMethod, QToolButton] = {}
        self.group_summaries: dict[NotificationMethod, QLabel] = {}
        self._group_bodies: dict[NotificationMethod, QWidget] = {}
        self._retryable = 0
        self._filter_timer = ctx.timer(self, FILTER_DELAY_MS, self.on_apply_filter, single_shot=True,
                                       name="contactCustomersFilterTimer")  # fmt: skip
        self._build()
        self._restore_geometry()
        fit_to_screen(self)

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
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("contactFilterEdit")
        self.filter_edit.setAccessibleName("Filter requests")
        self.filter_edit.setPlaceholderText("Filter: patron, username, title, transaction, location (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setMinimumWidth(160)
        self.filter_edit.textChanged.connect(self.on_filter_edited)
        filter_label = QLabel("&Filter:")
        filter_label.setBuddy(self.filter_edit)
        top.addWidget(filter_label)
        top.addWidget(self.filter_edit, 1)
        self.find_shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        self.find_shortcut.activated.connect(self.on_find)
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

        self._groups_layout = QVBoxLayout()
        self._groups_layout.setSpacing(4)
        for method in NotificationMethod:
            self._groups_layout.addWidget(self._build_group(method))
        layout.addLayout(self._groups_layout, 1)
        for method in NotificationMethod:
            collapsed = _settings().value(COLLAPSED_KEY + method.name, method in COLLAPSED_BY_DEFAULT, type=bool)
            self.set_collapsed(method, bool(collapsed), remember=False)

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
        box_layout.setContentsMargins(6, 4, 6, 4)
        header = QHBoxLayout()
        toggle = QToolButton()
        toggle.setObjectName(f"{group_name}Toggle")
        toggle.setAccessibleName(f"Show or hide the {method.value} group")
        toggle.setCheckable(True)
        toggle.setChecked(True)
        toggle.setAutoRaise(True)
        toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toggle.toggled.connect(self.on_group_toggled)
        header.addWidget(toggle)
        summary = QLabel()
        summary.setObjectName(f"{group_name}Summary")
        header.addWidget(summary, 1)
        box_layout.addLayout(header)
        model = ContactTreeModel(method, self)
        view = QTreeView()
        view.setObjectName(table_name)
        view.setAccessibleName(f"Requests of patrons notified by {method.value}")
        view.setModel(model)
        view.setUniformRowHeights(True)  # 50,000 rows: heights are not measured one by one
        view.setRootIsDecorated(model.grouped)
        view.setItemsExpandable(model.grouped)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setAlternatingRowColors(True)
        view.setWordWrap(False)
        view.setMinimumHeight(view.fontMetrics().height() * 4)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self.on_context_menu)
        head = view.header()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(False)
        for number, column in enumerate(model.columns):
            view.setColumnWidth(number, column.width)
        # The title takes the spare width (it is the longest text); the other columns stay where staff put them.
        head.setSectionResizeMode(model.columns.index(_TITLE), QHeaderView.ResizeMode.Stretch)
        view.setSortingEnabled(True)
        view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        # Double-click and Enter open the request (not ``activated``: its mouse behaviour depends on the style).
        view.doubleClicked.connect(self.on_activated)
        view.installEventFilter(self)
        view.selectionModel().selectionChanged.connect(self.on_selection_changed)
        body = QWidget()
        body.setObjectName(f"{group_name}Body")
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.addWidget(view)
        box_layout.addWidget(body, 1)
        if method is NotificationMethod.EMAIL:
            self.email_hint = QLabel("E-mails are sent by the System Manager; they leave this list once sent.")
            self.email_hint.setObjectName("emailHintLabel")
            body_layout.addWidget(self.email_hint)
            self.send_now_button = self._button(
                "&Send Now", "sendNowButton", "Ask the System Manager to send now", self.on_send_now
            )
            self.retry_button = self._button(
                "Retr&y Failed", "retryFailedButton", "Retry failed e-mails", self.on_retry_failed
            )
            header.addWidget(self.send_now_button)  # in the header: usable while the group is collapsed
            header.addWidget(self.retry_button)
        self.models[method] = model
        self.tables[method] = view
        self.group_boxes[method] = box
        self.toggles[method] = toggle
        self.group_summaries[method] = summary
        self._group_bodies[method] = body
        return box

    def set_collapsed(self, method: NotificationMethod, collapsed: bool, *, remember: bool = True) -> None:
        """Show or hide a group's list (its one-line summary and buttons stay); remembered per workstation."""
        toggle = self.toggles[method]
        toggle.blockSignals(True)
        toggle.setChecked(not collapsed)
        toggle.blockSignals(False)
        toggle.setArrowType(Qt.ArrowType.RightArrow if collapsed else Qt.ArrowType.DownArrow)
        toggle.setText("Show" if collapsed else "Hide")
        self._group_bodies[method].setVisible(not collapsed)
        self._groups_layout.setStretchFactor(self.group_boxes[method], 0 if collapsed else 1)
        if collapsed:
            self.tables[method].clearSelection()
        if remember:
            _settings().setValue(COLLAPSED_KEY + method.name, collapsed)

    def is_collapsed(self, method: NotificationMethod) -> bool:
        """Whether a group's list is hidden."""
        return not self.toggles[method].isChecked()

    @Slot(bool)
    def on_group_toggled(self, expanded: bool) -> None:
        """A group's Show/Hide button."""
        method = next(m for m, t in self.toggles.items() if t is self.sender())
        self.set_collapsed(method, not expanded)

    @Slot()
    def on_find(self) -> None:
        """Ctrl+F (the platform's Find key): to the filter box, its text selected for typing over."""
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    @Slot(str)
    def on_filter_edited(self, _text: str) -> None:
        """Typing in the filter box: apply it once typing pauses."""
        self._filter_timer.start()

    @Slot()
    def on_apply_filter(self) -> None:
        """Filter every group by the box's text."""
        text = self.filter_edit.text()
        for model in self.models.values():
            model.set_filter(text)
        self._update_titles()  # a collapsed group's summary says how many match

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
        shown = {method: model.source for method, model in self.models.items()}
        job = functools.partial(_load, self.ctx.db, shown)
        handle = self.ctx.run(job, self.on_loaded, self.on_load_failed)
        if handle.cancelled:  # the workstation is shutting down: nothing more to refresh
            self._loading = False
            self._timer.stop()

    @Slot(object)
    def on_loaded(self, loaded: Loaded) -> None:
        """Apply a fresh list to the three groups: only what changed, row by row (nothing when nothing did)."""
        self._loading = False
        groups = loaded.groups
        self.groups_data = groups
        self._retryable = loaded.retryable
        for method, model in self.models.items():
            # Unchanged since the worker compared: nothing to do. The model changed meanwhile (another database):
            # set_rows compares for itself.
            if model.source is not loaded.compared.get(method):
                model.set_rows(groups.group(method))
            elif method not in loaded.unchanged:
                model.set_rows(groups.group(method), changed=True, nodes=loaded.nodes.get(method))
        self._update_titles()
        self.summary_label.setText(
            f"{groups.total:,} request(s) awaiting customer contact · updated {groups.loaded_at.astimezone():%H:%M:%S}"
        )
        self._update_buttons()
        self.loaded.emit()
        if self._reload_again:
            self._reload_again = False
            self.reload()

    def _update_titles(self) -> None:
        """Group titles (requests waiting) and one-line summaries (patrons, matches, failed e-mails)."""
        filtered = bool(self.filter_edit.text().strip())
        for method, model in self.models.items():
            _, _, title = GROUP_NAMES[method]
            total = len(self.groups_data.group(method))
            self.group_boxes[method].setTitle(f"{title} ({total:,})")
            parts = []
            if filtered:
                parts.append(f"{model.request_count():,} match the filter")
            if model.grouped:
                parts.append(f"{model.patron_count():,} patron(s) shown")
            if method is NotificationMethod.EMAIL:
                parts.append("sent by the System Manager, no action needed")
                if self._retryable:
                    parts.append(f"{self._retryable:,} failed")
            self.group_summaries[method].setText(" · ".join(parts))

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
        """Requests shown per group (a patron's row of several items counts each item)."""
        return {method: model.request_count() for method, model in self.models.items()}

    # -------------------------------------------------------------------------------------- selection

    def selected_rows(self) -> list[ContactRow]:
        """Selected requests of all three groups (a selection may span groups, as in ILLiad's single grid); a
        selected patron row stands for all of that patron's items."""
        rows: dict[int, ContactRow] = {}
        for method, view in self.tables.items():
            model = self.models[method]
            for index in view.selectionModel().selectedRows():
                for row in model.rows_at(index):
                    rows.setdefault(row.request_id, row)
        return sorted(rows.values(), key=lambda r: (r.method is not NotificationMethod.EMAIL, r.transaction_number))

    def select_requests(self, transaction_numbers: Sequence[int]) -> None:
        """Select these requests wherever they are (tests, and re-selection after a search); a patron whose
        items are all wanted is selected by their row."""
        wanted = set(transaction_numbers)
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for method, view in self.tables.items():
            view.clearSelection()
            model = self.models[method]
            for position in range(model.rowCount()):
                index = model.index(position, 0)
                items = model.rows_at(index)
                if all(r.transaction_number in wanted for r in items):
                    view.selectionModel().select(index, flags)
                    continue
                for number, row in enumerate(items):
                    if row.transaction_number in wanted:
                        view.expand(index)
                        view.selectionModel().select(model.index(number, 0, index), flags)

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
        self.retry_button.setEnabled(idle and self._retryable > 0)

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
        """Enter (or Return) in a group's table opens the current row's request form; on a patron's row of several
        items it shows or hides the items."""
        if (
            isinstance(watched, QTreeView)
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and watched.currentIndex().isValid()
        ):
            current = watched.currentIndex().siblingAtColumn(0)
            if watched.model().rowCount(current):
                watched.setExpanded(current, not watched.isExpanded(current))
            else:
                self.on_activated(current)
            return True
        return super().eventFilter(watched, event)

    @Slot(QModelIndex)
    def on_activated(self, index: QModelIndex) -> None:
        """Double-click or Enter on a request opens its request form (on a patron's row of several items, the
        tree view expands it instead)."""
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
        if not isinstance(view, QAbstractItemView):
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
            self.save_pdf(batch, self._pdf_target, warning)
            self._pdf_target = None
            return
        self.notice_printer.preview(batch.pages, self)

    def save_pdf(self, batch: PrintBatch, target: Path, warning: str = "") -> None:
        """Write the batch into ``target`` a few pages per event-loop turn (the form keeps answering); staff are
        asked whether the letters are right once the file is complete. ``warning`` (requests that get no page)
        stays in the message bar in front of the progress."""
        job = self.notice_printer.pdf_job(batch.pages, target)
        job.progressed.connect(self.on_pdf_progress)
        job.done.connect(self.on_pdf_done)
        self.pdf_job = job
        self._pdf_written = target
        self._pdf_warning = warning
        self.on_pdf_progress(0, len(batch.pages))
        job.start()

    @Slot(int, int)
    def on_pdf_progress(self, done: int, total: int) -> None:
        """Say how far Save as PDF is."""
        name = self._pdf_written.name if self._pdf_written is not None else "the file"
        progress = f"Saving letters to {name}: {done} of {total} page(s)…"
        self.show_message(f"{self._pdf_warning} {progress}".strip(), warning=bool(self._pdf_warning))

    @Slot(bool, str)
    def on_pdf_done(self, ok: bool, message: str) -> None:
        """The PDF is complete: ask whether it is right; it could not be written: say so, move nothing."""
        job, self.pdf_job = self.pdf_job, None
        target, self._pdf_written = self._pdf_written, None
        if job is not None:
            job.deleteLater()
        shown = target.name if target is not None else "the file"
        if not ok:
            self._pending_batch = None
            self._set_busy(False)
            self.show_message(f"Could not write {target or shown}: {message}", error=True)
            return
        if self._pdf_warning:
            self.show_message(self._pdf_warning, warning=True)
        count = len(self._pending_batch.pages) if self._pending_batch else 0
        self.ask_printed_confirmation(f"{count} letter(s) were saved to {shown}.")

    @Slot(bool)
    def on_preview_finished(self, printed: bool) -> None:
        """The preview closed: ask for confirmation if it printed; cancelled printing moves nothing."""
        if not printed:
            self._pending_batch = None
            self._set_busy(False)
            self.show_message("Printing was cancelled; nothing was changed.", warning=True)
            return
        count = len(self._pending_batch.pages) if self._pending_batch else 0
        self.ask_printed_confirmation(f"{count} letter(s) were sent to the printer.")

    def ask_printed_confirmation(self, what: str) -> None:
        """Ask whether the notices came out right before any request moves (paper jams happen)."""
        batch = self._pending_batch
        if batch is None:
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Print Notifications",
            f"{what}\n\nDid they all print correctly? The {len(batch.request_ids)} request(s) they list will move "
            "to Customer Notified via Mail.",
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
            failed = [r for r in map(as_row, self.groups_data.email) if r.retryable]
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
        """Refresh periodically only while visible; stay within the screen now that the frame's size is known."""
        super().showEvent(event)
        fit_to_screen(self)
        self._timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        """Closed (or minimised away): stop refreshing and remember where the form was."""
        self._timer.stop()
        self._filter_timer.stop()
        _settings().setValue(GEOMETRY_KEY, self.saveGeometry())
        super().hideEvent(event)

    def _restore_geometry(self) -> None:
        geometry = _settings().value(GEOMETRY_KEY)
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)


def _settings() -> QSettings:
    return QSettings(APP_NAME, APP_NAME)


@dataclass(frozen=True)
class Loaded:
    """One refresh's result, with what the form derives from it computed on the worker thread too.

    Attributes:
        compared: the rows each group showed when the refresh started (the tuples the worker compared with).
        unchanged: the groups whose rows equal those: the GUI thread need not even compare them.
        nodes: the changed groups' rows grouped for their models (:func:`group_nodes`), unfiltered.
    """

    groups: PlainGroups
    retryable: int
    compared: dict[NotificationMethod, tuple[PlainRow, ...]]
    unchanged: frozenset[NotificationMethod]
    nodes: dict[NotificationMethod, dict[int, tuple[PlainRow, ...]]]


#: Rows compared per step on the worker: a comparison of 50,000 rows in one C call would hold the GIL (and the GUI
#: thread's Python) for ~25 ms; steps let the GUI thread in between.
_COMPARE_STEP = 2_000


def _same(new: tuple[PlainRow, ...], old: tuple[PlainRow, ...]) -> bool:
    if len(new) != len(old):
        return False
    return all(new[i : i + _COMPARE_STEP] == old[i : i + _COMPARE_STEP] for i in range(0, len(new), _COMPARE_STEP))


def _load(db: Database, shown: dict[NotificationMethod, tuple[PlainRow, ...]]) -> Loaded:
    """The worker's part of a refresh: read the list, count the failed e-mails and tell which groups did not
    change since ``shown`` (the models' rows, immutable tuples), all off the GUI thread (at 50,000 waiting the
    GUI thread's comparison was 25 ms of every 10-second refresh), and group the changed ones for their models."""
    groups = load_contact_rows(db)
    unchanged = frozenset(method for method, rows in shown.items() if _same(groups.group(method), rows))
    nodes = {m: group_nodes(groups.group(m), m in GROUPED) for m in NotificationMethod if m not in unchanged}
    retryable = sum(1 for r in groups.email if r[_STATE] in RETRYABLE_STATES)
    return Loaded(groups, retryable, dict(shown), unchanged, nodes)


def fit_to_screen(widget: QWidget) -> None:
    """Keep a window inside its screen's available geometry (at 200 % a 1920×1200 display offers 960×600
    logical pixels): shrink it to fit and move it back inside, so the action buttons stay reachable."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    available = screen.availableGeometry()
    frame = widget.frameGeometry().size() - widget.geometry().size()
    width = min(widget.width(), available.width() - frame.width())
    height = min(widget.height(), available.height() - frame.height())
    widget.resize(max(width, widget.minimumSizeHint().width()), max(height, widget.minimumSizeHint().height()))
    x = min(max(widget.x(), available.left()), available.right() - widget.frameGeometry().width() + 1)
    y = min(max(widget.y(), available.top()), available.bottom() - widget.frameGeometry().height() + 1)
    widget.move(max(x, available.left()), max(y, available.top()))


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
