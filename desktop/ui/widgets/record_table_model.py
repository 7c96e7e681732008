"""A small read-only table model over a tuple of plain dataclasses (Tracking, Notifications of one request).

These lists are short (a request's history), so a new request simply resets the model; the big lists use
:mod:`desktop.ui.requests.request_table_model` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt

T = TypeVar("T")
Index = QModelIndex | QPersistentModelIndex


def local_time(value: datetime | None) -> str:
    """A UTC timestamp shown in the workstation's time zone, to the minute.

    Spelled out rather than ``strftime``, which imports ``time`` on every call through PySide6's Python import
    hook (≈10 µs a value, the largest part of formatting a page of rows).
    """
    if not value:
        return ""
    v = value.astimezone()
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}"


class RecordTableModel(QAbstractTableModel, Generic[T]):
    """Rows are records, columns are ``(header, text of a record)`` pairs."""

    def __init__(self, columns: Sequence[tuple[str, Callable[[T], str]]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._columns = tuple(columns)
        self._records: tuple[T, ...] = ()

    @property
    def records(self) -> tuple[T, ...]:
        """What the model shows."""
        return self._records

    def set_records(self, records: Sequence[T]) -> None:
        """Show other records (unchanged records keep the view as it is)."""
        new = tuple(records)
        if new == self._records:
            return
        self.beginResetModel()
        self._records = new
        self.endResetModel()

    def record(self, row: int) -> T | None:
        """The record on ``row``."""
        return self._records[row] if 0 <= row < len(self._records) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """One row per record."""
        return 0 if parent.isValid() else len(self._records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """One column per declared column."""
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Cell text (also as tooltip, for long server replies)."""
        if not index.isValid() or not 0 <= index.row() < len(self._records):
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._columns[index.column()][1](self._records[index.row()])
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        """Column titles."""
        horizontal = orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
        if horizontal and 0 <= section < len(self._columns):
            return self._columns[section][0]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        """Selectable, read-only."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
