"""Fixtures for the main-window and request-form tests: a real main window on a real seeded SQLite file.

Import the fixtures you use: ``from tests.main_window_helpers import main_window, second_db  # noqa: F401``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.services.database import Database
from desktop.ui.context import AppContext
from desktop.ui.main_window import MainWindow


def wait_idle(qtbot: QtBot, window: MainWindow, timeout: int = 10_000) -> None:
    """Wait until counts and the list are loaded and no background job is left."""
    qtbot.waitUntil(
        lambda: (
            window.workspace.snapshot is not None
            and not window.workspace.table_model.loading
            and not window.ctx.runner.busy
        ),
        timeout=timeout,
    )


def open_window(qtbot: QtBot, db: Database, settings: Settings) -> MainWindow:
    """A shown main window on ``db`` (poller off: these tests must not send mail), loaded."""
    window = MainWindow(AppContext(db, settings.with_changes(run_poller=False)))
    window.show()
    qtbot.waitExposed(window)
    wait_idle(qtbot, window)
    return window


def close_window(window: MainWindow) -> None:
    """Close without questions (forms with edits are reverted first)."""
    from desktop.ui.requests.request_form import RequestForm

    for form in window.findChildren(RequestForm):
        form.revert()
    window.close()


@pytest.fixture
def main_window(qtbot: QtBot, seeded_db: Database, settings: Settings) -> Iterator[MainWindow]:
    """The main window on the seeded database (40 patrons, 300 requests)."""
    window = open_window(qtbot, seeded_db, settings)
    yield window
    close_window(window)


@pytest.fixture
def second_db(seeded_db: Database) -> Iterator[Database]:
    """Another connection pool on the same file: "another workstation"."""
    other = Database(seeded_db.url)
    yield other
    other.dispose()


def sql(db: Database, query: str, *params: object) -> list[tuple[object, ...]]:
    """Run plain SQL on the SQLite file with the standard library, independent of our services."""
    path = db.url.database
    assert path
    with sqlite3.connect(Path(path)) as conn:
        return list(conn.execute(query, params))
