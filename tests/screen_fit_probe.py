"""Open every window at the scale factor and screen this process was started with; print where they are.

``python -m tests.screen_fit_probe FOLDER`` (run by ``test_desk_ergonomics.py`` with ``QT_SCALE_FACTOR`` and an
offscreen screen of a given size: Qt reads both when the QApplication is built, so a test cannot change them in
its own process). The last line of output is JSON: the screen's available geometry and each window's frame.
Besides the windows :mod:`tests.window_walk` opens, it opens the ones reached outside the main window's
navigation (:data:`EXTRA_WINDOWS`): the ILLiad import dialog, the opening window and the start-up problem page.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import keyring
from keyring.backends.null import Keyring as NullKeyring
from PySide6.QtWidgets import QWidget

#: Windows not opened by id: the ILLiad import (from Import CSV), and the two start-up windows (before any).
EXTRA_WINDOWS = ("illiad_import", "opening", "startup_problem")


def _scrolled(widget: QWidget, window: QWidget) -> bool:
    """Inside a scroll area (or a view's header): reached by scrolling, not expected on screen at once."""
    from PySide6.QtWidgets import QAbstractScrollArea

    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _extra_windows(main: QWidget) -> dict[str, QWidget]:
    """The :data:`EXTRA_WINDOWS`, shown the way the app shows them."""
    from desktop.ui.admin.illiad_import_wizard import open_illiad_import
    from desktop.ui.admin.opening_window import OpeningWindow
    from desktop.ui.admin.startup_problem import StartupProblemDialog
    from desktop.ui.main_window import MainWindow

    assert isinstance(main, MainWindow)
    opening = OpeningWindow("/home/staff/.local/share/Callslip/callslip.sqlite3")
    opening.show()
    problem = StartupProblemDialog(
        "Callslip cannot open the database /srv/ill/callslip.sqlite3: the file does not exist. Create a new, empty "
        "database there, choose another one in Settings, or try again once the share is back.",
        can_create=True,
    )
    problem.show()
    return {"illiad_import": open_illiad_import(main.ctx, main), "opening": opening, "startup_problem": problem}


def main(folder: Path) -> int:
    """Seed a database in ``folder``, open every window over a main window, print their frames as JSON."""
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    os.environ["XDG_CONFIG_HOME"] = str(folder / "config")
    keyring.set_keyring(NullKeyring())
    from PySide6.QtCore import QDeadlineTimer, QEventLoop, QPoint, QRect
    from PySide6.QtWidgets import QAbstractButton, QApplication

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow
    from tests.window_walk import close_every_window, open_every_window

    app = QApplication([])
    db, _ = open_database(sqlite_url(folder / "probe.sqlite3"))
    seed_demo(db, patrons=20, requests=60)

    def wait(done: Callable[[], bool]) -> None:
        while not done():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, QDeadlineTimer(50))

    main = MainWindow(AppContext(db, Settings(staff_name="probe").with_changes(run_poller=False)))
    main.show()
    wait(lambda: main.workspace.snapshot is not None and not main.ctx.runner.busy)
    windows = open_every_window(main, db, wait)
    windows.update(_extra_windows(main))
    app.processEvents()
    area = main.screen().availableGeometry()
    frames = {}
    clipped: dict[str, list[str]] = {}
    for name, window in windows.items():
        frame = window.frameGeometry()
        frames[name] = [frame.x(), frame.y(), frame.width(), frame.height()]
        for button in window.findChildren(QAbstractButton):
            if button.window() is not window or not button.isVisible() or _scrolled(button, window):
                continue
            if not window.rect().contains(QRect(button.mapTo(window, QPoint(0, 0)), button.size())):
                clipped.setdefault(name, []).append(button.objectName() or button.text())
    close_every_window(windows)
    main.close()
    wait(lambda: not main.ctx.runner.busy)
    db.dispose()
    available = [area.x(), area.y(), area.width(), area.height()]
    print(json.dumps({"available": available, "windows": frames, "clipped": clipped}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
