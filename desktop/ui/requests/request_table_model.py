"""The request list (``requestTable``): a table model that reads a queue in pages, never the whole queue.

Like Anki's browser model, rows live in a cache that is refreshed in place rather than reset: the model knows
the list's length (one COUNT) and fetches pages of :data:`PAGE` rows on a worker thread as the view paints
them, keeping at most :data:`MAX_PAGES` pages. A refresh re-reads the length and the cached pages, inserts or
removes rows at the end, and moves persistent indexes (the selection, the current row) to where their
requests now are, so another workstation's change never throws away what staff had selected or scrolled to.
Sorting and filtering change the :class:`~desktop.services.requests.queues.QueueQuery` and are done by the database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

import shiboken6
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from desktop.services.database import Database
from desktop.services.requests.queues import (
    QueueQuery,
    QueueRefresh,
    QueueWindow,
    RequestRow,
    SortKey,
    load_window,
    refresh_windows,
)
from desktop.ui.context import AppContext

#: Rows per page fetched from the database.
PAGE = 200
#: Pages kept in memory (the rest are re-read when scrolled back to).
MAX_PAGES = 25
#: Item data role holding a row's transaction number (``None`` while the row is still loading).
TRANSACTION_ROLE = Qt.ItemDataRole.UserRole + 1
LOADING = "…"

Index = QModelIndex | QPersistentModelIndex


def _when(value: datetime | None) -> str:
    # Formatted by hand: ``strftime`` imports the ``time`` module on every call, which goes through PySide6's
    # import hook in Python and made this column alone cost more than reading the page from the database.
    # ``%`` formatting of the five fields costs less than half the f-string with format specs (a page formats 200).
    if not value:
        return ""
    v = value.astimezone()
    return "%04d-%02d-%02d %02d:%02d" % (v.year, v.month, v.day, v.hour, v.minute)  # noqa: UP031


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


#: (header, sort key, text of a row) for each column, in display order.
COLUMNS: tuple[tuple[str, SortKey, Callable[[RequestRow], str]], ...] = (
    ("Transaction #", SortKey.TRANSACTION_NUMBER, lambda r: str(r.transaction_number)),
    ("Status", SortKey.STATUS, lambda r: r.status),
    ("Patron", SortKey.PATRON, lambda r: r.patron_name),
    ("Notify by", SortKey.NOTIFICATION_METHOD, lambda r: r.notification_method),
    ("Type", SortKey.REQUEST_TYPE, lambda r: r.request_type),
    ("Title", SortKey.TITLE, lambda r: r.title),
    ("Author", SortKey.AUTHOR, lambda r: r.author),
    ("Due", SortKey.DUE_DATE, lambda r: _day(r.due_date)),
    ("Lender", SortKey.LENDING_LIBRARY, lambda r: r.lending_library),
    ("Status since", SortKey.STATUS_CHANGED, lambda r: _when(r.status_changed_at)),
)


Texts = tuple[tuple[str, ...], ...]

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_TRANSACTION = int(TRANSACTION_ROLE)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ANSWERED = frozenset({_DISPLAY, _TOOLTIP, _ACCESSIBLE, _ALIGNMENT, _TRANSACTION})


def _row_text(r: RequestRow) -> tuple[str, ...]:
    """One row's cells in :data:`COLUMNS` order, spelled out (a loop over the column functions cost twice as much)."""
    return (str(r.transaction_number), r.status, r.patron_name, r.notification_method, r.request_type, r.title,
            r.author, _day(r.due_date), r.lending_library, _when(r.status_changed_at))  # fmt: skip


def row_texts(rows: tuple[RequestRow, ...]) -> Texts:
    """Every cell's text, formatted once (on the worker thread) instead of on every paint."""
    return tuple(map(_row_text, rows))


def fetch_window(
    db: Database, query: QueueQuery, offset: int, limit: int, *, with_total: bool
) -> tuple[QueueWindow, Texts]:
    """A window of rows and their cell texts (runs on the worker thread)."""
    window = load_window(db, query, offset, limit, with_total=with_total)
    return window, row_texts(window.rows)


def fetch_refresh(
    db: Database, query: QueueQuery, offsets: list[int], limit: int
) -> tuple[QueueRefresh, dict[int, Texts]]:
    """Fresh windows and their cell texts (runs on the worker thread)."""
    result = refresh_windows(db, query, offsets, limit)
    return result, {offset: row_texts(rows) for offset, rows in result.windows.items()}


class RequestTableModel(QAbstractTableModel):
    """Rows of one :class:`QueueQuery`, paged in from the database off the GUI thread.

    ``flags()`` is deliberately not overridden: the base class already answers what a row needs (enabled,
    selectable, never has children, never edited in place: edits go through the request form), and an override
    would be a call into Python for every painted cell and every selection check.

    Signals:
        loaded(int): the first page of a new query arrived; the argument is the list's length.
        refreshed(int): a refresh was applied; the argument is the new length.
        loadFailed(str): reading failed (the message is for staff: the database is unreachable, …).
    """

    loaded = Signal(int)
    refreshed = Signal(int)
    loadFailed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ctx = ctx
        self._query: QueueQuery | None = None
        self._generation = 0
        self._total = 0
        self._pages: dict[int, tuple[RequestRow, ...]] = {}
        self._texts: dict[int, Texts] = {}
        self._pending: set[int] = set()
        self._loading = False
        self._refreshing = False
        self._failed = False

    # --- state ------------------------------------------------------------------------------------------------
    @property
    def query(self) -> QueueQuery | None:
        """The list shown (``None`` before the first :meth:`set_query`)."""
        return self._query

    @property
    def loading(self) -> bool:
        """True until the first page of the current query arrived."""
        return self._loading

    @property
    def failed(self) -> bool:
        """True when the current list could not be read (a retry starts it again)."""
        return self._failed

    @property
    def total(self) -> int:
        """The list's length as last read."""
        return self._total

    def cached_rows(self) -> int:
        """How many rows are held in memory (the benchmark and tests check it stays bounded)."""
        return sum(len(rows) for rows in self._pages.values())

    def row_data(self, row: int) -> RequestRow | None:
        """The request on ``row`` if its page is loaded."""
        rows = self._pages.get(row // PAGE)
        offset = row % PAGE
        return rows[offset] if rows is not None and offset < len(rows) else None

    def transaction_number(self, row: int) -> int | None:
        """Transaction number on ``row`` if loaded."""
        found = self.row_data(row)
        return found.transaction_number if found else None

    def row_of(self, transaction_number: int) -> int | None:
        """The row of a loaded request, or ``None``."""
        for page, rows in self._pages.items():
            for offset, found in enumerate(rows):
                if found.transaction_number == transaction_number:
                    return page * PAGE + offset
        return None

    # --- Qt model API ---------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """The whole list's length, loaded or not (the scroll bar shows the real size)."""
        return 0 if parent.isValid() else self._total

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """See :data:`COLUMNS`."""
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Cell text; a row not loaded yet shows "…" and asks for its page."""
        if role not in _ANSWERED:  # most calls while painting: answer them before any other work
            return None
        row = index.row()
        if not index.isValid() or not 0 <= row < self._total:
            return None
        texts = self._texts.get(row // PAGE)
        offset = row % PAGE
        if texts is None or offset >= len(texts):
            if role == _DISPLAY:
                self._want(row // PAGE)
                return LOADING
            return None
        column = index.column()
        if role in (_DISPLAY, _TOOLTIP):
            return texts[offset][column]
        if role == _TRANSACTION:
            return self._pages[row // PAGE][offset].transaction_number
        if role == _ACCESSIBLE:
            return f"{COLUMNS[column][0]}: {texts[offset][column]}"
        if role == _ALIGNMENT and column == 0:
            return _RIGHT
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section][0]
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"Sort by {COLUMNS[section][0].lower()} (done by the database)"
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Ask the database for another order (a new list, so the model resets)."""
        if self._query is None or not 0 <= column < len(COLUMNS):
            return
        self.set_query(replace(self._query, sort=COLUMNS[column][1], descending=order == Qt.SortOrder.DescendingOrder))

    # --- loading ----------------------------------------------------------------------------------------------
    def set_query(self, query: QueueQuery, *, force: bool = False) -> None:
        """Show another list: ask the database first (it works while the view resets), then reset."""
        if query == self._query and not force:
            return
        self._generation += 1
        self._ctx.run(
            functools.partial(fetch_window, self._ctx.db, query, 0, PAGE, with_total=True),
            functools.partial(self._on_first_window, self._generation),
            functools.partial(self._on_failed, self._generation),
        )
        self.beginResetModel()
        self._query = query
        self._total = 0
        self._pages.clear()
        self._texts.clear()
        self._pending.clear()
        self._loading = True
        self._refreshing = False
        self._failed = False
        self.endResetModel()

    def refresh(self) -> bool:
        """Re-read the length and the cached pages in place; False when nothing was started (still loading)."""
        if self._query is None or self._loading or self._refreshing:
            return False
        self._refreshing = True
        offsets = [page * PAGE for page in self._pages] or [0]
        self._ctx.run(
            functools.partial(fetch_refresh, self._ctx.db, self._query, offsets, PAGE),
            functools.partial(self._on_refresh, self._generation),
            functools.partial(self._on_failed, self._generation),
        )
        return True

    def _want(self, page: int) -> None:
        if page in self._pending or self._query is None or self._loading:
            return
        self._pending.add(page)
        self._ctx.run(
            functools.partial(fetch_window, self._ctx.db, self._query, page * PAGE, PAGE, with_total=False),
            functools.partial(self._on_page, self._generation, page),
            functools.partial(self._on_failed, self._generation),
        )

    def _current(self, generation: int) -> bool:
        return shiboken6.isValid(self) and generation == self._generation

    def _on_first_window(self, generation: int, fetched: tuple[QueueWindow, Texts]) -> None:
        if not self._current(generation):
            return
        window, texts = fetched
        self._loading = False
        total = window.total or 0
        if total:
            self.beginInsertRows(QModelIndex(), 0, total - 1)
            self._total = total
            self._pages = {0: window.rows}
            self._texts = {0: texts}
            self.endInsertRows()
        self.loaded.emit(total)

    def _on_page(self, generation: int, page: int, fetched: tuple[QueueWindow, Texts]) -> None:
        if not self._current(generation):
            return
        window, texts = fetched
        self._pending.discard(page)
        last = min(self._total, (page + 1) * PAGE) - 1
        if not window.rows or last < page * PAGE:
            return
        self._pages[page] = window.rows
        self._texts[page] = texts
        self._evict(keep=page)
        self.dataChanged.emit(self.index(page * PAGE, 0), self.index(last, len(COLUMNS) - 1))

    def _evict(self, keep: int) -> None:
        while len(self._pages) > MAX_PAGES:
            farthest = max(self._pages, key=lambda p: abs(p - keep))
            del self._pages[farthest]
            self._texts.pop(farthest, None)

    def _on_failed(self, generation: int, error: object) -> None:
        if not self._current(generation):
            return
        self._pending.clear()
        self._refreshing = False
        self._failed = self._loading
        self.loadFailed.emit(str(error) or type(error).__name__)

    def _on_refresh(self, generation: int, fetched: tuple[QueueRefresh, dict[int, Texts]]) -> None:
        if not self._current(generation):
            return
        result, offset_texts = fetched
        self._refreshing = False
        new_pages = {offset // PAGE: rows for offset, rows in result.windows.items() if rows}
        new_texts = {offset // PAGE: texts for offset, texts in offset_texts.items() if texts}
        old_total, new_total = self._total, result.total
        if new_total == old_total and new_pages == self._pages:
            self.refreshed.emit(new_total)
            return
        if new_total > old_total:
            self.beginInsertRows(QModelIndex(), old_total, new_total - 1)
            self._total = new_total
            self.endInsertRows()
        same_places = new_total == old_total and all(
            [r.transaction_number for r in rows] == [r.transaction_number for r in self._pages.get(page, ())]
            for page, rows in new_pages.items()
        )
        if same_places:  # only the contents of rows changed: repaint them, nothing moves
            changed = [page for page, rows in new_pages.items() if self._pages.get(page) != rows]
            self._pages, self._texts = new_pages, new_texts
            for page in changed:
                last = min(self._total, (page + 1) * PAGE) - 1
                self.dataChanged.emit(self.index(page * PAGE, 0), self.index(last, len(COLUMNS) - 1))
        else:
            self._move_rows(new_pages, new_texts)
        if new_total < old_total:
            self.beginRemoveRows(QModelIndex(), new_total, old_total - 1)
            self._total = new_total
            self.endRemoveRows()
        self.refreshed.emit(new_total)

    def _move_rows(self, new_pages: dict[int, tuple[RequestRow, ...]], new_texts: dict[int, Texts]) -> None:
        """Swap in new pages as a layout change, taking persistent indexes along with their requests."""
        self.layoutAboutToBeChanged.emit()
        new_rows = {
            found.transaction_number: page * PAGE + offset
            for page, rows in new_pages.items()
            for offset, found in enumerate(rows)
        }
        sources = self.persistentIndexList()
        targets = []
        for index in sources:
            tn = self.transaction_number(index.row())
            if tn is None:  # a row that was not loaded: nothing known to follow
                targets.append(self.index(index.row(), index.column()))
            elif tn in new_rows:
                targets.append(self.index(new_rows[tn], index.column()))
            else:  # the request left this list
                targets.append(QModelIndex())
        self._pages, self._texts = new_pages, new_texts
        self._pending.clear()
        self.changePersistentIndexList(sources, targets)
        self.layoutChanged.emit()
