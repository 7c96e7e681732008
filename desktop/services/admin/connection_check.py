"""Settings → Database → Test connection: reach the database and say, in one sentence, what staff need to know.

Outcomes: reached (schema current), reached but empty (Callslip will set it up), wrong user name or password,
unreachable (no server, wrong host or port, firewall), no such database, schema older than this program
(it will be upgraded when opened, after a backup on SQLite) or newer (install the newer Callslip).

Nothing is written: a SQLite file is opened read-only and a missing one is not created. The password is used
for the attempt only, and every message is scrubbed of it (drivers sometimes echo connection strings).
"""

from __future__ import annotations

import sqlite3
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from desktop.config import Settings
from desktop.db import migrate
from desktop.db.engine import normalize_url, sqlite_path, sqlite_url

DEFAULT_PG_PORT = 5432
CONNECT_TIMEOUT_SECONDS = 5


class DatabaseOutcome(StrEnum):
    """What Test connection found."""

    REACHED = "reached"
    EMPTY = "empty"
    NEW_FILE = "new file"
    WRONG_PASSWORD = "wrong password"
    UNREACHABLE = "unreachable"
    NO_DATABASE = "no such database"
    SCHEMA_OLDER = "schema too old"
    SCHEMA_NEWER = "schema too new"
    NOT_CALLSLIP = "not a Callslip database"
    ERROR = "error"


#: Outcomes with which the database can be used (possibly after Callslip upgrades or creates it).
USABLE = frozenset(
    {DatabaseOutcome.REACHED, DatabaseOutcome.EMPTY, DatabaseOutcome.NEW_FILE, DatabaseOutcome.SCHEMA_OLDER}
)


@dataclass(frozen=True)
class DatabaseCheck:
    """The result of a database Test connection; ``message`` is safe to show (it never holds the password)."""

    outcome: DatabaseOutcome
    message: str
    where: str

    @property
    def usable(self) -> bool:
        """True when Callslip can open this database (creating or upgrading it if needed)."""
        return self.outcome in USABLE


@dataclass(frozen=True)
class DatabaseForm:
    """A database URL split into the fields of the Settings dialog."""

    kind: str  # "sqlite" or "postgresql"
    path: str = ""
    host: str = ""
    port: int = DEFAULT_PG_PORT
    database: str = ""
    user: str = ""


def sqlite_database_url(path: str | Path) -> str:
    """The URL of a SQLite file (``~`` expanded, made absolute)."""
    return sqlite_url(path)


def postgres_database_url(host: str, port: int, database: str, user: str) -> str:
    """The URL of a PostgreSQL database, without a password (that stays in the keyring)."""
    url = URL.create(
        "postgresql",
        username=user.strip() or None,
        host=host.strip() or None,
        port=port or None,
        database=database.strip() or None,
    )
    return url.render_as_string(hide_password=False)


def split_database_url(url: str) -> DatabaseForm:
    """The dialog's fields for ``url`` (empty means the default local SQLite file, shown as its path)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        return DatabaseForm("sqlite", path=str(path) if path else "")
    return DatabaseForm(
        "postgresql",
        host=parsed.host or "",
        port=parsed.port or DEFAULT_PG_PORT,
        database=parsed.database or "",
        user=parsed.username or "",
    )


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every secret (and its URL-quoted form) replaced by ``***``."""
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, "***")
    return text


def check_database(url: str, password: str | None = None, *, timeout: int = CONNECT_TIMEOUT_SECONDS) -> DatabaseCheck:
    """Try the database at ``url`` (with ``password`` for PostgreSQL) and classify the result.

    Never raises for a connection problem; the outcome says what happened.
    """
    try:
        parsed = normalize_url(url)
    except Exception as exc:
        return DatabaseCheck(DatabaseOutcome.ERROR, scrub(f"Not a database address: {exc}", password), "")
    if parsed.get_backend_name() == "sqlite":
        return _check_sqlite(parsed)
    return _check_server(parsed, password, timeout)


def _check_sqlite(url: URL) -> DatabaseCheck:
    path = sqlite_path(url)
    if path is None:
        return DatabaseCheck(DatabaseOutcome.ERROR, "Choose a database file.", "")
    where = str(path)
    if path.is_dir():
        return DatabaseCheck(DatabaseOutcome.ERROR, f"{where} is a folder, not a database file.", where)
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            return DatabaseCheck(DatabaseOutcome.ERROR, f"The folder for {where} cannot be created.", where)
        return DatabaseCheck(
            DatabaseOutcome.NEW_FILE,
            f"{path.name} does not exist yet: Callslip will create a new, empty database there.",
            where,
        )

    def connect() -> sqlite3.Connection:
        # Read-only URI: a test must never create, upgrade or lock the file.
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)

    engine = create_engine("sqlite://", creator=connect, poolclass=NullPool)
    try:
        return _classify_schema(engine, where)
    except DBAPIError as exc:
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        return DatabaseCheck(DatabaseOutcome.ERROR, f"{where} cannot be read as a database: {reason}", where)
    finally:
        engine.dispose()


def _check_server(url: URL, password: str | None, timeout: int) -> DatabaseCheck:
    where = url.render_as_string(hide_password=True).split("://", 1)[-1]
    if password:
        url = url.set(password=password)
    connect_args = {"connect_timeout": timeout, "application_name": "callslip-test-connection"}
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        return _classify_schema(engine, where)
    except DBAPIError as exc:
        return _classify_failure(exc, where, url, password)
    except SQLAlchemyError as exc:
        return DatabaseCheck(DatabaseOutcome.ERROR, scrub(f"{where}: {exc}", password), where)
    finally:
        engine.dispose()


def _classify_schema(engine: Engine, where: str) -> DatabaseCheck:
    with engine.connect() as connection:
        try:
            info = migrate.schema_info(connection)
        except migrate.SchemaError as exc:
            return DatabaseCheck(DatabaseOutcome.NOT_CALLSLIP, f"Reached {where}, but {exc}", where)
    outcome = {
        migrate.SchemaState.CURRENT: DatabaseOutcome.REACHED,
        migrate.SchemaState.EMPTY: DatabaseOutcome.EMPTY,
        migrate.SchemaState.OLDER: DatabaseOutcome.SCHEMA_OLDER,
        migrate.SchemaState.NEWER: DatabaseOutcome.SCHEMA_NEWER,
    }[info.state]
    extra = {
        DatabaseOutcome.REACHED: "",
        DatabaseOutcome.EMPTY: " Callslip will set it up when you save.",
        DatabaseOutcome.SCHEMA_OLDER: " Callslip upgrades it when it opens the database.",
        DatabaseOutcome.SCHEMA_NEWER: " Callslip cannot use it.",
    }[outcome]
    return DatabaseCheck(outcome, f"Reached {where}: {info.describe()}.{extra}", where)


_PASSWORD_SIGNS = ("password authentication failed", "no password supplied", "authentication failed")
_UNREACHABLE_SIGNS = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "timeout expired",
    "timed out",
    "no route to host",
    "network is unreachable",
    "could not connect",
    "server closed the connection unexpectedly",
)


def _classify_failure(exc: DBAPIError, where: str, url: URL, password: str | None) -> DatabaseCheck:
    raw = str(exc.orig) if exc.orig is not None else str(exc)
    lowered = raw.casefold()
    lines = [line.strip() for line in raw.splitlines() if line.strip()] or [type(exc).__name__]
    telling = next((line for line in lines if any(s in line.casefold() for s in _UNREACHABLE_SIGNS)), lines[0])
    reason = scrub(telling, password)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    user = url.username or "(none)"
    if sqlstate in {"28P01", "28000"} or any(sign in lowered for sign in _PASSWORD_SIGNS):
        hint = "no password is stored for this user" if not password else "the password is wrong"
        return DatabaseCheck(
            DatabaseOutcome.WRONG_PASSWORD,
            f"Wrong user name or password for {where} (user {user}: {hint}).",
            where,
        )
    if f'role "{url.username}" does not exist' in raw:
        return DatabaseCheck(DatabaseOutcome.WRONG_PASSWORD, f"Wrong user name for {where}: no user {user}.", where)
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return DatabaseCheck(
            DatabaseOutcome.NO_DATABASE,
            f"Reached the server, but there is no database “{url.database}” on it (ask your administrator to "
            "create it; Callslip then sets it up).",
            where,
        )
    if any(sign in lowered for sign in _UNREACHABLE_SIGNS):
        return DatabaseCheck(
            DatabaseOutcome.UNREACHABLE,
            f"Cannot reach {where}: check the host and port, and that the server runs and accepts connections "
            f"from this computer ({reason}).",
            where,
        )
    return DatabaseCheck(DatabaseOutcome.ERROR, f"Cannot use {where}: {reason}", where)


# ------------------------------------------------------------------------------------------------------ SMTP


@dataclass(frozen=True)
class SmtpCheck:
    """The result of the SMTP Test connection: whether it worked, what TLS and AUTH did, one sentence for staff.

    Attributes:
        tls: the TLS version in use, or ``None`` (plain connection, or it failed before TLS).
        authenticated: AUTH accepted (True), refused (False) or not attempted (``None``: no user name).
    """

    ok: bool
    message: str
    tls: str | None = None
    authenticated: bool | None = None


def check_smtp(settings: Settings, password: str | None, *, ssl_context: ssl.SSLContext | None = None) -> SmtpCheck:
    """Connect to the SMTP server, secure the session and log in, then QUIT: nothing is sent.

    Uses the System Manager's own client (:func:`desktop.services.notices.mailer.check_connection`), so a test that
    passes here means the poller can connect too. Never raises; the message never holds the password.
    """
    from desktop.services.notices import mailer

    if not settings.smtp_host.strip():
        return SmtpCheck(False, "Type the SMTP server's host name first.")
    try:
        report = mailer.check_connection(settings, password, ssl_context=ssl_context)
    except Exception as exc:  # a bug or an odd server must not take the Settings dialog down
        return SmtpCheck(False, scrub(f"The test failed: {type(exc).__name__}: {exc}", password))
    message = scrub(report.message, password)
    if report.ok:
        message = message[:1].upper() + message[1:] + "."
    return SmtpCheck(report.ok, message, report.tls, report.authenticated)


def same_database(a: str | URL, b: str | URL) -> bool:
    """True when two database URLs name the same database (passwords ignored)."""
    return _identity(a) == _identity(b)


def _identity(url: str | URL) -> str:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        return f"sqlite:{path.resolve() if path else ':memory:'}"
    return parsed.set(password=None, drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


def url_for_opening(url: str, password: str | None) -> str:
    """``url`` with ``password`` filled in, as a string the engine accepts (for opening, never for showing)."""
    parsed = normalize_url(url)
    if password and parsed.get_backend_name() != "sqlite":
        parsed = parsed.set(password=password)
    return parsed.render_as_string(hide_password=False)
