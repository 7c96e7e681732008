"""Engines and sessions: SQLite by default, PostgreSQL for a networked install.

SQLite is set up for several processes sharing one file: WAL (readers never wait for the writer),
``busy_timeout`` (a writer waits for the lock instead of failing at once), foreign keys on, and write
transactions that take the write lock up front (``BEGIN IMMEDIATE``) so two writers never both read and then
deadlock on upgrade. Read transactions stay deferred so the GUI never blocks the System Manager.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from desktop.db.text_match import register_sqlite_functions
from desktop.db.url_text import sqlite_url as sqlite_url  # re-exported: most callers take it from here

SQLITE_BUSY_TIMEOUT_MS = 15_000
_WRITE_OPTION = "callslip_write"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, accepting a bare file path for SQLite and choosing psycopg 3 for ``postgresql://``."""
    if isinstance(url, URL):
        parsed = url  # never str(url): that masks the password as ***
    elif "://" not in url:
        return make_url(sqlite_url(url))
    else:
        parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(url: str | URL) -> bool:
    """True when ``url`` names a SQLite database."""
    return normalize_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for memory databases and other backends."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` with Callslip's connection rules applied."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            poolclass=NullPool if path is None else None,
        )
        _configure_sqlite(engine)
        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    if parsed.get_backend_name() == "postgresql":
        # Keepalives: a server that vanished (cable, crash) is noticed in about a minute instead of never, so a
        # System Manager waiting on it gives up and its leases run out for the others.
        kwargs["connect_args"] = {"connect_timeout": 10, "application_name": "callslip", "keepalives": 1,
                                  "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}  # fmt: skip
    return create_engine(parsed, echo=echo, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()
        register_sqlite_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """An engine and its session factory; the one handle services receive.

    Services open one session per unit of work through :meth:`read` or :meth:`write`; nothing else holds a
    session, and ORM objects never leave the ``with`` block (callers get ids or plain dataclasses).
    """

    def __init__(self, url: str | URL, *, engine: Engine | None = None) -> None:
        self.url = normalize_url(url)
        self.engine = engine or make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def display_name(self) -> str:
        """Where the data lives, for the status bar: a file path or ``user@host/db`` (never a password)."""
        if self.backend == "sqlite":
            return str(sqlite_path(self.url) or ":memory:")
        return self.url.render_as_string(hide_password=True).split("://", 1)[-1]

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; whatever it changes is rolled back."""
        session = self._sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session for one unit of work: committed on success, rolled back on any exception.

        On SQLite the transaction takes the write lock at BEGIN, so concurrent writers queue up instead of
        failing with "database is locked" half way through.
        """
        session = self._sessions()
        try:
            session.connection(execution_options={_WRITE_OPTION: True})
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close pooled connections (on quit, or before the database is switched)."""
        self.engine.dispose()
