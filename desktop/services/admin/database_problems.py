"""Database failures told as one plain sentence: which database, what failed, what to do.

Driver text ("(psycopg.OperationalError) connection failed: … (Background on this error at: https://sqlalche.me/…)")
means nothing to staff and can leak server details into a screenshot. Every place that opens a database (the
``callslip`` start-up page, ``callslip-manager``, Settings' Test Connection) turns the exception into one of the
sentences below instead; the driver text is only for a log.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from desktop.db.engine import Database, normalize_url, sqlite_path
from desktop.db.migrate import SchemaError
from desktop.services.database import OpenResult, open_database
from desktop.services.errors import ServiceError

INIT_HINT = "callslip-manager --database {where} init-db"


class DatabaseMissingError(ServiceError):
    """A SQLite file that does not exist was named where an existing database is needed; nothing was created."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"The database file {path} does not exist; nothing was created. Check the path (Settings, --database "
            f"or CALLSLIP_DATABASE_URL), or create a new database there with: {INIT_HINT.format(where=path)}"
        )
        self.path = path


class DatabaseLockedError(ServiceError):
    """The SQLite file is locked by another program (a long write, a backup tool, a crashed editor)."""


class DatabaseOpenError(ServiceError):
    """The database could not be opened or used; the message is the plain sentence."""


def where(url: str | URL) -> str:
    """How a database is named to staff: a file path or ``user@host:port/database`` (never a password)."""
    try:
        parsed = normalize_url(url)
    except Exception:
        return "the configured database"
    path = sqlite_path(parsed)
    if parsed.get_backend_name() == "sqlite":
        return str(path) if path is not None else "the in-memory database"
    host = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    user = f"{parsed.username}@" if parsed.username else ""
    return f"PostgreSQL database {parsed.database or '?'} ({user}{host})"


def missing_sqlite_file(url: str | URL) -> Path | None:
    """The SQLite file ``url`` names when it does not exist (``None`` for an existing file or another backend)."""
    path = sqlite_path(normalize_url(url))
    return path if path is not None and not path.exists() else None


def check_exists(url: str | URL) -> None:
    """Refuse a SQLite path that does not exist (every command but ``init-db``), creating nothing.

    Raises:
        DatabaseMissingError: naming the path and ``init-db``.
    """
    path = missing_sqlite_file(url)
    if path is not None:
        raise DatabaseMissingError(path)


def probe_sqlite_lock(url: str | URL, timeout: float = 0.5) -> None:
    """Raise :class:`DatabaseLockedError` when another program holds the SQLite file's write lock right now.

    A quick check (``timeout`` seconds, not the 15 s busy timeout) so ``callslip-manager run`` can say it is
    waiting, and wait, instead of failing at start-up; nothing is written.
    """
    path = sqlite_path(normalize_url(url))
    if path is None or not path.exists():
        return
    try:
        connection = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.Error:
        return  # opening will fail with its own sentence
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise DatabaseLockedError(
                f"The database file {path} is locked by another program (a long import, a backup, another "
                "System Manager starting); waiting for it to be released."
            ) from None
    finally:
        connection.close()


def _folder_problem(path: Path) -> str | None:
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the folder {existing} is read-only for this user"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file {path} is read-only for this user"
    return None


def describe(exc: BaseException, url: str | URL) -> str:
    """One sentence for staff: which database, what failed, what to do. Never driver text or links."""
    name = where(url)
    if isinstance(exc, ServiceError):
        return str(exc)
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(original).casefold()
    path = sqlite_path(normalize_url(url)) if name != "the configured database" else None
    if path is not None:
        if isinstance(exc, OSError) or "unable to open database file" in text or "readonly" in text:
            problem = _folder_problem(path)
            if problem:
                return (
                    f"Callslip cannot use the database file {path}: {problem}. Choose a file in a folder you may "
                    "write to (Settings → Database), or ask for write permission."
                )
            return f"Callslip cannot open the database file {path}. Check that the path is right (Settings → Database)."
        if "locked" in text or "busy" in text:
            return (
                f"The database file {path} is locked by another program; nothing was changed. "
                "Wait for it to finish (or close it) and try again."
            )
        if "not a database" in text or "malformed" in text or "encrypted" in text:
            return (
                f"The file {path} is not a Callslip database (or is damaged); nothing was changed. "
                "Choose the right file in Settings → Database, or restore it from a backup."
            )
        if "disk is full" in text or "no space" in text or "disk i/o" in text:
            return f"Writing the database file {path} failed: the disk is full or failing. Free space and try again."
        return (
            f"Callslip cannot use the database file {path} ({type(original).__name__}). "
            "Check the file and Settings → Database."
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return (
            f"The {name} refused the user name or password. Enter the right password in Settings → Database "
            "(it is kept in the OS keyring)."
        )
    if "does not exist" in text and "database" in text:
        return (
            f"The {name} does not exist on that server. Create it (createdb), then run callslip-manager init-db; "
            "or correct the name in Settings → Database."
        )
    if "role" in text and "does not exist" in text:
        return f"The {name}: the server has no such user. Correct the user in Settings → Database."
    if "could not translate host name" in text or "name or service not known" in text or "nodename" in text:
        return (
            f"The server of the {name} is unknown (the host name does not resolve). Correct it in Settings → Database."
        )
    if (
        "refused" in text
        or "timeout" in text
        or "timed out" in text
        or "could not connect" in text
        or ("connection" in text and ("failed" in text or "closed" in text))
    ):
        return (
            f"The {name} cannot be reached (the server is down, or the address or port is wrong). "
            "Check that the server is running and the address in Settings → Database."
        )
    if "permission denied" in text:
        return f"The {name} refused access to its tables. Ask the database administrator to grant them to this user."
    kind = type(original).__name__ if isinstance(exc, SQLAlchemyError | OSError) else type(exc).__name__
    return f"Callslip could not use the {name} ({kind}). Check Settings → Database and that the server is running."


def open_checked(url: str | URL, *, create: bool = False, upgrade: bool = True) -> tuple[Database, OpenResult]:
    """Open ``url`` as :func:`~desktop.services.database.open_database` does, with every failure as one sentence.

    Args:
        create: a SQLite file that does not exist may be created (``init-db``, a first start with no
            configuration); otherwise it is refused, creating nothing.

    Raises:
        DatabaseMissingError: ``create`` is False and the SQLite file does not exist.
        DatabaseOpenError: anything else, described by :func:`describe`.
        desktop.db.migrate.SchemaError: the schema is newer than this program (its own sentence).
    """
    if not create:
        check_exists(url)
    try:
        return open_database(url, upgrade=upgrade)
    except (SchemaError, ServiceError):
        raise
    except Exception as exc:
        raise DatabaseOpenError(describe(exc, url)) from exc
