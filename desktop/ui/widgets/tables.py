"""Read-only tables of records, set up one way everywhere (queues, groups, search results, histories)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QItemSelectionModel
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
    detach_header_selection(table)
    table.setTabKeyNavigation(False)  # arrows move between cells; Tab leaves the table, as in every other field
    return table


def detach_header_selection(table: QTableView) -> None:
    """Give the column header a selection model of its own, always empty.

    The header shares the table's selection model to highlight selected columns, and on every paint it asks
    that model whether anything is selected (``hasSelection``), which in Qt 6 asks the model about the cells of
    the selection one by one. After Ctrl+A on a 3,200-row queue that was about 30,000 calls into Python per
    paint: a one-second freeze (issue 21). Rows are selected whole here, so a column is never selected on its
    own and the header has nothing to highlight. Call again after ``setModel``/``setSelectionModel``, which
    hand the header the table's selection model back.
    """
    header = table.horizontalHeader()
    model = table.model()
    if model is not None:
        header.setSelectionModel(QItemSelectionModel(model, header))


def selected_rows(table: QTableView) -> list[int]:
    """The selected rows in order, read from the selection's ranges.

    ``selectionModel().selectedRows()`` asks the model about every cell of every selected row (is it selectable,
    is the whole row selected?): after Ctrl+A on 3,200 rows that alone took well over half a second. With whole
    rows selected, every range spans whole rows, so its top and bottom say all.
    """
    selection = table.selectionModel().selection()
    rows: set[int] = set()
    for i in range(selection.size()):
        part = selection.at(i)
        rows.update(range(part.top(), part.bottom() + 1))
    return sorted(rows)
