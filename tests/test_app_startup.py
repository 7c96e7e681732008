"""``callslip`` at start-up: demo stays demo (issue 13, item 4) and a database that cannot be opened is said, not
guessed (item 5): a missing file is never created silently, and staff get a page to fix it instead of an exit.
Real SQLite files, the real SMTP sink, the real windows; ``--screenshot`` runs as a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.app import _open_window, create_main_window, demo_database_path, main
from desktop.config import Settings, default_database_path, load_settings
from desktop.db.engine import Database, sqlite_url
from desktop.db.models import Patron
from desktop.domain.statuses import Status
from desktop.services.admin.database_problems import DatabaseMissingError
from desktop.services.admin.demo import DemoRefusedError
from desktop.services.database import open_database
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.admin.startup_problem import StartupProblemDialog
from desktop.ui.main_window import MainWindow
from tests.outbox_support import add_patron, add_request
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_setup_identity import ROOT

__all__ = ["smtp_sink"]


def close(window: MainWindow) -> None:
    window.close()
    window.ctx.db.dispose()


@pytest.fixture
def real_library(tmp_path: Path) -> Path:
    """A production database: one real patron with a request waiting for its e-mail."""
    path = tmp_path / "production.sqlite3"
    db, _ = open_database(sqlite_url(path))
    try:
        add_request(db, add_patron(db, email="real@example.edu"), status=Status.AWAITING_CUSTOMER_CONTACT)
    finally:
        db.dispose()
    return path


def patrons(path: Path) -> int:
    db = Database(sqlite_url(path))
    try:
        with db.read() as session:
            return int(session.scalar(select(func.count(Patron.id))) or 0)
    finally:
        db.dispose()


def test_demo_never_opens_the_configured_database_nor_its_smtp_server(
    qtbot: QtBot, real_library: Path, smtp_sink: SmtpSink
) -> None:
    configured = Settings(
        database_url=sqlite_url(real_library), smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, staff_name="t"
    )
    window = create_main_window(None, configured, demo=True)
    try:
        assert Path(window.ctx.db.display_name) == demo_database_path()
        assert window.ctx.settings.smtp_host == "" and window.ctx.demo
    finally:
        close(window)
    assert patrons(real_library) == 1 and not smtp_sink.messages


def test_demo_refuses_a_database_with_real_records(qtbot: QtBot, real_library: Path) -> None:
    with pytest.raises(DemoRefusedError, match="did not create"):
        create_main_window(str(real_library), Settings(staff_name="t"), demo=True)
    assert patrons(real_library) == 1


def run_module(module: str, *args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` offscreen with no real keyring, ``env`` changed (None removes a variable);
    fails the test unless it exits 0."""
    child = os.environ | {"QT_QPA_PLATFORM": "offscreen", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    for name, value in env.items():
        if value is None:
            child.pop(name, None)
        else:
            child[name] = value
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=180, env=child, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    return done


def test_screenshot_uses_a_demo_database_and_sends_nothing(
    tmp_path: Path, real_library: Path, smtp_sink: SmtpSink
) -> None:
    picture = tmp_path / "shot.png"
    configured = {
        "CALLSLIP_DATABASE_URL": sqlite_url(real_library),
        "CALLSLIP_SMTP_HOST": smtp_sink.host,
        "CALLSLIP_SMTP_PORT": str(smtp_sink.port),
        "CALLSLIP_SMTP_FROM": "ill@example.edu",
    }
    run_module("desktop", "--screenshot", str(picture), env=configured)
    assert picture.stat().st_size > 10_000
    assert not smtp_sink.messages  # the configured server was never used
    assert patrons(real_library) == 1  # the configured database was never filled with demo data


def _exit_probe(*args: str) -> dict[str, object]:
    """``main(args)`` in a fresh process (tests/exit_probe.py): what it left for the interpreter's exit."""
    done = run_module("tests.exit_probe", *args, env={"PYTHONFAULTHANDLER": None})  # main() turns it on itself
    result = json.loads(done.stdout.splitlines()[-1])
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize("start", ["screenshot", "interactive"])
def test_callslip_deletes_its_windows_and_stops_its_threads_before_the_interpreter_exits(
    tmp_path: Path, start: str
) -> None:
    """Left to the exit, PySide6 deletes whatever Qt objects Python still owns in no fixed order while Python is
    torn down (a screenshot run once ended there in a segfault under load): main() must leave none."""
    if start == "screenshot":
        args = ["--screenshot", str(tmp_path / "shot.png")]
    else:  # staff close the main window of an interactive demo start
        args = ["--demo", "--database", str(tmp_path / "demo.sqlite3")]
    result = _exit_probe(*args)
    assert result == {"code": 0, "python_owned": [], "widgets": 0, "threads": [], "crash_traces": True}


def test_a_missing_configured_file_is_refused_and_nothing_created(qtbot: QtBot, tmp_path: Path) -> None:
    typo = tmp_path / "typo" / "libary.sqlite3"
    with pytest.raises(DatabaseMissingError, match="init-db"):
        create_main_window(None, Settings(database_url=sqlite_url(typo)))
    with pytest.raises(DatabaseMissingError):
        create_main_window(str(typo), Settings())
    assert not typo.parent.exists()


def test_a_first_start_with_no_configuration_creates_the_default_database(qtbot: QtBot) -> None:
    assert not default_database_path().exists()
    window = create_main_window(None, Settings(run_poller=False))
    try:
        assert default_database_path().exists()
    finally:
        close(window)


def _answer(button: str) -> None:
    """Press ``button`` on the start-up page once it is shown (it runs its own event loop)."""

    def press() -> None:
        pages = [w for w in QApplication.topLevelWidgets() if isinstance(w, StartupProblemDialog) and w.isVisible()]
        if not pages:
            QTimer.singleShot(20, press)
            return
        _answer.shown.append(pages[0].messageLabel.text())  # type: ignore[attr-defined]
        pages[0].findChild(object, button).click()  # type: ignore[union-attr]

    QTimer.singleShot(0, press)


_answer.shown = []  # type: ignore[attr-defined]


def test_the_start_up_page_offers_to_create_a_missing_file(qtbot: QtBot, tmp_path: Path) -> None:
    missing = tmp_path / "new-branch.sqlite3"
    args = argparse.Namespace(database=str(missing), demo=False, screenshot=None)
    _answer.shown.clear()  # type: ignore[attr-defined]
    _answer("createDatabaseButton")
    window = _open_window(args, Settings(run_poller=False), interactive=True)
    assert isinstance(window, MainWindow)
    try:
        [shown] = _answer.shown  # type: ignore[attr-defined]
        assert str(missing) in shown and "does not exist" in shown
        assert Path(window.ctx.db.display_name) == missing and missing.exists()
    finally:
        close(window)


def test_a_database_error_opens_the_page_in_plain_words_instead_of_exiting(qtbot: QtBot, tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.sqlite3"
    not_a_db.write_text("not a database\n" * 500, encoding="utf-8")
    args = argparse.Namespace(database=str(not_a_db), demo=False, screenshot=None)
    _answer.shown.clear()  # type: ignore[attr-defined]
    _answer("quitButton")
    assert _open_window(args, Settings(run_poller=False), interactive=True) == 1
    [shown] = _answer.shown  # type: ignore[attr-defined]
    assert shown.startswith(f"The file {not_a_db} is not a Callslip database")
    assert "DatabaseError" not in shown and "sqlalche.me" not in shown


def test_settings_from_the_start_up_page_opens_the_chosen_database(
    qtbot: QtBot, tmp_path: Path, real_library: Path
) -> None:
    """Staff fix the mistyped path in Settings; Save opens the right database and the main window follows."""
    typo = tmp_path / "libary.sqlite3"
    args = argparse.Namespace(database=None, demo=False, screenshot=None)
    settings = Settings(database_url=sqlite_url(typo), run_poller=False, staff_name="t")

    def fix_settings() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, SettingsDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(20, fix_settings)
            return
        dialog = dialogs[0]
        assert dialog.sqlitePathEdit.text() == str(typo)  # it shows the database that failed
        dialog.sqlitePathEdit.setText(str(real_library))
        dialog.saveButton.click()
        QTimer.singleShot(20, confirm)

    def confirm() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, SettingsDialog) and w.isVisible()]
        box = dialogs[0].switch_box if dialogs else None
        if box is None:
            QTimer.singleShot(20, confirm)
            return
        box.findChild(object, "switchDatabaseButton").click()  # type: ignore[union-attr]

    _answer.shown.clear()  # type: ignore[attr-defined]
    _answer("startupSettingsButton")
    QTimer.singleShot(50, fix_settings)
    window = _open_window(args, settings, interactive=True)
    assert isinstance(window, MainWindow)
    try:
        assert Path(window.ctx.db.display_name) == real_library and not typo.exists()
        assert load_settings().database_url == sqlite_url(real_library)
    finally:
        close(window)


def test_the_window_refuses_a_password_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    picture = tmp_path / "shot.png"
    assert main(["--database", "postgresql://ill:hunter2@127.0.0.1/callslip", "--screenshot", str(picture)]) == 1
    err = capsys.readouterr().err
    assert "must not contain a password" in err and "keyring" in err and "hunter2" not in err
    assert not picture.exists()
