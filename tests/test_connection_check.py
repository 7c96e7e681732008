"""Settings → Database → Test connection against real databases: SQLite files (current, empty, older, newer,
not a database), the real PostgreSQL server, a closed port, and a PostgreSQL-protocol server that refuses the
password (the test server here trusts every local connection, so it cannot say "wrong password" itself)."""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from desktop.db import migrate
from desktop.db.engine import sqlite_url
from desktop.services.admin.connection_check import (
    DatabaseOutcome,
    check_database,
    postgres_database_url,
    scrub,
    split_database_url,
    sqlite_database_url,
)
from desktop.services.database import Database
from tests.smtp_sink import free_port

PASSWORD = "Tr0ub4dor&3 pass/word"


def test_sqlite_current(sqlite_db: Database, db_path: Path) -> None:
    result = check_database(sqlite_url(db_path))
    assert result.outcome is DatabaseOutcome.REACHED and result.usable
    assert "schema is current" in result.message and str(db_path) in result.message


def test_sqlite_missing_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "library.sqlite3"
    result = check_database(sqlite_database_url(path))
    assert result.outcome is DatabaseOutcome.NEW_FILE and result.usable
    assert not path.exists() and not path.parent.exists()


def test_sqlite_newer_schema_is_refused(sqlite_db: Database, db_path: Path) -> None:
    with sqlite_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    before = db_path.read_bytes()
    result = check_database(sqlite_url(db_path))
    assert result.outcome is DatabaseOutcome.SCHEMA_NEWER and not result.usable
    assert "newer" in result.message and "9999_from_the_future" in result.message
    assert db_path.read_bytes() == before  # read-only: nothing touched


def test_sqlite_older_schema_will_be_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    engine = create_engine(sqlite_url(path))
    migrate.upgrade(engine, revision="0001", backup=False)
    engine.dispose()
    result = check_database(sqlite_url(path))
    assert result.outcome is DatabaseOutcome.SCHEMA_OLDER and result.usable
    assert "older" in result.message and "0001" in result.message


def test_sqlite_empty_and_foreign_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    create_engine(sqlite_url(empty)).connect().close()
    assert check_database(sqlite_url(empty)).outcome is DatabaseOutcome.EMPTY
    other = tmp_path / "other.sqlite3"
    engine = create_engine(sqlite_url(other))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE songs (id INTEGER)"))
    engine.dispose()
    assert check_database(sqlite_url(other)).outcome is DatabaseOutcome.NOT_CALLSLIP
    junk = tmp_path / "notes.txt"
    junk.write_text("shopping list " * 200)
    result = check_database(sqlite_url(junk))
    assert result.outcome is DatabaseOutcome.ERROR and "not a database" in result.message
    assert check_database(sqlite_url(tmp_path)).outcome is DatabaseOutcome.ERROR


def test_postgres_closed_port_is_unreachable() -> None:
    url = postgres_database_url("127.0.0.1", free_port(), "callslip", "postgres")
    result = check_database(url, PASSWORD, timeout=3)
    assert result.outcome is DatabaseOutcome.UNREACHABLE and not result.usable
    assert "Cannot reach postgres@127.0.0.1" in result.message
    assert PASSWORD not in result.message


@pytest.mark.postgres
def test_postgres_reached(pg_db: Database, pg_url: str) -> None:
    result = check_database(pg_url, PASSWORD)
    assert result.outcome is DatabaseOutcome.REACHED, result.message
    assert PASSWORD not in result.message


@pytest.mark.postgres
def test_postgres_empty_and_missing_database(pg_url: str) -> None:
    assert check_database(pg_url).outcome is DatabaseOutcome.EMPTY
    form = split_database_url(pg_url)
    missing = postgres_database_url(form.host, form.port, form.database + "_nope", form.user)
    result = check_database(missing)
    assert result.outcome is DatabaseOutcome.NO_DATABASE and "_nope" in result.message


class _RefusingPostgres(socketserver.BaseRequestHandler):
    """Speaks just enough of the PostgreSQL protocol to ask for a password and refuse it (SQLSTATE 28P01)."""

    received: list[str] = []

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def handle(self) -> None:
        try:
            while True:  # SSLRequest / GSSENCRequest are answered "N" (no), then the real startup message
                length, code = struct.unpack("!ii", self._read(8))
                if code in (80877103, 80877104):
                    self.request.sendall(b"N")
                    continue
                startup = self._read(length - 8).split(b"\0")
                break
            user = startup[startup.index(b"user") + 1].decode()
            self.request.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind, length = struct.unpack("!ci", self._read(5))
            assert kind == b"p"
            self.received.append(self._read(length - 4).rstrip(b"\0").decode())
            fields = b"".join(
                tag + value.encode() + b"\0"
                for tag, value in (
                    (b"S", "FATAL"),
                    (b"V", "FATAL"),
                    (b"C", "28P01"),
                    (b"M", f'password authentication failed for user "{user}"'),
                )
            )
            body = fields + b"\0"
            self.request.sendall(b"E" + struct.pack("!i", len(body) + 4) + body)
        except (ConnectionError, OSError):
            pass


@pytest.fixture
def refusing_postgres() -> Iterator[tuple[int, list[str]]]:
    _RefusingPostgres.received = []
    server = socketserver.TCPServer(("127.0.0.1", 0), _RefusingPostgres)
    thread = threading.Thread(target=server.serve_forever, name="refusing-postgres", daemon=True)
    thread.start()
    try:
        yield server.server_address[1], _RefusingPostgres.received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_postgres_wrong_password(refusing_postgres: tuple[int, list[str]]) -> None:
    port, received = refusing_postgres
    url = postgres_database_url("127.0.0.1", port, "callslip", "ill_staff")
    result = check_database(url, PASSWORD)
    assert result.outcome is DatabaseOutcome.WRONG_PASSWORD, result.message
    assert "Wrong user name or password" in result.message and "ill_staff" in result.message
    assert PASSWORD in received  # the password really was offered ...
    assert PASSWORD not in result.message  # ... and is never repeated back


def test_url_helpers_round_trip(tmp_path: Path) -> None:
    url = postgres_database_url("db.library.example", 5433, "callslip", "ill")
    assert url == "postgresql://ill@db.library.example:5433/callslip"
    form = split_database_url(url)
    assert (form.kind, form.host, form.port, form.database, form.user) == (
        "postgresql", "db.library.example", 5433, "callslip", "ill",
    )  # fmt: skip
    sqlite = split_database_url(sqlite_database_url(tmp_path / "x.sqlite3"))
    assert sqlite.kind == "sqlite" and sqlite.path == str(tmp_path / "x.sqlite3")


def test_scrub_removes_plain_and_quoted_secrets() -> None:
    text_ = f"postgresql://u:{PASSWORD.replace(' ', '%20').replace('/', '%2F').replace('&', '%26')}@h/db {PASSWORD}"
    cleaned = scrub(text_, PASSWORD)
    assert PASSWORD not in cleaned and "Tr0ub4dor" not in cleaned
