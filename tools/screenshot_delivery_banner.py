"""Render the delivery banner of Contact Customers in each state, light and dark palette, at 200 %.

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_delivery_banner``. Uses a throw-away SQLite
database with seed-demo data; each state is recorded the way a System Manager records it
(:func:`desktop.services.notices.delivery_health.record_cycle`), then the form's top (banner and E-Mail group) is saved
as ``docs/screenshots/banner_<state>_<light|dark>.png``. The scale factor is set before Qt starts.
"""

from __future__ import annotations

import os

os.environ["QT_SCALE_FACTOR"] = "2"

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from PySide6.QtCore import QEventLoop, QRect, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Run the event loop until ``condition`` (a QEventLoop per step: tight processEvents loops crash PySide6)."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def dark_palette() -> QPalette:
    """A dark palette like the desktops' dark themes (Fusion's roles, dark values)."""
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e8e8e8",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.AlternateBase: "#262626",
        QPalette.ColorRole.Text: "#e8e8e8",
        QPalette.ColorRole.Button: "#3a3a3a",
        QPalette.ColorRole.ButtonText: "#e8e8e8",
        QPalette.ColorRole.Highlight: "#2f65ca",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#3a3a3a",
        QPalette.ColorRole.ToolTipText: "#e8e8e8",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    return palette


def main() -> int:
    app = QApplication(sys.argv)
    app.setStyle(QStyleFactory.create("Fusion"))
    light = app.style().standardPalette()
    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.domain.clock import utcnow
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.notices.delivery_health import record_cycle
    from desktop.services.notices.delivery_problems import DeliveryProblem
    from desktop.services.notices.routing import scan_arrivals
    from desktop.ui.context import AppContext
    from desktop.ui.requests.contact_customers import ContactCustomersDialog

    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    seed_demo(db, patrons=40, requests=200)
    scan_arrivals(db, now=utcnow())  # the arrival notices a System Manager would queue first
    now = utcnow()
    states: list[tuple[str, DeliveryProblem | None, str]] = [
        ("no_manager", None, ""),
        ("not_configured", DeliveryProblem.NOT_CONFIGURED, ""),
        ("unreachable", DeliveryProblem.UNREACHABLE, "cannot connect to smtp.library.example.org:587: refused"),
        ("auth_refused", DeliveryProblem.AUTH_REFUSED, "535 5.7.8 authentication credentials invalid"),
        ("tls_failed", DeliveryProblem.TLS_FAILED, "certificate verify failed: self-signed certificate"),
        ("no_from_address", DeliveryProblem.NO_FROM_ADDRESS, ""),
        ("server_busy", DeliveryProblem.SERVER_BUSY, "421 4.7.0 too many connections, try again later"),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    ctx = AppContext(db, Settings(staff_name="demo"))
    try:
        for name, problem, detail in states:
            if problem is not None:
                backoff = now + timedelta(minutes=8) if problem is DeliveryProblem.SERVER_BUSY else None
                if problem is DeliveryProblem.UNREACHABLE:
                    backoff = now + timedelta(minutes=2)
                since = now - timedelta(minutes=37)
                record_cycle(db, worker="ill-server:812", at=since, problem=problem, detail=detail)
                record_cycle(db, worker="ill-server:812", at=now, problem=problem, detail=detail, backoff_until=backoff)
            for theme, palette in (("light", light), ("dark", dark_palette())):
                app.setPalette(palette)
                form = ContactCustomersDialog(ctx)
                form.resize(1180, 760)
                form.show()
                wait(lambda f=form: f.delivery_banner.health is not None and not ctx.runner.busy)  # type: ignore[misc]
                wait(lambda: False, 0.3)
                bottom = form.group_boxes[next(iter(form.group_boxes))].geometry().bottom()
                form.grab(QRect(0, 0, form.width(), min(bottom, 420))).save(str(OUT / f"banner_{name}_{theme}.png"))
                form.close()
                form.deleteLater()
                wait(lambda: False, 0.1)
    finally:
        ctx.shutdown()
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
