"""Every main window of Callslip, opened for real on a seeded SQLite file, for the look-and-keyboard checks.

The windows are reached the way staff reach them: the main window, then each :class:`Window` through
:func:`desktop.ui.navigation.open_window` (with a real request and patron where the window shows one). Used by
``test_desk_ergonomics.py`` in process and by ``screen_fit_probe.py`` in a subprocess (a scale factor can only
be chosen before the QApplication exists).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget

from desktop.services.database import Database
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.main_window import MainWindow
from desktop.ui.navigation import Window, open_window
from desktop.ui.requests.request_form import RequestForm

#: The Customization Manager's template editor (opened from its template list, not by id).
TEMPLATE_EDITOR = "template_editor"

#: The heading each window has in the User Guide's "Keyboard shortcuts" chapter.
TITLES: dict[str, str] = {
    "main": "Main window",
    Window.REQUEST.value: "Request form",
    Window.PATRON.value: "Patron record",
    Window.CONTACT_CARD.value: "Contact Card",
    Window.CONTACT_CUSTOMERS.value: "Contact Customers",
    Window.PATRON_SEARCH.value: "Patron search",
    Window.DUPLICATES.value: "Duplicates",
    Window.BOUNCED.value: "Bounced addresses",
    Window.HOLD_SHELF.value: "Hold shelf",
    Window.IMPORT_CSV.value: "Import CSV",
    Window.CUSTOMIZATION.value: "Customization Manager",
    Window.SETTINGS.value: "Settings",
    Window.LOCATIONS.value: "Locations",
    TEMPLATE_EDITOR: "Template editor",
}


def sample_ids(db: Database) -> tuple[int, int]:
    """A transaction number and the id of a patron with contact points, read with plain SQL."""
    with db.engine.connect() as conn:
        transaction = conn.exec_driver_sql("SELECT min(transaction_number) FROM requests").scalar_one()
        patron = conn.exec_driver_sql(
            "SELECT patron_id FROM contact_points GROUP BY patron_id ORDER BY count(*) DESC, patron_id LIMIT 1"
        ).scalar_one()
    return int(transaction), int(patron)


def open_every_window(main: MainWindow, db: Database, wait: Callable[[Callable[[], bool]], None]) -> dict[str, QWidget]:
    """Open every window over ``main`` and wait until each has loaded; returns them by :class:`Window` value
    (``"main"`` for the main window)."""
    transaction, patron = sample_ids(db)
    args: dict[Window, tuple[int, ...]] = {
        Window.REQUEST: (transaction,),
        Window.PATRON: (patron,),
        Window.CONTACT_CARD: (patron,),
    }
    windows: dict[str, QWidget] = {"main": main}
    for window in Window:
        if window is Window.REQUEST:
            opened: QWidget = main.open_request(transaction)
        else:
            opened = open_window(window, main.ctx, main, *args.get(window, ()))
        windows[window.value] = opened
        wait(lambda: not main.ctx.runner.busy)
    form = windows[Window.REQUEST.value]
    assert isinstance(form, RequestForm)
    wait(lambda: not form.busy)
    manager = windows[Window.CUSTOMIZATION.value]
    assert isinstance(manager, CustomizationManager)
    manager.templateTable.selectRow(0)
    manager.edit_selected()
    wait(lambda: bool(manager.editors))
    windows[TEMPLATE_EDITOR] = next(iter(manager.editors.values()))
    wait(lambda: not main.ctx.runner.busy)
    return windows


def close_every_window(windows: dict[str, QWidget]) -> None:
    """Close what :func:`open_every_window` opened (request forms reverted first: no question asked)."""
    for name, widget in reversed(windows.items()):
        if name == "main":
            continue
        if isinstance(widget, RequestForm):
            widget.revert()
        widget.close()
    QApplication.processEvents()


def shortcuts(window: QWidget) -> dict[str, str]:
    """Every keyboard shortcut ``window`` defines (not mnemonics): key (portable text) → what it does."""
    found: dict[str, str] = {}

    def add(keys: QKeySequence, what: str) -> None:
        text = keys.toString(QKeySequence.SequenceFormat.PortableText)
        if text and not (keys.count() == 1 and keys[0].keyboardModifiers().name == "AltModifier"):
            found.setdefault(text, what)

    def own(obj: QObject) -> bool:
        parent = obj.parent()
        while parent is not None and not isinstance(parent, QWidget):
            parent = parent.parent()
        return parent is not None and parent.window() is window

    actions = list(window.actions()) + [a for a in window.findChildren(QAction) if own(a)]
    for action in actions:
        for keys in action.shortcuts():
            add(keys, action.text().replace("&", "") or action.objectName())
    for shortcut in (s for s in window.findChildren(QShortcut) if own(s)):
        add(shortcut.key(), shortcut.objectName() or shortcut.whatsThis())
    for button in (b for b in window.findChildren(QAbstractButton) if b.window() is window):
        keys = button.shortcut()
        if "&" not in button.text() or keys.toString() != "Alt+" + button.text().split("&")[1][:1].upper():
            add(keys, button.text().replace("&", "") or button.objectName())
    return found
