"""CSV export of requests with ILLiad's field names, streamed so a million rows never sit in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Patron, PickupLocation, Request
from desktop.domain.statuses import Status

EXPORT_COLUMNS = (
    "TransactionNumber", "UserName", "TransactionStatus", "RequestType", "LoanTitle", "LoanAuthor",
    "PhotoJournalTitle", "PhotoArticleTitle", "TransactionDate", "DueDate", "CallNumber", "LendingLibrary",
    "NotificationMethod", "Site",
)  # fmt: skip


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
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in iter_request_rows(db, status):
        writer.writerow(row)
        count += 1
    return count
