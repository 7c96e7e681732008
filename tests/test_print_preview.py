"""Big lists at the desk (issue 21): the print preview draws pages as they come into view and prints from the
keyboard (Ctrl+P) a few pages per event-loop turn; printed sheets follow the locale (US Letter in en_US/en_CA,
A4 elsewhere) unless the workstation's setting names a size; Ctrl+A on a long table no longer makes the column
header ask the model about every cell; ink is black under a dark palette. Real PDFs are read back with pypdf. How long things take is measured by
``bench/ui_stalls.py``, never here."""

# Fixtures are imported from helper modules; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pypdf import PdfReader
from PySide6.QtCore import QAbstractTableModel, QLocale, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QImage, QPageSize, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot

from desktop.config import ConfigError, Settings, load_settings
from desktop.services.database import Database
from desktop.services.requests.contact_customers import load_contact_customers
from desktop.services.requests.printing import NoticePage, build_notices
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.context import AppContext
from desktop.ui.requests.print_notices import NoticePrinter, render_page_image
from desktop.ui.widgets.paper import page_size_for
from desktop.ui.widgets.tables import record_table, selected_rows
from tests.cm_helpers import ctx  # noqa: F401

LETTER_POINTS = (612, 792)
A4_POINTS = (595, 842)


def _pages(db: Database, count: int) -> tuple[NoticePage, ...]:
    """``count`` pages: real notices of the seeded database, repeated (each with its own transaction number)."""
    rows = [r for r in load_contact_customers(db).mail if r.has_address][:3]
    built = build_notices(db, [r.request_id for r in rows]).pages
    assert built
    return tuple(replace(built[n % len(built)], transaction_number=100_000 + n) for n in range(count))


def _sizes(pdf: Path) -> set[tuple[int, int]]:
    return {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in PdfReader(pdf).pages}


@pytest.fixture
def default_locale() -> Iterator[None]:
    """Tests set the process's default locale; put it back."""
    before = QLocale()
    yield
    QLocale.setDefault(before)


# ---------------------------------------------------------------------------------------------- the preview


def test_a_big_preview_draws_only_the_pages_in_view(qtbot: QtBot, seeded_db: Database) -> None:
    pages = _pages(seeded_db, 200)
    printer = NoticePrinter(paper_size="letter")
    preview = printer.preview(pages)
    qtbot.addWidget(preview)
    model = preview.model
    assert model.rowCount() == 200
    assert preview.page_label.text() == "Page 1 of 200"
    qtbot.waitUntil(lambda: isinstance(model.data(model.index(0), Qt.ItemDataRole.DecorationRole), QImage))
    qtbot.waitUntil(lambda: not model._timer.isActive())
    assert 1 <= model.drawn <= 6  # the pages on screen, not the batch

    preview.view.scrollToBottom()
    last = model.index(199)
    qtbot.waitUntil(lambda: isinstance(model.data(last, Qt.ItemDataRole.DecorationRole), QImage), timeout=10_000)
    qtbot.waitUntil(lambda: preview.page_label.text().startswith("Page 19"))
    assert model.drawn < 20
    assert "Page 200 of 200" in str(model.data(last, Qt.ItemDataRole.AccessibleTextRole))
    preview.reject()


def test_ctrl_p_in_the_preview_prints_every_page(qtbot: QtBot, seeded_db: Database, tmp_path: Path) -> None:
    pages = _pages(seeded_db, 12)
    printer = NoticePrinter(paper_size="a4")
    preview = printer.preview(pages)
    qtbot.addWidget(preview)
    pdf = tmp_path / "printed.pdf"
    printer.printer.setOutputFileName(str(pdf))  # the PDF printer stands in for the desk's printer

    with qtbot.waitActive(preview):  # a window's shortcuts work in the active window
        preview.activateWindow()
    QTest.keyClick(preview.view, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: preview.print_dialog is not None and preview.print_dialog.isVisible())
    assert preview.print_dialog is not None
    with qtbot.waitSignal(printer.finished, timeout=60_000) as finished:
        preview.print_dialog.accept()
    assert finished.args == [True]
    assert len(PdfReader(pdf).pages) == 12
    assert _sizes(pdf) == {A4_POINTS}


def test_cancelling_a_print_run_keeps_the_preview_open(qtbot: QtBot, seeded_db: Database, tmp_path: Path) -> None:
    printer = NoticePrinter(paper_size="letter")
    preview = printer.preview(_pages(seeded_db, 60))
    qtbot.addWidget(preview)
    printer.printer.setOutputFileName(str(tmp_path / "cancelled.pdf"))
    preview.start_printing()
    assert preview.job is not None and preview.job.running and preview.cancel_print_button.isVisibleTo(preview)
    preview.cancel_print_button.click()  # before the first slice ran: nothing more is drawn
    assert preview.job is None and preview.isVisible()
    assert preview.message_label.text() == "Printing was cancelled."
    assert preview.print_button.isEnabled()
    with qtbot.waitSignal(printer.finished) as finished:
        preview.reject()
    assert finished.args == [False]


# ---------------------------------------------------------------------------------------------- paper size


@pytest.mark.parametrize(
    ("locale", "setting", "expected"),
    [
        ("en_US", "", QPageSize.PageSizeId.Letter),
        ("en_CA", "", QPageSize.PageSizeId.Letter),
        ("fr_CA", "", QPageSize.PageSizeId.Letter),
        ("es_MX", "", QPageSize.PageSizeId.Letter),
        ("en_GB", "", QPageSize.PageSizeId.A4),
        ("de_DE", "", QPageSize.PageSizeId.A4),
        ("en_AU", "", QPageSize.PageSizeId.A4),
        ("en_US", "a4", QPageSize.PageSizeId.A4),
        ("de_DE", "letter", QPageSize.PageSizeId.Letter),
        ("de_DE", "legal", QPageSize.PageSizeId.Legal),
    ],
)
def test_page_size_follows_the_locale_unless_set(locale: str, setting: str, expected: QPageSize.PageSizeId) -> None:
    assert page_size_for(setting, QLocale(locale)).id() == expected


@pytest.mark.parametrize(("locale", "points"), [("en_US", LETTER_POINTS), ("de_DE", A4_POINTS)])
def test_printed_pdf_is_on_the_locale_s_paper(
    seeded_db: Database, tmp_path: Path, default_locale: None, locale: str, points: tuple[int, int]
) -> None:
    QLocale.setDefault(QLocale(locale))
    pdf = tmp_path / "notices.pdf"
    assert NoticePrinter().print_to_pdf(_pages(seeded_db, 2), pdf) == 2
    assert _sizes(pdf) == {points}


def test_the_setting_overrides_the_locale_in_print(seeded_db: Database, tmp_path: Path, default_locale: None) -> None:
    QLocale.setDefault(QLocale("en_US"))
    printer = NoticePrinter(paper_size="a4")
    pdf = tmp_path / "a4.pdf"
    printer.print_to_pdf(_pages(seeded_db, 1), pdf)
    assert _sizes(pdf) == {A4_POINTS}
    printer.on_settings_changed(Settings(paper_size=""))  # back to the locale's
    printer.print_to_pdf(_pages(seeded_db, 1), pdf)
    assert _sizes(pdf) == {LETTER_POINTS}


def test_an_unknown_paper_size_is_refused() -> None:
    with pytest.raises(ConfigError, match="paper_size must be letter, legal, a4"):
        Settings(paper_size="tabloid")


def test_settings_dialog_saves_the_paper_size_and_printing_follows(
    qtbot: QtBot, ctx: AppContext, db_path: Path, default_locale: None
) -> None:
    QLocale.setDefault(QLocale("en_US"))
    printer = NoticePrinter()
    ctx.settingsChanged.connect(printer.on_settings_changed)
    assert printer.printer.pageLayout().pageSize().id() == QPageSize.PageSizeId.Letter
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    dialog.show()
    combo = dialog.paperSizeCombo
    assert combo.currentData() == "" and "Letter" in combo.currentText()  # follows the locale, says which
    assert combo.accessibleName()
    combo.setCurrentIndex(combo.findData("a4"))
    dialog.sqlitePathEdit.setText(str(db_path))  # the database in use: nothing to reopen
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: dialog.saved_settings is not None)
    assert load_settings().paper_size == "a4"
    assert printer.printer.pageLayout().pageSize().id() == QPageSize.PageSizeId.A4
    dialog.done(0)


# ---------------------------------------------------------------------------------------------- Ctrl+A


class _CountingModel(QAbstractTableModel):
    """A long read-only table that counts how often the view asks about a cell's flags."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.flag_calls = 0

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.rows

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 10

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return f"{index.row()}:{index.column()}" if role == Qt.ItemDataRole.DisplayRole else None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        self.flag_calls += 1
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable


def test_ctrl_a_on_a_long_table_does_not_ask_about_every_cell(qtbot: QtBot) -> None:
    model = _CountingModel(3_200)
    table = record_table(model, "longTable", "A long table", multi=True)
    qtbot.addWidget(table)
    table.resize(900, 500)
    with qtbot.waitExposed(table):
        table.show()
    table.setFocus()
    QTest.keyClick(table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    model.flag_calls = 0
    table.horizontalHeader().repaint()
    table.viewport().repaint()
    # The cells on screen (about 20 rows of 10) are asked about; the 32,000 selected ones are not.
    assert model.flag_calls < 1_000
    assert selected_rows(table) == list(range(3_200))


def test_selected_rows_reads_the_selection_s_ranges(qtbot: QtBot) -> None:
    model = _CountingModel(50)
    table = record_table(model, "shortTable", "A short table", multi=True)
    qtbot.addWidget(table)
    table.show()
    for row in (3, 4, 5, 20, 49):
        table.selectionModel().select(
            model.index(row, 0),
            table.selectionModel().SelectionFlag.Select | table.selectionModel().SelectionFlag.Rows,
        )
    assert selected_rows(table) == sorted(index.row() for index in table.selectionModel().selectedRows())
    assert selected_rows(table) == [3, 4, 5, 20, 49]
    assert isinstance(table, QTableView)


def test_notices_are_printed_in_black_under_a_dark_palette(qtbot: QtBot, seeded_db: Database) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    before = app.palette()
    dark = QPalette(before)
    dark.setColor(QPalette.ColorRole.Text, QColor("#e8e8e8"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#e8e8e8"))
    app.setPalette(dark)
    try:
        image = render_page_image(_pages(seeded_db, 1)[0], dpi=50)
    finally:
        app.setPalette(before)
    # The patron's address in the envelope window (2 in from the top, 7/8 in from the left) is dark ink.
    window = [image.pixelColor(x, y).lightness() for x in range(44, 200) for y in range(100, 150)]
    assert min(window) < 80
