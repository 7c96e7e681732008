"""Render the Contact Info tab and the Contact Card of a demo patron to ``docs/screenshots/`` (offscreen).

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_patron``. Uses a throw-away SQLite database with
seed-demo data; picks a patron with a non-Latin name and several contact points, queues a password reset on
one e-mail (so the Notes column shows it) and types an invalid phone on the card (so its message shows).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Run the event loop until ``condition`` (a QEventLoop per step: tight processEvents loops crash PySide6)."""
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def main() -> int:
    app = QApplication(sys.argv)
    from sqlalchemy import select

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.db.models import Patron
    from desktop.services.database import open_database
    from desktop.services.demo import seed_demo
    from desktop.services.password_reset import reset_password
    from desktop.ui.contact_card import open_contact_card
    from desktop.ui.context import AppContext
    from desktop.ui.patron_record import open_patron_record

    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    seed_demo(db, patrons=60, requests=400)
    with db.read() as session:
        patrons = list(session.scalars(select(Patron)))

        def score(p: Patron) -> tuple[bool, int, int]:
            emails = sum(c.kind == "email" for c in p.contact_points)
            return (any(ord(ch) > 0x2E80 for ch in p.full_name), min(emails, 2), len(p.contact_points))

        chosen = max(patrons, key=score)
        pid = chosen.id
        second_email = [c.id for c in chosen.contact_points if c.kind == "email"][-1]
    ctx = AppContext(db, Settings(staff_name="demo"))
    try:
        reset_password(db, second_email, staff="demo", base_url=ctx.settings.web_base_url)
    except Exception as exc:  # a shared address: the shot simply has no reset note
        print(f"no reset note: {exc}", file=sys.stderr)
    window = open_patron_record(ctx, pid)
    window.resize(940, 600)
    wait(lambda: window.record is not None)
    window.contact_tab.table.selectRow(0)
    wait(lambda: False, 0.3)
    OUT.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(OUT / "contact_info_tab.png"))
    card = open_contact_card(ctx, pid, window, add=("phone", None))
    wait(lambda: card.data is not None and bool(card.editors["phone"]))
    card.editors["phone"][-1].value.setText("555-01")
    fax = card.add_field("fax", None)
    if fax is not None:
        fax.value.setText("217 555 0188 x12")
    card.resize(800, 780)
    wait(lambda: False, 0.5)
    card.grab().save(str(OUT / "contact_card.png"))
    card.close()
    window.close()
    ctx.shutdown()
    db.dispose()
    app.quit()
    print(f"wrote {OUT / 'contact_info_tab.png'} and {OUT / 'contact_card.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
