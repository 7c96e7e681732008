"""Properties of the CSV importers over generated files (hypothesis), on one real SQLite file per test.

* For any stored record and any subset of columns, the fields outside the subset are unchanged by an import.
* Importing a file twice equals importing it once (the second import changes nothing, writes nothing).
* export-patrons → import-patrons changes nothing.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from desktop.db.engine import Database, sqlite_url
from desktop.db.models import Patron, Request, Tracking
from desktop.domain.statuses import Status
from desktop.services.admin.csv_export import export_patrons, neutralise
from desktop.services.admin.csv_import import PATRON_DATA_COLUMNS, import_patrons, import_requests
from desktop.services.database import open_database

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_names = itertools.count(1)

TEXT = st.text(
    alphabet=st.sampled_from("abcXYZ éø小 ,\"'=+-@\n"), min_size=0, max_size=12
)  # quotes, commas, formula starts and line breaks, all of which the CSV layer must carry
PHONES = st.sampled_from(["217-555-0143", "(217) 555-0199", "+44 20 7946 0958", "312 555 0100 x12", ""])
PATRON_VALUES: dict[str, st.SearchStrategy[str]] = {
    "FirstName": TEXT, "LastName": TEXT, "Address": TEXT, "Address2": TEXT, "City": TEXT, "State": TEXT,
    "Department": TEXT, "Status": TEXT,
    "Zip": st.sampled_from(["", "61801", "62701-1234", "SW1A 1AA"]),
    "EMailAddress": st.sampled_from(["", "a@example.org", "B.c@Example.org", "z@library.example.edu"]),
    "Phone": PHONES, "MobilePhone": PHONES, "Fax": PHONES,
    "NotificationMethod": st.sampled_from(["", "Phone", "Mail", "E-Mail", "Electronic"]),
    "DeliveryMethod": st.sampled_from(["", "Hold for Pickup", "Mail to Address"]),
    "Site": st.sampled_from(["", "MAIN", "main"]),
    "HouseholdID": st.sampled_from(["", "H1", "H2"]),
    "Country": st.sampled_from(["", "Canada", "United Kingdom"]),
    "SMSCarrier": st.sampled_from(["", "Verizon", "AT&T", "Acme Mobile"]),
    "NotificationPreferences": st.sampled_from(["", "Item ready for pickup=SMS>E-Mail", "ready=Phone; reminder=method",
                                                "Cancellation=Mail,E-Mail", "Password reset=E-Mail>SMS"]),
}  # fmt: skip
STATUSES = st.sampled_from([s.value for s in Status])
REQUEST_VALUES: dict[str, st.SearchStrategy[str]] = {
    "RequestType": st.sampled_from(["", "Loan", "Article"]),
    "LoanTitle": TEXT, "LoanAuthor": TEXT, "PhotoJournalTitle": TEXT, "PhotoArticleTitle": TEXT,
    "CallNumber": TEXT, "LendingLibrary": TEXT,
    "TransactionStatus": st.one_of(st.just(""), STATUSES),
    "TransactionDate": st.sampled_from(["", "2026-11-01 10:00:00", "11/02/2026 09:30:00"]),
    "DueDate": st.sampled_from(["", "2026-12-31", "1/15/2027"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path: Path = tmp_path_factory.mktemp("properties") / "p.sqlite3"
    database, _ = open_database(sqlite_url(path))
    yield database
    database.dispose()


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([neutralise(c) for c in row] for row in rows)  # a file as our export (or a person) writes it
    return out.getvalue().encode()


def _patron_rows(db: Database) -> dict[str, dict[str, str]]:
    out = io.StringIO()
    export_patrons(db, out)
    return {row["UserName"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}


def _contacts(db: Database, username: str) -> set[tuple[str, str]]:
    with db.read() as session:
        patron = session.scalar(select(Patron).where(Patron.username == username))
        assert patron is not None
        return {(c.kind, c.normalized) for c in patron.contact_points}


def _base_patron(username: str) -> bytes:
    header = ["UserName", *PATRON_DATA_COLUMNS]
    values = ["Ann", "Base", "base@example.org", "217-555-0101", "217-555-0102", "217-555-0103", "E-Mail",
              "Hold for Pickup", "1 Base Rd", "Apt 1", "Basetown", "IL", "61801", "Dept", "Staff", "MAIN", "H9",
              "United States", "Verizon", "Pickup reminder=SMS>E-Mail"]  # fmt: skip
    return _csv(header, [[username, *values]])


@SETTINGS
@given(data=st.data())
def test_fields_outside_the_files_columns_never_change(db: Database, data: st.DataObject) -> None:
    username = f"prop{next(_names)}"
    assert import_patrons(db, _base_patron(username)).ok
    before, contacts_before = _patron_rows(db)[username], _contacts(db, username)
    columns = data.draw(st.lists(st.sampled_from(PATRON_DATA_COLUMNS), unique=True, min_size=1))
    values = [data.draw(PATRON_VALUES[c], label=c) for c in columns]
    result = import_patrons(db, _csv(["UserName", *columns], [[username, *values]]))
    assert result.ok, result.errors
    after = _patron_rows(db)[username]
    untouched = [c for c in PATRON_DATA_COLUMNS if c not in columns and c not in ("EMailAddress", "Phone", "Fax")]
    assert {c: after[c] for c in untouched} == {c: before[c] for c in untouched}
    assert _contacts(db, username) >= contacts_before  # contact points are only ever added
    if "EMailAddress" not in columns:
        assert after["EMailAddress"] == before["EMailAddress"]


@SETTINGS
@given(data=st.data())
def test_importing_patrons_twice_equals_importing_once(db: Database, data: st.DataObject) -> None:
    names = [f"twice{next(_names)}" for _ in range(3)]
    for name in names[:2]:  # two stored patrons, one new
        assert import_patrons(db, _base_patron(name)).ok
    columns = data.draw(st.lists(st.sampled_from(PATRON_DATA_COLUMNS), unique=True, min_size=1))
    rows = [[name, *(data.draw(PATRON_VALUES[c], label=c) for c in columns)] for name in names]
    file = _csv(["UserName", *columns], rows)
    first = import_patrons(db, file)
    if not first.ok:  # e.g. a new patron told to be notified by e-mail without an address: refused, no change
        assert import_patrons(db, file).errors == first.errors
        return
    state = (_patron_rows(db), [_contacts(db, n) for n in names])
    second = import_patrons(db, file)
    assert second.ok and (second.created, second.updated, second.unchanged) == (0, 0, 3), second.preview()
    assert (_patron_rows(db), [_contacts(db, n) for n in names]) == state


def _request_state(db: Database, number: int) -> tuple[object, ...]:
    with db.read() as session:
        request = session.scalar(select(Request).where(Request.transaction_number == number))
        assert request is not None
        tracking = session.scalars(select(Tracking.id).where(Tracking.request_id == request.id)).all()
        return (
            request.request_type, request.loan_title, request.loan_author, request.photo_journal_title,
            request.photo_article_title, request.call_number, request.lending_library, request.status,
            request.transaction_date.replace(microsecond=0), request.due_date, request.version_id, len(tracking),
        )  # fmt: skip


REQUEST_FIELD_INDEX = {
    "RequestType": 0, "LoanTitle": 1, "LoanAuthor": 2, "PhotoJournalTitle": 3, "PhotoArticleTitle": 4,
    "CallNumber": 5, "LendingLibrary": 6, "TransactionStatus": 7, "TransactionDate": 8, "DueDate": 9,
}  # fmt: skip


@SETTINGS
@given(data=st.data())
def test_requests_change_only_their_columns_and_twice_equals_once(db: Database, data: st.DataObject) -> None:
    username = f"req{next(_names)}"
    assert import_patrons(db, _base_patron(username)).ok
    number = next(_names) + 800_000
    base = _csv(
        ["TransactionNumber", "UserName", *REQUEST_VALUES],
        [[str(number), username, "Loan", "Title", "Author", "Journal", "Article", "QA76", "UIUC", "Request Sent",
          "2026-10-01 08:00:00", "2026-12-01"]],
    )  # fmt: skip
    assert import_requests(db, base).ok
    before = _request_state(db, number)
    columns = data.draw(st.lists(st.sampled_from(list(REQUEST_VALUES)), unique=True, min_size=1))
    values = [data.draw(REQUEST_VALUES[c], label=c) for c in columns]
    file = _csv(["TransactionNumber", "UserName", *columns], [[str(number), username, *values]])
    first = import_requests(db, file)
    after = _request_state(db, number)
    if first.ok:
        untouched = [i for c, i in REQUEST_FIELD_INDEX.items() if c not in columns]
        assert [after[i] for i in untouched] == [before[i] for i in untouched]
    else:  # a status the file would move back: nothing changed at all
        assert "only moves a status forward" in first.errors[0].reason and after == before
    second = import_requests(db, file)
    assert second.errors == first.errors
    assert second.updated == 0 and second.created == 0
    assert _request_state(db, number) == after


ANY_CELL = st.text(st.characters(exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["0001-01-01", "9999-12-31T23:59:59-14:00", "٣٤٥", "1_000", "²", "99999999999999999999", "+", "'=1", "\x00"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_cells_are_imported_or_named_never_raised(any_db: Database, data: st.DataObject) -> None:
    """Whatever the cells hold, on SQLite and PostgreSQL: imported, or every bad row named — never an exception."""
    patron_columns = data.draw(st.lists(st.sampled_from(PATRON_DATA_COLUMNS), unique=True, min_size=1))
    rows = [[data.draw(ANY_CELL) for _ in range(len(patron_columns) + 1)] for _ in range(3)]
    for patron_file in (_csv(["UserName", *patron_columns], rows), _csv(["UserName", *patron_columns], [])):
        result = import_patrons(any_db, patron_file)
        assert result.ok or all(e.line >= 2 and e.reason for e in result.errors)
    request_columns = data.draw(st.lists(st.sampled_from(list(REQUEST_VALUES)), unique=True, min_size=1))
    rows = [[data.draw(ANY_CELL) for _ in range(len(request_columns) + 2)] for _ in range(3)]
    result = import_requests(any_db, _csv(["TransactionNumber", "UserName", *request_columns], rows))
    assert result.ok or all(e.line >= 2 and e.reason for e in result.errors)
