"""The Settings dialog against real servers: SMTP Test connection at a local STARTTLS+AUTH server and at a closed
port, database Test connection on SQLite files and PostgreSQL, saving (keyring only for passwords: the config file
and the database never hold them) and switching databases without a restart."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.errors import KeyringError
from pytestqt.qtbot import QtBot
from sqlalchemy import MetaData, select, text

from desktop.config import DATABASE_KEYRING_SERVICE, SMTP_KEYRING_SERVICE, config_path, load_settings
from desktop.db.engine import sqlite_url
from desktop.secrets import smtp_account
from desktop.services.database import Database, open_database
from desktop.services.notices.templates import default_templates
from desktop.ui.admin.settings_dialog import STORED_PLACEHOLDER, SettingsDialog, open_settings_dialog
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx  # noqa: F401
from tests.conftest import MemoryKeyring
from tests.smtp_sink import SmtpSink, free_port

SMTP_PASSWORD = "smtp-Pa55word-never-on-disk"
DB_PASSWORD = "db-Pa55word-never-on-disk"


@pytest.fixture
def dialog(qtbot: QtBot, ctx: AppContext) -> Iterator[SettingsDialog]:
    window = SettingsDialog(ctx)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.done(0)


@pytest.fixture
def auth_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tls="starttls", credentials=("u", "pw"), cert_dir=tmp_path).start()
    yield sink
    sink.stop()


def _wait(qtbot: QtBot, dialog: SettingsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.busy, timeout=20_000)


def _confirm_switch(qtbot: QtBot, dialog: SettingsDialog, *, accept: bool = True) -> str:
    """Answer the question Save asks before switching databases; returns its text."""
    qtbot.waitUntil(lambda: dialog.switch_box is not None and dialog.switch_box.isVisible(), timeout=5000)
    box = dialog.switch_box
    assert box is not None
    question = box.text()
    if accept:
        box.findChild(object, "switchDatabaseButton").click()  # type: ignore[union-attr]
    else:
        box.reject()
    return question


def _fill_smtp(dialog: SettingsDialog, sink_port: int, password: str) -> None:
    dialog.smtpHostEdit.setText("127.0.0.1")
    dialog.smtpPortSpin.setValue(sink_port)
    dialog.smtpSecurityCombo.setCurrentIndex(dialog.smtpSecurityCombo.findData("starttls"))
    dialog.smtpUserEdit.setText("u")
    dialog.smtpPasswordEdit.setText(password)


def test_object_names_and_current_values(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, sqlite_db: Database
) -> None:
    assert dialog.objectName() == "settingsDialog"
    for name in ("testDatabaseButton", "testSmtpButton", "saveSettingsButton", "sqlitePathEdit", "smtpHostEdit"):
        widget = dialog.findChild(object, name)
        assert widget is not None and widget.accessibleName(), name  # type: ignore[attr-defined]
    assert dialog.sqliteRadio.isChecked()
    assert dialog.phoneRegionCombo.currentText() == "US"
    assert dialog.smtpPasswordEdit.text() == ""
    qtbot.waitUntil(lambda: dialog.pgPasswordEdit.placeholderText() == "none stored", timeout=10_000)


def test_stored_passwords_are_announced_never_shown(
    qtbot: QtBot, ctx: AppContext, memory_keyring: MemoryKeyring
) -> None:
    """The keyring is asked off the GUI thread; the form says a password is stored without showing it."""
    settings = ctx.settings.with_changes(smtp_host="mail.example.org", smtp_username="ill")
    ctx.apply_settings(settings)
    memory_keyring.set_password(SMTP_KEYRING_SERVICE, smtp_account(settings), "hunter2")
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    try:
        qtbot.waitUntil(lambda: dialog.smtpPasswordEdit.placeholderText() == STORED_PLACEHOLDER, timeout=10_000)
        assert dialog.smtpPasswordEdit.text() == ""
        assert dialog.pgPasswordEdit.placeholderText() == "none stored"
    finally:
        dialog.done(0)


def test_smtp_test_connection_right_password(qtbot: QtBot, ctx: AppContext, auth_sink: SmtpSink) -> None:
    dialog = SettingsDialog(ctx, ssl_context=auth_sink.client_context())
    qtbot.addWidget(dialog)
    _fill_smtp(dialog, auth_sink.port, "pw")
    dialog.testSmtpButton.click()
    _wait(qtbot, dialog)
    result = dialog.smtpResultLabel.text()
    assert result.startswith("✔"), result
    assert "TLS" in result and "logged in as 'u'" in result
    assert auth_sink.messages == []  # a test sends nothing
    dialog.done(0)


def test_smtp_test_connection_wrong_password(qtbot: QtBot, ctx: AppContext, auth_sink: SmtpSink) -> None:
    dialog = SettingsDialog(ctx, ssl_context=auth_sink.client_context())
    qtbot.addWidget(dialog)
    _fill_smtp(dialog, auth_sink.port, SMTP_PASSWORD)
    dialog.testSmtpButton.click()
    _wait(qtbot, dialog)
    result = dialog.smtpResultLabel.text()
    assert result.startswith("✖") and "refused the user name or password" in result
    assert SMTP_PASSWORD not in result
    dialog.done(0)


def test_smtp_test_connection_closed_port(qtbot: QtBot, dialog: SettingsDialog) -> None:
    dialog.smtpHostEdit.setText("127.0.0.1")
    dialog.smtpPortSpin.setValue(free_port())
    dialog.testSmtpButton.click()
    _wait(qtbot, dialog)
    result = dialog.smtpResultLabel.text()
    assert result.startswith("✖") and "cannot connect" in result


def test_smtp_test_uses_the_stored_password_when_the_field_is_empty(
    qtbot: QtBot, ctx: AppContext, auth_sink: SmtpSink, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.set_password(SMTP_KEYRING_SERVICE, "u@127.0.0.1", "pw")
    dialog = SettingsDialog(ctx, ssl_context=auth_sink.client_context())
    qtbot.addWidget(dialog)
    _fill_smtp(dialog, auth_sink.port, "")
    dialog.testSmtpButton.click()
    _wait(qtbot, dialog)
    assert dialog.smtpResultLabel.text().startswith("✔"), dialog.smtpResultLabel.text()
    dialog.done(0)


def test_database_test_on_sqlite_files(
    qtbot: QtBot, dialog: SettingsDialog, db_path: Path, sqlite_db: Database, tmp_path: Path
) -> None:
    dialog.sqlitePathEdit.setText(str(db_path))
    dialog.testDatabaseButton.click()
    _wait(qtbot, dialog)
    assert dialog.databaseResultLabel.text().startswith("✔ Reached")

    newer = tmp_path / "newer.sqlite3"
    other, _ = open_database(sqlite_url(newer))
    with other.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    other.dispose()
    dialog.sqlitePathEdit.setText(str(newer))
    dialog.testDatabaseButton.click()
    _wait(qtbot, dialog)
    result = dialog.databaseResultLabel.text()
    assert result.startswith("✖") and "newer" in result


def test_database_test_postgres_unreachable(qtbot: QtBot, dialog: SettingsDialog) -> None:
    dialog.postgresRadio.setChecked(True)
    dialog.pgHostEdit.setText("127.0.0.1")
    dialog.pgPortSpin.setValue(free_port())
    dialog.pgDatabaseEdit.setText("callslip")
    dialog.pgUserEdit.setText("ill")
    dialog.pgPasswordEdit.setText(DB_PASSWORD)
    dialog.testDatabaseButton.click()
    _wait(qtbot, dialog)
    result = dialog.databaseResultLabel.text()
    assert result.startswith("✖ Cannot reach ill@127.0.0.1") and DB_PASSWORD not in result


def _fill_postgres(dialog: SettingsDialog, url: str) -> None:
    from desktop.services.admin.connection_check import split_database_url

    form = split_database_url(url)
    dialog.postgresRadio.setChecked(True)
    dialog.pgHostEdit.setText(form.host)
    dialog.pgPortSpin.setValue(form.port)
    dialog.pgDatabaseEdit.setText(form.database)
    dialog.pgUserEdit.setText(form.user)


@pytest.mark.postgres
def test_database_test_postgres_reached(qtbot: QtBot, dialog: SettingsDialog, pg_db: Database, pg_url: str) -> None:
    _fill_postgres(dialog, pg_url)
    dialog.testDatabaseButton.click()
    _wait(qtbot, dialog)
    assert dialog.databaseResultLabel.text().startswith("✔ Reached"), dialog.databaseResultLabel.text()


def _everything_stored(db: Database) -> str:
    """Every value of every table, as one string (to look for a password in it)."""
    metadata = MetaData()
    metadata.reflect(db.engine)
    parts = []
    with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            parts.extend(repr(tuple(row)) for row in conn.execute(select(table)))
    return "\n".join(parts)


def _files_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_saving_passwords_keeps_them_out_of_files_and_database(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, db_path: Path, memory_keyring: MemoryKeyring
) -> None:
    applied: list[object] = []
    ctx.settingsChanged.connect(applied.append)
    _fill_smtp(dialog, 2525, SMTP_PASSWORD)
    dialog.smtpFromEdit.setText("ill@library.example.org")
    dialog.runPollerCheck.setChecked(False)
    dialog.webBaseUrlEdit.setText("https://patrons.library.example.org/reset?token=")
    dialog.phoneRegionCombo.setCurrentText("ca")
    dialog.staffNameEdit.setText("Grace")
    dialog.sqlitePathEdit.setText(str(db_path))  # the database in use: nothing to reopen
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: dialog.saved_settings is not None)

    assert memory_keyring.store[(SMTP_KEYRING_SERVICE, "u@127.0.0.1")] == SMTP_PASSWORD
    saved = load_settings()
    assert (saved.smtp_host, saved.smtp_port, saved.smtp_security, saved.smtp_username) == (
        "127.0.0.1",
        2525,
        "starttls",
        "u",
    )
    assert (saved.run_poller, saved.phone_region, saved.staff_name) == (False, "CA", "Grace")
    assert saved.web_base_url == "https://patrons.library.example.org/reset?token="
    assert ctx.settings == saved and applied == [saved]
    assert ctx.staff_name == "Grace"

    assert SMTP_PASSWORD.encode() not in config_path().read_bytes()
    assert SMTP_PASSWORD.encode() not in _files_bytes(db_path)
    assert SMTP_PASSWORD not in _everything_stored(ctx.db)


def test_bad_input_is_refused_and_kept(qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext) -> None:
    before = ctx.settings
    dialog.phoneRegionCombo.setCurrentText("Canada")
    dialog.smtpHostEdit.setText("smtp.example.org")
    dialog.saveButton.click()
    assert "phone_region" in dialog.errorLabel.text()
    assert dialog.isVisible() and dialog.smtpHostEdit.text() == "smtp.example.org"
    assert not config_path().exists() and ctx.settings == before
    dialog.phoneRegionCombo.setCurrentText("US")
    dialog.webBaseUrlEdit.setText("library.example.org/reset")
    dialog.saveButton.click()
    assert "https://" in dialog.errorLabel.text() and not config_path().exists()


def test_switching_to_another_sqlite_file_reopens_without_restart(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, tmp_path: Path
) -> None:
    switched: list[bool] = []
    ctx.databaseChanged.connect(lambda: switched.append(True))
    target = tmp_path / "branch" / "branch.sqlite3"
    dialog.sqlitePathEdit.setText(str(target))
    dialog.saveButton.click()
    question = _confirm_switch(qtbot, dialog)
    assert str(target) in question and "does not exist yet" in question
    qtbot.waitUntil(lambda: dialog.saved_settings is not None, timeout=20_000)
    assert switched == [True]
    assert ctx.db.backend == "sqlite" and Path(ctx.db.display_name) == target.resolve()
    assert target.exists()
    assert load_settings().database_url == sqlite_url(target)
    with ctx.db.read() as session:  # the new database is set up (templates, reference data)
        assert session.execute(text("SELECT count(*) FROM notice_templates")).scalar() == len(default_templates())


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files through /proc")
def test_cancelling_while_a_database_opens_closes_it_again(qtbot: QtBot, ctx: AppContext, tmp_path: Path) -> None:
    """Nobody takes a database opened after the dialog went: the worker closes it instead of leaking it."""
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    target = tmp_path / "abandoned.sqlite3"
    dialog.sqlitePathEdit.setText(str(target))
    dialog.saveButton.click()
    _confirm_switch(qtbot, dialog)
    # Close once the opening has begun (the file exists; setting it up takes far longer): a job still queued
    # when the dialog goes never starts, which would leave nothing to check.
    qtbot.waitUntil(target.exists, timeout=20_000)
    dialog.done(0)  # waits for the opening to finish
    if load_settings().database_url:
        # The save had finished just before the dialog went (a fast machine): the program follows the file.
        assert dialog.saved_settings is not None and Path(ctx.db.display_name) == target.resolve()
        return
    assert dialog.saved_settings is None  # stopped while opening: nothing saved, and the database closed again
    open_files = [Path(f"/proc/self/fd/{fd}").resolve() for fd in os.listdir("/proc/self/fd")]
    assert not [f for f in open_files if f.name.startswith("abandoned.sqlite3")]


def test_a_database_that_cannot_be_used_saves_nothing(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, tmp_path: Path
) -> None:
    newer = tmp_path / "newer.sqlite3"
    other, _ = open_database(sqlite_url(newer))
    with other.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    other.dispose()
    old_db = ctx.db
    dialog.sqlitePathEdit.setText(str(newer))
    dialog.smtpHostEdit.setText("smtp.example.org")
    dialog.saveButton.click()
    _confirm_switch(qtbot, dialog)
    qtbot.waitUntil(lambda: "Nothing was saved" in dialog.errorLabel.text(), timeout=20_000)
    assert "newer" in dialog.errorLabel.text()
    assert ctx.db is old_db and not config_path().exists()
    assert dialog.smtpHostEdit.text() == "smtp.example.org"


@pytest.mark.postgres
def test_switching_to_postgres_stores_the_password_in_the_keyring_only(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, pg_url: str, db_path: Path, memory_keyring: MemoryKeyring
) -> None:
    _fill_postgres(dialog, pg_url)
    dialog.pgPasswordEdit.setText(DB_PASSWORD)  # the test server trusts local connections; the password is kept
    dialog.saveButton.click()
    _confirm_switch(qtbot, dialog)
    qtbot.waitUntil(lambda: dialog.saved_settings is not None, timeout=30_000)
    assert ctx.db.backend == "postgresql"
    stored = [key for key, value in memory_keyring.store.items() if value == DB_PASSWORD]
    assert [service for service, _ in stored] == [DATABASE_KEYRING_SERVICE]
    assert DB_PASSWORD.encode() not in config_path().read_bytes()
    assert "postgresql://" in load_settings().database_url
    assert DB_PASSWORD not in _everything_stored(ctx.db)
    assert DB_PASSWORD not in ctx.db.display_name
    assert DB_PASSWORD.encode() not in _files_bytes(db_path)
    ctx.db.dispose()


def test_open_settings_dialog_is_window_modal(qtbot: QtBot, ctx: AppContext) -> None:
    dialog = open_settings_dialog(ctx)
    qtbot.waitUntil(dialog.isVisible)
    assert dialog.isModal()
    dialog.cancelButton.click()
    qtbot.waitUntil(lambda: not dialog.isVisible())


class _WatchedKeyring(MemoryKeyring):
    """Remembers which threads asked it, and can refuse to store (a locked or broken keyring)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()
        self.refuse = False

    def get_password(self, service: str, username: str) -> str | None:
        self.threads.add(threading.current_thread().name)
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        self.threads.add(threading.current_thread().name)
        if self.refuse:
            raise KeyringError("the keyring is locked")
        super().set_password(service, username, password)


@pytest.fixture
def watched_keyring() -> Iterator[_WatchedKeyring]:
    before = keyring.get_keyring()
    backend = _WatchedKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


def test_the_keyring_is_only_used_off_the_gui_thread(
    qtbot: QtBot, ctx: AppContext, db_path: Path, watched_keyring: _WatchedKeyring, auth_sink: SmtpSink
) -> None:
    """Reading for the placeholders, testing a connection and saving all ask the keyring on the worker: a keyring
    waiting for its owner to unlock it must not freeze the window."""
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: not dialog.busy)
    _fill_smtp(dialog, auth_sink.port, "")  # no password typed: the stored one is looked up
    dialog.testSmtpButton.click()
    qtbot.waitUntil(lambda: dialog.testSmtpButton.isEnabled(), timeout=10_000)
    dialog.smtpPasswordEdit.setText(SMTP_PASSWORD)
    dialog.sqlitePathEdit.setText(str(db_path))
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: dialog.saved_settings is not None, timeout=10_000)
    assert watched_keyring.store[(SMTP_KEYRING_SERVICE, "u@127.0.0.1")] == SMTP_PASSWORD
    assert watched_keyring.threads and threading.main_thread().name not in watched_keyring.threads


def test_a_keyring_that_refuses_saves_nothing(
    qtbot: QtBot, dialog: SettingsDialog, ctx: AppContext, db_path: Path, watched_keyring: _WatchedKeyring
) -> None:
    watched_keyring.refuse = True
    before = ctx.settings
    _fill_smtp(dialog, 2525, SMTP_PASSWORD)
    dialog.sqlitePathEdit.setText(str(db_path))
    dialog.saveButton.click()
    qtbot.waitUntil(lambda: "Nothing was saved" in dialog.errorLabel.text(), timeout=10_000)
    assert "password store" in dialog.errorLabel.text() and SMTP_PASSWORD not in dialog.errorLabel.text()
    assert not config_path().exists() and ctx.settings == before and dialog.saved_settings is None
    assert dialog.smtpPasswordEdit.text() == SMTP_PASSWORD and dialog.saveButton.isEnabled()  # kept as typed


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files through /proc")
def test_a_database_opened_just_before_the_dialog_closes_is_closed(qtbot: QtBot, ctx: AppContext,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    """The worker finished (database opened, settings written), but its result was still queued when the dialog
    went: the runner drops that result, so the dialog applies it itself — the program uses the database the settings
    file now names (it once stayed open, unused, for the life of the program)."""
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    target = tmp_path / "late.sqlite3"
    dialog.sqlitePathEdit.setText(str(target))
    dialog.saveButton.click()
    _confirm_switch(qtbot, dialog)
    deadline = time.monotonic() + 20
    while dialog._handoff._saved is None:  # the GUI thread is busy: the finished job's result stays queued
        assert time.monotonic() < deadline, "the database never opened"
        time.sleep(0.01)
    dialog.done(0)
    assert load_settings().database_url == sqlite_url(target)
    assert dialog.saved_settings is not None and Path(ctx.db.display_name) == target.resolve()
