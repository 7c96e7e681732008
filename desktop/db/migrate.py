"""Schema migrations, applied at start-up.

SQLite: upgraded automatically, after a backup copy of the file (a bad upgrade must never cost a library its
data). PostgreSQL: upgraded under an advisory lock, so several workstations starting at once upgrade once.
A database whose schema is newer than this program knows is never touched: the program says so and stops.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from desktop.db.engine import sqlite_path
from desktop.domain.clock import utcnow

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (with Mako and Pygments) is imported only when a migration must run: checking that the schema is current,
# on every start-up, reads the revision files as text and the version table with one SELECT.
_REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:["']([^"']+)["']|None)""", re.M)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock held while upgrading ("CALLSLIP" in ASCII, as a bigint).
ADVISORY_LOCK_KEY = 0x43414C4C534C4950


class SchemaError(RuntimeError):
    """The database cannot be used by this version of Callslip; the message says why and what to do."""


class SchemaState(StrEnum):
    """How the database's schema compares with this program's."""

    EMPTY = "empty"
    CURRENT = "current"
    OLDER = "older"
    NEWER = "newer"


@dataclass(frozen=True)
class SchemaInfo:
    """The database's revision, this program's head revision, and how they compare."""

    state: SchemaState
    database_revision: str | None
    head_revision: str

    def describe(self) -> str:
        """One sentence for a status bar, a dialog or the command line."""
        if self.state is SchemaState.CURRENT:
            return f"schema is current (revision {self.head_revision})"
        if self.state is SchemaState.EMPTY:
            return "database is empty (no Callslip schema yet)"
        if self.state is SchemaState.OLDER:
            return (
                f"database schema {self.database_revision} is older than this Callslip "
                f"(revision {self.head_revision}); it must be upgraded"
            )
        return (
            f"database schema {self.database_revision} is newer than this Callslip knows "
            f"(revision {self.head_revision}); install the newer Callslip used by the other workstations"
        )


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package (works when frozen)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _revision_graph() -> dict[str, str | None]:
    """Each revision shipped in ``migrations/versions`` and the one it follows, read from the files as text."""
    graph: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = dict((name, value or None) for name, value in _REVISION_LINE.findall(script.read_text("utf-8")))
        if found.get("revision"):
            graph[str(found["revision"])] = found.get("down_revision")
    return graph


def head_revision() -> str:
    """The newest revision this program knows."""
    graph = _revision_graph()
    heads = set(graph) - {down for down in graph.values() if down}
    if len(heads) == 1:
        return heads.pop()
    # Not one plain chain (a branch, or a file written another way): Alembic's own reading decides, or says why not.
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    return set(_revision_graph())


def _current_revision(connection: Connection) -> str | None:
    """The revision stamped in the database's ``alembic_version`` table (None when there is none)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:
        raise SchemaError(f"the database is stamped with several schema versions ({', '.join(versions)})")
    return versions[0] if versions else None


def schema_info(connection: Connection) -> SchemaInfo:
    """Compare the database's revision with this program's head."""
    current = _current_revision(connection)
    head = head_revision()
    if current is None:
        has_tables = bool(set(inspect(connection).get_table_names()) - {"alembic_version"})
        if has_tables:
            raise SchemaError("the database has tables but no Callslip schema version; is it another program's?")
        return SchemaInfo(SchemaState.EMPTY, None, head)
    if current == head:
        return SchemaInfo(SchemaState.CURRENT, current, head)
    if current in _known_revisions():
        return SchemaInfo(SchemaState.OLDER, current, head)
    return SchemaInfo(SchemaState.NEWER, current, head)


def check_schema(engine: Engine) -> SchemaInfo:
    """Raise :class:`SchemaError` unless the schema is exactly this program's."""
    with engine.connect() as connection:
        info = schema_info(connection)
    if info.state is not SchemaState.CURRENT:
        raise SchemaError(info.describe())
    return info


def upgrade(engine: Engine, *, revision: str = "head", backup: bool = True) -> SchemaInfo:
    """Bring the schema up to ``revision`` (default: this program's head) and return the resulting state.

    Raises:
        SchemaError: the database is newer than this program, or belongs to something else.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            connection.commit()
            try:
                return _upgrade_on(connection, engine, revision, backup=False)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                connection.commit()
    with engine.connect() as connection:
        return _upgrade_on(connection, engine, revision, backup=backup)


def _upgrade_on(connection: Connection, engine: Engine, revision: str, *, backup: bool) -> SchemaInfo:
    info = schema_info(connection)
    connection.commit()
    if info.state is SchemaState.NEWER:
        raise SchemaError(info.describe())
    if info.state is SchemaState.CURRENT and revision == "head":
        return info
    if backup and info.state is SchemaState.OLDER:
        backup_sqlite(engine, info.database_revision or "none")
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    connection.commit()
    return schema_info(connection)


def backup_sqlite(engine: Engine, revision: str, *, now: datetime | None = None) -> Path | None:
    """Copy a SQLite database beside itself (``NAME.rREV-YYYYmmddHHMMSS.bak``) with SQLite's backup API.

    The backup API, unlike a file copy, is consistent with a WAL file and with other open connections.
    """
    path = sqlite_path(engine.url)
    if path is None or not path.exists():
        return None
    stamp = (now or utcnow()).strftime("%Y%m%d%H%M%S")
    target = path.with_name(f"{path.name}.r{revision}-{stamp}.bak")
    source = sqlite3.connect(path)
    try:
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
    finally:
        source.close()
    return target
