"""The queue tree (``queueTree``): "All borrowing requests" with every borrowing status beneath it, and counts.

Counts arrive as :class:`desktop.services.requests.queues_count.QueueSnapshot` from a background poll; applying one only
emits ``dataChanged`` for the counts that moved (and inserts a row for a status never seen before), so the
view keeps its selection and scroll position while other workstations work.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from desktop.domain.statuses import QUEUE_ORDER
from desktop.services.requests.queues_count import QueueSnapshot

#: Item data role holding the queue's status name (``None`` for "All borrowing requests").
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item data role holding the queue's count as an int.
COUNT_ROLE = Qt.ItemDataRole.UserRole + 2

_TOP = 0  # internal id of the top item
_CHILD = 1  # internal id of the status items (their parent is the top item)
ALL_REQUESTS = "All borrowing requests"

Index = QModelIndex | QPersistentModelIndex


class QueueModel(QAbstractItemModel):
    """Two columns (Queue, Count); one top item for all requests, one child per status."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._statuses: list[str] = [s.value for s in QUEUE_ORDER]
        self._counts: dict[str, int] = {}
        self._total: int | None = None

    # --- what the view asks -------------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        """Indexes of the top item (under the root) and of status items (under the top item)."""
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _TOP)
        return self.createIndex(row, column, _CHILD)

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        """Status items hang under the top item; the top item under the root."""
        if index.isValid() and index.internalId() == _CHILD:
            return self.createIndex(0, 0, _TOP)
        return QModelIndex()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """One top item; one child per status under its first column."""
        if not parent.isValid():
            return 1
        if parent.internalId() == _TOP and parent.column() == 0:
            return len(self._statuses)
        return 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Queue and Count."""
        return 2

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Names, counts (blank until the first poll), bold for queues staff must act on."""
        if not index.isValid():
            return None
        status = self.status_at(index)
        count = self._total if status is None else self._counts.get(status)
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 0:
                return ALL_REQUESTS if status is None else status
            return "" if count is None else f"{count:,}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            name = ALL_REQUESTS if status is None else status
            return name if count is None else f"{name}: {count} requests"
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and (status is None or count):
            font = QFont()
            font.setBold(status is None or status == "Awaiting Customer Contact")
            return font
        if role == STATUS_ROLE:
            return status
        if role == COUNT_ROLE:
            return count
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 2:
            return ("Queue", "Count")[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, not editable."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.internalId() == _CHILD:
            flags |= Qt.ItemFlag.ItemNeverHasChildren
        return flags

    # --- helpers for the tab ---------------------------------------------------------------------------------
    def status_at(self, index: Index) -> str | None:
        """The status an index stands for (``None``: all requests)."""
        if index.isValid() and index.internalId() == _CHILD and 0 <= index.row() < len(self._statuses):
            return self._statuses[index.row()]
        return None

    def index_of(self, status: str | None) -> QModelIndex:
        """The first-column index of a queue (``None``: the top item); invalid for an unknown status."""
        if status is None:
            return self.index(0, 0)
        if status in self._statuses:
            return self.index(self._statuses.index(status), 0, self.index(0, 0))
        return QModelIndex()

    def count(self, status: str | None) -> int | None:
        """The last known count of a queue (``None`` before the first poll)."""
        return self._total if status is None else self._counts.get(status)

    def apply(self, snapshot: QueueSnapshot) -> None:
        """Show new counts: changed cells only, new statuses appended."""
        top = self.index(0, 0)
        new = [q.status for q in snapshot.counts if q.status not in self._statuses]
        if new:
            first = len(self._statuses)
            self.beginInsertRows(top, first, first + len(new) - 1)
            self._statuses.extend(new)
            self.endInsertRows()
        counts = {q.status: q.count for q in snapshot.counts}
        for row, status in enumerate(self._statuses):
            value = counts.get(status, 0)
            if self._counts.get(status) != value:
                self._counts[status] = value
                self.dataChanged.emit(self.index(row, 0, top), self.index(row, 1, top))
        if self._total != snapshot.total:
            self._total = snapshot.total
            self.dataChanged.emit(top, self.index(0, 1))
