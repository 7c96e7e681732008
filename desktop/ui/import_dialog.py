"""Import patrons or requests from a CSV file (``importDialog``): ILLiad's column names, all or nothing.

The Foundation importer (:mod:`desktop.services.csv_import`) checks every row first; when any row is bad,
nothing is imported and every bad row is listed here with its line number, so staff fix the file in one go.
Re-importing the same file changes nothing (rows are matched by UserName / TransactionNumber).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from desktop.services import csv_import
from desktop.services.csv_import import PATRON_COLUMNS, REQUEST_COLUMNS, CsvFileError, ImportResult
from desktop.ui.context import AppContext

PATRONS = "patrons"
REQUESTS = "requests"
OK_STYLE = "color:#146c43;"
BAD_STYLE = "color:#a4161a;"


class ImportDialog(QDialog):
    """Chooses a CSV file and a kind, imports it on the task thread, and lists what was wrong.

    Attributes:
        last_result: the :class:`ImportResult` of the last import that read the file (``None`` before).
    """

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, kind: str = PATRONS) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.last_result: ImportResult | None = None
        self._running = False
        self.setObjectName("importDialog")
        self.setAccessibleName("Import from CSV")
        self.setWindowTitle("Import Patrons or Requests from CSV")
        self.resize(720, 480)
        root = QVBoxLayout(self)

        kinds = QHBoxLayout()
        kinds.addWidget(QLabel("Import:", self))
        self.patronsRadio = QRadioButton("&Patrons", self)
        self.patronsRadio.setObjectName("importPatronsRadio")
        self.patronsRadio.setAccessibleName("Import patrons")
        self.requestsRadio = QRadioButton("&Requests", self)
        self.requestsRadio.setObjectName("importRequestsRadio")
        self.requestsRadio.setAccessibleName("Import requests")
        group = QButtonGroup(self)
        group.addButton(self.patronsRadio)
        group.addButton(self.requestsRadio)
        kinds.addWidget(self.patronsRadio)
        kinds.addWidget(self.requestsRadio)
        kinds.addStretch(1)
        root.addLayout(kinds)
        self.columnsLabel = QLabel("", self)
        self.columnsLabel.setObjectName("importColumnsLabel")
        self.columnsLabel.setWordWrap(True)
        self.columnsLabel.setStyleSheet("color:#555;")
        root.addWidget(self.columnsLabel)

        file_row = QHBoxLayout()
        file_label = QLabel("&File:", self)
        self.fileEdit = QLineEdit(self)
        self.fileEdit.setObjectName("importFileEdit")
        self.fileEdit.setAccessibleName("CSV file to import")
        self.fileEdit.setPlaceholderText("a UTF-8 CSV file with ILLiad's column names")
        file_label.setBuddy(self.fileEdit)
        self.browseButton = QPushButton("&Browse…", self)
        self.browseButton.setObjectName("browseImportButton")
        self.browseButton.setAccessibleName("Choose the CSV file")
        self.browseButton.setAutoDefault(False)
        self.browseButton.clicked.connect(self.browse)
        file_row.addWidget(file_label)
        file_row.addWidget(self.fileEdit, 1)
        file_row.addWidget(self.browseButton)
        root.addLayout(file_row)

        self.summaryLabel = QLabel("", self)
        self.summaryLabel.setObjectName("importSummaryLabel")
        self.summaryLabel.setAccessibleName("Import result")
        self.summaryLabel.setWordWrap(True)
        root.addWidget(self.summaryLabel)
        self.errorsList = QListWidget(self)
        self.errorsList.setObjectName("importErrorsList")
        self.errorsList.setAccessibleName("Rows that could not be imported")
        root.addWidget(self.errorsList, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.importButton = QPushButton("&Import", self)
        self.importButton.setObjectName("runImportButton")
        self.importButton.setAccessibleName("Import the file")
        self.importButton.setDefault(True)
        self.importButton.clicked.connect(self.run_import)
        self.closeButton = QPushButton("Close", self)
        self.closeButton.setObjectName("closeImportButton")
        self.closeButton.setAccessibleName("Close")
        self.closeButton.setAutoDefault(False)
        self.closeButton.clicked.connect(self.reject)
        buttons.addWidget(self.importButton)
        buttons.addWidget(self.closeButton)
        root.addLayout(buttons)

        self.patronsRadio.toggled.connect(self._on_kind_toggled)
        (self.patronsRadio if kind == PATRONS else self.requestsRadio).setChecked(True)
        self._on_kind_toggled(kind == PATRONS)

    @property
    def kind(self) -> str:
        """``patrons`` or ``requests``."""
        return PATRONS if self.patronsRadio.isChecked() else REQUESTS

    @property
    def busy(self) -> bool:
        """True while an import runs."""
        return self._running

    @Slot(bool)
    def _on_kind_toggled(self, patrons: bool) -> None:
        columns = PATRON_COLUMNS if patrons else REQUEST_COLUMNS
        note = "" if patrons else " Import the patrons first: each request names its patron by UserName."
        self.columnsLabel.setText(f"Columns: {', '.join(columns)}.{note}")

    @Slot()
    def browse(self) -> None:
        """Choose the CSV file."""
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose a CSV file", self.fileEdit.text().strip(), "CSV files (*.csv *.txt);;All files (*)"
        )
        if path:
            self.fileEdit.setText(path)

    @Slot()
    def run_import(self) -> None:
        """Import the chosen file on the task thread (all rows or none)."""
        text = self.fileEdit.text().strip()
        if not text:
            self._show_summary(False, "Choose the CSV file to import.")
            self.fileEdit.setFocus()
            return
        path = Path(text).expanduser()
        kind = self.kind
        if kind == PATRONS:
            importer: csv_import.Importer = partial(csv_import.import_patrons, region=self.ctx.settings.phone_region)
        else:
            importer = partial(csv_import.import_requests, changed_by=self.ctx.staff_name)
        self._running = True
        self.importButton.setEnabled(False)
        self.errorsList.clear()
        self.summaryLabel.setStyleSheet("")
        self.summaryLabel.setText(f"Importing {path.name}…")
        job = partial(csv_import.import_file, self.ctx.db, path, importer)
        self.ctx.run(job, partial(self._on_imported, kind), self._on_failed)

    def _on_imported(self, kind: str, result: object) -> None:
        if isinstance(result, ImportResult) and result.ok and (result.created or result.updated):
            self.ctx.changed.emit(kind)  # every window refreshes, even if this dialog was closed meanwhile
        if not isValid(self):
            return
        self._running = False
        self.importButton.setEnabled(True)
        assert isinstance(result, ImportResult)
        self.last_result = result
        for error in result.errors:
            self.errorsList.addItem(str(error))
        summary = result.summary()
        if result.unknown_columns:
            summary += f". Ignored column(s) Callslip does not use: {', '.join(result.unknown_columns)}"
        self._show_summary(result.ok, summary + ("" if summary.endswith(".") else "."))

    def _on_failed(self, error: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        self._running = False
        self.importButton.setEnabled(True)
        reason = str(error) if isinstance(error, CsvFileError) else f"{type(error).__name__}: {error}"
        self._show_summary(False, f"Nothing was imported: {reason}")

    def _show_summary(self, ok: bool, text: str) -> None:
        self.summaryLabel.setStyleSheet(OK_STYLE if ok else BAD_STYLE)
        self.summaryLabel.setText(("✔ " if ok else "✖ ") + text)

    def errors(self) -> list[str]:
        """The row errors listed (as shown)."""
        return [self.errorsList.item(i).text() for i in range(self.errorsList.count())]


def open_import_dialog(ctx: AppContext, parent: QWidget | None = None, *, kind: str = PATRONS) -> ImportDialog:
    """Show the CSV import dialog (window-modal); the empty-database page and the System tab call this."""
    dialog = ImportDialog(ctx, parent, kind=kind)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.open()
    return dialog
