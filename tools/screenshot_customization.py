"""Render the Customization Manager, the template editor and the Settings dialog to ``docs/screenshots/``.

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_customization``. Uses a throw-away SQLite database
with seed-demo data (one template edited by a colleague, one deleted, so the list shows both states), an
in-memory keyring, and a local STARTTLS+AUTH SMTP server so both Test connection results are real.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main(out: Path = OUT) -> int:
    """Render the three windows into ``out``."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    os.environ["XDG_CONFIG_HOME"] = str(home)  # never touch the real settings (an absent file: the defaults)
    import keyring
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.notices import template_admin
    from desktop.ui.admin.customization_manager import CustomizationManager
    from desktop.ui.admin.settings_dialog import SettingsDialog
    from desktop.ui.context import AppContext
    from tests.conftest import MemoryKeyring
    from tests.smtp_sink import SmtpSink

    app = QApplication.instance() or QApplication(sys.argv[:1])
    keyring.set_keyring(MemoryKeyring())  # never the user's real keyring

    def spin(ms: int) -> None:
        loop = QEventLoop()  # an event loop, not processEvents in a tight loop (that crashes PySide6 6.12)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    out.mkdir(parents=True, exist_ok=True)
    path = home / "callslip.sqlite3"
    db, _ = open_database(sqlite_url(path))
    seed_demo(db, patrons=40, requests=300)
    loan = template_admin.load_template_by_name(db, "Loan Pickup")
    template_admin.save_template(
        db,
        loan.id,
        replace(loan.fields, subject="Ready for pickup: {{ request.title }}"),
        expected_version=loan.version,
        changed_by="mgarcia",
    )
    article = template_admin.load_template_by_name(db, "Article Pickup")
    template_admin.delete_template(db, article.id, expected_version=article.version, changed_by="jchen")
    ctx = AppContext(db, Settings(staff_name="mgarcia"))

    manager = CustomizationManager(ctx)
    manager.resize(1000, 420)
    manager.show()
    spin(1000)
    manager.select_template("Loan Pickup")
    spin(200)
    manager.grab().save(str(out / "customization_manager.png"))
    manager.edit_selected()
    spin(1000)
    editor = next(iter(manager.editors.values()))
    editor.resize(1240, 800)
    spin(1500)
    editor.grab().save(str(out / "template_editor.png"))
    editor.done(0)
    manager.done(0)

    sink = SmtpSink(tls="starttls", credentials=("ill-desk", "s3cret"), cert_dir=home).start()
    keyring.set_password("Callslip SMTP", "ill-desk@127.0.0.1", "s3cret")
    ctx.apply_settings(
        ctx.settings.with_changes(
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_security="starttls",
            smtp_username="ill-desk",
            smtp_from="ill@library.example.org",
        )
    )
    dialog = SettingsDialog(ctx, ssl_context=sink.client_context())
    dialog.sqlitePathEdit.setText(str(path))
    dialog.show()
    spin(300)
    dialog.testDatabaseButton.click()
    spin(800)
    dialog.testSmtpButton.click()
    spin(1500)
    dialog.grab().save(str(out / "settings_dialog.png"))
    dialog.done(0)
    sink.stop()
    ctx.shutdown()
    db.dispose()
    del app
    print(f"wrote customization_manager.png, template_editor.png, settings_dialog.png to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
