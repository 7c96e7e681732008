"""Print Notifications: real PDFs (QPrinter PdfFormat) read back with pypdf, the real print preview, the
confirmation step, and the rendering service (window-envelope blocks, patrons without an address, a deleted
template)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from pypdf import PdfReader
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QMessageBox, QPushButton
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.db.models import NoticeTemplate, Request, Tracking
from desktop.domain.methods import NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.errors import ServiceError
from desktop.services.notices.templates import PRINT_NOTICE
from desktop.services.requests.contact_customers import load_contact_customers
from desktop.services.requests.printing import build_notices, split_blocks
from desktop.services.requests.status import route_request
from desktop.ui.requests import print_notices
from desktop.ui.requests.contact_customers import ContactCustomersDialog
from desktop.ui.requests.print_notices import NoticePreviewDialog, NoticePrinter, render_page_image
from tests.contact_customers_helpers import ctx, dialog

__all__ = ["ctx", "dialog"]  # fixtures

WAITING = Status.AWAITING_CUSTOMER_CONTACT.value
MAILED = Status.NOTIFIED_VIA_MAIL.value


def drawable(name: str) -> str:
    """The name as a PDF made on this machine can carry it: without a CJK font Qt draws Chinese as empty boxes
    (CI installs one; Windows and macOS have one), so only the rest of the name is then compared."""
    if QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese):
        return name
    return "".join(ch for ch in name if not unicodedata.name(ch, "").startswith("CJK")).strip()


def plain(text: str) -> str:
    """PDF text as words: ligatures unfolded (ﬁ → fi), every run of blanks one space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def statuses(db: Database, numbers: list[int]) -> dict[int, str]:
    with db.read() as session:
        rows = session.execute(
            select(Request.transaction_number, Request.status).where(Request.transaction_number.in_(numbers))
        )
        return {tn: status for tn, status in rows}


def tracking_count(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count(Tracking.id))) or 0)


def printable_rows(dialog: ContactCustomersDialog, count: int) -> list[int]:
    """``count`` requests of different patrons that get a page each: Mail rows with an address, then Phone rows."""
    candidates = [r for r in dialog.models[NotificationMethod.MAIL].rows() if r.has_address]
    candidates += dialog.models[NotificationMethod.PHONE].rows()
    chosen: dict[int, int] = {}
    for row in candidates:
        chosen.setdefault(row.patron_id, row.transaction_number)
    assert len(chosen) >= count
    return sorted(chosen.values())[:count]


def remove_address(db: Database, transaction_number: int) -> str:
    with db.write() as session:
        request = session.scalar(select(Request).where(Request.transaction_number == transaction_number))
        assert request is not None
        request.patron.address1 = ""
        request.patron.city = ""
        request.patron.zip = ""
        return request.patron.full_name


# ------------------------------------------------------------------------------------------ through the form


def test_print_to_pdf_one_page_per_request_with_name_and_title(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    chosen = printable_rows(dialog, 3)
    dialog.select_requests(chosen)
    expected = {r.transaction_number: r for r in dialog.selected_rows()}
    assert sorted(expected) == sorted(chosen)
    pdf = tmp_path / "notices.pdf"
    dialog.print_selected(pdf)
    qtbot.waitUntil(lambda: dialog.confirm_box is not None, timeout=10_000)

    reader = PdfReader(pdf)
    assert len(reader.pages) == 3
    texts = [plain(page.extract_text()) for page in reader.pages]
    for text, tn in zip(texts, sorted(chosen), strict=True):  # pages in transaction-number order
        row = expected[tn]
        assert plain(drawable(row.patron_name)) in text
        assert plain(row.title) in text
        assert str(tn) in text
    assert "Your interlibrary loan has arrived" in texts[0]
    assert "Callslip Demo Library" in texts[0]  # the return address
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, WAITING)  # nothing moves before staff confirm

    box = dialog.confirm_box
    assert box is not None and box.objectName() == "confirmPrintedBox"
    with qtbot.waitSignal(dialog.actionFinished, timeout=10_000), qtbot.waitSignal(dialog.loaded, timeout=10_000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, MAILED)
    with seeded_db.read() as session:
        tracked = session.execute(
            select(Request.transaction_number, Tracking.from_status, Tracking.changed_by)
            .join(Tracking, Tracking.request_id == Request.id)
            .where(Tracking.to_status == MAILED, Tracking.changed_by == "tester")
        ).all()
    assert sorted(tracked) == sorted((tn, WAITING, "tester") for tn in chosen)
    assert "3 moved to Customer Notified via Mail" in dialog.last_message
    assert not set(chosen) & {r.transaction_number for m in dialog.models.values() for r in m.rows()}


def test_answering_no_after_printing_moves_nothing(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    chosen = printable_rows(dialog, 2)
    before = tracking_count(seeded_db)
    dialog.select_requests(chosen)
    dialog.print_selected(tmp_path / "notices.pdf")
    qtbot.waitUntil(lambda: dialog.confirm_box is not None, timeout=10_000)
    assert dialog.confirm_box is not None
    dialog.confirm_box.button(QMessageBox.StandardButton.No).click()
    assert "still waiting" in dialog.last_message
    assert tracking_count(seeded_db) == before
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, WAITING)
    assert dialog.print_button.isEnabled()


def test_print_button_opens_the_preview_and_cancelling_moves_nothing(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot
) -> None:
    chosen = printable_rows(dialog, 2)
    before = tracking_count(seeded_db)
    dialog.select_requests(chosen)
    qtbot.mouseClick(dialog.findChild(QPushButton, "printNotificationsButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.notice_printer.preview_dialog is not None, timeout=10_000)
    preview = dialog.notice_printer.preview_dialog
    assert isinstance(preview, NoticePreviewDialog) and preview.isVisible()
    assert preview.model.rowCount() == 2
    qtbot.waitUntil(lambda: preview.model.drawn == 2, timeout=10_000)  # both pages fit in view: both drawn
    assert preview.page_label.text() == "Page 1 of 2"
    preview.reject()
    qtbot.waitUntil(lambda: "cancelled" in dialog.last_message, timeout=5_000)
    assert dialog.confirm_box is None
    assert tracking_count(seeded_db) == before
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, WAITING)
    assert dialog.print_button.isEnabled()


def test_a_patron_without_an_address_is_a_warning_not_a_blank_page(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    chosen = printable_rows(dialog, 3)
    name = remove_address(seeded_db, chosen[1])
    dialog.select_requests(chosen)
    pdf = tmp_path / "notices.pdf"
    dialog.print_selected(pdf)
    qtbot.waitUntil(lambda: dialog.confirm_box is not None, timeout=10_000)
    assert len(PdfReader(pdf).pages) == 2
    assert f"Not printed: {chosen[1]} {name}: the patron has no postal address" in dialog.last_message
    assert dialog.confirm_box is not None
    with qtbot.waitSignal(dialog.actionFinished, timeout=10_000):
        dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    assert statuses(seeded_db, chosen) == {chosen[0]: MAILED, chosen[1]: WAITING, chosen[2]: MAILED}


def test_pending_emails_cannot_be_printed(dialog: ContactCustomersDialog, tmp_path: Path) -> None:
    email = dialog.models[NotificationMethod.EMAIL].row_at(0).transaction_number
    dialog.select_requests([email])
    dialog.print_selected(tmp_path / "x.pdf")
    assert "cannot be printed" in dialog.last_message
    assert not (tmp_path / "x.pdf").exists()


# ------------------------------------------------------------------------------------------- the service


def test_build_notices_renders_the_print_template(seeded_db: Database) -> None:
    groups = load_contact_customers(seeded_db)
    row = next(r for r in groups.mail if r.has_address)
    batch = build_notices(seeded_db, [row.request_id])
    assert not batch.warnings
    (page,) = batch.pages
    assert page.transaction_number == row.transaction_number and page.patron_name == row.patron_name
    assert page.window_html.startswith(row.patron_name.replace("'", "&#39;"))
    assert "Callslip Demo Library" in page.return_html
    assert 'class="window"' not in page.letter_html and 'class="return"' not in page.letter_html
    assert row.title in page.letter_html


def test_notices_follow_staff_edits_and_a_deleted_template_is_a_clear_error(seeded_db: Database) -> None:
    row = load_contact_customers(seeded_db).phone[0]
    with seeded_db.write() as session:
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == PRINT_NOTICE))
        assert template is not None
        template.body_html = "<p>Hello {{ patron.first_name }}, {{ request.title }} is here.</p>"
    (page,) = build_notices(seeded_db, [row.request_id]).pages
    assert page.window_html == "" and page.html.startswith("<p>Hello ")
    with seeded_db.write() as session:
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == PRINT_NOTICE))
        assert template is not None
        template.deleted = True
    with pytest.raises(ServiceError, match="template was deleted; restore it"):
        build_notices(seeded_db, [row.request_id])


def test_requests_moved_meanwhile_are_not_printed(seeded_db: Database) -> None:
    rows = load_contact_customers(seeded_db).phone[:2]
    route_request(seeded_db, rows[0].transaction_number, Status.CHECKED_OUT, "desk2")
    batch = build_notices(seeded_db, [r.request_id for r in rows])
    assert [p.transaction_number for p in batch.pages] == [rows[1].transaction_number]
    assert "now at 'Checked Out to Customer'" in batch.warnings[0].reason


def test_split_blocks_takes_the_first_return_and_window() -> None:
    html = '<div class="return">Library</div><div class="window">Ada<br/>1 Oak St</div><p>Letter</p>'
    assert split_blocks(html) == ("Library", "Ada<br/>1 Oak St", "<p>Letter</p>")
    assert split_blocks("<p>only a letter</p>") == ("", "", "<p>only a letter</p>")


def test_long_letters_stay_on_one_page(seeded_db: Database, qtbot: QtBot, tmp_path: Path) -> None:
    row = load_contact_customers(seeded_db).phone[0]
    with seeded_db.write() as session:
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == PRINT_NOTICE))
        assert template is not None
        template.body_html += "{% for n in range(80) %}<p>Line {{ n }} of a very long letter.</p>{% endfor %}"
    batch = build_notices(seeded_db, [row.request_id])
    pdf = tmp_path / "long.pdf"
    assert NoticePrinter().print_to_pdf(batch.pages, pdf) == 1
    text = plain(PdfReader(pdf).pages[0].extract_text())
    assert len(PdfReader(pdf).pages) == 1 and "Line 79 of a very long letter." in text


def test_a_page_renders_to_an_image(seeded_db: Database, qtbot: QtBot) -> None:
    row = load_contact_customers(seeded_db).phone[0]
    (page,) = build_notices(seeded_db, [row.request_id]).pages
    image = render_page_image(page, dpi=50)
    assert (image.width(), image.height()) == (425, 550)
    # Something was drawn inside the envelope window (2 in from the top, 7/8 in from the left).
    window = [image.pixelColor(x, y).lightness() for x in range(44, 200) for y in range(100, 150)]
    assert min(window) < 128


@pytest.mark.postgres
def test_notices_render_and_print_on_postgresql(pg_db: Database, qtbot: QtBot, tmp_path: Path) -> None:
    from desktop.services.admin.demo import seed_demo
    from desktop.services.requests.contact_customers import mark_printed

    seed_demo(pg_db, patrons=30, requests=200)
    rows = [r for r in load_contact_customers(pg_db).mail if r.has_address][:2]
    batch = build_notices(pg_db, [r.request_id for r in rows])
    assert [p.transaction_number for p in batch.pages] == sorted(r.transaction_number for r in rows)
    pdf = tmp_path / "pg.pdf"
    assert NoticePrinter().print_to_pdf(batch.pages, pdf) == len(rows) == len(PdfReader(pdf).pages)
    moved = mark_printed(pg_db, list(batch.request_ids), "tester").moved
    assert {c.to_status for c in moved} == {MAILED} and len(moved) == len(rows)


def test_save_as_pdf_writes_in_steps_while_the_form_keeps_answering(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same PDF as one-go printing (pages, text), written one page per event-loop turn: a timer on the GUI
    thread keeps ticking between the pages, and the progress is said."""
    monkeypatch.setattr(print_notices, "PRINT_SLICE_SECONDS", 0.0)  # one page per turn, whatever the machine
    chosen = printable_rows(dialog, 6)
    reference = tmp_path / "reference.pdf"
    ids = sorted(r.request_id for m in dialog.models.values() for r in m.rows() if r.transaction_number in chosen)
    batch = build_notices(seeded_db, ids, region=dialog.ctx.settings.phone_region)
    assert NoticePrinter().print_to_pdf(batch.pages, reference) == 6

    dialog.select_requests(chosen)
    ticks: list[int] = []
    progress: list[tuple[int, int]] = []
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: ticks.append(dialog.pdf_job.running if dialog.pdf_job is not None else -1))
    timer.start()
    pdf = tmp_path / "saved.pdf"
    dialog.print_selected(pdf)
    qtbot.waitUntil(lambda: dialog.pdf_job is not None, timeout=10_000)
    job = dialog.pdf_job
    assert job is not None
    job.progressed.connect(lambda done, total: progress.append((done, total)))
    qtbot.waitUntil(lambda: dialog.confirm_box is not None, timeout=10_000)
    timer.stop()
    assert ticks.count(True) >= 5  # the loop turned between the pages: the form answered while the file grew
    assert progress[-1] == (6, 6) and len(progress) >= 2  # said page by page (the first ones before we listened)
    saved, expected = PdfReader(pdf), PdfReader(reference)
    assert len(saved.pages) == len(expected.pages) == 6
    assert [plain(p.extract_text()) for p in saved.pages] == [plain(p.extract_text()) for p in expected.pages]
    assert dialog.confirm_box is not None and "6 letter(s) were saved to saved.pdf" in dialog.confirm_box.text()
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, WAITING)  # nothing moves before staff confirm
    dialog.confirm_box.button(QMessageBox.StandardButton.No).click()


def test_save_as_pdf_to_a_folder_that_does_not_exist_says_so_and_moves_nothing(
    dialog: ContactCustomersDialog, seeded_db: Database, qtbot: QtBot, tmp_path: Path
) -> None:
    chosen = printable_rows(dialog, 2)
    dialog.select_requests(chosen)
    dialog.print_selected(tmp_path / "no such folder" / "x.pdf")
    qtbot.waitUntil(lambda: "Could not write" in dialog.last_message, timeout=10_000)
    assert dialog.confirm_box is None and dialog.pdf_job is None
    assert statuses(seeded_db, chosen) == dict.fromkeys(chosen, WAITING)
    assert dialog.save_pdf_button.isEnabled()
