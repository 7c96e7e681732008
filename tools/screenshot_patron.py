"""Render the Contact Info tab and the Contact Card of a demo patron to ``docs/screenshots/`` (offscreen).

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_patron``. Uses a throw-away SQLite database with
seed-demo data; picks a patron with a non-Latin name and several contact points, queues a password reset on
one e-mail (so the Notes column shows it) and types an invalid phone on the card (so its message shows). A third
shot shows a card reloaded after another workstation saved the same patron (Reload, keep my changes).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import shiboken6
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
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.patrons.password_reset import reset_password
    from desktop.ui.context import AppContext
    from desktop.ui.patrons.contact_card import open_contact_card
    from desktop.ui.patrons.patron_record import open_patron_record

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
    # The demo workstation: an SMTP server is named (nothing is sent: the shot only shows the queued note).
    ctx = AppContext(db, Settings(staff_name="demo", smtp_host="localhost"))
    try:
        reset_password(db, second_email, staff="demo", settings=ctx.settings)
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
    wait(lambda: False, 0.3)  # let the closed windows go
    # Two workstations edit the same card: the second one's save is refused, then Reload merges both.
    other_db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    other = AppContext(other_db, Settings(staff_name="front desk"))
    mine, theirs = open_contact_card(ctx, pid), open_contact_card(other, pid)
    wait(lambda: mine.data is not None and theirs.data is not None)
    theirs.editors["email"][0].value.setText("new.address@example.org")
    theirs.address_fields["city"].setText("Champaign")
    theirs.on_save()
    wait(lambda: not shiboken6.isValid(theirs) or not theirs.isVisible())
    mine.editors["phone"][0].value.setText("217 555 0142")
    mine.address_fields["city"].setText("Urbana")
    mine.resize(800, 780)
    mine.on_save()
    wait(lambda: mine.reload_button.isVisible())
    mine.reload_button.click()
    wait(lambda: "taken in" in mine.banner.text())
    wait(lambda: False, 0.5)
    mine.grab().save(str(OUT / "contact_card_reloaded.png"))
    mine._discarding = True  # a screenshot, not a session: close without asking
    mine.close()
    other.shutdown()
    other_db.dispose()
    ctx.shutdown()
    db.dispose()
    app.quit()
    print(f"wrote {OUT / 'contact_info_tab.png'}, {OUT / 'contact_card.png'} and {OUT / 'contact_card_reloaded.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
