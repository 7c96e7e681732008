"""CSV export of requests and patrons with ILLiad's field names, streamed so a million rows never sit in memory.

Every cell that a spreadsheet would read as a formula (one starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written with a leading apostrophe, the spreadsheet convention for "this is text", so a
patron who names themselves ``=HYPERLINK(…)`` cannot run anything on the desk's computer. An apostrophe
already in front of such a character gets one more, so the importer
(:func:`desktop.services.admin.csv_import.unneutralise`) can always drop exactly one and an export imports back
unchanged.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from desktop.db.engine import Database
from desktop.db.models import Household, Location, Patron, PatronChannelPreference, PickupLocation, Request
from desktop.domain.contacts import ContactKind, format_phone
from desktop.domain.statuses import Status
from desktop.services.admin.csv_import import PATRON_COLUMNS, format_preferences_cell

EXPORT_COLUMNS = (
    "TransactionNumber", "UserName", "TransactionStatus", "RequestType", "LoanTitle", "LoanAuthor",
    "PhotoJournalTitle", "PhotoArticleTitle", "TransactionDate", "DueDate", "CallNumber", "LendingLibrary",
    "NotificationMethod", "Site",
)  # fmt: skip


_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet will show it but never evaluate it (see the module docstring)."""
    return "'" + cell if _FORMULA.match(cell) else cell


def iter_request_rows(db: Database, status: Status | None = None, batch: int = 5000) -> Iterator[tuple[str, ...]]:
    """Rows of :data:`EXPORT_COLUMNS`, in transaction-number order."""
    query = (
        select(
            Request.transaction_number,
            Patron.username,
            Request.status,
            Request.request_type,
            Request.loan_title,
            Request.loan_author,
            Request.photo_journal_title,
            Request.photo_article_title,
            Request.transaction_date,
            Request.due_date,
            Request.call_number,
            Request.lending_library,
            Patron.notification_method,
            PickupLocation.code,
        )
        .join(Patron, Request.patron_id == Patron.id)
        .outerjoin(PickupLocation, Request.pickup_location_id == PickupLocation.id)
        .order_by(Request.transaction_number)
    )
    if status is not None:
        query = query.where(Request.status == status.value)
    with db.read() as session:
        result = session.execute(query.execution_options(yield_per=batch))
        for row in result:
            (
                number,
                user,
                st,
                rtype,
                title,
                author,
                journal,
                article,
                tdate,
                due,
                call,
                lender,
                method,
                site,
            ) = row
            yield (
                str(number), user, st, rtype, title, author, journal, article,
                tdate.strftime("%Y-%m-%d %H:%M:%S") if tdate else "",
                due.isoformat() if due else "", call, lender, method, site or "",
            )  # fmt: skip


def export_requests(db: Database, out: TextIO, status: Status | None = None) -> int:
    """Write the CSV (header + rows) to ``out`` and return the number of rows."""
    return _write(out, EXPORT_COLUMNS, iter_request_rows(db, status))


def _write(out: TextIO, header: tuple[str, ...], rows: Iterator[tuple[str, ...]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
        count += 1
    return count


def _phone(normalized: str, extension: str) -> str:
    # International format: it reads back to the same number whatever phone region the importing desk has.
    return format_phone(normalized, "", extension)


def iter_patron_rows(db: Database, batch: int = 2000) -> Iterator[tuple[str, ...]]:
    """Rows of :data:`~desktop.services.admin.csv_import.PATRON_COLUMNS`, by user name.

    EMailAddress, Phone and Fax are the primary ones; MobilePhone is the first other phone at the Cell location
    (what ``import-patrons`` files under Cell). Other contact points stay in the database only.
    NotificationPreferences lists only the events with a stored preference (the others follow the method).
    """
    query = (
        select(Patron, PickupLocation.code, Household.code)
        .outerjoin(PickupLocation, Patron.pickup_location_id == PickupLocation.id)
        .outerjoin(Household, Patron.household_id == Household.id)
        .options(selectinload(Patron.contact_points))
        .order_by(Patron.username)
    )
    with db.read() as session:
        cell = set(session.scalars(select(Location.id).where(Location.name == "Cell")))
        # Only staff's (or an import's) own choices are rows: few beside the patrons, so read once.
        preferences: dict[int, dict[str, str]] = {}
        for pid, event, channels in session.execute(
            select(PatronChannelPreference.patron_id, PatronChannelPreference.event, PatronChannelPreference.channels)
        ):
            preferences.setdefault(pid, {})[event] = channels
        for patron, site, household in session.execute(query.execution_options(yield_per=batch)):
            points = patron.contact_points
            email = next((c for c in points if c.kind == ContactKind.EMAIL.value and c.is_primary), None)
            phone = next((c for c in points if c.kind == ContactKind.PHONE.value and c.is_primary), None)
            mobile = next(
                (c for c in points if c.kind == ContactKind.PHONE.value and c is not phone and c.location_id in cell),
                None,
            )
            fax = next((c for c in points if c.kind == ContactKind.FAX.value and c.is_primary), None)
            yield (
                patron.username, patron.first_name, patron.last_name, email.value if email else "",
                _phone(phone.normalized, phone.extension) if phone else "",
                _phone(mobile.normalized, mobile.extension) if mobile else "",
                _phone(fax.normalized, fax.extension) if fax else "",
                patron.notification_method, patron.delivery_method, patron.address1, patron.address2, patron.city,
                patron.state, patron.zip, patron.department, patron.status, site or "", household or "", patron.country,
                patron.sms_carrier, format_preferences_cell(preferences.get(patron.id, {})),
            )  # fmt: skip


def export_patrons(db: Database, out: TextIO) -> int:
    """Write every patron as CSV with ILLiad's field names (header + rows); return the number of rows.

    The file imports back with ``import-patrons`` without changing anything, so it serves as a backup and for
    comparing two databases.
    """
    return _write(out, PATRON_COLUMNS, iter_patron_rows(db))
