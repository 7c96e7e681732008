"""An interactive start (issue 22, start-up): the "Opening database …" window is painted before the database is
opened, the database opens on a worker thread, and the main window replaces it; a database that cannot be opened
still gets the start-up page. Real SQLite files, real windows (offscreen)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.app import InteractiveStart, build_parser
from desktop.config import Settings
from desktop.db.engine import sqlite_url
from desktop.services.database import open_database
from desktop.ui.main_window import MainWindow
from desktop.ui.threads import running_threads
from tests.test_app_startup import _answer


def _start(database: Path, exits: list[int] | None = None) -> InteractiveStart:
    args = build_parser().parse_args(["--database", str(database)])
    return InteractiveStart(args, Settings(run_poller=False), exit_app=(exits if exits is not None else []).append)


def _finish(start: InteractiveStart) -> None:
    if start.window is not None:
        start.window.close()
        start.window.ctx.db.dispose()


def test_the_window_is_painted_before_the_database_is_opened(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    db, _ = open_database(sqlite_url(path))
    db.dispose()
    start = _start(path)
    at_first_paint: list[tuple[bool, bool, str, str]] = []
    opening = start.opening
    opening.firstPainted.connect(
        lambda: at_first_paint.append(
            (start._runner is None, start.window is None, opening.status.text(), opening.database.text())
        )
    )
    start.begin()
    try:
        qtbot.waitUntil(lambda: isinstance(start.window, MainWindow) and start.window.isVisible(), timeout=60_000)
        # Nothing was opened yet when it was painted, and it named the database.
        assert at_first_paint == [(True, True, "Opening database …", str(path))]
        visible = [w.objectName() for w in QApplication.topLevelWidgets() if w.isVisible()]
        assert "openingWindow" not in visible  # replaced by the main window
        assert "callslip-start-up" not in running_threads()  # the start-up worker is stopped once open
        assert start.window is not None and Path(start.window.ctx.db.display_name) == path
    finally:
        _finish(start)


def test_a_missing_file_gets_the_start_up_page_then_opens(qtbot: QtBot, tmp_path: Path) -> None:
    missing = tmp_path / "new-branch.sqlite3"
    start = _start(missing)
    _answer.shown.clear()  # type: ignore[attr-defined]
    _answer("createDatabaseButton")
    start.begin()
    try:
        qtbot.waitUntil(lambda: isinstance(start.window, MainWindow) and start.window.isVisible(), timeout=60_000)
        [shown] = _answer.shown  # type: ignore[attr-defined]
        assert str(missing) in shown and "does not exist" in shown
        assert missing.exists() and start.exit_code is None
    finally:
        _finish(start)


def test_quit_on_the_start_up_page_ends_with_exit_code_1(qtbot: QtBot, tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.sqlite3"
    not_a_db.write_text("not a database\n" * 500, encoding="utf-8")
    exits: list[int] = []
    start = _start(not_a_db, exits)
    _answer.shown.clear()  # type: ignore[attr-defined]
    _answer("quitButton")
    start.begin()
    qtbot.waitUntil(lambda: start.exit_code is not None, timeout=60_000)
    assert start.exit_code == 1 and exits == [1] and start.window is None
    [shown] = _answer.shown  # type: ignore[attr-defined]
    assert shown.startswith(f"The file {not_a_db} is not a Callslip database")
    assert "callslip-start-up" not in running_threads()
