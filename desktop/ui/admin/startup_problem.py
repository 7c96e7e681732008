"""The page shown when Callslip cannot open its database at start-up (``startupProblemDialog``).

Instead of a message box and an exit, staff read one plain sentence (which database, what failed, what to do) and
choose: create the missing database file (only when that is the problem), open Settings to choose or fix the
database, try again (a server that was down, a file that was locked), or quit. Nothing is created unless staff
press Create.
"""

from __future__ import annotations

from enum import StrEnum

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from desktop.ui.window_state import keep_on_screen


class StartupChoice(StrEnum):
    """What staff chose on the page."""

    CREATE = "create"
    SETTINGS = "settings"
    RETRY = "retry"
    QUIT = "quit"


class StartupProblemDialog(QDialog):
    """One sentence and the ways out (see the module docstring).

    Attributes:
        choice: what staff chose (:attr:`StartupChoice.QUIT` when the page was closed).
    """

    def __init__(self, message: str, *, can_create: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = StartupChoice.QUIT
        self.setObjectName("startupProblemDialog")
        self.setAccessibleName("Callslip cannot open its database")
        self.setWindowTitle("Callslip — the database cannot be opened")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        self.messageLabel = QLabel(message, self)
        self.messageLabel.setObjectName("startupMessageLabel")
        self.messageLabel.setAccessibleName("What went wrong")
        self.messageLabel.setWordWrap(True)
        layout.addWidget(self.messageLabel)
        buttons = QHBoxLayout()
        self.createButton = self._button("&Create New Database", "createDatabaseButton", StartupChoice.CREATE)
        self.createButton.setVisible(can_create)
        self.settingsButton = self._button("&Settings…", "startupSettingsButton", StartupChoice.SETTINGS)
        self.retryButton = self._button("&Try Again", "retryButton", StartupChoice.RETRY)
        self.quitButton = self._button("&Quit", "quitButton", StartupChoice.QUIT)
        for button in (self.createButton, self.settingsButton, self.retryButton):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.quitButton)
        layout.addLayout(buttons)
        (self.createButton if can_create else self.settingsButton).setDefault(True)
        keep_on_screen(self)

    def _button(self, text: str, name: str, choice: StartupChoice) -> QPushButton:
        button = QPushButton(text, self)
        button.setObjectName(name)
        button.setAccessibleName(text.replace("&", "").rstrip("…"))
        button.setProperty("choice", choice.value)
        button.clicked.connect(self.on_choice)
        return button

    @Slot()
    def on_choice(self) -> None:
        """Remember the button pressed and close the page."""
        button = self.sender()
        self.choice = StartupChoice(str(button.property("choice"))) if button is not None else StartupChoice.QUIT
        self.accept()
