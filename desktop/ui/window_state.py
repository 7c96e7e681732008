"""Where windows remember their size and place: one helper for every window and dialog.

Kept apart from any one window because every window uses it: when it lived in the template editor and the main
window, the Contact Card, patron record and search imported those windows only for it, and the imports went round
in a circle.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QWidget

from desktop.config import config_path


def window_state_settings() -> QSettings:
    """Where window geometry is remembered: beside the user's settings file (per user, per test)."""
    return QSettings(str(config_path().with_name("window-state.ini")), QSettings.Format.IniFormat)


def restore_geometry(widget: QWidget, key: str) -> None:
    """Put ``widget`` where it was last time (dialogs remember their geometry, per user)."""
    geometry = window_state_settings().value(key)
    if isinstance(geometry, QByteArray):
        widget.restoreGeometry(geometry)


def save_geometry(widget: QWidget, key: str) -> None:
    """Remember where ``widget`` is, for :func:`restore_geometry`."""
    window_state_settings().setValue(key, widget.saveGeometry())
