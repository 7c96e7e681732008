"""Render the request form's desk actions: E-mail History, History/Notes, the Send E-mail menu and its preview.

Run: ``QT_QPA_PLATFORM=offscreen python -m tools.screenshot_request_form [--scale 2]``. Uses a throw-away SQLite
database with seed-demo data, one request with an imported ILLiad note, a staff note and a hand-sent e-mail, and
saves ``docs/screenshots/request_form_<view>_<light|dark>.png`` (``_200`` with ``--scale 2``, light only).
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtWidgets import QApplication, QStyleFactory

from tools.screenshot_delivery_banner import dark_palette, wait

# Set after that import (it sets 200 % for its own shots), before Qt starts.
SCALE = "2" if "--scale" in sys.argv and sys.argv[-1] == "2" else "1"
os.environ["QT_SCALE_FACTOR"] = SCALE

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main() -> int:
    app = QApplication(sys.argv)
    app.setStyle(QStyleFactory.create("Fusion"))
    light = app.style().standardPalette()
    from sqlalchemy import select

    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.db.models import Request, RequestNote
    from desktop.domain.statuses import Status
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.notices.templates import LOAN_PICKUP
    from desktop.services.requests.email_actions import plan_email, send_email
    from desktop.services.requests.record import add_note
    from desktop.ui.context import AppContext
    from desktop.ui.requests.request_form import RequestForm
    from desktop.ui.requests.send_email_dialog import SendEmailDialog

    folder = Path(tempfile.mkdtemp(prefix="callslip-shots-"))
    db, _ = open_database(sqlite_url(folder / "demo.sqlite3"))
    seed_demo(db, patrons=40, requests=200)
    settings = Settings(staff_name="jdoe", run_poller=False)
    with db.write() as session:
        request = session.scalars(
            select(Request).where(Request.status == Status.AWAITING_CUSTOMER_CONTACT.value).order_by(Request.id)
        ).first()
        assert request is not None
        tn, request_id = request.transaction_number, request.id
        loan = session.scalars(
            select(Request)
            .where(Request.status == Status.AWAITING_CUSTOMER_CONTACT.value, Request.request_type == "Loan")
            .order_by(Request.id)
        ).first()
        assert loan is not None
        loan_tn = loan.transaction_number
        session.add(RequestNote(request_id=request_id, noted_at=datetime(2024, 3, 4, 15, 12, tzinfo=UTC),
                                note="Patron prefers the evening desk; lender allows no renewals.",
                                added_by="mkeller", note_type="Staff", source_key="illiad:demo-1"))  # fmt: skip
    add_note(db, tn, "Lender asked for the item back by the due date; told the patron at the desk.", "jdoe")
    plan = plan_email(db, settings, tn, LOAN_PICKUP)
    send_email(db, tn, LOAN_PICKUP, "jdoe", expected_version=plan.version, token="shot")
    OUT.mkdir(parents=True, exist_ok=True)
    ctx = AppContext(db, settings)
    suffix = "_200" if SCALE == "2" else ""
    themes = [("light", light)] if SCALE == "2" else [("light", light), ("dark", dark_palette())]
    try:
        for theme, palette in themes:
            app.setPalette(palette)
            form = RequestForm(ctx, tn)
            form.resize(1000, 760)
            form.show()
            wait(lambda f=form: f.details is not None and not f.busy and not f.email_menu.isEmpty())  # type: ignore[misc]
            name = f"{theme}{suffix}"
            form.tabs.setCurrentIndex(form.notes_tab_index)
            form.note_edit.setPlainText("Called the lender about a renewal")
            wait(lambda: False, 0.3)
            form.grab().save(str(OUT / f"request_form_notes_{name}.png"))
            form.note_edit.clear()
            form.tabs.setCurrentIndex(form.email_tab_index)
            form.notifications_table.selectRow(0)
            wait(lambda: False, 0.3)
            form.grab().save(str(OUT / f"request_form_email_history_{name}.png"))
            form.email_menu.popup(form.email_button.mapToGlobal(form.email_button.rect().bottomLeft()))
            wait(lambda: False, 0.3)
            form.email_menu.grab().save(str(OUT / f"request_form_send_menu_{name}.png"))
            form.email_menu.hide()
            dialog = SendEmailDialog(plan_email(db, settings, loan_tn, LOAN_PICKUP), form)  # a loan still waiting
            dialog.show()
            wait(lambda: False, 0.3)
            dialog.grab().save(str(OUT / f"request_form_send_preview_{name}.png"))
            dialog.reject()
            form.close()
            form.deleteLater()
            wait(lambda: False, 0.2)
    finally:
        ctx.shutdown()
        db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
