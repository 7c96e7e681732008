"""Import patrons or requests from a CSV file (``importDialog``): ILLiad's column names, see first, then write.

**Preview** reads the file and runs the importer (:mod:`desktop.services.admin.csv_import`) as a dry run: every bad
row is listed with its line number (staff fix the file in one go), or every record it would create or change,
field by field (old → new). Only then is **Import** enabled, and it writes exactly the bytes that were
previewed: a file edited meanwhile must be previewed again. Re-importing the same file changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
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

from desktop.services.admin import csv_import
from desktop.services.admin.csv_import import (
    PATRON_COLUMNS,
    REQUEST_COLUMNS,
    CsvFileError,
    ImportResult,
    StatusBack,
)
from desktop.services.database import Database
from desktop.ui.admin.illiad_import_wizard import open_illiad_import
from desktop.ui.context import AppContext
from desktop.ui.widgets.colours import Tone, set_tone

PATRONS = "patrons"
REQUESTS = "requests"
#: The status choices for a requests file, in the order shown.
STATUS_BACK_CHOICES = (
    (StatusBack.REFUSE, "Refuse rows that would move a status back (nothing is imported)"),
    (StatusBack.KEEP, "Keep the stored status where it is ahead of the file's"),
    (StatusBack.ALLOW, "Move statuses back as the file says (Tracking records it)"),
)


@dataclass(frozen=True)
class _Job:
    """What a preview was made of, so Import writes exactly that."""

    kind: str
    path: Path
    data: bytes
    create_sites: bool
    status_back: StatusBack


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    result: ImportResult


def _read_and_import(db: Database, job: _Job, staff: str, region: str, path: Path, dry_run: bool) -> _Outcome:
    """On the task thread: read the file (for a preview) and run the importer."""
    data = job.data
    if dry_run:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CsvFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    job = _Job(job.kind, path, data, job.create_sites, job.status_back)
    if job.kind == PATRONS:
        result = csv_import.import_patrons(db, data, region=region, dry_run=dry_run, create_sites=job.create_sites)
    else:
        result = csv_import.import_requests(db, data, changed_by=staff, dry_run=dry_run, status_back=job.status_back)
    return _Outcome(job, result)


class ImportDialog(QDialog):
    """Chooses a CSV file and a kind, previews the import on the task thread, and imports once staff confirm.

    Attributes:
        last_result: the :class:`ImportResult` of the last preview or import that read the file (``None`` before).
    """

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, kind: str = PATRONS) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.last_result: ImportResult | None = None
        self._running = False
        self._previewed: _Job | None = None
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
        set_tone(self.columnsLabel, Tone.MUTED)
        root.addWidget(self.columnsLabel)
        self.createSitesCheck = QCheckBox("&Create the pickup locations (Site) the file names that do not exist", self)
        self.createSitesCheck.setObjectName("importCreateSitesCheck")
        self.createSitesCheck.setAccessibleName("Create unknown pickup locations")
        root.addWidget(self.createSitesCheck)
        self.statusBackCombo = QComboBox(self)
        self.statusBackCombo.setObjectName("importStatusBackCombo")
        self.statusBackCombo.setAccessibleName("When the file's status is behind the stored one")
        for value, label in STATUS_BACK_CHOICES:
            self.statusBackCombo.addItem(label, value.value)
        root.addWidget(self.statusBackCombo)

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
        self.previewList = QListWidget(self)
        self.previewList.setObjectName("importPreviewList")
        self.previewList.setAccessibleName("What the import would create and change")
        self.previewList.setWordWrap(True)  # a changed row lists every field: it must be readable whole
        self.errorsList.setWordWrap(True)
        root.addWidget(self.previewList, 2)

        buttons = QHBoxLayout()
        self.illiadButton = QPushButton("From I&LLiad…", self)
        self.illiadButton.setObjectName("illiadImportOpenButton")
        self.illiadButton.setAccessibleName("Import an ILLiad export folder")
        self.illiadButton.setAutoDefault(False)
        self.illiadButton.clicked.connect(self.open_illiad)
        buttons.addWidget(self.illiadButton)
        buttons.addStretch(1)
        self.previewButton = QPushButton("Pre&view", self)
        self.previewButton.setObjectName("previewImportButton")
        self.previewButton.setAccessibleName("Preview the import without writing")
        self.previewButton.setDefault(True)
        self.previewButton.clicked.connect(self.run_preview)
        self.importButton = QPushButton("&Import", self)
        self.importButton.setObjectName("runImportButton")
        self.importButton.setAccessibleName("Import the previewed file")
        self.importButton.setAutoDefault(False)
        self.importButton.setEnabled(False)
        self.importButton.clicked.connect(self.run_import)
        self.closeButton = QPushButton("Close", self)
        self.closeButton.setObjectName("closeImportButton")
        self.closeButton.setAccessibleName("Close")
        self.closeButton.setAutoDefault(False)
        self.closeButton.clicked.connect(self.reject)
        buttons.addWidget(self.previewButton)
        buttons.addWidget(self.importButton)
        buttons.addWidget(self.closeButton)
        root.addLayout(buttons)

        self.fileEdit.textChanged.connect(self._forget_preview)
        self.createSitesCheck.toggled.connect(self._forget_preview)
        self.statusBackCombo.currentIndexChanged.connect(self._forget_preview)
        self.patronsRadio.toggled.connect(self._on_kind_toggled)
        (self.patronsRadio if kind == PATRONS else self.requestsRadio).setChecked(True)
        self._on_kind_toggled(kind == PATRONS)
        self._show_lists()

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
        self.columnsLabel.setText(
            f"Columns: {', '.join(columns)}.{note} Columns the file lacks and empty cells leave the stored "
            "value as it is."
        )
        self.createSitesCheck.setVisible(patrons)
        self.statusBackCombo.setVisible(not patrons)
        self._forget_preview()

    @Slot()
    def _forget_preview(self) -> None:
        """Anything changed after a preview: it no longer describes what Import would do."""
        self._previewed = None
        self.importButton.setEnabled(False)

    @Slot()
    def open_illiad(self) -> None:
        """Moving from ILLiad: its whole export folder, with history, is another dialog."""
        open_illiad_import(self.ctx, self.parentWidget() or self)

    @Slot()
    def browse(self) -> None:
        """Choose the CSV file."""
        path, _filter = QFileDialog.getOpenFileName(
            self, "Choose a CSV file", self.fileEdit.text().strip(), "CSV files (*.csv *.txt);;All files (*)"
        )
        if path:
            self.fileEdit.setText(path)

    @Slot()
    def run_preview(self) -> None:
        """Read the chosen file and run the import as a dry run on the task thread: nothing is written."""
        text = self.fileEdit.text().strip()
        if not text:
            self._show_summary(False, "Choose the CSV file to import.")
            self.fileEdit.setFocus()
            return
        path = Path(text).expanduser()
        status_back = StatusBack(self.statusBackCombo.currentData())
        job = _Job(self.kind, path, b"", self.createSitesCheck.isChecked(), status_back)
        self._start(job, dry_run=True, message=f"Checking {path.name}…")

    @Slot()
    def run_import(self) -> None:
        """Write what the last preview showed (the same bytes); enabled only after a clean preview."""
        job = self._previewed
        if job is None:
            return
        self._start(job, dry_run=False, message=f"Importing {job.path.name}…")

    def _start(self, job: _Job, *, dry_run: bool, message: str) -> None:
        self._running = True
        self._previewed = None
        self.previewButton.setEnabled(False)
        self.importButton.setEnabled(False)
        self.errorsList.clear()
        self.previewList.clear()
        self._show_lists()
        set_tone(self.summaryLabel, None)
        self.summaryLabel.setText(message)
        work = partial(
            _read_and_import,
            self.ctx.db,
            job,
            self.ctx.staff_name,
            self.ctx.settings.phone_region,
            job.path,
            dry_run,
        )
        self.ctx.run(work, self._on_done, self._on_failed)

    def _on_done(self, outcome: object) -> None:
        assert isinstance(outcome, _Outcome)
        result = outcome.result
        if result.ok and not result.dry_run and (result.created or result.updated):
            self.ctx.changed.emit(outcome.job.kind)  # every window refreshes, even if this dialog was closed
        if not isValid(self):
            return
        self._running = False
        self.previewButton.setEnabled(True)
        self.last_result = result
        for error in result.errors:
            self.errorsList.addItem(str(error))
        self.previewList.addItems(result.preview())
        self._show_lists()
        summary = result.summary()
        if result.unknown_columns:
            summary += f". Ignored column(s) Callslip does not use: {', '.join(result.unknown_columns)}"
        if result.ok and result.dry_run and (result.created or result.updated):
            self._previewed = outcome.job
            self.importButton.setEnabled(True)
            self.importButton.setFocus()
            summary += ". Press Import to write these changes"
        elif result.ok and result.dry_run:
            summary += ": nothing to import, the database already says what the file says"
        self._show_summary(result.ok, summary + ("" if summary.endswith(".") else "."))

    def _on_failed(self, error: object) -> None:
        if not isValid(self):  # closed while the task ran
            return
        self._running = False
        self.previewButton.setEnabled(True)
        reason = str(error) if isinstance(error, CsvFileError) else f"{type(error).__name__}: {error}"
        self._show_summary(False, f"Nothing was imported: {reason}")

    def _show_lists(self) -> None:
        """Show the bad rows when there are some, else what the import would do: one list, not two half-empty ones."""
        has_errors = self.errorsList.count() > 0
        self.errorsList.setVisible(has_errors)
        self.previewList.setVisible(not has_errors)

    def _show_summary(self, ok: bool, text: str) -> None:
        set_tone(self.summaryLabel, Tone.OK if ok else Tone.ERROR)
        self.summaryLabel.setText(("✔ " if ok else "✖ ") + text)

    def errors(self) -> list[str]:
        """The row errors listed (as shown)."""
        return [self.errorsList.item(i).text() for i in range(self.errorsList.count())]

    def preview(self) -> list[str]:
        """The preview lines listed (as shown)."""
        return [self.previewList.item(i).text() for i in range(self.previewList.count())]


def open_import_dialog(ctx: AppContext, parent: QWidget | None = None, *, kind: str = PATRONS) -> ImportDialog:
    """Show the CSV import dialog (window-modal); the empty-database page and the System tab call this."""
    dialog = ImportDialog(ctx, parent, kind=kind)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.open()
    return dialog
