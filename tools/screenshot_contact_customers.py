"""Render the Contact Customers form: light and dark palette at 100 %, and at 200 % on a 1920×1200 display.

Run: ``python -m tools.screenshot_contact_customers`` (it runs itself once more per shot: the scale factor and
the screen must be set before Qt starts). Uses a throw-away SQLite database with seed-demo data and throw-away
Qt settings; writes ``docs/screenshots/contact_customers_{light,dark,200}.png``.

The 200 % shot uses Qt's offscreen platform with one 1920×1200 screen (960×600 logical pixels at 200 %): the
form must fit it with its action buttons visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def shoot(theme: str, scale: int) -> None:
    """One shot, in this process (Qt configured by the environment the parent set)."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.domain.methods import NotificationMethod
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.ui.context import AppContext
    from desktop.ui.requests.contact_customers import ContactCustomersDialog

    def wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
        end = time.monotonic() + seconds
        while not condition() and time.monotonic() < end:
            loop = QEventLoop()
            QTimer.singleShot(20, loop.quit)
            loop.exec()

    app = QApplication(sys.argv[:1])
    app.setStyle(QStyleFactory.create("Fusion"))
    if theme == "dark":
        palette = QPalette()
        for role, colour in {
            QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e8e8e8",
            QPalette.ColorRole.Base: "#1e1e1e", QPalette.ColorRole.AlternateBase: "#262626",
            QPalette.ColorRole.Text: "#e8e8e8", QPalette.ColorRole.Button: "#3a3a3a",
            QPalette.ColorRole.ButtonText: "#e8e8e8", QPalette.ColorRole.Highlight: "#2f65ca",
            QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.PlaceholderText: "#9a9a9a",
        }.items():  # fmt: skip
            palette.setColor(role, QColor(colour))
        app.setPalette(palette)
    else:
        app.setPalette(app.style().standardPalette())
    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    seed_demo(db, patrons=40, requests=400)
    ctx = AppContext(db, Settings(staff_name="demo"))
    try:
        form = ContactCustomersDialog(ctx)
        if scale == 1:
            form.resize(1180, 760)
        form.show()
        wait(lambda: form.groups_data.total > 0 and not ctx.runner.busy)
        phone = form.tables[NotificationMethod.PHONE]
        model = form.models[NotificationMethod.PHONE]
        grouped = next((model.index(i, 0) for i in range(model.rowCount()) if model.rowCount(model.index(i, 0))), None)
        if grouped is not None:  # show a patron's items below their row, the row selected
            phone.expand(grouped)
            phone.setCurrentIndex(grouped)
        wait(lambda: False, 0.3)
        screen = form.screen().availableGeometry()
        print(f"screen {screen.width()}x{screen.height()} form {form.frameGeometry().getRect()}", file=sys.stderr)
        OUT.mkdir(parents=True, exist_ok=True)
        name = "200" if scale == 2 else theme
        form.grab().save(str(OUT / f"contact_customers_{name}.png"))
        form.close()
    finally:
        ctx.shutdown()
        db.dispose()


def main() -> int:
    if len(sys.argv) == 3:
        shoot(sys.argv[1], int(sys.argv[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="callslip-shots-") as scratch:
        screens = Path(scratch) / "screens.json"
        screens.write_text(json.dumps({"screens": [{"name": "1920x1200", "x": 0, "y": 0, "width": 1920,
                                                    "height": 1200, "logicalDpi": 96, "dpr": 1}]}))  # fmt: skip
        for theme, scale in (("light", 1), ("dark", 1), ("light", 2)):
            env = dict(os.environ, XDG_CONFIG_HOME=scratch, XDG_DATA_HOME=scratch,
                       QT_QPA_PLATFORM=f"offscreen:configfile={screens}", QT_SCALE_FACTOR=str(scale))  # fmt: skip
            subprocess.run([sys.executable, "-m", "tools.screenshot_contact_customers", theme, str(scale)], env=env,
                           check=True, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
