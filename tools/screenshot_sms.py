"""Render the SMS settings page and the template editor's SMS tab (light, dark, 200 %) to ``docs/screenshots/``.

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_sms [light|dark] [scale]`` (the 200 % shot needs its own
process: ``QT_SCALE_FACTOR=2``). A throw-away SQLite database with demo data and an in-memory keyring.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main(mode: str = "light", out: Path = OUT) -> int:
    """Render both views in ``mode`` into ``out``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    os.environ["XDG_CONFIG_HOME"] = str(home)
    import keyring
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.ui.admin.customization_manager import CustomizationManager
    from desktop.ui.context import AppContext
    from tests.conftest import MemoryKeyring

    app = QApplication.instance() or QApplication(sys.argv[:1])
    # Imported once the application exists: that module sets QT_SCALE_FACTOR=2 for itself when imported.
    from tools.screenshot_delivery_banner import dark_palette

    assert isinstance(app, QApplication)
    keyring.set_keyring(MemoryKeyring())
    if mode == "dark":
        app.setStyle(QStyleFactory.create("Fusion"))
        app.setPalette(dark_palette())
    screen = app.primaryScreen()
    suffix = "200" if screen is not None and screen.devicePixelRatio() >= 2 else mode

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    out.mkdir(parents=True, exist_ok=True)
    db, _ = open_database(sqlite_url(home / "callslip.sqlite3"))
    seed_demo(db, patrons=20, requests=60)
    ctx = AppContext(db, Settings(staff_name="mgarcia"))
    manager = CustomizationManager(ctx)
    manager.resize(1000, 620)
    manager.show()
    spin(1000)
    page = manager.smsPage
    manager.tabs.setCurrentWidget(page)
    page.transportCombo.setCurrentIndex(page.transportCombo.findData("twilio"))
    page.accountSidEdit.setText("AC" + "0123456789abcdef" * 2)
    page.senderEdit.setText("+12175550100")
    page.testNumberEdit.setText("+12175550123")
    page.statusLabel.setText("Sent: the provider accepted it as SM9c1e0c5b2a1f4e8d9a7b6c5d4e3f2a1b.")
    spin(300)
    assert manager.grab().save(str(out / f"sms_settings_{suffix}.png")), suffix
    manager.tabs.setCurrentIndex(0)
    manager.select_template("Loan Pickup")
    manager.edit_selected()
    spin(1000)
    editor = next(iter(manager.editors.values()))
    editor.resize(1240, 760)
    sms = editor.editors["body_sms"]
    editor.bodyTabs.setCurrentWidget(sms.parentWidget())
    editor.previewTabs.setCurrentWidget(editor.previewSms)
    spin(1500)
    assert editor.grab().save(str(out / f"template_editor_sms_{suffix}.png")), suffix
    editor.done(0)
    manager.done(0)
    ctx.shutdown()
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "light"))
