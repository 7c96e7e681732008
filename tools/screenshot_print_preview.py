"""Render the print preview of a batch of notices: light and dark palette at 100 %, and light at 200 %.

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_print_preview [--scale 2]``. Uses a throw-away SQLite
database with seed-demo data; saves ``docs/screenshots/print_preview_<light|dark>.png`` (or
``print_preview_200.png`` with ``--scale 2``; the scale factor is set before Qt starts).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication, QStyleFactory

from tools.screenshot_delivery_banner import OUT, dark_palette, wait

# Importing the banner's script set its own 200 %; this one's scale is set here, before Qt starts.
SCALE = sys.argv[sys.argv.index("--scale") + 1] if "--scale" in sys.argv else "1"
os.environ["QT_SCALE_FACTOR"] = SCALE


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setStyle(QStyleFactory.create("Fusion"))
    light = app.style().standardPalette()
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.requests.contact_customers import load_contact_customers
    from desktop.services.requests.printing import build_notices
    from desktop.ui.requests.print_notices import NoticePrinter

    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    seed_demo(db, patrons=60, requests=600)
    groups = load_contact_customers(db)
    ids = [r.request_id for r in (*groups.mail, *groups.phone) if r.has_address][:40]
    pages = build_notices(db, ids).pages
    scaled = SCALE != "1"
    themes = [("200", light)] if scaled else [("light", light), ("dark", dark_palette())]
    OUT.mkdir(parents=True, exist_ok=True)
    for theme, palette in themes:
        app.setPalette(palette)
        printer = NoticePrinter(paper_size="letter")
        preview = printer.preview(pages)
        preview.resize(760, 900)
        model = preview.model
        wait(lambda m=model: m.drawn >= 2 and not m._timer.isActive())  # type: ignore[misc]
        wait(lambda: False, 0.3)
        preview.grab().save(str(OUT / f"print_preview_{theme}.png"))
        preview.reject()
        wait(lambda: False, 0.1)
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
