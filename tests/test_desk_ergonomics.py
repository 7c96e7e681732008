"""Issue 21, at the desk all day: every window readable in a light and a dark palette, walkable with the keyboard,
free of duplicate mnemonics, on the screen at 100 % and 200 %, and every shortcut in the User Guide.

Each check opens every main window for real (tests/window_walk.py) and measures what Qt shows: text colours from
the widgets' palettes (which style sheets feed), backgrounds from the rendered window, focus targets from the
focus chain Tab walks.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QModelIndex, QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QImage, QKeySequence, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QGroupBox,
    QLabel,
    QListView,
    QScrollArea,
    QStackedWidget,
    QStyleFactory,
    QTableView,
    QTabWidget,
    QToolButton,
    QWidget,
)
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.services.database import Database
from desktop.services.notices.template_admin import TemplateProblem
from desktop.ui.main_window import MainWindow
from desktop.ui.navigation import Window
from desktop.ui.widgets.colours import MINIMUM_CONTRAST, TONE_PROPERTY, Tone, contrast_ratio, readable, set_tone
from desktop.ui.widgets.focus import before
from desktop.ui.widgets.key_tips import KEY_TIP_PROPERTY
from tests.main_window_helpers import close_window, open_window
from tests.screen_fit_probe import EXTRA_WINDOWS
from tests.window_walk import TEMPLATE_EDITOR, TITLES, close_every_window, open_every_window, shortcuts

ROOT = Path(__file__).resolve().parent.parent


def dark_palette() -> QPalette:
    """A dark palette like the ones desktop themes ship (Fusion's roles, dark window and base)."""
    palette = QPalette()
    window, base, text = QColor("#2b2b2b"), QColor("#1e1e1e"), QColor("#e8e8e8")
    for role, colour in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor("#262626")),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor("#353535")),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, QColor("#a0a0a0")),
        (QPalette.ColorRole.Highlight, QColor("#2f65ca")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
        (QPalette.ColorRole.Link, QColor("#8ab4f8")),
    ):
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#8a8a8a"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#8a8a8a"))
    return palette


def light_palette() -> QPalette:
    """Fusion's own light palette (the one the issue measured the ribbon captions against)."""
    style = QStyleFactory.create("Fusion")
    assert style is not None
    return style.standardPalette()


@pytest.fixture(params=["light", "dark"])
def palette_name(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[str]:
    """The application palette for the test; the previous one comes back afterwards."""
    previous = QApplication.palette()
    QApplication.setPalette(light_palette() if request.param == "light" else dark_palette())
    yield str(request.param)
    QApplication.setPalette(previous)


@pytest.fixture
def every_window(qtbot: QtBot, seeded_db: Database, settings: Settings) -> Iterator[dict[str, QWidget]]:
    """The main window and every window it opens, loaded."""
    main = open_window(qtbot, seeded_db, settings)
    windows = open_every_window(main, seeded_db, lambda done: qtbot.waitUntil(done, timeout=10_000))
    yield windows
    close_every_window(windows)
    close_window(main)


def _inside_scroll_area(widget: QWidget, window: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _rendered_background(image: QImage, rect: QRect) -> QColor:
    """The colour most pixels of ``rect`` have in the rendered window (the background the text is drawn on)."""
    counts: Counter[int] = Counter()
    ratio = image.devicePixelRatio()
    for y in range(rect.top(), rect.bottom() + 1, 2):
        for x in range(rect.left(), rect.right() + 1, 2):
            px, py = int(x * ratio), int(y * ratio)
            if 0 <= px < image.width() and 0 <= py < image.height():
                counts[image.pixel(px, py)] += 1
    assert counts, f"nothing rendered at {rect}"
    return QColor.fromRgb(counts.most_common(1)[0][0])


def _text_colour(widget: QWidget) -> QColor:
    group = QPalette.ColorGroup.Active if widget.isEnabled() else QPalette.ColorGroup.Disabled
    return widget.palette().color(group, widget.foregroundRole())


# --- 1. contrast -----------------------------------------------------------------------------------------------


def _show_every_message(windows: dict[str, QWidget]) -> None:
    """Put each window's status, error and warning texts on screen, the way the windows themselves do."""
    main = windows["main"]
    assert isinstance(main, MainWindow)
    main.workspace.error_label.setText("Could not read the database: it is locked.")
    main.workspace.error_banner.show()
    form = windows["request"]
    form._show_message("Not saved: the due date is not a date.", error=True)  # type: ignore[attr-defined]
    windows["contact_customers"].show_message("Print failed: no printer.", error=True)  # type: ignore[attr-defined]
    settings = windows["settings"]
    settings._show(settings.databaseResultLabel, False, "Could not connect.")  # type: ignore[attr-defined]
    settings._show(settings.smtpResultLabel, True, "Connected.")  # type: ignore[attr-defined]
    settings.errorLabel.setText("Nothing was saved.")  # type: ignore[attr-defined]
    importer = windows["import_csv"]
    importer._show_summary(False, "Nothing was imported.")  # type: ignore[attr-defined]
    editor = windows[TEMPLATE_EDITOR]
    editor._show_problems([TemplateProblem("body", "'dict object' has no attribute 'frist_name'", 3)])  # type: ignore[attr-defined]
    QApplication.processEvents()


def test_every_status_text_is_readable_in_light_and_dark(
    palette_name: str, every_window: dict[str, QWidget], qtbot: QtBot
) -> None:
    _show_every_message(every_window)
    failures: list[str] = []
    measured = 0
    for name, window in every_window.items():
        window.repaint()
        image = window.grab().toImage()
        for label in window.findChildren(QLabel):
            if (
                label.window() is not window
                or not label.isVisible()
                or not label.text().strip()
                or not label.isEnabled()
            ):
                continue
            label.ensurePolished()
            rect = QRect(label.mapTo(window, QPoint(0, 0)), label.size()).intersected(window.rect())
            if rect.isEmpty():
                continue
            ratio = contrast_ratio(_text_colour(label), _rendered_background(image, rect))
            measured += 1
            if ratio < MINIMUM_CONTRAST:
                failures.append(f"{name}: {label.objectName() or label.text()[:30]!r} {ratio:.1f}:1")
        for widget in window.findChildren(QWidget):
            tone = widget.property(TONE_PROPERTY)
            if not tone or widget.window() is not window:
                continue
            widget.ensurePolished()
            palette = widget.palette()
            role = QPalette.ColorRole.Base if isinstance(widget, QAbstractItemView) else widget.backgroundRole()
            background = palette.color(role)
            parent = widget.parentWidget()
            while background.alpha() == 0 and parent is not None:
                background, parent = parent.palette().color(parent.backgroundRole()), parent.parentWidget()
            role = QPalette.ColorRole.Text if isinstance(widget, QAbstractItemView) else widget.foregroundRole()
            ratio = contrast_ratio(palette.color(role), background)
            measured += 1
            if ratio < MINIMUM_CONTRAST:
                failures.append(f"{name}: {widget.objectName()!r} ({tone}) {ratio:.1f}:1")
        for view in window.findChildren(QAbstractItemView):
            if view.window() is window:
                measured += len(_item_colours(view, name, failures))
    assert measured > 100
    assert not failures, f"{palette_name} palette: " + "; ".join(failures)


def _as_colour(value: object) -> QColor | None:
    if isinstance(value, QBrush):
        return value.color()
    return value if isinstance(value, QColor) else None


def _item_colours(view: QAbstractItemView, name: str, failures: list[str]) -> list[float]:
    """Contrast of the cells that set their own text or background colour (warnings, deleted templates, holds
    ending soon) against what the view draws around them; the first 200 rows."""
    model = view.model()
    if model is None:
        return []
    palette = view.palette()
    ratios = []
    columns = 1 if isinstance(view, QListView) else model.columnCount(QModelIndex())
    for row in range(min(model.rowCount(QModelIndex()), 200)):
        for column in range(columns):
            index = model.index(row, column)
            text = _as_colour(model.data(index, Qt.ItemDataRole.ForegroundRole))
            background = _as_colour(model.data(index, Qt.ItemDataRole.BackgroundRole))
            if text is None and background is None:
                continue
            grounds = (
                [background]
                if background is not None
                else [palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.AlternateBase)]
            )
            for ground in grounds:
                ratio = contrast_ratio(text or palette.color(QPalette.ColorRole.Text), ground)
                ratios.append(ratio)
                if ratio < MINIMUM_CONTRAST:
                    failures.append(f"{name}: {view.objectName()} row {row} column {column} {ratio:.1f}:1")
    return ratios


@pytest.mark.parametrize("background", ["#ffffff", "#f0f0f0", "#2b2b2b", "#1e1e1e", "#000000", "#7f7f7f"])
@pytest.mark.parametrize("tone", list(Tone))
def test_tones_reach_four_and_a_half_to_one_on_any_background(tone: Tone, background: str, qapp: QApplication) -> None:
    widget = QWidget()
    palette = widget.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(background))
    widget.setPalette(palette)
    label = QLabel("text", widget)
    set_tone(label, tone)
    label.ensurePolished()
    assert contrast_ratio(label.palette().color(label.foregroundRole()), QColor(background)) >= MINIMUM_CONTRAST
    assert contrast_ratio(readable(QColor("#ffff00"), QColor(background)), QColor(background)) >= MINIMUM_CONTRAST


# --- 2. keyboard -----------------------------------------------------------------------------------------------


def focus_targets(window: QWidget) -> list[QWidget]:
    """What Tab visits in ``window``, in order, from the window itself round the focus chain."""
    targets: list[QWidget] = []
    widget = window.nextInFocusChain()
    while widget is not window and widget is not None and len(targets) < 2000:
        if (
            widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            and widget.isVisible()
            and widget.isEnabled()
            and widget.focusProxy() is None
        ):
            targets.append(widget)
        widget = widget.nextInFocusChain()
    return targets


def _branch(widget: QWidget, ancestor: QWidget) -> QWidget:
    """The child of ``ancestor`` that holds ``widget`` (or is it)."""
    while widget.parentWidget() is not ancestor:
        parent = widget.parentWidget()
        assert parent is not None
        widget = parent
    return widget


def _common_ancestor(first: QWidget, second: QWidget) -> QWidget:
    chain = []
    widget: QWidget | None = first
    while widget is not None:
        chain.append(widget)
        widget = widget.parentWidget()
    widget = second
    while widget is not None and widget not in chain:
        widget = widget.parentWidget()
    assert widget is not None
    return widget


def focus_problems(name: str, window: QWidget) -> list[str]:
    """Hidden, stray or out-of-order focus targets of ``window``."""
    problems: list[str] = []
    targets = focus_targets(window)
    for widget in targets:
        label = f"{name}: {widget.objectName() or type(widget).__name__}"
        if widget.window() is not window:
            problems.append(f"{label} is in another window")
            continue
        if isinstance(widget, QScrollArea):
            problems.append(f"{label} is a scroll area: focus on it shows nothing")
        if isinstance(widget, QTableView) and widget.tabKeyNavigation():
            problems.append(f"{label}: Tab never leaves the table")
        rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        if not _inside_scroll_area(widget, window) and not window.rect().intersects(rect):
            problems.append(f"{label} is outside the window")
    for first, second in itertools.pairwise(targets):
        if first.isAncestorOf(second) or second.isAncestorOf(first):
            continue
        common = _common_ancestor(first, second)
        a, b = _branch(first, common), _branch(second, common)
        if isinstance(common, QTabWidget) or a is b:
            continue
        if before(b.geometry(), a.geometry()) < 0:
            problems.append(
                f"{name}: Tab goes from {first.objectName() or type(first).__name__} back to "
                f"{second.objectName() or type(second).__name__}, above or left of it"
            )
    return problems


def test_tab_walks_every_window_in_reading_order(every_window: dict[str, QWidget]) -> None:
    problems = [problem for name, window in every_window.items() for problem in focus_problems(name, window)]
    assert not problems, "\n".join(problems)


def test_contact_card_starts_on_a_field_and_tabs_through_its_lines_before_close(
    every_window: dict[str, QWidget], qtbot: QtBot
) -> None:
    card = every_window["contact_card"]
    card.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None and QApplication.focusWidget().window() is card)
    focused = QApplication.focusWidget()
    assert not isinstance(focused, QScrollArea)
    names = [w.objectName() for w in focus_targets(card)]
    assert names.index("closeContactCardButton") > max(
        i for i, n in enumerate(names) if n in {"valueEdit", "countryEdit"}
    )


def test_f6_moves_between_the_main_windows_panes(qtbot: QtBot, every_window: dict[str, QWidget]) -> None:
    main = every_window["main"]
    assert isinstance(main, MainWindow)
    main.activateWindow()
    main.ribbon.tabBar().setFocus()
    seen = []
    for _ in range(4):
        main.focus_next_pane()
        seen.append(main.focusWidget())
    workspace = main.workspace
    assert seen == [workspace.queue_tree, workspace.filter_edit, workspace.table, main.ribbon.tabBar()]
    main.focus_previous_pane()
    assert main.focusWidget() is workspace.table
    assert main.next_pane_action.shortcut() == QKeySequence("F6")


def _mnemonics(window: QWidget) -> Counter[str]:
    keys: Counter[str] = Counter()

    def note(text: str) -> None:
        match = re.search(r"&([^&\s])", text.replace("&&", ""))
        if match:
            keys[match.group(1).lower()] += 1

    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or widget.window() is not window:
            continue
        if isinstance(widget, QAbstractButton) or (isinstance(widget, QLabel) and widget.buddy() is not None):
            note(widget.text())
        elif isinstance(widget, QGroupBox):
            note(widget.title())
        elif isinstance(widget, QTabWidget):
            for index in range(widget.count()):
                note(widget.tabText(index))
    return keys


def _duplicate_mnemonics(window: QWidget) -> set[str]:
    """Alt+letters used twice among widgets shown together, page by page of every stacked widget and tab."""
    found = {f"Alt+{key.upper()}" for key, count in _mnemonics(window).items() if count > 1}
    for stack in window.findChildren(QStackedWidget):
        if stack.window() is not window or not stack.isVisible():
            continue
        shown = stack.currentIndex()
        for index in range(stack.count()):
            stack.setCurrentIndex(index)
            found |= {f"Alt+{key.upper()}" for key, count in _mnemonics(window).items() if count > 1}
        stack.setCurrentIndex(shown)
    return found


def test_no_window_has_duplicate_mnemonics(every_window: dict[str, QWidget]) -> None:
    duplicates = {name: sorted(_duplicate_mnemonics(window)) for name, window in every_window.items()}
    assert not {name: keys for name, keys in duplicates.items() if keys}


def test_ribbon_buttons_name_their_shortcut(every_window: dict[str, QWidget]) -> None:
    main = every_window["main"]
    assert isinstance(main, MainWindow)
    for name in ("settingsAction", "duplicatesAction", "importCsvAction", "customizationManagerAction",
                 "locationsAction"):  # fmt: skip
        action = next(a for a in main.actions() if a.objectName() == name)
        assert not action.shortcut().isEmpty(), name
        assert action.shortcut().toString(QKeySequence.SequenceFormat.NativeText) in action.toolTip()


# --- 5. every shortcut in the User Guide ----------------------------------------------------------------------


def guide_shortcuts() -> dict[str, str]:
    """The User Guide's "Keyboard shortcuts" chapter, section by section (window title → its text)."""
    text = (ROOT / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    chapter = text.split("\n## Keyboard shortcuts\n", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"\n### ", "\n" + chapter)
    return {section.split("\n", 1)[0].strip(): section for section in sections[1:]}


def test_user_guide_lists_every_shortcut(every_window: dict[str, QWidget]) -> None:
    guide = guide_shortcuts()
    missing = []
    for name, window in every_window.items():
        section = guide.get(TITLES[name], "")
        for keys, what in sorted(shortcuts(window).items()):
            if f"`{keys}`" not in section:
                missing.append(f"{TITLES[name]}: | `{keys}` | {what} |")
    assert not missing, "\n".join(missing)


# --- 3. screen fit ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["1", "2"])
def test_every_window_opens_on_the_screen(scale: str, tmp_path: Path) -> None:
    """A 1920×1200 screen at 100 % and 200 % (960×600 device-independent pixels): every window all on it."""
    config = tmp_path / "screen.json"
    screen = {"name": "desk", "x": 0, "y": 0, "width": 1920, "height": 1200, "logicalDpi": 96, "dpr": 1}
    config.write_text(json.dumps({"screens": [screen]}), encoding="utf-8")
    env = dict(os.environ, QT_SCALE_FACTOR=scale, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.screen_fit_probe", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    area = QRect(*report["available"])
    assert area.width() == 1920 // int(scale)
    off = {name: rect for name, rect in report["windows"].items() if not area.contains(QRect(*rect))}
    assert len(report["windows"]) == len(TITLES) + len(EXTRA_WINDOWS)
    assert not off, f"windows not on the {area} screen: {off}"
    assert not report["clipped"], f"buttons outside their window: {report['clipped']}"


def test_a_changed_field_is_tinted_and_its_text_readable(
    palette_name: str, every_window: dict[str, QWidget], qtbot: QtBot
) -> None:
    form = every_window["request"]
    edit = form.edits["call_number"]  # type: ignore[attr-defined]
    before_tint = edit.palette().color(QPalette.ColorRole.Base)
    edit.setFocus()
    edit.end(False)
    qtbot.keyClicks(edit, " x")
    qtbot.waitUntil(lambda: edit.property("unsaved") is True)
    palette = edit.palette()
    assert palette.color(QPalette.ColorRole.Base) != before_tint
    ratio = contrast_ratio(palette.color(QPalette.ColorRole.Text), palette.color(QPalette.ColorRole.Base))
    assert ratio >= MINIMUM_CONTRAST, f"{palette_name}: {ratio:.1f}:1"


# --- 6. ribbon key tips ----------------------------------------------------------------------------------------


def _tap_alt(window: QWidget) -> None:
    """Press and release Alt alone, where the keyboard focus is (as a keyboard does)."""
    target = QApplication.focusWidget() or window
    QTest.keyPress(target, Qt.Key.Key_Alt, Qt.KeyboardModifier.AltModifier)
    QTest.keyRelease(target, Qt.Key.Key_Alt)


def _type(window: QWidget, key: Qt.Key) -> None:
    QTest.keyClick(QApplication.focusWidget() or window, key)


def _letter(main: MainWindow, button: QAbstractButton, *, menu: bool = False) -> str:
    return next(tip.letter for tip in main.key_tips.tips.values() if tip.button is button and tip.menu is menu)


def _shown_badges(main: MainWindow) -> dict[str, QLabel]:
    return {
        str(badge.property(KEY_TIP_PROPERTY)): badge
        for badge in main.findChildren(QLabel)
        if badge.property(KEY_TIP_PROPERTY) and badge.isVisible()
    }


def test_alt_shows_a_readable_badge_over_every_ribbon_button_and_tab(
    palette_name: str, qtbot: QtBot, seeded_db: Database, settings: Settings
) -> None:
    main = open_window(qtbot, seeded_db, settings)
    try:
        main.workspace.table.setFocus()
        assert not _shown_badges(main)
        _tap_alt(main)
        badges = _shown_badges(main)
        page = main.ribbon.currentWidget()
        buttons = [b for b in page.findChildren(QToolButton) if b.isVisible()]
        assert len(buttons) >= 9
        targets = {tip.button for tip in main.key_tips.tips.values() if tip.button is not None}
        assert targets == set(buttons)
        # one badge per button, one more for the split button's menu half, one per tab; every letter different
        assert len(badges) == len(buttons) + 1 + main.ribbon.count() == len(main.key_tips.tips)
        tab_letters = {"B", "Y"}  # the tabs' own mnemonics (&Borrowing, S&ystem): Alt+B and Alt+Y stay theirs
        assert {tip.letter for tip in main.key_tips.tips.values() if tip.tab is not None} == tab_letters
        assert not {tip.letter for tip in main.key_tips.tips.values() if tip.button is not None} & tab_letters
        image = main.grab().toImage()
        for letter, badge in badges.items():
            # over its button, on the window, and readable: its text against the background it paints
            rect = QRect(badge.mapTo(main, QPoint(0, 0)), badge.size())
            assert main.rect().contains(rect), letter
            inner = rect.adjusted(2, 2, -2, -2)
            ratio = contrast_ratio(
                badge.palette().color(QPalette.ColorRole.WindowText), _rendered_background(image, inner)
            )
            assert ratio >= MINIMUM_CONTRAST, f"{palette_name}: key tip {letter} {ratio:.1f}:1"
        refresh = _shown_badges(main)[_letter(main, main.refresh_button)]
        centre = refresh.mapTo(main, refresh.rect().center())
        assert QRect(main.refresh_button.mapTo(main, QPoint(0, 0)), main.refresh_button.size()).contains(centre)
        _type(main, Qt.Key.Key_Escape)
        assert not _shown_badges(main)
        assert not main.key_tips.visible
    finally:
        close_window(main)


def test_a_key_tip_letter_presses_its_button(qtbot: QtBot, seeded_db: Database, settings: Settings) -> None:
    main = open_window(qtbot, seeded_db, settings)
    try:
        main.workspace.table.setFocus()
        _tap_alt(main)
        letter = _letter(main, main.refresh_button)
        assert letter == "R"  # &Refresh: the letter its action underlines
        with qtbot.waitSignal(main.refresh_action.triggered, timeout=5_000):
            _type(main, getattr(Qt.Key, f"Key_{letter}"))
        assert not main.key_tips.visible  # pressed: the badges go
        qtbot.waitUntil(lambda: not main.ctx.runner.busy)
        # the split button's menu half has a letter of its own, and opens the menu
        main.workspace.table.setFocus()
        _tap_alt(main)
        menu_letter = _letter(main, main.contact_button, menu=True)
        assert menu_letter != _letter(main, main.contact_button)
        shown: list[bool] = []

        def close_menu() -> None:  # the menu runs a loop of its own: closed from inside it
            shown.append(main.contact_menu.isVisible())
            main.contact_menu.close()

        main.contact_menu.aboutToShow.connect(lambda: QTimer.singleShot(0, close_menu))
        QTest.keyClick(main.workspace.table, getattr(Qt.Key, f"Key_{menu_letter}"))
        qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
        assert shown == [True]
        assert not main.key_tips.visible
        # Down while the letters show opens the split button's menu too; Alt again hides the letters
        main.workspace.table.setFocus()
        _tap_alt(main)
        _type(main, Qt.Key.Key_Down)
        qtbot.waitUntil(lambda: len(shown) == 2, timeout=5_000)
        assert shown == [True, True] and not main.key_tips.visible
        main.workspace.table.setFocus()
        _tap_alt(main)
        assert main.key_tips.visible
        _tap_alt(main)
        assert not main.key_tips.visible and not _shown_badges(main)
        # F10 shows them too; a tab's letter opens that tab and shows its buttons' letters
        main.workspace.table.setFocus()
        _type(main, Qt.Key.Key_F10)
        assert main.key_tips.visible
        _type(main, Qt.Key.Key_Y)
        assert main.ribbon.currentIndex() == 1
        system_buttons = {tip.button for tip in main.key_tips.tips.values() if tip.button is not None}
        assert system_buttons == set(main.ribbon.currentWidget().findChildren(QToolButton))
        # a letter with no badge does nothing (the badges stay); a click hides them
        free = next(c for c in "QXZJKWV" if c not in main.key_tips.tips)
        _type(main, getattr(Qt.Key, f"Key_{free}"))
        assert main.key_tips.visible
        QTest.mouseClick(main.workspace.queue_tree.viewport(), Qt.MouseButton.LeftButton)
        assert not main.key_tips.visible
    finally:
        main.ribbon.setCurrentIndex(0)
        close_window(main)


def test_alt_with_a_letter_still_opens_the_tab_and_shows_no_key_tips(
    qtbot: QtBot, seeded_db: Database, settings: Settings
) -> None:
    main = open_window(qtbot, seeded_db, settings)
    try:
        main.workspace.table.setFocus()
        target = QApplication.focusWidget() or main
        QTest.keyPress(target, Qt.Key.Key_Alt, Qt.KeyboardModifier.AltModifier)
        QTest.keyClick(target, Qt.Key.Key_Y, Qt.KeyboardModifier.AltModifier)
        QTest.keyRelease(target, Qt.Key.Key_Alt)
        assert main.ribbon.currentIndex() == 1
        assert not main.key_tips.visible
        assert not _shown_badges(main)
    finally:
        main.ribbon.setCurrentIndex(0)
        close_window(main)


# --- 7. the palette changes while windows are open -------------------------------------------------------------


def test_status_colours_follow_a_palette_switched_while_the_windows_are_open(
    qtbot: QtBot, seeded_db: Database, settings: Settings
) -> None:
    """Light at start, dark in the evening: the ribbon captions (muted tone), the Contact Customers message banner
    and the request list's error banner are measured against what is drawn after the switch."""
    previous = QApplication.palette()
    QApplication.setPalette(light_palette())
    main = open_window(qtbot, seeded_db, settings)
    try:
        contact = main.open(Window.CONTACT_CUSTOMERS)
        qtbot.waitUntil(lambda: not main.ctx.runner.busy)
        contact.show_message("Print failed: no printer.", error=True)
        main.workspace.error_label.setText("Could not read the database: it is locked.")
        main.workspace.error_banner.show()
        caption = next(label for label in main.findChildren(QLabel) if label.objectName() == "ribbonCaption")
        labels = {"caption": (main, caption), "message": (contact, contact.message_label),
                  "error": (main, main.workspace.error_label)}  # fmt: skip

        def worst() -> tuple[float, str]:
            ratios = []
            for name, (window, label) in labels.items():
                window.repaint()
                image = window.grab().toImage()
                rect = QRect(label.mapTo(window, QPoint(0, 0)), label.size()).adjusted(1, 1, -1, -1)
                ratios.append((contrast_ratio(_text_colour(label), _rendered_background(image, rect)), name))
            return min(ratios)

        assert worst()[0] >= MINIMUM_CONTRAST
        QApplication.setPalette(dark_palette())
        QApplication.processEvents()  # the new palette reaches every widget; the colours follow on the next turn
        QApplication.processEvents()
        ratio, name = worst()
        assert ratio >= MINIMUM_CONTRAST, f"{name}: {ratio:.1f}:1 after the switch to dark"
        QApplication.setPalette(light_palette())
        QApplication.processEvents()
        QApplication.processEvents()
        ratio, name = worst()
        assert ratio >= MINIMUM_CONTRAST, f"{name}: {ratio:.1f}:1 back in light"
        contact.close()
    finally:
        QApplication.setPalette(previous)
        close_window(main)


# --- 8. no slow work inside the main window's constructor (the stall probe measures the rest: bench/ui_stalls.py)


def test_the_main_window_sends_its_first_reads_after_its_constructor(
    qtbot: QtBot, seeded_db: Database, settings: Settings
) -> None:
    from desktop.ui.context import AppContext

    window = MainWindow(AppContext(seeded_db, settings.with_changes(run_poller=False)))
    try:
        assert not window.ctx.runner.busy and window.workspace.snapshot is None  # built, nothing asked yet
        window.show()
        qtbot.waitUntil(lambda: window.workspace.snapshot is not None and not window.ctx.runner.busy)
        assert gc.get_freeze_count() > 0  # start-up's objects are out of the full collections' walk
    finally:
        close_window(window)
