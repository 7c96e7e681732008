"""Shared fixtures: real SQLite files, real PostgreSQL databases, an isolated user environment, and checks that
no test leaves a thread running.

Fixture modules with real servers live beside this file (``tests/smtp_sink.py`` and friends) and are imported
by the tests that need them.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import functools
import sys
import threading
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from desktop.config import Settings
from desktop.db.engine import Database, sqlite_url
from desktop.services.database import open_database

PG_ENV = "CALLSLIP_TEST_POSTGRES_URL"
#: The least time a pytest-qt wait may take before it fails. A wait ends as soon as its condition holds, so a long
#: limit costs nothing when all is well; it only bounds a hang. Short limits written for an idle machine failed
#: when the GUI tests ran with every core busy (``.ci/gui_under_load.sh``).
QT_WAIT_MIN_MS = 60_000


def _at_least(wait: Any, minimum: int) -> Any:
    @functools.wraps(wait)
    def patient(self: Any, *args: Any, timeout: int = minimum, **kwargs: Any) -> Any:
        return wait(self, *args, timeout=max(timeout, minimum), **kwargs)

    return patient


def pytest_configure(config: pytest.Config) -> None:
    from pytestqt.qtbot import QtBot

    from desktop.ui.windows import register_all

    register_all()  # windows open each other by id (desktop.ui.navigation), also when a test opens one alone

    for name in ("waitUntil", "waitSignal", "waitSignals", "waitCallback", "waitExposed", "waitActive"):
        setattr(QtBot, name, _at_least(getattr(QtBot, name), QT_WAIT_MIN_MS))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The windows tests closed but never deleted go now, while Python is whole, as ``callslip`` ends its own
    (:func:`desktop.app.close_down`): left to the interpreter's exit, PySide6 deletes them in no fixed order."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if isinstance(app, QApplication):
        from desktop.app import close_down

        close_down(app, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (PyInstaller, soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow") or os.environ.get("CALLSLIP_RUN_SLOW") == "1"
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow or CALLSLIP_RUN_SLOW=1 (.ci/run does)")
    skip_pg = pytest.mark.skip(reason=f"PostgreSQL tests need {PG_ENV} (set by .ci/run)")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "postgres" in item.keywords and not os.environ.get(PG_ENV):
            item.add_marker(skip_pg)


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring that really stores (the null backend silently drops writes)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def no_exception_in_event_loop() -> Iterator[None]:
    """Fail any test during which an exception reached the Qt event loop — in setup, the test or teardown.

    PySide6 hands an exception raised in a slot, a timer or a virtual method to ``sys.excepthook`` and carries
    on; in the app that is a silent failure (or an abort). pytest-qt catches these only while the test body
    runs; this fixture is set up first and torn down last, so a window's timer firing while a fixture closes
    it, or after the task runner stopped, fails the test too. Pending events are processed before the check
    so a timer due at the end of the test still counts, and windows closed with ``deleteLater()`` are deleted
    before the next test starts.
    """
    caught: list[str] = []
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        caught.append("".join(traceback.format_exception(kind, value, tb)))

    sys.excepthook = hook
    try:
        yield
        from PySide6.QtCore import QCoreApplication, QEvent

        if QCoreApplication.instance() is not None:
            QCoreApplication.processEvents()
            # Windows a fixture closed with deleteLater() go now, not during the next test (where a search for
            # "the open Contact Card" could find this test's card just before it is deleted).
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            QCoreApplication.processEvents()
    finally:
        sys.excepthook = previous
    if caught:
        pytest.fail("an exception reached the Qt event loop:\n" + "\n".join(caught), pytrace=False)


@pytest.fixture(autouse=True)
def user_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own config file, data folder and in-memory keyring; no CALLSLIP_* leaks in."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("CALLSLIP_") and name not in {PG_ENV, "CALLSLIP_RUN_SLOW"}:
            monkeypatch.delenv(name)
    # The settings file is the default one under XDG_CONFIG_HOME (not CALLSLIP_CONFIG, which must name a file
    # that exists): home/config/Callslip/callslip.toml, absent until a test saves settings.
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    previous = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    yield home
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    """The in-memory keyring installed for this test."""
    backend = keyring.get_keyring()
    assert isinstance(backend, MemoryKeyring)
    return backend


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail any test that leaves a Python thread or a registered QThread running."""
    before = set(threading.enumerate())
    yield
    from desktop.ui.threads import running_threads

    qthreads = running_threads()
    assert not qthreads, f"QThreads left running: {qthreads}"
    # A _DummyThread is threading's stand-in for a QThread that ran Python code (checked above), not a thread
    # Python started; it never reports itself finished and cannot be joined.
    leftover = [
        t
        for t in threading.enumerate()
        if t not in before
        and t.is_alive()
        and not t.name.startswith("asyncio")
        and not isinstance(t, threading._DummyThread)  # type: ignore[attr-defined]
    ]
    for thread in leftover:
        thread.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    assert not still, f"threads left running: {still}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a workstation whose staff member is ``tester``."""
    return Settings(staff_name="tester", phone_region="US")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Path of a fresh SQLite database file."""
    return tmp_path / "callslip.sqlite3"


@pytest.fixture
def sqlite_db(db_path: Path) -> Iterator[Database]:
    """A migrated SQLite database with reference data (Locations, a pickup location)."""
    db, _ = open_database(sqlite_url(db_path))
    yield db
    db.dispose()


@pytest.fixture
def seeded_db(sqlite_db: Database) -> Database:
    """The SQLite database with demo patrons and requests (seed-demo's data)."""
    from desktop.services.admin.demo import seed_demo

    seed_demo(sqlite_db, patrons=40, requests=300)
    return sqlite_db


def _admin_url() -> str:
    url = os.environ[PG_ENV]
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    base = make_url(_admin_url())
    name = f"{base.database}_t{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL database with reference data."""
    db, _ = open_database(pg_url)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Database]:
    """The same test on a migrated SQLite file and on a migrated PostgreSQL database."""
    if request.param == "sqlite":
        db, _ = open_database(sqlite_url(db_path))
        yield db
        db.dispose()
    else:
        if not os.environ.get(PG_ENV):
            pytest.skip(f"PostgreSQL tests need {PG_ENV}")
        yield request.getfixturevalue("pg_db")
