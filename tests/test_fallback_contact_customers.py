"""The Contact Customers form with fallbacks (issue 18, part 3): an e-mail that failed for good shows as a call to
make in the Phone group with the reason, a text still being sent stays in the E-Mail group said as a text, and
Notified via Phone completes the fallback's call."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from desktop.domain.clock import utcnow
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.notices.fallback import advance_fallbacks
from desktop.services.requests.record import get_request
from desktop.ui.requests.contact_customers import ContactCustomersDialog
from desktop.ui.requests.request_form import history_lines
from tests.contact_customers_helpers import ctx, dialog
from tests.outbox_support import notices, request_status
from tests.test_fallback import arrive, patron

__all__ = ["ctx", "dialog"]  # fixtures


def text_at(form: ContactCustomersDialog, method: NotificationMethod, request_id: int, header: str) -> str:
    model = form.models[method]
    column = [c.header for c in model.columns].index(header)
    return str(model.index_of(request_id, column).data())


def test_the_fallback_call_shows_in_the_phone_group_with_its_reason_and_phoning_completes_it(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot
) -> None:
    called = arrive(seeded_db, patron(seeded_db, "E-Mail>Phone", email=None))
    texting = arrive(seeded_db, patron(seeded_db, "E-Mail>SMS>Phone", email=None, cell="+15550100199"))
    assert advance_fallbacks(seeded_db, now=utcnow()).moved == {"Phone": 1, "SMS": 1}
    reason = "e-mail failed: no e-mail address on file for this patron"

    with qtbot.waitSignal(dialog.loaded, timeout=10_000):
        dialog.reload()

    phone_model = dialog.models[NotificationMethod.PHONE]
    [row] = [r for r in phone_model.rows() if r.request_id == called]
    assert row.fell_back and row.notice_reply == reason
    assert text_at(dialog, NotificationMethod.PHONE, called, "Calls") == reason
    assert text_at(dialog, NotificationMethod.EMAIL, texting, "Notice") == "text message pending"
    assert called not in {r.request_id for r in dialog.models[NotificationMethod.EMAIL].rows()}
    dialog.grab().save("/tmp/fallback-contact-customers.png")

    dialog.select_requests([row.transaction_number])
    qtbot.mouseClick(dialog.findChild(QPushButton, "notifiedViaPhoneButton"), Qt.MouseButton.LeftButton)
    call = dialog.call_dialog
    assert call is not None and call.isVisible()
    with qtbot.waitSignal(dialog.actionFinished, timeout=10_000), qtbot.waitSignal(dialog.loaded, timeout=10_000):
        qtbot.mouseClick(call.findChild(QPushButton, "recordCallButton"), Qt.MouseButton.LeftButton)

    assert request_status(seeded_db, called) == Status.NOTIFIED_VIA_PHONE.value
    [done] = notices(seeded_db, request_id=called, channel="phone")
    assert done.state == "sent" and done.last_reply == "notified via phone (Reached) by tester"
    assert called not in {r.request_id for r in phone_model.rows()}
    lines = history_lines(get_request(seeded_db, row.transaction_number))
    assert [(line.kind, line.text.split(" (notice")[0]) for line in lines if line.kind == "Fallback"] == [
        ("Fallback", reason)
    ]
