"""Read-only tables of records, set up one way everywhere (queues, groups, search results, histories)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel
from PySide6.QtWidgets import QAbstractItemView, QTableView, QWidget


def record_table(
    model: QAbstractItemModel,
    name: str,
    accessible_name: str,
    *,
    multi: bool = False,
    parent: QWidget | None = None,
) -> QTableView:
    """A table whose rows are records: whole rows selected, nothing edited in place, no row numbers,
    alternating colours, one line per row (staff scan long lists; editing happens in forms), and Tab moves on
    to the next field instead of cell to cell.

    Args:
        multi: allow selecting several rows (mouse with Ctrl/Shift, keyboard with Shift+arrows).
    """
    table = QTableView(parent)
    table.setObjectName(name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(
        QAbstractItemView.SelectionMode.ExtendedSelection if multi else QAbstractItemView.SelectionMode.SingleSelection
    )
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.setTabKeyNavigation(False)  # arrows move between cells; Tab leaves the table, as in every other field
    return table
