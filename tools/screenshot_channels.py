"""Render the Contact Card's Channels section: light and dark palette at 100 %, and at 200 % on a 1920×1200 display.

Run: ``python -m tools.screenshot_channels`` (it runs itself once more per shot: the scale factor and the screen
must be set before Qt starts). Uses a throw-away SQLite database with seed-demo data and throw-away Qt settings;
the library's texts go through the e-mail-to-SMS gateway, and the patron shown texts first for "Item ready for
pickup" with no carrier chosen yet (so the gateway's warning shows). Writes
``docs/screenshots/contact_card_channels_{light,dark,200}.png``.
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
    from dataclasses import replace

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication, QScrollArea, QStyleFactory
    from sqlalchemy import select

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.db.models import ContactPoint, Patron
    from desktop.domain.channels import Channel, NoticeEvent
    from desktop.services.admin.demo import seed_demo
    from desktop.services.admin.sms_settings import load_sms_settings, save_sms_settings
    from desktop.services.database import open_database
    from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
    from desktop.ui.context import AppContext
    from desktop.ui.patrons.contact_card import open_contact_card

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
    seed_demo(db, patrons=20, requests=40)
    sms = load_sms_settings(db)
    save_sms_settings(db, sms, replace(sms, transport="gateway"), changed_by="demo")
    with db.read() as session:
        patron = session.scalars(
            select(Patron).join(ContactPoint).where(ContactPoint.kind == "phone").order_by(Patron.id)
        ).first()
        assert patron is not None
        pid = patron.id
    prefs = load_preferences(db, pid)
    save_preferences(
        db,
        pid,
        prefs.version,
        {
            NoticeEvent.READY_FOR_PICKUP: (Channel.SMS, Channel.EMAIL),
            NoticeEvent.CANCELLATION: (Channel.EMAIL, Channel.MAIL),
        },
        staff="demo",
    )
    ctx = AppContext(db, Settings(staff_name="demo"))
    try:
        card = open_contact_card(ctx, pid)
        if scale == 1:
            card.resize(820, 900)
        wait(lambda: card.data is not None and not ctx.runner.busy)
        card.channels_editor.rows[NoticeEvent.PICKUP_REMINDER].list.setFocus()
        wait(lambda: False, 0.3)
        scroll = card.findChild(QScrollArea, "contactCardScroll")
        if scroll is not None:  # the Channels section in view (it is the card's second section)
            scroll.ensureWidgetVisible(card.channels_editor.carrier_combo)
        wait(lambda: False, 0.3)
        OUT.mkdir(parents=True, exist_ok=True)
        name = "200" if scale == 2 else theme
        card.grab().save(str(OUT / f"contact_card_channels_{name}.png"))
        card._discarding = True
        card.close()
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
            subprocess.run([sys.executable, "-m", "tools.screenshot_channels", theme, str(scale)], env=env,
                           check=True, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
