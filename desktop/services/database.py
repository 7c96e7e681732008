"""Opening a database for use: migrations at start-up and the reference data every library needs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import URL

from desktop.db import migrate
from desktop.db.engine import Database
from desktop.db.models import Location, NoticeTemplate, PickupLocation, SystemSetting
from desktop.domain.contacts import ADDRESS_PERMISSION, ContactKind
from desktop.services.notices.templates import default_templates

__all__ = ["Database", "OpenResult", "ensure_reference_data", "open_database"]

#: The Locations code table a new library starts with (name, allowed kinds, default for kinds).
DEFAULT_LOCATIONS: tuple[tuple[str, str, str], ...] = (
    ("Home", "email,phone,fax,web,address", "email,address"),
    ("Work", "email,phone,fax,web,address", "fax,web"),
    ("Cell", "phone", "phone"),
    ("Emergency", "phone", ""),
    ("Other", "email,phone,fax,web,address", ""),
)

#: Shared settings every database starts with. Deliberately no library name, address, e-mail, phone or reset-link
#: base: a real library's first notice must never go out signed by an invented one. ``init-db`` takes them as
#: options; only ``seed-demo`` (and ``callslip --demo``) fills in demo ones.
DEFAULT_SYSTEM_SETTINGS: dict[str, object] = {
    "poll_seconds": 300,
}


@dataclass(frozen=True)
class OpenResult:
    """What opening did, for the status bar and ``init-db``."""

    schema: migrate.SchemaInfo
    upgraded_from: str | None


def open_database(url: str | URL, *, upgrade: bool = True) -> tuple[Database, OpenResult]:
    """Connect, bring the schema to this program's revision and make sure the reference data exists.

    Pass a :class:`~sqlalchemy.engine.URL` (not ``str(url)``, which masks the password as ``***``) when the
    password came from the keyring.

    Raises:
        desktop.db.migrate.SchemaError: the schema is newer than this program (or ``upgrade`` is False and
            it is older); nothing is changed.
    """
    db = Database(url)
    try:
        with db.engine.connect() as connection:
            before = migrate.schema_info(connection)
        info = migrate.upgrade(db.engine) if upgrade else migrate.check_schema(db.engine)
        ensure_reference_data(db)
    except BaseException:
        db.dispose()
        raise
    upgraded_from = before.database_revision if before.state is not migrate.SchemaState.CURRENT else None
    return db, OpenResult(schema=info, upgraded_from=upgraded_from)


def ensure_reference_data(db: Database) -> None:
    """Add the default Locations, a pickup location, the default templates and shared settings if missing.

    Only fills what is missing, so staff edits survive every start-up.
    """
    with db.write() as session:
        if session.scalar(select(Location.id).limit(1)) is None:
            for order, (name, kinds, defaults) in enumerate(DEFAULT_LOCATIONS):
                session.add(Location(name=name, sort_order=order, kinds=kinds, default_for=defaults))
        if session.scalar(select(PickupLocation.id).limit(1)) is None:
            session.add(
                PickupLocation(
                    code="MAIN",
                    name="Main Library Circulation Desk",
                    address="",  # the library's own address is not known here (never an invented one)
                    routing_delay_minutes=0,
                    hold_days=10,
                )
            )
        installed = set(session.scalars(select(NoticeTemplate.name)))
        for name, default in default_templates().items():
            if name not in installed:
                session.add(NoticeTemplate(**default.as_dict(), updated_by="System"))
        existing = set(session.scalars(select(SystemSetting.key)))
        for key, value in DEFAULT_SYSTEM_SETTINGS.items():
            if key not in existing:
                session.add(SystemSetting(key=key, value=json.dumps(value)))


def _check_permissions() -> None:
    known = {k.value for k in ContactKind} | {ADDRESS_PERMISSION}
    for name, kinds, defaults in DEFAULT_LOCATIONS:
        assert set(kinds.split(",")) <= known, name
        assert set(filter(None, defaults.split(","))) <= set(kinds.split(",")), name


_check_permissions()
