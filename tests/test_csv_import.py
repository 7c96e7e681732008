"""CSV import on real SQLite files: all or nothing, every bad row named, idempotent, ILLiad's spellings."""

from __future__ import annotations

from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Household, Patron, PickupLocation, Request, Tracking
from desktop.services.admin.csv_import import CsvFileError, import_patrons, import_requests

PATRON_HEADER = (
    "UserName,FirstName,LastName,EMailAddress,Phone,MobilePhone,Fax,NotificationMethod,DeliveryMethod,"
    "Address,Address2,City,State,Zip,Department,Status,Site,HouseholdID\n"
)


def _patrons(*rows: str, bom: bool = False) -> bytes:
    text = PATRON_HEADER + "".join(row + "\n" for row in rows)
    return ("\ufeff" + text).encode("utf-8") if bom else text.encode("utf-8")


ADA = "ada,Ada,Lovelace,Ada@Example.org,(217) 555-0143,,,Electronic,Hold for Pickup,12 Oak St,,Springfield,IL,62701,Math,Faculty,MAIN,H1"
ZOE = "zoe,Zoë,Ørsted,zoe@example.org,,312-555-0199,,Phone,,,,,,,,,SCI,H2"
WANG = 'wang,小明,王,wang@example.org,,,217 555 0150,Mail,Mail to Address,"1 Road, Apt 2",,Urbana,IL,61801,,,,'


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_import_patrons_with_bom_quotes_and_non_ascii(sqlite_db: Database) -> None:
    result = import_patrons(sqlite_db, _patrons(ADA, ZOE, WANG, bom=True), create_sites=True)
    assert result.ok, result.errors
    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    with sqlite_db.read() as session:
        ada = session.scalar(select(Patron).where(Patron.username == "ada"))
        assert ada is not None
        assert ada.notification_method == "E-Mail"  # ILLiad's "Electronic"
        emails = [c for c in ada.contact_points if c.kind == "email"]
        assert [(c.value, c.normalized, c.is_primary) for c in emails] == [("Ada@example.org", "ada@example.org", True)]
        assert [c.normalized for c in ada.contact_points if c.kind == "phone"] == ["+12175550143"]
        wang = session.scalar(select(Patron).where(Patron.username == "wang"))
        assert wang is not None and (wang.first_name, wang.last_name) == ("小明", "王")
        assert wang.address1 == "1 Road, Apt 2"
        assert wang.delivery_method == "Mail to Address"
        zoe = session.scalar(select(Patron).where(Patron.username == "zoe"))
        assert zoe is not None and zoe.last_name == "Ørsted"
        assert zoe.pickup_location is not None and zoe.pickup_location.code == "SCI"
        assert {h.code for h in session.scalars(select(Household))} == {"H1", "H2"}


def test_reimport_changes_nothing(sqlite_db: Database) -> None:
    data = _patrons(ADA, ZOE, WANG)
    import_patrons(sqlite_db, data, create_sites=True)
    with sqlite_db.read() as session:
        versions = {u: v for u, v in session.execute(select(Patron.username, Patron.version_id))}
    points = _count(sqlite_db, ContactPoint)
    again = import_patrons(sqlite_db, data, create_sites=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    with sqlite_db.read() as session:
        assert {u: v for u, v in session.execute(select(Patron.username, Patron.version_id))} == versions
    assert _count(sqlite_db, ContactPoint) == points


def test_one_bad_row_writes_nothing_and_every_bad_row_is_named(sqlite_db: Database) -> None:
    bad_phone = "bob,Bob,Builder,bob@example.org,123,,,Phone,,,,,,,,,,"
    bad_email = "carol,Carol,C,not-an-email,,,,E-Mail,,,,,,,,,,"
    bad_method = "dan,Dan,D,dan@example.org,,,,Pigeon,,,,,,,,,,"
    result = import_patrons(sqlite_db, _patrons(ADA, bad_phone, ZOE, bad_email, bad_method), create_sites=True)
    assert not result.ok
    assert [e.line for e in result.errors] == [3, 5, 6]
    assert "Phone '123'" in result.errors[0].reason
    assert "EMailAddress" in result.errors[1].reason
    assert "Pigeon" in result.errors[2].reason
    assert "nothing was imported" in result.summary()
    assert _count(sqlite_db, Patron) == 0


def test_embedded_newline_keeps_line_numbers_right(sqlite_db: Database) -> None:
    multi = 'eve,Eve,E,eve@example.org,,,,E-Mail,,"1 Long Road\nBuilding B",,Town,IL,61801,,,,'
    bad = "frank,,,,,,,E-Mail,,,,,,,,,,"
    result = import_patrons(sqlite_db, _patrons(multi, bad))
    assert [(e.line, "EMailAddress is empty" in e.reason) for e in result.errors] == [(4, True)]


def test_duplicate_keys_in_file_and_field_counts(sqlite_db: Database) -> None:
    result = import_patrons(sqlite_db, _patrons(ADA, ADA.replace("Ada,", "Adeline,", 1), "short,row"))
    assert [str(e) for e in result.errors] == [
        "line 3: UserName 'ada' already on line 2",
        "line 4: has 2 field(s) but the header has 18 (check quotes)",
    ]


def test_unknown_columns_are_reported(sqlite_db: Database) -> None:
    data = b"UserName,EMailAddress,Favourite Colour\nada,ada@example.org,blue\n"
    result = import_patrons(sqlite_db, data)
    assert result.ok and result.unknown_columns == ["Favourite Colour"]


def test_unreadable_files_are_refused_before_any_row() -> None:
    import pytest

    for data, message in [
        (b"", "empty"),
        (b"FirstName\nAda\n", "UserName"),
        (b"UserName,UserName\na,b\n", "twice"),
        ("UserName\nJos\xe9\n".encode("latin-1"), "not UTF-8"),
    ]:
        with pytest.raises(CsvFileError, match=message):
            import_patrons(None, data)  # type: ignore[arg-type]  # refused before the database is touched


REQUEST_HEADER = (
    "TransactionNumber,UserName,RequestType,LoanTitle,LoanAuthor,PhotoJournalTitle,PhotoArticleTitle,"
    "TransactionStatus,TransactionDate,DueDate,CallNumber,LendingLibrary\n"
)


def _requests(*rows: str) -> bytes:
    return (REQUEST_HEADER + "".join(r + "\n" for r in rows)).encode()


def test_import_requests_writes_tracking_and_is_idempotent(sqlite_db: Database) -> None:
    import_patrons(sqlite_db, _patrons(ADA, ZOE), create_sites=True)
    data = _requests(
        '500001,ada,Loan,"Notes, on the Engine",Menabrea,,,Awaiting Customer Contact,2026-11-01 10:00:00,12/31/2026,QA76,UIUC',
        "500002,ZOE,Article,,,Nature,On light,Request Sent,2026-11-02,,,",
    )
    first = import_requests(sqlite_db, data, changed_by="importer")
    assert first.ok, first.errors
    assert first.created == 2
    with sqlite_db.read() as session:
        request = session.scalar(select(Request).where(Request.transaction_number == 500001))
        assert request is not None and request.loan_title == "Notes, on the Engine"
        assert request.due_date is not None and request.due_date.isoformat() == "2026-12-31"
        assert [(t.from_status, t.to_status, t.changed_by) for t in request.tracking] == [
            (None, "Awaiting Customer Contact", "importer")
        ]
        zoe_request = session.scalar(select(Request).where(Request.transaction_number == 500002))
        assert zoe_request is not None and zoe_request.title == "On light"
    tracking = _count(sqlite_db, Tracking)
    again = import_requests(sqlite_db, data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert _count(sqlite_db, Tracking) == tracking
    moved = import_requests(
        sqlite_db, _requests("500002,zoe,Article,,,Nature,On light,Checked Out to Customer,2026-11-02,,,")
    )
    assert moved.updated == 1
    assert _count(sqlite_db, Tracking) == tracking + 1


def test_request_rows_refused_for_unknown_user_bad_number_status_date(sqlite_db: Database) -> None:
    import_patrons(sqlite_db, _patrons(ADA))
    result = import_requests(
        sqlite_db,
        _requests(
            "600001,ada,Loan,Ok,,,,,,,,",
            "600002,nobody,Loan,X,,,,,,,,",
            "abc,ada,Loan,X,,,,,,,,",
            "600003,ada,Loan,X,,,,Lost in Space,,,,",
            "600004,ada,Loan,X,,,,,,31/31/2026,,",
            "600001,ada,Loan,Dup,,,,,,,,",
        ),
    )
    reasons = {e.line: e.reason for e in result.errors}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "not a known patron" in reasons[3]
    assert "not a whole number" in reasons[4]
    assert "Lost in Space" in reasons[5]
    assert "DueDate" in reasons[6]
    assert "already on line 2" in reasons[7]
    assert _count(sqlite_db, Request) == 0


def test_sites_are_created_once(sqlite_db: Database) -> None:
    result = import_patrons(
        sqlite_db, _patrons(ZOE, ZOE.replace("zoe,", "zoe2,", 1).replace("zoe@", "zoe2@")), create_sites=True
    )
    assert result.ok, result.errors
    with sqlite_db.read() as session:
        assert session.scalar(select(func.count()).where(PickupLocation.code == "SCI")) == 1


def test_import_then_seed_on_both_backends(any_db: Database) -> None:
    """Imports and demo seeding work on SQLite and PostgreSQL alike, and ids keep counting after bulk seeding."""
    from desktop.services.admin.demo import seed_demo

    assert import_patrons(any_db, _patrons(ADA, ZOE), create_sites=True).ok
    seed_demo(any_db, patrons=5, requests=20)
    result = import_patrons(any_db, _patrons(WANG))
    assert result.ok and result.created == 1
    data = _requests("700001,wang,Loan,After seeding,,,,Request Sent,,,,")
    assert import_requests(any_db, data).created == 1
    assert _count(any_db, Patron) == 8
    assert _count(any_db, Request) == 21
