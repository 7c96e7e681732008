"""Settings never moves a workstation by surprise (issue 13, item 6): the dialog shows the database actually open
(one given with ``--database`` included), Save changes the database only when staff changed it and then asks,
naming both, and Test Connection tests what is shown. Real SQLite files, the real dialog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import Settings, config_path, load_settings, save_settings
from desktop.db.engine import sqlite_url
from desktop.services.database import Database, open_database
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.context import AppContext
from tests.test_settings_dialog import _confirm_switch


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    """The database the settings file names (it exists, with data of its own)."""
    path = tmp_path / "configured.sqlite3"
    db, _ = open_database(sqlite_url(path))
    db.dispose()
    save_settings(Settings(database_url=sqlite_url(path), staff_name="tester"))
    yield path


@pytest.fixture
def started_with_database(sqlite_db: Database, configured: Path) -> Iterator[AppContext]:
    """A workstation started with ``--database db_path`` while the settings file names ``configured``."""
    context = AppContext(sqlite_db, load_settings())
    yield context
    context.shutdown()


def _dialog(qtbot: QtBot, ctx: AppContext) -> SettingsDialog:
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    return dialog


def test_the_dialog_shows_the_database_actually_open(
    qtbot: QtBot, started_with_database: AppContext, db_path: Path, configured: Path
) -> None:
    dialog = _dialog(qtbot, started_with_database)
    try:
        assert dialog.sqlitePathEdit.text() == str(db_path)
        note = dialog.databaseNoteLabel.text()
        assert dialog.databaseNoteLabel.isVisibleTo(dialog)
        assert str(db_path) in note and str(configured) in note
        dialog.testDatabaseButton.click()  # tests what is shown: the open database, not the configured one
        qtbot.waitUntil(lambda: dialog.testDatabaseButton.isEnabled(), timeout=10_000)
        assert str(db_path) in dialog.databaseResultLabel.text() or "✔" in dialog.databaseResultLabel.text()
        assert str(configured) not in dialog.databaseResultLabel.text()
    finally:
        dialog.done(0)


def test_save_without_touching_the_database_keeps_both_where_they_are(
    qtbot: QtBot, started_with_database: AppContext, sqlite_db: Database, configured: Path
) -> None:
    dialog = _dialog(qtbot, started_with_database)
    dialog.smtpHostEdit.setText("smtp.riverside.example.edu")
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: dialog.saved_settings is not None, timeout=10_000)
    assert dialog.switch_box is None  # nothing to ask: the database did not change
    assert started_with_database.db is sqlite_db  # still the database given with --database
    saved = load_settings()
    assert saved.smtp_host == "smtp.riverside.example.edu"
    assert saved.database_url == sqlite_url(configured)  # the settings file still names its own database


def test_changing_the_database_asks_naming_both_and_cancel_changes_nothing(
    qtbot: QtBot, started_with_database: AppContext, sqlite_db: Database, db_path: Path, tmp_path: Path
) -> None:
    before = config_path().read_bytes()
    dialog = _dialog(qtbot, started_with_database)
    try:
        other = tmp_path / "elsewhere.sqlite3"
        dialog.sqlitePathEdit.setText(str(other))
        dialog.saveButton.click()
        question = _confirm_switch(qtbot, dialog, accept=False)
        assert f"from {db_path} to {other}" in question and "does not exist yet" in question
        qtbot.waitUntil(lambda: "not switched" in dialog.errorLabel.text(), timeout=5000)
        assert started_with_database.db is sqlite_db and not other.exists()
        assert config_path().read_bytes() == before and dialog.saved_settings is None
    finally:
        dialog.done(0)


def test_a_demo_workstation_saves_nothing(qtbot: QtBot, sqlite_db: Database, settings: Settings) -> None:
    ctx = AppContext(sqlite_db, settings, demo=True)
    dialog = _dialog(qtbot, ctx)
    try:
        assert not dialog.saveButton.isEnabled() and "Demo mode" in dialog.errorLabel.text()
    finally:
        dialog.done(0)
        ctx.shutdown()
