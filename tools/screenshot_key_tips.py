"""Render the ribbon's key tips and the start-up and ILLiad import windows in a light palette, a dark palette and
at 200 % to ``docs/screenshots/desk_*.png``.

Run: ``python -m tools.screenshot_key_tips light|dark|200`` (offscreen, a 1920×1200 screen; each variant is its own
process because the scale factor is read when Qt starts). Uses a throw-away SQLite database with demo data.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tools.screenshot_desk import OUT, _dark_palette


def main(variant: str) -> int:
    """Render the windows for ``variant`` (``light``, ``dark`` or ``200``)."""
    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    screen = {"name": "desk", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96, "dpr": 1}
    (folder / "screen.json").write_text(json.dumps({"screens": [screen]}), encoding="utf-8")
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={folder / 'screen.json'}"
    os.environ["QT_SCALE_FACTOR"] = "2" if variant == "200" else "1"
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    os.environ["XDG_CONFIG_HOME"] = str(folder / "config")

    import keyring
    from keyring.backends.null import Keyring as NullKeyring
    from PySide6.QtCore import QDeadlineTimer, QEventLoop, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.ui.admin.illiad_import_wizard import open_illiad_import
    from desktop.ui.admin.opening_window import OpeningWindow
    from desktop.ui.admin.startup_problem import StartupProblemDialog
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow

    keyring.set_keyring(NullKeyring())
    app = QApplication([])
    app.setStyle("Fusion")
    style = QStyleFactory.create("Fusion")
    assert style is not None
    app.setPalette(_dark_palette() if variant == "dark" else style.standardPalette())  # type: ignore[arg-type]
    db, _ = open_database(sqlite_url(folder / "shots.sqlite3"))
    seed_demo(db, patrons=40, requests=300)

    def wait(done: Callable[[], bool]) -> None:
        while not done():
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, QDeadlineTimer(50))

    main_window = MainWindow(AppContext(db, Settings(staff_name="desk").with_changes(run_poller=False)))
    main_window.show()
    wait(lambda: main_window.workspace.snapshot is not None and not main_window.ctx.runner.busy)
    main_window.workspace.table.setFocus()
    QTest.keyClick(main_window.workspace.table, Qt.Key.Key_F10)  # the key tips, as Alt alone shows them
    app.processEvents()
    OUT.mkdir(parents=True, exist_ok=True)
    main_window.repaint()  # before other windows open: leaving the window hides the badges
    main_window.grab().save(str(OUT / f"desk_key_tips_{variant}.png"))
    opening = OpeningWindow(str(folder / "shots.sqlite3"))
    opening.show()
    problem = StartupProblemDialog(
        "Callslip cannot open the database /srv/ill/callslip.sqlite3: the file does not exist. Create a new, empty "
        "database there, choose another one in Settings, or try again once the share is back.",
        can_create=True,
    )
    problem.show()
    illiad = open_illiad_import(main_window.ctx, main_window)
    app.processEvents()
    for name, widget in (
        ("opening_window", opening),
        ("startup_problem", problem),
        ("illiad_import", illiad),
    ):
        widget.repaint()
        widget.grab().save(str(OUT / f"desk_{name}_{variant}.png"))
    for widget in (illiad, problem, opening):
        widget.close()
    main_window.close()
    wait(lambda: not main_window.ctx.runner.busy)
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "light"))
