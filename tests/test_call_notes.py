"""Notes typed with "No answer" calls are shown: in Contact Customers' Phone group (column and tooltip) and in the
request form's Calls tab (real SQLite file, real widgets)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.domain.methods import NotificationMethod
from desktop.services.database import Database
from desktop.services.requests.contact_customers import CallOutcome, log_calls
from desktop.ui.requests.contact_customers import ContactCustomersDialog
from desktop.ui.requests.request_form import open_request_form
from tests.contact_customers_helpers import ctx, dialog

__all__ = ["ctx", "dialog"]  # fixtures


def test_call_notes_show_in_the_phone_group(dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot) -> None:
    model = dialog.models[NotificationMethod.PHONE]
    row = model.row_at(0)
    log_calls(seeded_db, [row.request_id], CallOutcome.NO_ANSWER, "maria", note="rang twice, no voicemail")
    log_calls(seeded_db, [row.request_id], CallOutcome.NO_ANSWER, "tom", note="line busy")
    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        dialog.reload()
    number = [r.request_id for r in model.rows()].index(row.request_id)
    column = [c.header for c in model.columns].index("Calls")
    text = model.index(number, column).data()
    assert text.startswith("2× no answer, last ") and text.endswith("— “line busy”")
    tip = model.index(number, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert "Calls in this wait:" in tip
    assert "No answer · maria: rang twice, no voicemail" in tip and "No answer · tom: line busy" in tip


def test_call_notes_show_in_the_request_forms_history(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot
) -> None:
    row = dialog.models[NotificationMethod.PHONE].row_at(0)
    log_calls(seeded_db, [row.request_id], CallOutcome.NO_ANSWER, "maria", note="rang twice, no voicemail")
    form = open_request_form(dialog.ctx, row.transaction_number)
    qtbot.waitUntil(lambda: form.details is not None and not dialog.ctx.runner.busy, timeout=10_000)
    assert form.tabs.tabText(form.calls_tab_index) == "Call&s (1)"
    calls = form.calls_model
    assert calls.rowCount() == 1
    shown = [calls.index(0, c).data() for c in range(calls.columnCount())]
    assert shown[1:] == ["No answer", "maria", "rang twice, no voicemail"]
    form.close()
