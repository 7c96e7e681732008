"""The main window (``mainWindow``)."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QWidget

from desktop.ui.context import AppContext


class MainWindow(QMainWindow):
    """Callslip's main window; owns the :class:`AppContext` and stops its threads on close."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("mainWindow")
        self.setWindowTitle("Callslip")
        self.setAccessibleName("Callslip main window")
        self.resize(1200, 760)
        self._database_label = QLabel(f"Database: {ctx.db.display_name}")
        self._database_label.setObjectName("databaseLabel")
        self.statusBar().addPermanentWidget(self._database_label)
        self.statusBar().addPermanentWidget(QLabel(f"Signed in: {ctx.staff_name}"))

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop background work before the window goes (a running QThread must never be destroyed)."""
        self.ctx.shutdown()
        super().closeEvent(event)
