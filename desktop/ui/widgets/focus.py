"""Tab order in reading order: top to bottom, and left to right within a row, container by container.

Qt's default Tab order is the order widgets were created in. A window that adds fields after it was built (the
Contact Card adds a line per e-mail and phone once the card has loaded) then puts those fields after its Close
button. :func:`tab_in_reading_order` sets the order from the layouts instead (row by row, as the window is
read), descending into each container before moving on, so a scroll area's fields come before the buttons
under it.
"""

from __future__ import annotations

import functools
import itertools

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QGridLayout, QLayout, QScrollArea, QWidget


def before(first: QRect, second: QRect) -> int:
    """Reading-order comparison of two sibling rectangles: -1 when ``first`` is read first, 1 when after.

    A rectangle wholly above another comes first; rectangles that share some height are read left to right.
    """
    if first.bottom() < second.top():
        return -1
    if second.bottom() < first.top():
        return 1
    if first.left() != second.left():
        return -1 if first.left() < second.left() else 1
    return -1 if first.top() < second.top() else 1 if first.top() > second.top() else 0


def _grid_position(grid: QGridLayout, index: int) -> tuple[int, int]:
    position: tuple[int, int, int, int] = grid.getItemPosition(index)  # type: ignore[assignment]
    return position[0], position[1]


def _layout_widgets(layout: QLayout) -> list[QWidget]:
    """The widgets of ``layout`` in its own order (a grid's by row, then column), nested layouts included."""
    indices = list(range(layout.count()))
    if isinstance(layout, QGridLayout):
        grid = layout
        indices.sort(key=lambda i: _grid_position(grid, i))
    found: list[QWidget] = []
    for index in indices:
        item = layout.itemAt(index)
        if item is None:
            continue
        widget, inner = item.widget(), item.layout()
        if widget is not None:
            found.append(widget)
        elif inner is not None:
            found.extend(_layout_widgets(inner))
    return found


def _children(widget: QWidget) -> list[QWidget]:
    """``widget``'s child widgets in reading order: as its layout places them (true whether shown or not), then
    any others by where they are."""
    if isinstance(widget, QScrollArea):
        inner = widget.widget()
        return [inner] if inner is not None else []
    if isinstance(widget, QAbstractScrollArea):
        return []  # a view or text editor: one stop, whatever it holds
    direct = [c for c in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)]
    direct = [c for c in direct if not c.isWindow()]
    layout = widget.layout()
    laid = [c for c in _layout_widgets(layout) if c in direct] if layout is not None else []
    rest = sorted((c for c in direct if c not in laid), key=functools.cmp_to_key(_compare))
    return laid + rest


def _compare(first: QWidget, second: QWidget) -> int:
    return before(first.geometry(), second.geometry())


def _takes_tab(widget: QWidget) -> bool:
    return bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus) and widget.focusProxy() is None


def reading_order(root: QWidget) -> list[QWidget]:
    """The widgets under ``root`` that take Tab focus, in reading order."""
    found: list[QWidget] = []

    def walk(widget: QWidget) -> None:
        if widget is not root and _takes_tab(widget):
            found.append(widget)
        for child in _children(widget):
            walk(child)

    walk(root)
    return found


def tab_in_reading_order(root: QWidget) -> None:
    """Set ``root``'s Tab order to reading order (call again after adding widgets).

    Scroll areas that only hold fields are no Tab stop of their own: focus goes to their first field.
    """
    for area in root.findChildren(QScrollArea):
        area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    widgets = reading_order(root)
    for first, second in itertools.pairwise(widgets):
        QWidget.setTabOrder(first, second)
