"""Render the main windows in a light palette, a dark palette and at 200 % to ``docs/screenshots/desk_*.png``.

Run: ``python -m tools.screenshot_desk light|dark|200`` (offscreen; the scale factor and the 1920×1200 screen are
set before Qt starts, so each variant is its own process). Uses a throw-away SQLite database with demo data; each
window shows one of its status messages so their colours can be checked by eye as well as by the tests.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def _dark_palette() -> object:
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    text = QColor("#e8e8e8")
    for role, colour in (
        (QPalette.ColorRole.Window, QColor("#2b2b2b")),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, QColor("#1e1e1e")),
        (QPalette.ColorRole.AlternateBase, QColor("#262626")),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor("#353535")),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.PlaceholderText, QColor("#a0a0a0")),
        (QPalette.ColorRole.Highlight, QColor("#2f65ca")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
    ):
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#8a8a8a"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#8a8a8a"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#8a8a8a"))
    return palette


def main(variant: str) -> int:
    """Render every main window for ``variant`` (``light``, ``dark`` or ``200``)."""
    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    screen = {"name": "desk", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96, "dpr": 1}
    (folder / "screen.json").write_text(json.dumps({"screens": [screen]}), encoding="utf-8")
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={folder / 'screen.json'}"
    os.environ["QT_SCALE_FACTOR"] = "2" if variant == "200" else "1"
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    os.environ["XDG_CONFIG_HOME"] = str(folder / "config")

    import keyring
    from keyring.backends.null import Keyring as NullKeyring
    from PySide6.QtCore import QDeadlineTimer, QEventLoop
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow
    from desktop.ui.navigation import Window, open_window

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
    ctx = main_window.ctx
    with db.engine.connect() as conn:
        transaction = int(conn.exec_driver_sql("SELECT min(transaction_number) FROM requests").scalar_one())
        patron = int(
            conn.exec_driver_sql(
                "SELECT patron_id FROM contact_points GROUP BY patron_id ORDER BY count(*) DESC LIMIT 1"
            ).scalar_one()
        )
    form = main_window.open_request(transaction)
    wait(lambda: not form.busy and not ctx.runner.busy)
    form.edits["call_number"].end(False)
    form.edits["call_number"].insert(" .D3")  # typed, as staff would: the field shows as changed
    form._show_message("Not saved: the due date is not a date.", error=True)
    card = open_window(Window.CONTACT_CARD, ctx, main_window, patron)
    contact = open_window(Window.CONTACT_CUSTOMERS, ctx, main_window)
    settings = open_window(Window.SETTINGS, ctx, main_window)
    customization = open_window(Window.CUSTOMIZATION, ctx, main_window)
    wait(lambda: not ctx.runner.busy and card.data is not None)
    contact.show_message("3 requests moved to Customer Notified via Phone.")
    settings._show(settings.databaseResultLabel, True, "Connected to the local SQLite file.")
    settings._show(settings.smtpResultLabel, False, "Could not connect to smtp.example.org:587.")
    app.processEvents()
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = {"light": "light", "dark": "dark", "200": "200"}[variant]
    for name, widget in (
        ("main_window", main_window),
        ("request_form", form),
        ("contact_card", card),
        ("contact_customers", contact),
        ("settings", settings),
        ("customization_manager", customization),
    ):
        widget.repaint()
        widget.grab().save(str(OUT / f"desk_{name}_{suffix}.png"))
    form.revert()
    for widget in (form, card, contact, settings, customization):
        widget.close()
    main_window.close()
    wait(lambda: not ctx.runner.busy)
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "light"))
