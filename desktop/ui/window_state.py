"""Where windows remember their size and place: one helper for every window and dialog.

Every window also goes through :func:`fit_to_screen`: sizes chosen for a 1920×1080 screen at 100 % (the main
window's 1280×780, Contact Customers' 1180×760) put buttons off-screen at 200 % on a 1920×1200 display, where
Qt has only 960×600 device-independent pixels to offer.

Kept apart from any one window because every window uses it: when it lived in the template editor and the main
window, the Contact Card, patron record and search imported those windows only for it, and the imports went round
in a circle.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QObject, QRect, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget


def window_state_settings() -> QSettings:
    """Where window geometry is remembered: beside the user's settings file (per user, per test)."""
    # Imported here so the opening window, painted before anything but Qt is loaded, can fit itself too.
    from desktop.config import config_path

    return QSettings(str(config_path().with_name("window-state.ini")), QSettings.Format.IniFormat)


def restore_geometry(widget: QWidget, key: str) -> None:
    """Put ``widget`` where it was last time (dialogs remember their geometry, per user)."""
    geometry = window_state_settings().value(key)
    if isinstance(geometry, QByteArray):
        widget.restoreGeometry(geometry)
    keep_on_screen(widget)


def keep_on_screen(widget: QWidget) -> None:
    """Fit ``widget`` (a window) to its screen now and, if it is not shown yet, again once it is shown (then its
    frame is known): for windows that remember no geometry (the opening window, start-up and import dialogs)."""
    fit_to_screen(widget)
    if not widget.isVisible():
        widget.installEventFilter(_FitOnShow(widget))


def save_geometry(widget: QWidget, key: str) -> None:
    """Remember where ``widget`` is, for :func:`restore_geometry`."""
    window_state_settings().setValue(key, widget.saveGeometry())


def _placed(widget: QWidget) -> bool:
    """Whether ``widget``, not shown yet, was given a position (else the window manager will choose one)."""
    # Imported here: the first use of PySide6's Qt namespace builds all its enums (~40 ms), and the opening
    # window, painted before anything else, fits itself without it (it needs no move to fit a screen).
    from PySide6.QtCore import Qt

    return widget.testAttribute(Qt.WidgetAttribute.WA_Moved)


class _FitOnShow(QObject):
    """Fits its parent window to the screen the first time it is shown, then removes itself."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """On the first Show: fit, and stop watching."""
        if event.type() == QEvent.Type.Show and isinstance(watched, QWidget):
            watched.removeEventFilter(self)
            fit_to_screen(watched)
            self.deleteLater()
        return False


def available_geometry(widget: QWidget) -> QRect:
    """The part of ``widget``'s screen (the primary one before it is placed) that windows may use."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry()


def fit_to_screen(widget: QWidget) -> None:
    """Shrink and move ``widget`` (a window) so that all of it, frame included, lies on its screen's available
    area; a window that already fits is left alone. Works before and after the window is shown (before, the
    frame is not known yet and only the size is fitted)."""
    area = available_geometry(widget)
    frame = widget.frameGeometry()
    extra_width = max(frame.width() - widget.width(), 0)
    extra_height = max(frame.height() - widget.height(), 0)
    width = min(widget.width(), area.width() - extra_width)
    height = min(widget.height(), area.height() - extra_height)
    if widget.minimumWidth() > width:
        widget.setMinimumWidth(width)
    if widget.minimumHeight() > height:
        widget.setMinimumHeight(height)
    if (width, height) != (widget.width(), widget.height()):
        widget.resize(width, height)
    frame = widget.frameGeometry()
    if not area.contains(frame) and (widget.isVisible() or _placed(widget)):
        left = max(area.left(), min(frame.left(), area.right() - frame.width() + 1))
        top = max(area.top(), min(frame.top(), area.bottom() - frame.height() + 1))
        if (left, top) != (frame.left(), frame.top()):
            widget.move(left, top)
