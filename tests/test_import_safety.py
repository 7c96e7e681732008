"""Imports never damage real data (issue 13): each case the issue saw, reproduced on real databases.

A column the file lacks or an empty cell never changes a field; a requests file is refused by the patron import;
statuses only move forward; re-importing is a no-op (no Tracking, no second arrival notice); unknown sites are
bad rows; every field is checked against the schema and for control characters, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, PickupLocation, Request, Tracking
from desktop.domain.statuses import Status
from desktop.services.admin.csv_export import export_patrons, export_requests, neutralise
from desktop.services.admin.csv_import import (
    CsvFileError,
    StatusBack,
    import_patrons,
    import_requests,
    unneutralise,
)
from desktop.services.errors import ConcurrentEditError
from desktop.services.patrons.contact_card import PostalAddress, load_card, save_card
from desktop.services.requests.status import route_request

PATRONS = (
    "UserName,FirstName,LastName,EMailAddress,Phone,NotificationMethod,DeliveryMethod,Address,City,State,Zip,Site\n"
    "ada,Ada,Lovelace,ada@example.org,217-555-0143,E-Mail,Hold for Pickup,12 Oak St,Springfield,IL,62701,MAIN\n"
    "bob,Bob,Builder,,217-555-0199,Phone,Mail to Address,1 Elm St,Urbana,IL,61801,\n"
)
REQUESTS = (
    "TransactionNumber,UserName,RequestType,LoanTitle,LoanAuthor,TransactionStatus,DueDate\n"
    "500001,ada,Loan,Notes on the Engine,Menabrea,Awaiting Customer Contact,2026-12-31\n"
    "500002,bob,Loan,Bridges,Roebling,Request Sent,\n"
)


def _patron(db: Database, username: str) -> dict[str, Any]:
    with db.read() as session:
        patron = session.scalar(select(Patron).where(Patron.username == username))
        assert patron is not None
        return {
            "first_name": patron.first_name,
            "last_name": patron.last_name,
            "notification_method": patron.notification_method,
            "delivery_method": patron.delivery_method,
            "address1": patron.address1,
            "city": patron.city,
            "zip": patron.zip,
            "site": patron.pickup_location.code if patron.pickup_location else "",
            "version": patron.version_id,
            "contacts": sorted((c.kind, c.normalized, c.is_primary) for c in patron.contact_points),
        }


def _request(db: Database, number: int) -> tuple[str, str, str, int]:
    with db.read() as session:
        request = session.scalar(select(Request).where(Request.transaction_number == number))
        assert request is not None
        return request.loan_title, request.loan_author, request.status, len(request.tracking)


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def loaded(any_db: Database) -> Database:
    assert import_patrons(any_db, PATRONS.encode()).ok
    assert import_requests(any_db, REQUESTS.encode(), changed_by="importer").ok
    return any_db


def test_a_partial_patron_file_changes_only_its_columns(loaded: Database) -> None:
    before = _patron(loaded, "ada")
    result = import_patrons(loaded, b"UserName,Phone\nada,217-555-0100\n")
    assert result.ok and (result.updated, result.unchanged) == (1, 0)
    after = _patron(loaded, "ada")
    assert ("phone", "+12175550100", False) in after["contacts"]
    assert {k: v for k, v in after.items() if k not in ("contacts", "version")} == {
        k: v for k, v in before.items() if k not in ("contacts", "version")
    }
    # Empty cells in present columns keep the stored value too.
    result = import_patrons(loaded, b"UserName,FirstName,LastName,NotificationMethod,Site\nada,,,,\n")
    assert result.ok and result.unchanged == 1 and _patron(loaded, "ada") == after


def test_a_requests_file_is_refused_by_the_patron_import(loaded: Database) -> None:
    before = _patron(loaded, "ada")
    with pytest.raises(CsvFileError, match=r"none of the patron columns.*FirstName, LastName.*use import-requests"):
        import_patrons(loaded, REQUESTS.encode())
    assert _patron(loaded, "ada") == before
    with pytest.raises(CsvFileError, match=r"lacks required column.*TransactionNumber"):
        import_requests(loaded, PATRONS.encode())


def test_a_partial_requests_file_keeps_titles_and_statuses(loaded: Database) -> None:
    route_request(loaded, 500001, Status.NOTIFIED_VIA_EMAIL, "desk")
    before = _request(loaded, 500001)
    result = import_requests(loaded, b"TransactionNumber,UserName,LoanAuthor\n500001,ada,L. F. Menabrea\n")
    assert result.ok and result.updated == 1
    assert _request(loaded, 500001) == (before[0], "L. F. Menabrea", before[2], before[3])


def test_reimport_after_notification_is_refused_kept_or_moved_back_on_request(loaded: Database) -> None:
    """The issue's case: the same file again after the System Manager notified the patron."""
    route_request(loaded, 500001, Status.NOTIFIED_VIA_EMAIL, "System Manager")
    notices, tracking = _count(loaded, Notification), _count(loaded, Tracking)
    refused = import_requests(loaded, REQUESTS.encode())
    assert [str(e) for e in refused.errors] == [
        "line 2: TransactionStatus 'Awaiting Customer Contact' would move back request 500001 (stored: "
        "'Customer Notified via E-Mail'); an import only moves a status forward — --allow-status-back moves it "
        "anyway, --keep-newer-status keeps the stored one"
    ]
    kept = import_requests(loaded, REQUESTS.encode(), status_back=StatusBack.KEEP)
    assert kept.ok and kept.unchanged == 2 and len(kept.notes) == 1
    assert (_count(loaded, Notification), _count(loaded, Tracking)) == (notices, tracking)
    assert _request(loaded, 500001)[2] == Status.NOTIFIED_VIA_EMAIL.value
    moved = import_requests(loaded, REQUESTS.encode(), status_back=StatusBack.ALLOW, changed_by="admin")
    assert moved.ok and moved.updated == 1
    assert _request(loaded, 500001)[2] == Status.AWAITING_CUSTOMER_CONTACT.value
    assert _count(loaded, Tracking) == tracking + 1


def test_reimporting_the_same_file_is_a_no_op(loaded: Database) -> None:
    notices, tracking = _count(loaded, Notification), _count(loaded, Tracking)
    assert notices == 1  # the arrival notice of 500001 (ada is notified by e-mail)
    again = import_requests(loaded, REQUESTS.encode())
    assert again.ok and (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert again.lock_seconds == 0  # nothing to write: the write lock was not even taken
    assert (_count(loaded, Notification), _count(loaded, Tracking)) == (notices, tracking)
    assert import_patrons(loaded, PATRONS.encode()).unchanged == 2


@pytest.mark.parametrize(
    ("stored", "target", "allowed"),
    [
        (Status.REQUEST_SENT, Status.CHECKED_OUT, True),
        (Status.REQUEST_SENT, Status.CANCELLED_BY_STAFF, True),
        (Status.REQUEST_SENT, Status.AWAITING_REQUEST_PROCESSING, False),
        (Status.CHECKED_OUT, Status.NOTIFIED_VIA_PHONE, False),
        (Status.REQUEST_FINISHED, Status.CANCELLED_BY_CUSTOMER, False),
    ],
)
def test_statuses_only_move_forward(sqlite_db: Database, stored: Status, target: Status, allowed: bool) -> None:
    assert import_patrons(sqlite_db, PATRONS.encode()).ok
    assert import_requests(sqlite_db, f"TransactionNumber,UserName,TransactionStatus\n1,bob,{stored}\n".encode()).ok
    result = import_requests(sqlite_db, f"TransactionNumber,UserName,TransactionStatus\n1,bob,{target}\n".encode())
    assert result.ok is allowed, result.errors
    assert _request(sqlite_db, 1)[2] == (target if allowed else stored).value


def test_cancelled_request_is_not_reopened(sqlite_db: Database) -> None:
    assert import_patrons(sqlite_db, PATRONS.encode()).ok
    header = "TransactionNumber,UserName,TransactionStatus\n"
    assert import_requests(sqlite_db, f"{header}7,bob,Cancelled by Customer\n".encode()).ok
    result = import_requests(sqlite_db, f"{header}7,bob,Request Sent\n".encode())
    assert "would re-open request 7" in result.errors[0].reason


def test_unknown_site_is_a_bad_row_naming_the_known_ones(any_db: Database) -> None:
    data = b"UserName,EMailAddress,Site\nzoe,zoe@example.org,Annex\n"
    result = import_patrons(any_db, data)
    assert [str(e) for e in result.errors] == [
        "line 2: Site 'Annex' is not a pickup location (known: MAIN); add it under Locations, "
        "or import with --create-sites to create it"
    ]
    assert _count(any_db, Patron) == 0 and _count(any_db, PickupLocation) == 1
    assert import_patrons(any_db, data, create_sites=True).ok
    assert _patron(any_db, "zoe")["site"] == "Annex"


def test_dry_run_lists_changes_and_writes_nothing(loaded: Database) -> None:
    before = _patron(loaded, "ada")
    data = (
        b"UserName,FirstName,LastName,EMailAddress,City\n"
        b'ada,Ada,"King\nof Lovelace",ada.king@example.org,Ockham\n'
        b"new,New,Person,new@example.org,\n"
    )
    result = import_patrons(loaded, data, dry_run=True)
    assert result.summary() == ("patrons (dry run, nothing written): 2 row(s): would create 1, change 1, leave 0 alone")
    assert result.preview() == [
        "line 2: ada: LastName: 'Lovelace' → 'King of Lovelace'; City: 'Springfield' → 'Ockham'; "
        "EMailAddress: '' → 'ada.king@example.org (added)'; "
        "EMailAddress (primary): 'ada@example.org' → 'ada.king@example.org'",
        "line 4: new: new (FirstName 'New', LastName 'Person', EMailAddress 'new@example.org')",
        "note: line 2: LastName: line breaks folded into spaces",
    ]
    assert _patron(loaded, "ada") == before and _count(loaded, Patron) == 2
    assert result.preview(limit=1)[1] == "… and 1 more created, 0 more changed"


def test_titles_and_names_are_made_single_line(loaded: Database) -> None:
    data = 'TransactionNumber,UserName,LoanTitle\n500002,bob,"Bridges\r\nof\u2028Madison"\n'.encode()
    result = import_requests(loaded, data)
    assert result.ok and [str(n) for n in result.notes] == ["line 2: LoanTitle: line breaks folded into spaces"]
    assert _request(loaded, 500002)[0] == "Bridges of Madison"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("UserName,FirstName\nada,A\x00da\n", "line 2: FirstName contains the control character U+0000 at position 2"),
        ("UserName,City\nada,Spring\x1bfield\n", "line 2: City contains the control character U+001B at position 7"),
        (f"UserName,LastName\nada,{'x' * 101}\n", "line 2: LastName is 101 characters long; the database keeps at most 100"),
        (f"UserName,Zip\nada,{'9' * 21}\n", "line 2: Zip is 21 characters long; the database keeps at most 20"),
        (f"UserName,Status\nada,{'s' * 61}\n", "line 2: Status is 61 characters long; the database keeps at most 60"),
        (f"UserName,FirstName\n{'u' * 101},A\n", "line 2: UserName is 101 characters long; the database keeps at most 100"),
        (f"UserName,Site\nada,{'S' * 41}\n", "line 2: Site is 41 characters long; the database keeps at most 40"),
        (f"UserName,HouseholdID\nada,{'H' * 65}\n", "line 2: HouseholdID is 65 characters long; the database keeps at most 64"),
        (f"UserName,Phone\nada,{' ' * 40_000}1\n", "line 2: Phone is 40,001 characters long; at most 2000 are read"),
        (f"UserName,Phone\nada,217{' ' * 100}5550143\n", "line 2: Phone is 110 characters long; a phone number is at most 60"),
    ],
)  # fmt: skip
def test_patron_fields_are_checked_against_the_schema(loaded: Database, data: str, reason: str) -> None:
    before = _patron(loaded, "ada")
    result = import_patrons(loaded, data.encode())
    assert [str(e) for e in result.errors] == [reason]
    assert _patron(loaded, "ada") == before


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("500003,ada,\x00", "line 2: LoanTitle contains the control character U+0000 at position 1"),
        (f"500003,ada,{'t' * 501}", "line 2: LoanTitle is 501 characters long; the database keeps at most 500"),
        ("٥٠٠٠٠٣,ada,T", "line 2: TransactionNumber '٥٠٠٠٠٣' is not a whole number written with the digits 0-9"),
        ("500_003,ada,T", "line 2: TransactionNumber '500_003' is not a whole number written with the digits 0-9"),
        ("-5,ada,T", "line 2: TransactionNumber '-5' is not a whole number written with the digits 0-9"),
        ("99999999999,ada,T", "line 2: TransactionNumber '99999999999' is not a whole number written with the digits 0-9"),
        ("2147483648,ada,T", "line 2: TransactionNumber 2147483648 is out of range (1 to 2147483647)"),
        ("500003,ada,T,0001-01-01", "line 2: TransactionDate: '0001-01-01': the year must be between 1900 and 2999"),
        ("500003,ada,T,0001-01-01T00:00:00-05:00", "line 2: TransactionDate: '0001-01-01T00:00:00-05:00': the year must be between 1900 and 2999"),
        ("500003,ada,T,9999-12-31T23:59:59+14:00", "line 2: TransactionDate: '9999-12-31T23:59:59+14:00': the year must be between 1900 and 2999"),
        ("500003,ada,T,,1/1/0001", "line 2: DueDate: '1/1/0001': the year must be between 1900 and 2999"),
        ("500003,ada,T,,2026-02-30", "line 2: DueDate: '2026-02-30' is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)"),
        ("500003,ada,T,,0200-02-02", "line 2: DueDate: '0200-02-02': the year must be between 1900 and 2999"),
    ],
)  # fmt: skip
def test_request_fields_are_checked(loaded: Database, row: str, reason: str) -> None:
    cells = row.split(",") + [""] * (5 - len(row.split(",")))
    data = "TransactionNumber,UserName,LoanTitle,TransactionDate,DueDate\n" + ",".join(cells) + "\n"
    result = import_requests(loaded, data.encode())
    assert [str(e) for e in result.errors] == [reason]
    assert _count(loaded, Request) == 2


def test_an_imported_email_bumps_the_version_so_an_open_card_conflicts(loaded: Database) -> None:
    with loaded.read() as session:
        patron_id = session.scalar(select(Patron.id).where(Patron.username == "ada"))
    assert patron_id is not None
    card = load_card(loaded, patron_id)
    # The whole file again with only ada's e-mail changed: nothing but a contact point is written.
    assert import_patrons(loaded, PATRONS.replace("ada@example.org", "ada.new@example.org").encode()).updated == 1
    assert _patron(loaded, "ada")["version"] == card.version_id + 1
    with pytest.raises(ConcurrentEditError):
        save_card(loaded, patron_id, card.version_id, card.points, PostalAddress())
    assert ("email", "ada.new@example.org", True) in _patron(loaded, "ada")["contacts"]


def test_formula_cells_are_neutralised_in_every_export_and_read_back(loaded: Database) -> None:
    data = (
        b"UserName,FirstName,LastName,Address,City,Department\n"
        b"ada,=HYPERLINK(\"http://x\"),+Lovelace,-1 Oak,@City,''=kept\n"
    )
    assert import_patrons(loaded, data).ok
    assert import_requests(loaded, b"TransactionNumber,UserName,LoanTitle\n500001,ada,=cmd|' /C calc'!A0\n").ok
    patrons, requests = io.StringIO(), io.StringIO()
    export_patrons(loaded, patrons)
    export_requests(loaded, requests)
    ada = next(line for line in patrons.getvalue().splitlines() if line.startswith("ada,"))
    assert ada.startswith('ada,"\'=HYPERLINK(""http://x"")",\'+Lovelace,ada@example.org,\'+1 217-555-0143,')
    assert ",'-1 Oak,,'@City," in ada and ",''=kept," in ada
    assert "'=cmd|' /C calc'!A0" in requests.getvalue()
    for cell in patrons.getvalue().replace("\n", ",").split(","):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # Export → import changes nothing: the importer drops exactly the apostrophe the export added.
    again = import_patrons(loaded, patrons.getvalue().encode())
    assert again.ok and again.updated == 0 and again.unchanged == 2, again.preview()
    assert import_requests(loaded, requests.getvalue().encode()).unchanged == 2
    for value in ("=1", "'=1", "''+x", "'plain", "plain", "-", "\t=1"):
        assert unneutralise(neutralise(value)) == value


def test_export_patrons_round_trips_demo_data(any_db: Database) -> None:
    from desktop.services.admin.demo import seed_demo

    seed_demo(any_db, patrons=40, requests=60)
    out = io.StringIO()
    assert export_patrons(any_db, out) == 40
    result = import_patrons(any_db, out.getvalue().encode())
    assert result.ok and (result.created, result.updated, result.unchanged) == (0, 0, 40), result.preview()


def test_a_write_between_planning_and_writing_is_planned_again(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another workstation saves the patron's card while the import plans: the import plans again, nothing lost.

    The other workstation's save is real (the Contact Card service on the same file); the wrapper only decides
    *when* it happens, right after the first plan, which a test cannot otherwise hit reliably.
    """
    from dataclasses import replace

    from desktop.services.admin import csv_import
    from desktop.services.patrons.contact_card import CardPoint

    assert import_patrons(sqlite_db, b"UserName,EMailAddress\nada,ada@example.org\n").ok
    with sqlite_db.read() as session:
        patron_id = session.scalar(select(Patron.id).where(Patron.username == "ada"))
    assert patron_id is not None
    real_plan = csv_import._plan_patrons
    plans: list[int] = []

    def plan_then_another_workstation_saves(*args: Any) -> Any:
        plan = real_plan(*args)
        plans.append(1)
        if len(plans) == 1:
            card = load_card(sqlite_db, patron_id)
            points = [replace(p, is_primary=False) for p in card.points]
            points.append(CardPoint(kind="email", value="desk@example.org", is_primary=True))
            save_card(sqlite_db, patron_id, card.version_id, points, PostalAddress(city="Elsewhere"))
        return plan

    monkeypatch.setattr(csv_import, "_plan_patrons", plan_then_another_workstation_saves)
    result = import_patrons(sqlite_db, b"UserName,LastName,EMailAddress\nada,Lovelace,ada.new@example.org\n")
    assert result.ok and result.updated == 1 and len(plans) == 2
    ada = _patron(sqlite_db, "ada")
    assert ada["city"] == "Elsewhere" and ada["last_name"] == "Lovelace"
    assert ada["contacts"] == [
        ("email", "ada.new@example.org", True),
        ("email", "ada@example.org", False),
        ("email", "desk@example.org", False),
    ]


def test_every_status_has_a_place_on_the_pickup_path() -> None:
    """A status added to the domain (the hold shelf's Awaiting Return to Lender) must be ranked here too, or an
    import naming it raises instead of being judged forward or back."""
    from desktop.domain.statuses import CANCELLED_STATUSES
    from desktop.services.admin.csv_import import PATH_RANK, status_move

    assert set(Status) == set(PATH_RANK) | set(CANCELLED_STATUSES)
    assert status_move(Status.NOTIFIED_VIA_EMAIL, Status.AWAITING_RETURN_TO_LENDER) == "forward"
    assert status_move(Status.AWAITING_RETURN_TO_LENDER, Status.CHECKED_OUT) == "forward"  # the patron came late
    assert status_move(Status.CHECKED_OUT, Status.AWAITING_RETURN_TO_LENDER) == "back"
