"""The delivery banner (``deliveryBanner``): why e-mail notices wait, with the action that fixes it.

Shown wherever waiting notices are (Contact Customers, the request form). It reads
:func:`desktop.services.notices.delivery_health.read_health` — the verdict every System Manager records in the database,
including a headless one on a server, with the current counts — off the GUI thread: when it is shown, when any
window reports a change, after each cycle of this workstation's System Manager, and every
:data:`REFRESH_SECONDS` while visible. The buttons: Open Settings (server, password, security, From address) and
Retry now (the server was unreachable or asked to wait: waiting notices become due and the System Manager wakes).
"""

from __future__ import annotations

import functools

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QStyle, QWidget

from desktop.services.notices.delivery_health import (
    DeliveryHealth,
    HealthMessage,
    Remedy,
    explain,
    make_due_now,
    read_health,
)
from desktop.ui.admin.settings_dialog import open_settings_dialog
from desktop.ui.context import AppContext

#: Seconds between re-reads while the banner's window is shown (other workstations' System Managers).
REFRESH_SECONDS = 15
#: ``ctx.changed`` topics after which the verdict or the counts may differ.
TOPICS = frozenset({"requests", "notifications", "patrons", "settings", "delivery", "templates"})
#: The banner's frame colours: a red border is readable on light and dark palettes alike; the text keeps the
#: palette's own colour, so its contrast is the palette's.
ERROR_BORDER = "#d93025"
WARNING_BORDER = "#b26a00"


class DeliveryBanner(QFrame):
    """One line (or two) saying why notices wait, and the button that fixes it.

    Signals:
        healthChanged(object): a fresh :class:`DeliveryHealth` was read (shown or not).
    """

    healthChanged = Signal(object)

    def __init__(self, ctx: AppContext, parent: QWidget) -> None:
        super().__init__(parent)  # a parent always: shown alone it would become a window of its own
        self.ctx = ctx
        self.health: DeliveryHealth | None = None
        self.message: HealthMessage | None = None
        self._loading = False
        self._again = False
        self.relevant = True
        self.setObjectName("deliveryBanner")
        self.setAccessibleName("Why e-mail notices wait")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.icon = QLabel()
        self.icon.setObjectName("deliveryBannerIcon")
        self.label = QLabel()
        self.label.setObjectName("deliveryBannerLabel")
        self.label.setAccessibleName("Why e-mail notices wait")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.settings_button = QPushButton("Open &Settings…")
        self.settings_button.setObjectName("deliveryBannerSettingsButton")
        self.settings_button.setAccessibleName("Open Settings to fix e-mail sending")
        self.settings_button.setAutoDefault(False)
        self.settings_button.clicked.connect(self.on_open_settings)
        self.retry_button = QPushButton("Retry &now")
        self.retry_button.setObjectName("deliveryBannerRetryButton")
        self.retry_button.setAccessibleName("Retry sending e-mail notices now")
        self.retry_button.setAutoDefault(False)
        self.retry_button.clicked.connect(self.on_retry_now)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 6, 8, 6)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.label, 1)
        row.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.retry_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()
        # Runs while the banner exists (it dies with its window; the context stops it at shutdown).
        self._timer = ctx.timer(self, REFRESH_SECONDS * 1000, self.on_timer, name="deliveryBannerTimer")
        self._timer.start()
        ctx.changed.connect(self.on_changed)
        ctx.settingsChanged.connect(self.on_settings_changed)
        ctx.databaseChanged.connect(self.refresh)
        self.refresh()

    def text(self) -> str:
        """What the banner says (``""`` while hidden)."""
        return self.label.text() if self.message is not None else ""

    # --- reading ----------------------------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        """Read the verdict and counts again (a refresh asked for meanwhile follows the running one)."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        handle = self.ctx.run(functools.partial(read_health, self.ctx.db), self.on_health, self.on_health_failed)
        if handle.cancelled:
            self._loading = False

    def on_health(self, health: DeliveryHealth) -> None:
        """Show (or hide) the banner for ``health``."""
        self._loading = False
        self.health = health
        self.show_message(explain(health))
        self.healthChanged.emit(health)
        if self._again:
            self._again = False
            self.refresh()

    def on_health_failed(self, _error: object) -> None:
        """The database cannot be read: the window's own error says so; keep what is shown."""
        self._loading = False
        self._again = False

    def set_relevant(self, relevant: bool) -> None:
        """Whether the host shows waiting notices now (the request form: only when its e-mail waits)."""
        self.relevant = relevant
        if self.health is not None:
            self.show_message(explain(self.health))

    def show_message(self, message: HealthMessage | None) -> None:
        """Put ``message`` on the banner with the button of its remedy; ``None`` hides it."""
        self.message = message if self.relevant else None
        if self.message is None or message is None:
            self.label.clear()
            self.hide()
            return
        self.label.setText(message.text)
        self.setToolTip(message.text + (f"\n\n{self.health.detail}" if self.health and self.health.detail else ""))
        pixmap = (
            QStyle.StandardPixmap.SP_MessageBoxWarning
            if message.error
            else QStyle.StandardPixmap.SP_MessageBoxInformation
        )
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(self.style().standardIcon(pixmap).pixmap(size, size))
        border = ERROR_BORDER if message.error else WARNING_BORDER
        base = self.palette().color(QPalette.ColorRole.Base).name()
        self.setStyleSheet(
            f"QFrame#deliveryBanner {{ border: 2px solid {border}; border-radius: 4px; background: {base}; }}"
        )
        self.settings_button.setVisible(message.remedy is Remedy.SETTINGS)
        self.retry_button.setVisible(message.remedy is Remedy.RETRY)
        self.setAccessibleDescription(message.text)
        self.show()

    # --- triggers ---------------------------------------------------------------------------------------------
    @Slot(str)
    def on_changed(self, topic: str) -> None:
        """A window or the System Manager changed something that may change the verdict or the counts."""
        if topic in TOPICS:
            self.refresh()

    @Slot(object)
    def on_settings_changed(self, _settings: object) -> None:
        """New settings (a server, a password): the next cycle will tell; read again now."""
        self.refresh()

    @Slot()
    def on_timer(self) -> None:
        """Periodic re-read for other workstations' System Managers, only while the window is on screen."""
        if self.window().isVisible():
            self.refresh()

    # --- actions ----------------------------------------------------------------------------------------------
    @Slot()
    def on_open_settings(self) -> None:
        """Open this workstation's Settings (SMTP server, password, security, From address)."""
        open_settings_dialog(self.ctx, self.window())

    @Slot()
    def on_retry_now(self) -> None:
        """Make waiting notices due now and wake the System Manager."""
        self.retry_button.setEnabled(False)
        self.label.setText("Retrying now…")
        self.ctx.run(functools.partial(make_due_now, self.ctx.db), self.on_retry_queued, self.on_retry_queued)

    def on_retry_queued(self, _result: object) -> None:
        """Notices are due: the System Manager tries at once (this workstation's, or the server's next poll)."""
        self.retry_button.setEnabled(True)
        self.ctx.request_send_now()
        self.ctx.changed.emit("notifications")
