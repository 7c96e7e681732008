"""Moving from ILLiad (``illiadImportDialog``): choose the export folder, read the dry-run report, then import.

Three steps on one page, in the order staff take them: the folder (and, optionally, an edited status map),
**Dry Run** (runs :func:`desktop.services.admin.illiad_import.import_illiad` with ``dry_run=True`` on the task thread:
the migration report, with the encodings found, the status mapping in use and every refused row), then
**Import**, enabled only after a dry run of the same folder and map. Nothing is written before Import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from desktop.services.admin import illiad_import
from desktop.services.admin.csv_import import CsvFileError
from desktop.services.admin.illiad_import import MigrationReport
from desktop.services.database import Database
from desktop.ui.context import AppContext
from desktop.ui.widgets.colours import Tone, set_tone
from desktop.ui.window_state import keep_on_screen


@dataclass(frozen=True)
class _Job:
    folder: Path
    status_map: Path | None


def _run(db: Database, job: _Job, region: str, dry_run: bool) -> tuple[_Job, MigrationReport]:
    """On the task thread: read the status map (if any) and run the import."""
    table = illiad_import.load_status_map(job.status_map) if job.status_map else None
    report = illiad_import.import_illiad(db, job.folder, dry_run=dry_run, status_map=table, region=region)
    return job, report


class IllIadImportDialog(QDialog):
    """Folder → dry-run report → confirm. ``last_report`` is the last report shown (``None`` before)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.last_report: MigrationReport | None = None
        self._running = False
        self._checked: _Job | None = None
        self.setObjectName("illiadImportDialog")
        self.setAccessibleName("Import from ILLiad")
        self.setWindowTitle("Moving from ILLiad: Import an Export Folder")
        self.resize(820, 600)
        root = QVBoxLayout(self)
        intro = QLabel(
            "1. Choose the folder of ILLiad table exports (Users or UsersALL, Transactions, Tracking, Notes, "
            "EMailCopies). 2. Press Dry Run and read the report: nothing is written. 3. Press Import.",
            self,
        )
        intro.setWordWrap(True)
        root.addWidget(intro)
        grid = QGridLayout()
        folder_label = QLabel("&Folder:", self)
        self.folderEdit = QLineEdit(self)
        self.folderEdit.setObjectName("illiadFolderEdit")
        self.folderEdit.setAccessibleName("ILLiad export folder")
        folder_label.setBuddy(self.folderEdit)
        self.browseButton = QPushButton("&Browse…", self)
        self.browseButton.setObjectName("illiadBrowseButton")
        self.browseButton.setAccessibleName("Choose the export folder")
        self.browseButton.setAutoDefault(False)
        self.browseButton.clicked.connect(self.browse)
        map_label = QLabel("Status &map:", self)
        self.mapEdit = QLineEdit(self)
        self.mapEdit.setObjectName("illiadStatusMapEdit")
        self.mapEdit.setAccessibleName("Status map file (optional)")
        self.mapEdit.setPlaceholderText("optional: a TOML file of ILLiad status = Callslip status lines")
        map_label.setBuddy(self.mapEdit)
        grid.addWidget(folder_label, 0, 0)
        grid.addWidget(self.folderEdit, 0, 1)
        grid.addWidget(self.browseButton, 0, 2)
        grid.addWidget(map_label, 1, 0)
        grid.addWidget(self.mapEdit, 1, 1, 1, 2)
        root.addLayout(grid)
        self.summaryLabel = QLabel("", self)
        self.summaryLabel.setObjectName("illiadSummaryLabel")
        self.summaryLabel.setAccessibleName("Import result")
        self.summaryLabel.setWordWrap(True)
        root.addWidget(self.summaryLabel)
        self.reportView = QPlainTextEdit(self)
        self.reportView.setObjectName("illiadReportView")
        self.reportView.setAccessibleName("Migration report")
        self.reportView.setReadOnly(True)
        self.reportView.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        root.addWidget(self.reportView, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.dryRunButton = QPushButton("&Dry Run", self)
        self.dryRunButton.setObjectName("illiadDryRunButton")
        self.dryRunButton.setAccessibleName("Check the export and show the report without writing")
        self.dryRunButton.setDefault(True)
        self.dryRunButton.clicked.connect(self.run_dry_run)
        self.importButton = QPushButton("&Import", self)
        self.importButton.setObjectName("illiadImportButton")
        self.importButton.setAccessibleName("Import the checked folder")
        self.importButton.setAutoDefault(False)
        self.importButton.setEnabled(False)
        self.importButton.clicked.connect(self.run_import)
        self.closeButton = QPushButton("Close", self)
        self.closeButton.setObjectName("illiadCloseButton")
        self.closeButton.setAccessibleName("Close")
        self.closeButton.setAutoDefault(False)
        self.closeButton.clicked.connect(self.reject)
        for button in (self.dryRunButton, self.importButton, self.closeButton):
            buttons.addWidget(button)
        root.addLayout(buttons)
        self.folderEdit.textChanged.connect(self._forget)
        self.mapEdit.textChanged.connect(self._forget)
        keep_on_screen(self)  # 820×600 plus its frame does not fit 960×600 (1920×1200 at 200 %)

    @property
    def busy(self) -> bool:
        """True while a dry run or an import runs."""
        return self._running

    @Slot()
    def _forget(self) -> None:
        """The folder or map changed: the report shown no longer says what Import would do."""
        self._checked = None
        self.importButton.setEnabled(False)

    @Slot()
    def browse(self) -> None:
        """Choose the export folder."""
        folder = QFileDialog.getExistingDirectory(self, "Choose the ILLiad export folder", self.folderEdit.text())
        if folder:
            self.folderEdit.setText(folder)

    def _job(self) -> _Job | None:
        folder = self.folderEdit.text().strip()
        if not folder:
            self._show(False, "Choose the folder of ILLiad exports.")
            self.folderEdit.setFocus()
            return None
        status_map = self.mapEdit.text().strip()
        return _Job(Path(folder).expanduser(), Path(status_map).expanduser() if status_map else None)

    @Slot()
    def run_dry_run(self) -> None:
        """Check the folder and show the report; nothing is written."""
        job = self._job()
        if job is not None:
            self._start(job, dry_run=True, message=f"Checking {job.folder.name}…")

    @Slot()
    def run_import(self) -> None:
        """Import the folder the last dry run checked (enabled only after one)."""
        if self._checked is not None:
            self._start(self._checked, dry_run=False, message=f"Importing {self._checked.folder.name}…")

    def _start(self, job: _Job, *, dry_run: bool, message: str) -> None:
        self._checked = None
        self._running = True
        self.dryRunButton.setEnabled(False)
        self.importButton.setEnabled(False)
        set_tone(self.summaryLabel, None)
        self.summaryLabel.setText(message)
        work = partial(_run, self.ctx.db, job, self.ctx.settings.phone_region, dry_run)
        self.ctx.run(work, self._on_done, self._on_failed)

    def _on_done(self, outcome: object) -> None:
        assert isinstance(outcome, tuple)
        job, report = outcome
        assert isinstance(report, MigrationReport) and isinstance(job, _Job)
        if not report.dry_run:
            self.ctx.changed.emit("requests")
            self.ctx.changed.emit("patrons")
        if not isValid(self):
            return
        self._running = False
        self.last_report = report
        self.dryRunButton.setEnabled(True)
        lines = report.lines()
        if report.dry_run:
            lines += ["", "Status map in use:", illiad_import.status_map_toml(report.status_map)]
        self.reportView.setPlainText("\n".join(lines))
        refused = f"; {len(report.refused)} row(s) refused (listed at the end)" if report.refused else ""
        if report.dry_run:
            self._checked = job
            self.importButton.setEnabled(True)
            self.importButton.setFocus()
            self._show(True, f"Dry run done, nothing written{refused}. Press Import to write it.")
        else:
            self._show(True, f"Imported{refused}.")

    def _on_failed(self, error: object) -> None:
        if not isValid(self):
            return
        self._running = False
        self.dryRunButton.setEnabled(True)
        reason = str(error) if isinstance(error, CsvFileError) else f"{type(error).__name__}: {error}"
        self._show(False, f"Nothing was imported: {reason}")

    def _show(self, ok: bool, text: str) -> None:
        set_tone(self.summaryLabel, Tone.OK if ok else Tone.ERROR)
        self.summaryLabel.setText(("✔ " if ok else "✖ ") + text)


def open_illiad_import(ctx: AppContext, parent: QWidget | None = None) -> IllIadImportDialog:
    """Show the ILLiad import dialog (window-modal)."""
    dialog = IllIadImportDialog(ctx, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.open()
    return dialog
