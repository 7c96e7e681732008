"""Patron CSV import/export of ``SMSCarrier`` and ``NotificationPreferences`` (real SQLite and PostgreSQL):
only the events a cell names change, a preference equal to the method is no row, bad cells are refused by line,
and an export imports back unchanged."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Patron, PatronChannelPreference
from desktop.domain.channels import Channel, NoticeEvent
from desktop.services.admin.csv_export import export_patrons
from desktop.services.admin.csv_import import (
    IMPORTED_PREFERENCES_BY,
    format_preferences_cell,
    import_patrons,
    parse_preferences_cell,
)
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences
from tests.patron_helpers import make_patron

READY, REMINDER, RESET, CANCEL = (NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER,
                                  NoticeEvent.PASSWORD_RESET, NoticeEvent.CANCELLATION)  # fmt: skip


def rows(db: Database) -> dict[tuple[str, str], tuple[str, str]]:
    with db.read() as session:
        return {
            (username, row.event): (row.channels, row.updated_by)
            for row, username in session.execute(select(PatronChannelPreference, Patron.username).join(Patron))
        }


def carrier(db: Database, username: str) -> str:
    with db.read() as session:
        return str(session.scalar(select(Patron.sms_carrier).where(Patron.username == username)))


def test_the_cell_reads_events_by_name_or_word_and_follow_method() -> None:
    assert parse_preferences_cell("Item ready for pickup=SMS>E-Mail; reminder = text, email ;cancellation=method") == {
        READY: (Channel.SMS, Channel.EMAIL),
        REMINDER: (Channel.SMS, Channel.EMAIL),
        CANCEL: None,
    }
    assert format_preferences_cell({CANCEL.value: "Mail", READY.value: "SMS>E-Mail"}) == (
        "Item ready for pickup=SMS>E-Mail; Cancellation=Mail"
    )


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("Someday=SMS", "'Someday=SMS' is not event=channels"),
        ("ready SMS", "'ready SMS' is not event=channels"),
        ("ready=Pigeon", "Item ready for pickup: unknown channel 'Pigeon'"),
        ("ready=SMS; ready=Phone", "Item ready for pickup is named twice"),
        ("reset=SMS", "the reset link can only be e-mailed"),
        ("ready=SMS>SMS", "names a channel twice"),
    ],
)
def test_a_bad_cell_refuses_its_row_by_line(sqlite_db: Database, cell: str, reason: str) -> None:
    result = import_patrons(sqlite_db, f'UserName,NotificationPreferences\nann,"{cell}"\n'.encode())
    assert not result.ok
    assert [e.line for e in result.errors] == [2]
    assert reason in result.errors[0].reason
    assert rows(sqlite_db) == {}


def test_import_sets_only_the_named_events_and_the_carrier(any_db: Database) -> None:
    kept = make_patron(any_db, "kept", emails=[("Home", "kept@example.org")])
    save_preferences(any_db, kept, load_preferences(any_db, kept).version, {CANCEL: (Channel.MAIL,)}, staff="desk")
    version = load_preferences(any_db, kept).version
    data = (
        b"UserName,EMailAddress,NotificationMethod,SMSCarrier,NotificationPreferences\n"
        b'kept,,,Verizon,"ready=SMS>E-Mail; reminder=E-Mail"\n'  # the reminder is the method: no row
        b'newby,newby@example.org,Phone,,"Pickup reminder=SMS,Phone; Password reset=E-Mail>SMS"\n'
    )
    dry = import_patrons(any_db, data, dry_run=True)
    assert dry.ok and rows(any_db) == {("kept", CANCEL.value): ("Mail", "desk")}
    preview = "\n".join(dry.preview())
    assert "NotificationPreferences: Item ready for pickup: '(the notification method)' → 'SMS>E-Mail'" in preview
    result = import_patrons(any_db, data)
    assert result.ok, result.errors
    assert (result.created, result.updated) == (1, 1)
    assert rows(any_db) == {
        ("kept", CANCEL.value): ("Mail", "desk"),  # an event the cell does not name keeps what it has
        ("kept", READY.value): ("SMS>E-Mail", IMPORTED_PREFERENCES_BY),
        ("newby", REMINDER.value): ("SMS>Phone", IMPORTED_PREFERENCES_BY),
        ("newby", RESET.value): ("E-Mail>SMS", IMPORTED_PREFERENCES_BY),
    }
    assert carrier(any_db, "kept") == "Verizon" and carrier(any_db, "newby") == ""
    assert load_preferences(any_db, kept).version > version  # an open Contact Card must reload first
    again = import_patrons(any_db, data)
    assert again.ok and (again.created, again.updated, again.unchanged) == (0, 0, 2)
    # "method" puts an event back on the notification method; a file without the columns touches neither.
    assert import_patrons(any_db, b"UserName,NotificationPreferences\nkept,Cancellation=method\n").ok
    assert ("kept", CANCEL.value) not in rows(any_db)
    assert import_patrons(any_db, b"UserName,FirstName\nkept,Kept\n").ok
    assert ("kept", READY.value) in rows(any_db) and carrier(any_db, "kept") == "Verizon"


def test_export_carries_carrier_and_preferences_and_imports_back_unchanged(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "sam", emails=[("Home", "sam@example.org")])
    prefs = load_preferences(sqlite_db, patron)
    save_preferences(sqlite_db, patron, prefs.version, {READY: (Channel.SMS, Channel.EMAIL)}, staff="desk")
    assert import_patrons(sqlite_db, b"UserName,SMSCarrier\nsam,T-Mobile\n").ok
    out = io.StringIO()
    export_patrons(sqlite_db, out)
    header, line = out.getvalue().splitlines()[:2]
    cells = dict(zip(header.split(","), line.split(","), strict=True))
    assert cells["SMSCarrier"] == "T-Mobile"
    assert cells["NotificationPreferences"] == "Item ready for pickup=SMS>E-Mail"
    back = import_patrons(sqlite_db, out.getvalue().encode())
    assert back.ok and back.unchanged == 1, back.preview()
