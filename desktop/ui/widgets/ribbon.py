"""A ribbon like ILLiad's: tabs of grouped, large tool buttons with the group's caption underneath.

A :class:`QTabWidget` of :class:`RibbonGroup` rows is all it takes; each button is a :class:`QToolButton` bound to a
:class:`QAction`, so shortcuts, tooltips and enabled state live in one place (the action). Key tips (Alt or F10,
then a letter per button) are :mod:`desktop.ui.widgets.key_tips`, which reads the buttons this module lays out.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QTabWidget, QToolButton, QVBoxLayout, QWidget

from desktop.ui.widgets.colours import Tone, set_tone

ICON_SIZE = QSize(32, 32)


def ribbon_button(action: QAction, object_name: str) -> QToolButton:
    """A large text-under-icon button that triggers ``action`` and mirrors its state.

    Its tooltip names the action's shortcut, so the mouse teaches the keyboard (key tips give every button a
    letter as well: :mod:`desktop.ui.widgets.key_tips`).
    """
    keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
    if keys and keys not in action.toolTip():
        action.setToolTip(f"{action.toolTip() or action.text().replace('&', '')} ({keys})")
    button = QToolButton()
    button.setObjectName(object_name)
    button.setDefaultAction(action)
    button.setAccessibleName(action.text().replace("&", ""))
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
    button.setIconSize(ICON_SIZE)
    button.setAutoRaise(True)
    button.setMinimumWidth(76)
    button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
    return button


class RibbonGroup(QFrame):
    """Buttons side by side with a caption below, separated from the next group by a line."""

    def __init__(self, caption: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._row = QHBoxLayout()
        self._row.setSpacing(2)
        self._row.setContentsMargins(0, 0, 0, 0)
        label = QLabel(caption)
        label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        label.setObjectName("ribbonCaption")
        # Muted like a ribbon caption, but readable: the disabled text colour was 1.6:1 in the light palette.
        set_tone(label, Tone.MUTED)
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 2, 4, 0)
        box.setSpacing(0)
        box.addLayout(self._row, 1)
        box.addWidget(label)

    def add(self, button: QToolButton) -> QToolButton:
        """Append a button to the group."""
        self._row.addWidget(button)
        return button


class RibbonPage(QWidget):
    """One ribbon tab: groups from left to right, separated by vertical lines."""

    def __init__(self, object_name: str, accessible_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAccessibleName(accessible_name)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(2, 2, 2, 2)
        self._layout.setSpacing(4)
        self._layout.addStretch(1)

    def add_group(self, caption: str) -> RibbonGroup:
        """A new group at the right end."""
        if self._layout.count() > 1:
            line = QFrame()
            line.setFrameShape(QFrame.Shape.VLine)
            line.setFrameShadow(QFrame.Shadow.Sunken)
            self._layout.insertWidget(self._layout.count() - 1, line)
        group = RibbonGroup(caption)
        self._layout.insertWidget(self._layout.count() - 1, group)
        return group


class Ribbon(QTabWidget):
    """The ribbon: a tab bar of :class:`RibbonPage`; as tall as its buttons, never stretched."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ribbon")
        self.setAccessibleName("Ribbon")
        self.setDocumentMode(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def add_page(self, page: RibbonPage, title: str) -> RibbonPage:
        """Add a tab."""
        self.addTab(page, title)
        return page
