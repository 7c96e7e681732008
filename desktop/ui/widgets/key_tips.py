"""Office-style key tips for the ribbon: press and release Alt (or press F10) and a small badge with a letter
appears over each ribbon tab and button; typing a letter presses that button (or opens that tab and shows its
buttons' letters), Esc, a click or leaving the window hides them.

Why a letter per button and not Alt+letter: the ribbon's buttons carry Ctrl shortcuts already, and Alt+letter is
taken by the tabs' own mnemonics (Alt+B still opens Borrowing as before). So a tab's badge shows its mnemonic
letter, and buttons get the other letters: first the letter their action underlines, then the next letter of
their text that is free, then any free letter. A split button (Contact Customers) gets a second letter for its
menu half, and Down while the badges show opens the menu of the split button that has the keyboard focus.

Kept apart from :mod:`ribbon` because it watches the whole application's keyboard (an application event
filter, for the main window only) while the ribbon only lays out buttons.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QTabWidget, QToolButton, QWidget

from desktop.ui.widgets.colours import key_tip_colours

#: The dynamic property marking a badge (tests find them by it).
KEY_TIP_PROPERTY = "keyTip"


@dataclass(frozen=True)
class KeyTip:
    """One badge's target: a tab to open, a button to press, or a split button's menu to open."""

    letter: str
    tab: int | None = None
    button: QToolButton | None = None
    menu: bool = False


def _mnemonic(text: str) -> str:
    """The letter ``text`` underlines (``"S&ystem"`` → ``"Y"``), or ``""``."""
    at = text.replace("&&", "").find("&")
    cleaned = text.replace("&&", "")
    return cleaned[at + 1].upper() if 0 <= at < len(cleaned) - 1 and cleaned[at + 1].isalnum() else ""


def _choose(text: str, taken: set[str]) -> str:
    """A letter for ``text`` not in ``taken``: its mnemonic, else the next letter of its text, else any letter."""
    candidates = [_mnemonic(text)] + [c.upper() for c in text.replace("&", "") if c.isalpha()]
    candidates += list(string.ascii_uppercase + string.digits)
    letter = next(c for c in candidates if c and c not in taken)
    taken.add(letter)
    return letter


class KeyTips(QObject):
    """The key tips of one :class:`QTabWidget` ribbon whose pages hold :class:`QToolButton` s.

    Attributes:
        tips: the badges' targets shown now, by letter (empty while hidden).
        badges: the badge labels shown now (children of the ribbon's window).
    """

    def __init__(self, ribbon: QTabWidget) -> None:
        super().__init__(ribbon)
        self.ribbon = ribbon
        self.tips: dict[str, KeyTip] = {}
        self.badges: list[QLabel] = []
        self._alt_alone = False
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)  # taken off by Qt when this object goes with its ribbon

    # -- what is shown

    @property
    def visible(self) -> bool:
        """Whether the badges are up."""
        return bool(self.tips)

    def tab_letters(self) -> dict[str, int]:
        """Each tab's letter (its mnemonic, or a free letter) → tab index."""
        taken: set[str] = set()
        return {_choose(self.ribbon.tabText(i), taken): i for i in range(self.ribbon.count())}

    def page_tips(self) -> list[KeyTip]:
        """The current page's buttons' tips; letters used by the tabs are left to the tabs."""
        taken = set(self.tab_letters())
        page = self.ribbon.currentWidget()
        tips: list[KeyTip] = []
        if page is None:
            return tips
        for button in self._buttons(page):
            action = button.defaultAction()
            text = action.text() if action is not None else button.text()
            tips.append(KeyTip(_choose(text, taken), button=button))
            if button.menu() is not None and button.popupMode() == QToolButton.ToolButtonPopupMode.MenuButtonPopup:
                first_item = next((a.text() for a in button.menu().actions() if a.text()), "")
                tips.append(KeyTip(_choose(first_item, taken), button=button, menu=True))
        return tips

    @staticmethod
    def _buttons(page: QWidget) -> list[QToolButton]:
        """The page's visible buttons from left to right (reading order, so letters read as the buttons do)."""
        buttons = [b for b in page.findChildren(QToolButton) if b.isVisibleTo(page)]
        return sorted(buttons, key=lambda b: (b.mapTo(page, QPoint(0, 0)).x(), b.mapTo(page, QPoint(0, 0)).y()))

    def show_tips(self) -> None:
        """Put a badge over every tab and every button of the current page."""
        self.hide_tips()
        window = self.ribbon.window()
        bar = self.ribbon.tabBar()
        for letter, index in self.tab_letters().items():
            rect = bar.tabRect(index)
            self.tips[letter] = KeyTip(letter, tab=index)
            self._badge(letter, bar.mapTo(window, QPoint(rect.center().x(), rect.bottom())), True)
        for tip in self.page_tips():
            self.tips[tip.letter] = tip
            button = tip.button
            assert button is not None
            x = button.width() - 6 if tip.menu else button.width() // 2
            self._badge(tip.letter, button.mapTo(window, QPoint(x, button.height() - 4)), button.isEnabled())

    def _badge(self, letter: str, anchor: QPoint, enabled: bool) -> None:
        """A small badge centred on ``anchor`` (window coordinates), in palette-checked colours."""
        window = self.ribbon.window()
        badge = QLabel(letter, window)
        badge.setObjectName(f"keyTip{letter}")
        badge.setProperty(KEY_TIP_PROPERTY, letter)
        badge.setAccessibleName(f"Key tip {letter}")
        badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        badge.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        text, background, border = key_tip_colours(window, enabled)
        palette = badge.palette()
        palette.setColor(QPalette.ColorRole.WindowText, text)
        palette.setColor(QPalette.ColorRole.Window, background)
        badge.setPalette(palette)
        badge.setAutoFillBackground(True)
        badge.setStyleSheet(
            f"QLabel {{ color: {text.name()}; background: {background.name()}; border: 1px solid {border.name()};"
            " border-radius: 2px; padding: 0px 3px; font-weight: bold; }"
        )
        badge.adjustSize()
        side = max(badge.width(), badge.height())
        badge.resize(side, badge.height())
        badge.move(anchor - QPoint(side // 2, badge.height() // 2))
        badge.show()
        badge.raise_()
        self.badges.append(badge)

    def hide_tips(self) -> None:
        """Take every badge away."""
        self.tips = {}
        for badge in self.badges:
            badge.hide()
            badge.deleteLater()
        self.badges = []

    # -- what a key does

    def press(self, letter: str) -> bool:
        """Act on a typed letter while the badges show; ``False`` when no badge has it (the badges stay)."""
        tip = self.tips.get(letter.upper())
        if tip is None:
            return False
        if tip.tab is not None:  # a tab: open it and show its buttons' letters
            self.ribbon.setCurrentIndex(tip.tab)
            self.show_tips()
            return True
        self.hide_tips()
        button = tip.button
        if button is None or not button.isEnabled():
            return True
        if tip.menu:
            QTimer.singleShot(0, button, button.showMenu)  # its own loop, not in this filter; gone with the button
        else:
            button.click()
        return True

    def open_focused_menu(self) -> bool:
        """Down: open the menu of the split button with the focus (the first split button when none has it)."""
        page = self.ribbon.currentWidget()
        splits = [b for b in self._buttons(page) if b.menu() is not None] if page is not None else []
        focused = next((b for b in splits if b.hasFocus()), splits[0] if splits else None)
        if focused is None or not focused.isEnabled():
            return False
        self.hide_tips()
        QTimer.singleShot(0, focused, focused.showMenu)  # dropped if the window goes first
        return True

    def _ours(self, watched: QObject) -> bool:
        return isinstance(watched, QWidget) and watched.window() is self.ribbon.window()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Alt pressed and released alone (or F10) toggles the badges; while they show, letters, Down and Esc act
        and every other key or a click hides them. Only the ribbon's window is watched."""
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride, QEvent.Type.KeyRelease) and isinstance(
            event, QKeyEvent
        ):
            if not self._ours(watched):
                return False
            return self._key(event)
        if not self.tips:
            return False
        window = self.ribbon.window()
        clicked = kind in (QEvent.Type.MouseButtonPress, QEvent.Type.Wheel) and self._ours(watched)
        if clicked or (kind == QEvent.Type.WindowDeactivate and watched is window):
            self.hide_tips()
        elif kind == QEvent.Type.Resize and watched is window:
            self.show_tips()  # the buttons moved: the badges follow
        return False

    def _key(self, event: QKeyEvent) -> bool:
        key = event.key()
        kind = event.type()
        plain = not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier & ~Qt.KeyboardModifier.ShiftModifier)
        if key == Qt.Key.Key_Alt:
            # Only flags on the press, the toggle on the release: an unhandled key event is offered to each parent
            # in turn, so this filter may see one key event several times.
            if kind == QEvent.Type.KeyPress and not event.isAutoRepeat():
                self._alt_alone = True
            elif kind == QEvent.Type.KeyRelease and self._alt_alone:
                self._alt_alone = False
                if self.tips:
                    self.hide_tips()
                else:
                    self.show_tips()
            return False
        if kind != QEvent.Type.KeyRelease:
            self._alt_alone = False  # Alt+letter: a mnemonic, not key tips
        if not self.tips:
            if key == Qt.Key.Key_F10 and plain and kind == QEvent.Type.KeyPress:
                self.show_tips()
                return True
            return False
        if kind == QEvent.Type.KeyRelease:
            return False
        if kind == QEvent.Type.ShortcutOverride:  # the badges take the key before any shortcut does
            event.accept()
            return True
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_F10):
            self.hide_tips()
            return True
        if key == Qt.Key.Key_Down and self.open_focused_menu():
            return True
        text = event.text().strip()
        if plain and len(text) == 1 and text.isalnum() and self.press(text):
            return True
        if plain and len(text) == 1:
            return True  # a letter with no badge: nothing happens, the badges stay (as in Office)
        self.hide_tips()
        return False
