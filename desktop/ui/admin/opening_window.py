"""The window staff see while Callslip opens its database.

Opening a database (and importing SQLAlchemy, checking the schema, perhaps upgrading it) takes from a fraction of a
second to minutes on a slow network share; a window that appears only afterwards looks like a program that did not
start. This window appears first, says which database is being opened, and is replaced by the main window. It
imports nothing but Qt (and the Qt-only :mod:`window_state`), so it can be painted before the heavy modules are
loaded. It does not even use PySide6's ``Qt`` namespace, whose first use builds all its enums (~40 ms, a quarter
of a bare window's start): alignment and text selection are set as style-sheet properties instead.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QProgressBar, QVBoxLayout, QWidget

from desktop.ui.window_state import keep_on_screen


class OpeningWindow(QMainWindow):
    """ "Opening database …" with the database's name and a busy bar.

    Signals:
        firstPainted(): the window has been painted once (the slow work starts after it, never before).
    """

    firstPainted = Signal()

    def __init__(self, database: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("openingWindow")
        self.setWindowTitle("Callslip")
        self.resize(1280, 780)
        body = QWidget(self)
        layout = QVBoxLayout(body)
        layout.addStretch(1)
        self.status = QLabel("Opening database …", body)
        self.status.setObjectName("openingStatus")
        self.status.setStyleSheet("qproperty-alignment: AlignCenter;")
        font = self.status.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.status.setFont(font)
        self.database = QLabel(database, body)
        self.database.setObjectName("openingDatabase")
        self.database.setStyleSheet(
            "qproperty-alignment: AlignCenter; qproperty-textInteractionFlags: TextSelectableByMouse;"
        )
        bar = QProgressBar(body)
        bar.setRange(0, 0)  # busy: how long an upgrade takes is not known in advance
        bar.setMaximumWidth(360)
        layout.addWidget(self.status)
        layout.addWidget(self.database)
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(bar)
        centred.addStretch(1)
        layout.addLayout(centred)
        layout.addStretch(2)
        self.setCentralWidget(body)
        self._painted = False
        self.installEventFilter(self)
        keep_on_screen(self)  # 1280×780 does not fit 960×600 (a 1920×1200 screen at 200 %)

    def set_status(self, text: str) -> None:
        """Say what start-up is doing now (one short sentence)."""
        self.status.setText(text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Tell :attr:`firstPainted` once, after the first paint has been handled."""
        if watched is self and event.type() == QEvent.Type.Paint and not self._painted:
            self._painted = True
            self.firstPainted.emit()
        return False
