"""CSV import from the GUI over a real SQLite file: Preview shows what would change and writes nothing, Import
writes only after that and only the previewed bytes; a file with bad rows lists each one with its line number and
imports nothing, and unreadable files are explained."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.db.models import Patron, Request
from desktop.ui.admin.import_dialog import ImportDialog, open_import_dialog
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx  # noqa: F401

PATRONS_OK = (
    "UserName,FirstName,LastName,EMailAddress,Phone,NotificationMethod,DeliveryMethod,Address,City,State,Zip\n"
    "alovelace,Ada,Lovelace,ada@example.org,217-555-0143,E-mail,Hold for Pickup,12 Oak St,Springfield,IL,62701\n"
    "cbabbage,Charles,Babbage,charles@example.org,(217) 555-0199,Phone,Hold for Pickup,,,,\n"
)
PATRONS_BAD = (
    "UserName,FirstName,LastName,EMailAddress,Phone,NotificationMethod\n"
    "ghopper,Grace,Hopper,grace@example.org,217-555-0100,E-mail\n"
    "bad1,Bad,Mail,not-an-address,,E-mail\n"
    "ghopper2,Grace,Two,grace2@example.org,12,E-mail\n"
)
REQUESTS_OK = (
    "TransactionNumber,UserName,RequestType,LoanTitle,LoanAuthor,TransactionStatus\n"
    "910001,alovelace,Loan,Sketch of the Analytical Engine,L. F. Menabrea,Awaiting Request Processing\n"
)


def _count(ctx: AppContext, column: object) -> int:
    with ctx.db.read() as session:
        return int(session.scalar(select(func.count(column))) or 0)  # type: ignore[arg-type]


@pytest.fixture
def dialog(qtbot: QtBot, ctx: AppContext) -> Iterator[ImportDialog]:
    window = ImportDialog(ctx)
    qtbot.addWidget(window)
    window.show()
    yield window
    qtbot.waitUntil(lambda: not window.busy)
    window.done(0)


def _preview(qtbot: QtBot, dialog: ImportDialog, path: Path) -> None:
    dialog.fileEdit.setText(str(path))
    dialog.previewButton.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def _run(qtbot: QtBot, dialog: ImportDialog, path: Path) -> None:
    """Preview, then confirm with Import when there is something to write (as staff do)."""
    _preview(qtbot, dialog, path)
    if dialog.importButton.isEnabled():
        dialog.importButton.click()
        qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)


def test_patrons_then_requests(qtbot: QtBot, dialog: ImportDialog, ctx: AppContext, tmp_path: Path) -> None:
    topics: list[str] = []
    ctx.changed.connect(topics.append)
    assert dialog.objectName() == "importDialog" and dialog.patronsRadio.isChecked()
    patrons = tmp_path / "patrons.csv"
    patrons.write_text(PATRONS_OK, encoding="utf-8")
    _run(qtbot, dialog, patrons)
    assert dialog.summaryLabel.text().startswith("✔ patrons: 2 row(s): 2 created")
    assert dialog.errors() == [] and _count(ctx, Patron.id) == 2
    dialog.requestsRadio.setChecked(True)
    assert "UserName" in dialog.columnsLabel.text() and "TransactionNumber" in dialog.columnsLabel.text()
    requests = tmp_path / "requests.csv"
    requests.write_text(REQUESTS_OK, encoding="utf-8")
    _run(qtbot, dialog, requests)
    assert dialog.summaryLabel.text().startswith("✔ requests: 1 row(s): 1 created")
    assert _count(ctx, Request.id) == 1
    assert topics == ["patrons", "requests"]
    _run(qtbot, dialog, requests)  # again: nothing changes, nobody is told
    assert "leave 1 alone" in dialog.summaryLabel.text() and "nothing to import" in dialog.summaryLabel.text()
    assert not dialog.importButton.isEnabled() and topics == ["patrons", "requests"]


def test_bad_rows_are_listed_with_line_numbers_and_nothing_is_imported(
    qtbot: QtBot, dialog: ImportDialog, ctx: AppContext, tmp_path: Path
) -> None:
    path = tmp_path / "patrons.csv"
    path.write_text(PATRONS_BAD, encoding="utf-8")
    _run(qtbot, dialog, path)
    errors = dialog.errors()
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4"]
    assert "nothing was imported" in dialog.summaryLabel.text() and dialog.summaryLabel.text().startswith("✖")
    assert _count(ctx, Patron.id) == 0
    assert dialog.fileEdit.text() == str(path)


def test_unreadable_files_are_explained(qtbot: QtBot, dialog: ImportDialog, ctx: AppContext, tmp_path: Path) -> None:
    _run(qtbot, dialog, tmp_path / "missing.csv")
    assert dialog.summaryLabel.text().startswith("✖ Nothing was imported: cannot read")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("UserName,FirstName,LastName\nzoe,Zoë,Müller\n".encode("latin-1"))
    _run(qtbot, dialog, latin)
    assert "not UTF-8" in dialog.summaryLabel.text()
    dialog.fileEdit.clear()
    dialog.previewButton.click()
    assert "Choose the CSV file" in dialog.summaryLabel.text()
    assert _count(ctx, Patron.id) == 0


def test_open_import_dialog_for_requests(qtbot: QtBot, ctx: AppContext) -> None:
    window = open_import_dialog(ctx, kind="requests")
    qtbot.waitUntil(window.isVisible)
    assert window.requestsRadio.isChecked() and window.kind == "requests"
    window.closeButton.click()
    qtbot.waitUntil(lambda: not window.isVisible())


def test_preview_writes_nothing_and_import_writes_what_was_previewed(
    qtbot: QtBot, dialog: ImportDialog, ctx: AppContext, tmp_path: Path
) -> None:
    path = tmp_path / "patrons.csv"
    path.write_text(PATRONS_OK, encoding="utf-8")
    _run(qtbot, dialog, path)
    topics: list[str] = []
    ctx.changed.connect(topics.append)
    update = "UserName,LastName,Phone\nalovelace,King,217-555-0144\n"
    path.write_text(update, encoding="utf-8")
    _preview(qtbot, dialog, path)
    assert dialog.summaryLabel.text().startswith("✔ patrons (dry run, nothing written): 1 row(s): would create 0")
    assert dialog.preview() == [
        "line 2: alovelace: LastName: 'Lovelace' → 'King'; Phone: '' → '(217) 555-0144 (added)'"
    ]
    assert dialog.importButton.isEnabled() and topics == []
    with ctx.db.read() as session:
        assert session.scalar(select(Patron.last_name).where(Patron.username == "alovelace")) == "Lovelace"
    # Anything changed after the preview disables Import until the file is previewed again.
    dialog.createSitesCheck.setChecked(True)
    assert not dialog.importButton.isEnabled()
    _preview(qtbot, dialog, path)
    # The file changes on disk after the preview: Import writes what staff saw, not the new bytes.
    path.write_text("UserName,LastName\nalovelace,Byron\n", encoding="utf-8")
    dialog.importButton.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.summaryLabel.text().startswith("✔ patrons: 1 row(s): 0 created, 1 updated")
    assert topics == ["patrons"] and not dialog.importButton.isEnabled()
    with ctx.db.read() as session:
        patron = session.scalar(select(Patron).where(Patron.username == "alovelace"))
        assert patron is not None and (patron.last_name, patron.first_name, patron.city) == (
            "King",
            "Ada",
            "Springfield",
        )


def test_requests_status_choice_and_unknown_site(
    qtbot: QtBot, dialog: ImportDialog, ctx: AppContext, tmp_path: Path
) -> None:
    path = tmp_path / "patrons.csv"
    path.write_text("UserName,EMailAddress,Site\nzoe,zoe@example.org,ANNEX\n", encoding="utf-8")
    _preview(qtbot, dialog, path)
    assert dialog.errors() == [
        "line 2: Site 'ANNEX' is not a pickup location (known: MAIN); add it under Locations, "
        "or import with --create-sites to create it"
    ]
    assert not dialog.importButton.isEnabled()
    dialog.createSitesCheck.setChecked(True)
    _run(qtbot, dialog, path)
    assert _count(ctx, Patron.id) == 1
    dialog.requestsRadio.setChecked(True)
    assert not dialog.createSitesCheck.isVisible() and dialog.statusBackCombo.isVisible()
    requests = tmp_path / "requests.csv"
    requests.write_text("TransactionNumber,UserName,TransactionStatus\n910002,zoe,Checked Out to Customer\n")
    _run(qtbot, dialog, requests)
    requests.write_text("TransactionNumber,UserName,TransactionStatus\n910002,zoe,Request Sent\n")
    _preview(qtbot, dialog, requests)
    assert "would move back request 910002" in dialog.errors()[0]
    dialog.statusBackCombo.setCurrentIndex(1)  # keep the stored status
    _preview(qtbot, dialog, requests)
    assert dialog.errors() == [] and "leave 1 alone" in dialog.summaryLabel.text()
    assert dialog.preview() == [
        "note: line 2: TransactionStatus: kept 'Checked Out to Customer', which is ahead of the file's 'Request Sent'"
    ]
    assert not dialog.importButton.isEnabled()  # nothing to write
