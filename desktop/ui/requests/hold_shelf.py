"""The Hold Shelf view (``holdShelfView``, ribbon button "Hold Shelf"): what waits on the shelf and what happens next.

A sortable, filterable table of the requests at ``Customer Notified via …`` with days waiting, reminders sent,
the hold's end and the next step, and above it a small chart of items by days on the shelf, drawn with
QPainter. Rows whose hold ends today or tomorrow stand out in colours taken from the palette (so a dark palette
stays readable). Data is read off the GUI thread through ``ctx.run``.
"""

from __future__ import annotations

import functools
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Slot,
)
from PySide6.QtGui import QColor, QFont, QKeySequence, QPainter, QPaintEvent, QPalette, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.services.requests.shelf_view import ShelfItem, ShelfListing, load_shelf
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window

Index = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
HEADERS = ("Transaction", "Patron", "Title", "Status", "Pickup location", "Days waiting", "Reminders sent",
           "Hold ends", "Next step")  # fmt: skip
NUMERIC = {0, 5, 6}
CHART_BUCKETS = 15

_open_views: list[HoldShelfView] = []


def urgency_colour(palette: QPalette) -> QColor:
    """The background of a row whose hold ends today or tomorrow: the palette's highlight, blended into the base
    so the row's ordinary text colour stays readable in light and dark palettes."""
    base, mark = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Highlight)
    blend = 0.35
    return QColor.fromRgbF(
        base.redF() * (1 - blend) + mark.redF() * blend,
        base.greenF() * (1 - blend) + mark.greenF() * blend,
        base.blueF() * (1 - blend) + mark.blueF() * blend,
    )


def _ends_text(item: ShelfItem) -> str:
    if item.ends_in == 0:
        return f"{item.hold_end.isoformat()} (today)"
    if item.ends_in == 1:
        return f"{item.hold_end.isoformat()} (tomorrow)"
    if item.ends_in < 0:
        return f"{item.hold_end.isoformat()} (over)"
    return item.hold_end.isoformat()


class ShelfModel(QAbstractTableModel):
    """The shelf's rows; the display text and a sort key per column."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._items: list[ShelfItem] = []
        self._urgent = QColor()

    def set_listing(self, items: tuple[ShelfItem, ...], urgent: QColor) -> None:
        """Show ``items``; ``urgent`` is the background of holds ending today or tomorrow."""
        self.beginResetModel()
        self._items = list(items)
        self._urgent = urgent
        self.endResetModel()

    def item(self, row: int) -> ShelfItem:
        """The item shown in ``row``."""
        return self._items[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item, column = self._items[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item, column)
        if role == SORT_ROLE:
            return self._key(item, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if item.ends_in <= 1 and role == Qt.ItemDataRole.BackgroundRole and self._urgent.isValid():
            return self._urgent
        if item.ends_in <= 1 and role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole and item.ends_in <= 1:
            return "The hold ends today" if item.ends_in <= 0 else "The hold ends tomorrow"
        return None

    @staticmethod
    def _text(item: ShelfItem, column: int) -> str:
        values = (str(item.transaction_number), item.patron, item.title, item.status, item.pickup,
                  str(item.days_waiting), str(item.reminders_sent), _ends_text(item), item.next_step)  # fmt: skip
        return values[column] if 0 <= column < len(values) else ""

    @staticmethod
    def _key(item: ShelfItem, column: int) -> Any:
        keys: tuple[Any, ...] = (item.transaction_number, item.patron.casefold(), item.title.casefold(), item.status,
                                 item.pickup.casefold(), item.days_waiting, item.reminders_sent,
                                 item.hold_end.toordinal(), item.next_step)  # fmt: skip
        return keys[column] if 0 <= column < len(keys) else ""


class ShelfChart(QWidget):
    """Items by days on the shelf, one bar per day (the last bar: that many days or more), drawn with QPainter."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts: list[int] = [0] * CHART_BUCKETS
        self.setObjectName("holdShelfChart")
        self.setAccessibleName("Chart of items by days on the shelf")
        self.setMinimumHeight(110)

    def sizeHint(self) -> QSize:
        return QSize(480, 140)

    def set_counts(self, counts: list[int]) -> None:
        """Draw these counts (index = days on the shelf)."""
        self.counts = list(counts)
        total = sum(counts)
        self.setToolTip(
            "; ".join(f"{n}{'+' if n == len(counts) - 1 else ''} days: {c}" for n, c in enumerate(counts) if c)
            or "The shelf is empty"
        )
        self.setAccessibleDescription(f"{total} items on the shelf")
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        palette = self.palette()
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            metrics = painter.fontMetrics()
            text_h = metrics.height()
            area = QRectF(self.rect()).adjusted(4, text_h + 4, -4, -(text_h + 4))
            painter.setPen(palette.color(QPalette.ColorRole.WindowText))
            painter.drawText(QRectF(4, 0, self.width() - 8, text_h + 2), int(Qt.AlignmentFlag.AlignLeft),
                             "Items by days on the shelf")  # fmt: skip
            count = len(self.counts) or 1
            slot = area.width() / count
            top = max(self.counts) if self.counts else 0
            bar_colour = palette.color(QPalette.ColorRole.Highlight)
            for n, value in enumerate(self.counts):
                x = area.left() + n * slot
                label = f"{n}+" if n == count - 1 else str(n)
                painter.setPen(palette.color(QPalette.ColorRole.WindowText))
                painter.drawText(QRectF(x, area.bottom() + 2, slot, text_h), int(Qt.AlignmentFlag.AlignHCenter),
                                 label)  # fmt: skip
                if not value or not top:
                    continue
                height = (area.height() - text_h) * value / top
                bar = QRectF(x + slot * 0.15, area.bottom() - height, slot * 0.7, height)
                painter.fillRect(bar, bar_colour)
                painter.drawText(QRectF(x, bar.top() - text_h, slot, text_h), int(Qt.AlignmentFlag.AlignHCenter),
                                 str(value))  # fmt: skip
            painter.setPen(palette.color(QPalette.ColorRole.Mid))
            painter.drawLine(area.bottomLeft(), area.bottomRight())
        finally:
            painter.end()


def open_hold_shelf(ctx: AppContext, parent: QWidget | None = None) -> HoldShelfView:
    """Show the Hold Shelf view (the one already open for ``ctx``, refreshed), non-modal."""
    _open_views[:] = [w for w in _open_views if shiboken6.isValid(w)]
    view = next((w for w in _open_views if w.ctx is ctx), None)
    if view is None:
        view = HoldShelfView(ctx, parent)
        _open_views.append(view)
    else:
        view.reload()
    view.show()
    view.raise_()
    view.activateWindow()
    return view


class HoldShelfView(QWidget):
    """The shelf: chart, filter, table; double-click or Enter opens the request."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.ctx = ctx
        self.listing: ShelfListing | None = None
        self._loading = False
        self.setObjectName("holdShelfView")
        self.setAccessibleName("Hold shelf")
        self.setWindowTitle("Hold Shelf — items waiting for pickup")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.resize(1000, 560)
        self.chart = ShelfChart()
        self.filter = QLineEdit()
        self.filter.setObjectName("holdShelfFilter")
        self.filter.setAccessibleName("Filter the shelf")
        self.filter.setPlaceholderText("Filter: transaction, patron, title, pickup location, next step…")
        self.filter.setClearButtonEnabled(True)
        self.model = ShelfModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setTabKeyNavigation(False)  # Tab leaves the table
        self.table.setObjectName("holdShelfTable")
        self.table.setAccessibleName("Requests on the hold shelf")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(7, Qt.SortOrder.AscendingOrder)  # the holds ending first at the top
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(self.on_activated)
        self.status = QLabel()
        self.status.setObjectName("holdShelfStatus")
        self.status.setAccessibleName("How many items are on the shelf")
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setObjectName("refreshHoldShelfButton")
        self.refresh_button.clicked.connect(self.reload)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.chart)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        QShortcut(QKeySequence.StandardKey.Refresh, self, self.reload)
        QShortcut(QKeySequence("Ctrl+W"), self, self.close)
        QShortcut(QKeySequence(Qt.Key.Key_Return), self.table, self.open_current)
        ctx.changed.connect(self.on_data_changed)
        self.reload()

    @Slot()
    def reload(self) -> None:
        """Read the shelf again (off the GUI thread)."""
        if self._loading:
            return
        self._loading = True
        self.status.setText("Reading the shelf…")
        self.ctx.run(functools.partial(load_shelf, self.ctx.db), self.on_loaded, self.on_failed)

    def on_loaded(self, listing: ShelfListing) -> None:
        """Show what was read."""
        if not shiboken6.isValid(self):
            return
        self._loading = False
        self.listing = listing
        self.model.set_listing(listing.items, urgency_colour(self.palette()))
        self.chart.set_counts(listing.histogram(CHART_BUCKETS))
        soon = sum(1 for item in listing.items if item.ends_in <= 1)
        self.status.setText(
            f"{len(listing.items)} item(s) on the shelf; "
            f"{soon} whose hold ends today or tomorrow, or is over (highlighted)."
        )

    def on_failed(self, error: object) -> None:
        """The shelf could not be read: say so, keep what is shown."""
        if shiboken6.isValid(self):
            self._loading = False
            self.status.setText(f"Could not read the shelf: {error}")

    @Slot(str)
    def on_data_changed(self, topic: str) -> None:
        """A request or notice changed on this workstation: read again."""
        if topic in {"requests", "notifications"}:
            self.reload()

    @Slot(QModelIndex)
    def on_activated(self, index: QModelIndex) -> None:
        """Double-click: open the request."""
        self._open(index)

    @Slot()
    def open_current(self) -> None:
        """Enter: open the highlighted request."""
        self._open(self.table.currentIndex())

    def _open(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        item = self.model.item(self.proxy.mapToSource(index).row())
        open_window(Window.REQUEST, self.ctx, self.parentWidget(), item.transaction_number)
