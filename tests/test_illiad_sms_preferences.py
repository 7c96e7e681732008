"""ILLiad's SMS opt-in and carrier become channel preferences and ``Patron.sms_carrier`` (real SQLite and
PostgreSQL): item notices become "SMS, else the method", nothing is stored for users without SMS, a re-import is
idempotent and never overwrites what staff chose in Callslip."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Patron, PatronChannelPreference
from desktop.domain.channels import Channel, NoticeEvent
from desktop.services.admin.illiad_import import IMPORTED_BY, SMS_OPT_IN_COLUMNS, import_illiad
from desktop.services.patrons.channel_preferences import load_preferences, save_preferences

COLUMNS = ("UserName", "FirstName", "LastName", "EMailAddress", "MobilePhone", "NotificationMethod", "smsoptin",
           "MobileCarrier", "Cleared")  # fmt: skip
USERS = [
    ("sms1", "Sam", "Text", "sam@example.edu", "217-555-0101", "Electronic", "Yes", "verizon", "Yes"),
    ("sms2", "Pia", "Phone", "pia@example.edu", "217-555-0102", "Phone", "1", "NULL", "Yes"),
    ("nosms", "Nor", "Mail", "nor@example.edu", "NULL", "Electronic", "No", "NULL", "Yes"),
    ("odd", "Odd", "Value", "odd@example.edu", "NULL", "E-Mail", "maybe", "NULL", "Yes"),
    ("blank", "Bea", "Blank", "bea@example.edu", "NULL", "E-Mail", "NULL", "NULL", "Yes"),
]


def write_users(folder: Path, rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "Users.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return folder


def stored(db: Database) -> dict[tuple[str, str], tuple[str, str]]:
    with db.read() as session:
        return {
            (username, row.event): (row.channels, row.updated_by)
            for row, username in session.execute(
                select(PatronChannelPreference, Patron.username).join(
                    Patron, Patron.id == PatronChannelPreference.patron_id
                )
            )
        }


def patron_id(db: Database, username: str) -> int:
    with db.read() as session:
        found = session.scalar(select(Patron.id).where(Patron.username == username))
    assert found is not None
    return found


def test_sms_opt_in_becomes_sms_first_for_item_notices_and_nothing_else(any_db: Database, tmp_path: Path) -> None:
    folder = write_users(tmp_path / "export", USERS)
    dry = import_illiad(any_db, folder, dry_run=True)
    assert stored(any_db) == {}
    text = "\n".join(dry.lines())
    assert "SMS opt-in: 2 user(s); would store 6 channel preference(s)" in text
    assert "SMS carrier would be set for 1 patron(s)" in text

    report = import_illiad(any_db, folder)
    assert (report.sms_opt_in, report.preferences_written, report.carriers_set) == (2, 6, 1)
    text = "\n".join(report.lines())
    assert "SMS opt-in: 2 user(s); stored 6 channel preference(s)" in text
    assert "Users: SMSOptIn 'maybe' is not Yes or No (the SMS preference was left as it was): 1" in text
    item_events = (NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER, NoticeEvent.CANCELLATION)
    assert stored(any_db) == {
        **{("sms1", e.value): ("SMS>E-Mail", IMPORTED_BY) for e in item_events},
        **{("sms2", e.value): ("SMS>Phone", IMPORTED_BY) for e in item_events},
    }
    sam = load_preferences(any_db, patron_id(any_db, "sms1"))
    assert sam.channels[NoticeEvent.PASSWORD_RESET] == (Channel.EMAIL,)  # a reset link is e-mailed
    for user in ("nosms", "odd", "blank"):  # no row: they follow their method as before
        assert load_preferences(any_db, patron_id(any_db, user)).stored == frozenset()
    with any_db.read() as session:
        carriers = {name: carrier for name, carrier in session.execute(select(Patron.username, Patron.sms_carrier))}
    assert carriers["sms1"] == "Verizon"  # the shared carrier table's spelling
    assert carriers["sms2"] == carriers["nosms"] == ""

    again = import_illiad(any_db, folder)  # idempotent
    assert (again.sms_opt_in, again.preferences_written, again.carriers_set) == (2, 0, 0)
    assert len(stored(any_db)) == 6


def test_a_reimport_keeps_what_staff_chose_and_withdraws_its_own_rows(sqlite_db: Database, tmp_path: Path) -> None:
    folder = write_users(tmp_path / "first", USERS)
    import_illiad(sqlite_db, folder)
    sam = patron_id(sqlite_db, "sms1")
    version = load_preferences(sqlite_db, sam).version
    save_preferences(sqlite_db, sam, version, {NoticeEvent.READY_FOR_PICKUP: (Channel.PHONE,)}, staff="desk")
    # A later export: Sam opted out of SMS in ILLiad meanwhile.
    changed = [(*row[:6], "No", *row[7:]) if row[0] == "sms1" else row for row in USERS]
    report = import_illiad(sqlite_db, write_users(tmp_path / "second", changed))
    rows = stored(sqlite_db)
    assert rows[("sms1", NoticeEvent.READY_FOR_PICKUP.value)] == ("Phone", "desk")  # staff's choice kept
    assert ("sms1", NoticeEvent.PICKUP_REMINDER.value) not in rows  # the import's own rows withdrawn
    assert ("sms1", NoticeEvent.CANCELLATION.value) not in rows
    assert report.sms_opt_in == 1  # Pia still opted in
    assert load_preferences(sqlite_db, sam).version > version  # an open Contact Card must reload first


@pytest.mark.parametrize("column", SMS_OPT_IN_COLUMNS)
@pytest.mark.parametrize("value", ["Y", "TRUE", "true", "1", "yes"])
def test_every_opt_in_column_and_spelling_is_read(sqlite_db: Database, tmp_path: Path, column: str, value: str) -> None:
    columns = ("UserName", "EMailAddress", "NotificationMethod", column.upper(), "SMSCarrier")
    folder = write_users(tmp_path / "export", [("tia", "tia@example.edu", "Email", value, "Acme Mobile")], columns)
    report = import_illiad(sqlite_db, folder)
    assert report.sms_opt_in == 1
    assert stored(sqlite_db)[("tia", NoticeEvent.PICKUP_REMINDER.value)] == ("SMS>E-Mail", IMPORTED_BY)
    with sqlite_db.read() as session:
        assert session.scalar(select(Patron.sms_carrier)) == "Acme Mobile"  # not in the table: kept as written
