"""Migrations on real SQLite files and real PostgreSQL: empty → head, previous revision → head with data kept,
a newer schema refused, the partial unique index, and the SQLite connection rules."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from desktop.db import migrate
from desktop.db.engine import Database, make_engine, sqlite_url
from desktop.db.models import ContactPoint, Patron
from desktop.services.database import open_database


def test_empty_sqlite_upgrades_to_head(db_path: Path) -> None:
    db, result = open_database(sqlite_url(db_path))
    try:
        assert result.schema.state is migrate.SchemaState.CURRENT
        assert result.upgraded_from is None
        with db.engine.connect() as conn:
            tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        assert {
            "patrons",
            "requests",
            "tracking",
            "notifications",
            "call_log",
            "template_revisions",
        } <= tables
    finally:
        db.dispose()
    assert not list(db_path.parent.glob("*.bak")), "an empty database needs no backup"


def test_previous_revision_upgrades_keeping_data_and_a_backup(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    migrate.upgrade(engine, revision="0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO patrons (username, first_name, last_name, status, department, "
                          "notification_method, delivery_method, address1, address2, city, state, zip, created_at, "
                          "updated_at, version_id) VALUES ('ada', 'Ada', 'Lovelace', '', '', 'E-Mail', "
                          "'Hold for Pickup', '', '', '', '', '', '2026-01-01', '2026-01-01', 1)"))  # fmt: skip
    with engine.connect() as conn:
        assert migrate.schema_info(conn).state is migrate.SchemaState.OLDER
    engine.dispose()
    db, result = open_database(sqlite_url(db_path))
    try:
        assert result.upgraded_from == "0001"
        with db.read() as session:
            assert session.scalar(select(Patron.username)) == "ada"
    finally:
        db.dispose()
    backups = list(db_path.parent.glob("callslip.sqlite3.r0001-*.bak"))
    assert len(backups) == 1
    with sqlite3.connect(backups[0]) as conn:
        assert conn.execute("SELECT username FROM patrons").fetchone() == ("ada",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)


def test_newer_schema_is_refused_and_untouched(db_path: Path) -> None:
    db, _ = open_database(sqlite_url(db_path))
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    with pytest.raises(migrate.SchemaError, match="newer than this Callslip"):
        open_database(sqlite_url(db_path))
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_foreign_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE something_else (x INTEGER)")
    with pytest.raises(migrate.SchemaError, match="another program"):
        open_database(sqlite_url(db_path))


def test_older_schema_without_upgrade_says_so(db_path: Path) -> None:
    engine = make_engine(sqlite_url(db_path))
    migrate.upgrade(engine, revision="0001")
    engine.dispose()
    with pytest.raises(migrate.SchemaError, match="older than this Callslip"):
        open_database(sqlite_url(db_path), upgrade=False)


def _two_primaries(db: Database) -> None:
    with db.write() as session:
        session.execute(insert(Patron).values(username="p1", first_name="P", last_name="One"))
        pid = session.scalar(select(Patron.id).where(Patron.username == "p1"))
        for value in ("a@example.org", "b@example.org"):
            session.execute(
                insert(ContactPoint).values(patron_id=pid, kind="email", value=value, normalized=value, is_primary=True)
            )


def test_sqlite_enforces_one_primary_per_kind(sqlite_db: Database) -> None:
    with pytest.raises(IntegrityError):
        _two_primaries(sqlite_db)
    with sqlite_db.read() as session:
        assert session.scalar(select(Patron.id)) is None, "the failed transaction left nothing behind"


def test_sqlite_connection_rules(sqlite_db: Database) -> None:
    with sqlite_db.read() as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_sqlite_write_takes_the_lock_up_front(sqlite_db: Database, db_path: Path) -> None:
    """A write session holds the write lock from BEGIN: another writer cannot start until it ends."""
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with sqlite_db.write():
            entered.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(5)
    other = sqlite3.connect(db_path, timeout=0.2, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        # readers are not blocked (WAL)
        assert other.execute("SELECT count(*) FROM patrons").fetchone() == (0,)
    finally:
        release.set()
        holder.join()
        other.close()


@pytest.mark.postgres
def test_postgres_empty_and_previous_revision(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        assert migrate.upgrade(engine, revision="0001").state is migrate.SchemaState.OLDER
        info = migrate.upgrade(engine)
        assert info.state is migrate.SchemaState.CURRENT
        assert migrate.check_schema(engine).head_revision == migrate.head_revision()
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_concurrent_upgrades_under_advisory_lock(pg_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            migrate.upgrade(engine)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    db, result = open_database(pg_url)
    db.dispose()
    assert result.schema.state is migrate.SchemaState.CURRENT


@pytest.mark.postgres
def test_postgres_enforces_one_primary_per_kind(pg_db: Database) -> None:
    with pytest.raises(IntegrityError):
        _two_primaries(pg_db)


@pytest.mark.postgres
def test_postgres_newer_schema_refused(pg_db: Database, pg_url: str) -> None:
    with pg_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrate.SchemaError, match="newer"):
        open_database(pg_url)


def test_default_sms_parts_fill_empty_ones_and_keep_written_ones(db_path: Path) -> None:
    """Revision 0020: a database made before templates had SMS parts gets the shipped ones, where still empty."""
    from desktop.db.models import NoticeTemplate

    engine = make_engine(sqlite_url(db_path))
    migrate.upgrade(engine, revision="0019")
    with engine.begin() as conn:
        conn.execute(NoticeTemplate.__table__.delete())  # earlier revisions add some defaults of their own
        for name, sms in (("Loan Pickup", ""), ("Loan Pickup Reminder", "Our own reminder text"), ("Local", "")):
            conn.execute(insert(NoticeTemplate).values(name=name, channel="email", subject="s", body_text="ours",
                                                       body_sms=sms, updated_by="staff"))  # fmt: skip
    migrate.upgrade(engine)
    with engine.connect() as conn:
        parts = dict(conn.execute(select(NoticeTemplate.name, NoticeTemplate.body_sms)).all())
        bodies = set(conn.execute(select(NoticeTemplate.body_text)).scalars())
    engine.dispose()
    assert "is ready for pickup at {{ pickup.name }}" in parts["Loan Pickup"]
    assert parts["Loan Pickup Reminder"] == "Our own reminder text" and parts["Local"] == ""
    assert bodies == {"ours"}  # nothing but the empty SMS parts changed
