"""Customization Manager → One Message for Many Items: whether a patron's arrivals close together go out as one
message, and how long an arrival may wait for the patron's other items.

Shared by every workstation (:mod:`desktop.services.admin.digest_settings`). Loading and saving run off the GUI
thread; a refused save says why and keeps what was set. The page says what the window costs: an item may reach
the patron up to that many minutes later, but only while more of their items are on the way.
"""

from __future__ import annotations

from functools import partial

import shiboken6
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from desktop.services.admin.digest_settings import (
    MAX_WINDOW_MINUTES,
    MIN_WINDOW_MINUTES,
    DigestSettings,
    load_digest_settings,
    save_digest_settings,
)
from desktop.ui.context import AppContext
from desktop.ui.widgets.colours import Tone, set_tone

#: What the window costs and when it applies, in the staff's words (also in the User Guide).
LATENCY_TEXT = (
    "A patron's ready items that reach Awaiting Customer Contact within this window go out as one e-mail or "
    "text listing them all. The cost is time: while more of the patron's items are still on their way (Request "
    "Sent or In Transit to Pickup Location), an arrival's message waits up to this many minutes for them. A "
    "patron with nothing else on the way is notified at once, and waiting items go as soon as the last one "
    "arrives. Each request is still marked Customer Notified on its own, once the message was accepted."
)


class DigestSettingsPage(QWidget):
    """The digest tab (``digestSettingsPage``)."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("digestSettingsPage")
        self.setAccessibleName("One message for many items")
        self._base: DigestSettings | None = None
        root = QVBoxLayout(self)

        self.enabledCheck = QCheckBox("Send a patron's items that arrive close &together as one message", self)
        self.enabledCheck.setObjectName("digestEnabledCheck")
        self.enabledCheck.setAccessibleName("Send items that arrive close together as one message")
        self.enabledCheck.toggled.connect(self._on_enabled_toggled)
        root.addWidget(self.enabledCheck)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.windowSpin = QSpinBox(self)
        self.windowSpin.setObjectName("digestWindowSpin")
        self.windowSpin.setAccessibleName("Longest wait for the patron's other items, in minutes")
        self.windowSpin.setRange(MIN_WINDOW_MINUTES, MAX_WINDOW_MINUTES)
        self.windowSpin.setSuffix(" minutes")
        window_label = QLabel("&Wait at most:", self)
        window_label.setBuddy(self.windowSpin)
        form.addRow(window_label, self.windowSpin)
        root.addLayout(form)

        self.explanationLabel = QLabel(LATENCY_TEXT, self)
        self.explanationLabel.setObjectName("digestExplanationLabel")
        self.explanationLabel.setWordWrap(True)
        root.addWidget(self.explanationLabel)
        root.addStretch(1)

        bottom = QHBoxLayout()
        self.statusLabel = QLabel("", self)
        self.statusLabel.setObjectName("digestStatusLabel")
        self.statusLabel.setWordWrap(True)
        self.saveButton = QPushButton("Save &digest settings", self)
        self.saveButton.setObjectName("digestSaveButton")
        self.saveButton.setAccessibleName("Save the digest settings")
        self.saveButton.setAutoDefault(False)
        self.saveButton.clicked.connect(self.save)
        bottom.addWidget(self.statusLabel, 1)
        bottom.addWidget(self.saveButton)
        root.addLayout(bottom)
        self.reload()

    # ------------------------------------------------------------------------------------------------ loading

    @Slot()
    def reload(self) -> None:
        """Read the shared settings off the GUI thread."""
        self.saveButton.setEnabled(False)
        self.ctx.run(partial(load_digest_settings, self.ctx.db), self.on_loaded, self.on_failed)

    @Slot(object)
    def on_loaded(self, loaded: object) -> None:
        """Show what was read."""
        if not shiboken6.isValid(self) or not isinstance(loaded, DigestSettings):
            return
        self._base = loaded
        self.enabledCheck.setChecked(loaded.enabled)
        self.windowSpin.setValue(loaded.window_minutes)
        self._on_enabled_toggled(loaded.enabled)
        self.saveButton.setEnabled(True)

    @Slot(object)
    def on_failed(self, error: object) -> None:
        """Say what went wrong; what was set stays."""
        if not shiboken6.isValid(self):
            return
        self.saveButton.setEnabled(self._base is not None)
        self._status(False, str(error))

    @Slot(bool)
    def _on_enabled_toggled(self, enabled: bool) -> None:
        self.windowSpin.setEnabled(enabled)

    # ------------------------------------------------------------------------------------------------ saving

    def edited(self) -> DigestSettings:
        """The settings as set on the page."""
        return DigestSettings(enabled=self.enabledCheck.isChecked(), window_minutes=self.windowSpin.value())

    @Slot()
    def save(self) -> None:
        """Store the settings for every workstation."""
        if self._base is None:
            return
        self.saveButton.setEnabled(False)
        self._status(True, "Saving…")
        job = partial(save_digest_settings, self.ctx.db, self._base, self.edited(), changed_by=self.ctx.staff_name)
        self.ctx.run(job, self.on_saved, self.on_failed)

    @Slot(object)
    def on_saved(self, saved: object) -> None:
        """Show the stored settings as the new base."""
        if not shiboken6.isValid(self) or not isinstance(saved, DigestSettings):
            return
        self._base = saved
        self.saveButton.setEnabled(True)
        self._status(True, "Saved for every workstation.")
        self.ctx.changed.emit("settings")

    def _status(self, ok: bool, message: str) -> None:
        self.statusLabel.setText(message)
        self.statusLabel.setProperty("problem", not ok)
        set_tone(self.statusLabel, None if ok else Tone.ERROR)  # readable in any palette
