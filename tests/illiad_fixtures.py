"""Generate realistic ILLiad table exports (Users, Transactions, Tracking, Notes, EMailCopies) for the migration tests.

Built from the column lists and vocabularies of ``shared/ILLIAD_DATA.md``, not from Callslip's own export: every
file has ILLiad's full column list (most columns unused by Callslip), ``NULL`` written as text the way SQL Server's
export tools write it, SQL Server's two date spellings, each vocabulary variant sites are known to use, and a
few dirty rows. Each table is written in a different encoding SQL Server tools produce, so one folder exercises
them all.

The hand-written rows (:data:`CORE_*`) are what the tests assert on; ``extra`` adds seeded random rows of the
same shape for size (the benchmark uses it). Run as a script to write a folder::

    python tests/illiad_fixtures.py OUT_FOLDER [--extra N]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

USERS_COLUMNS = (
    "UserName", "LastName", "FirstName", "SSN", "Status", "EMailAddress", "Phone", "MobilePhone", "Department",
    "NVTGC", "Password", "NotificationMethod", "DeliveryMethod", "LoanDeliveryMethod", "LastChangedDate",
    "AuthorizedUsers", "Staff", "Cleared", "Web", "Address", "Address2", "City", "State", "Zip", "Site",
    "ExpirationDate", "Special", "Number", "UserRequestLimit", "Organization", "Fax", "ShippingAcctNo",
    "BillingCategory", "Country", "SAddress", "SAddress2", "SCity", "SState", "SZip", "PasswordHint", "SCountry",
    "RSSID", "AuthType", "UserInfo1", "UserInfo2", "UserInfo3", "UserInfo4", "UserInfo5",
)  # fmt: skip
TRANSACTIONS_COLUMNS = (
    "TransactionNumber", "Username", "RequestType", "ProcessType", "TransactionStatus", "TransactionDate",
    "CreationDate", "DueDate", "LoanTitle", "LoanAuthor", "LoanPublisher", "LoanDate", "LoanEdition",
    "PhotoJournalTitle", "PhotoJournalVolume", "PhotoJournalIssue", "PhotoJournalYear",
    "PhotoJournalInclusivePages", "PhotoArticleAuthor", "PhotoArticleTitle", "CallNumber", "Location",
    "LendingLibrary", "LibraryUseOnly", "ILLNumber", "ESPNumber", "ISSN", "DOI", "PMID", "DocumentType", "SystemID",
    "NVTGC", "ItemInfo1", "ItemInfo2", "ItemInfo3", "ItemInfo4", "ItemInfo5", "LastOverdueNoticeSent",
)  # fmt: skip
TRACKING_COLUMNS = ("TransactionNumber", "DateTime", "ChangedTo", "ChangedBy")
NOTES_COLUMNS = ("Id", "TransactionNumber", "NoteDate", "Note", "AddedBy", "NoteType")
EMAILCOPIES_COLUMNS = (
    "ID", "TransactionNumber", "EMailDate", "EMailType", "EMailReference", "EMailTo", "EMailFrom", "EMailCC",
    "EMailBCC", "Subject", "Body", "Staff", "Status", "Note", "NVTGC",
)  # fmt: skip

#: The encoding each table is written in (the names the importer reports).
ENCODINGS = {
    "Users": "UTF-16 LE with BOM",
    "Transactions": "UTF-8 with BOM",
    "Tracking": "Windows-1252",
    "Notes": "UTF-8",
    "EMailCopies": "UTF-16 LE with BOM",
}
_CODECS = {"UTF-16 LE with BOM": "utf-16", "UTF-8 with BOM": "utf-8-sig", "UTF-8": "utf-8", "Windows-1252": "cp1252"}

N = "NULL"

CORE_USERS: list[dict[str, str]] = [
    dict(UserName="ada", FirstName="Ada", LastName="Lovelace", EMailAddress="ada@example.edu", Phone="217-555-0143",
         NotificationMethod="Electronic", DeliveryMethod="Hold for Pickup", LoanDeliveryMethod="Hold for Pickup",
         Status="GS - Graduate Student", Department="Mathématiques", Cleared="Yes", Site="MAIN", City="Urbana"),
    dict(UserName="bob", FirstName="Bob", LastName="Builder", EMailAddress="bob@example.edu", Phone="217-555-0199",
         NotificationMethod="E-Mail", DeliveryMethod="Mail to Address", LoanDeliveryMethod="Mail to Address",
         Status="F - Faculty", Address="12 Elm St", City="Springfield", State="IL", Zip="62701", Cleared="Yes"),
    dict(UserName="cy", FirstName="José", LastName="Núñez", Phone="217-555-0111", NotificationMethod="Phone",
         DeliveryMethod="Pickup", Status="U - Undergraduate", Cleared="No", Site="MAIN"),
    dict(UserName="dee", FirstName="Dee", LastName="Ünal", Address="1 Oak Rd", City="Champaign", State="IL",
         NotificationMethod="Mail", DeliveryMethod="Electronic Delivery if Possible", Status="Staff", Cleared="New"),
    dict(UserName="eve", FirstName="Eve", LastName="Smith", EMailAddress="eve@example.edu", NotificationMethod="email",
         DeliveryMethod="hold for pickup", Status="Affiliate", Cleared="B", Site="ST2"),
    # dirty rows
    dict(UserName=N, FirstName="No", LastName="Name", NotificationMethod="E-mail"),
    dict(UserName="zed", FirstName="Zed", LastName="Bad", EMailAddress="not an address", NotificationMethod="E-mail"),
    dict(UserName="kim", FirstName="Kim", LastName="Carrier", NotificationMethod="Pigeon"),
]  # fmt: skip

#: (TransactionNumber, Username, RequestType, ProcessType, TransactionStatus, TransactionDate, title, DueDate)
CORE_TRANSACTIONS: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("1001", "ada", "Loan", "Borrowing", "Customer Notified via E-mail", "2020-06-15 18:34:44.980", "Harry Potter and the Philosopher's Stone", N),
    ("1002", "ada", "Article", "Borrowing", "Awaiting Customer Contact", "2020-06-16T09:00:00.5", "On Computable Numbers", N),
    ("1003", "eve", "Loan", "Borrowing", "Awaiting Customer Contact", "2020-06-17 10:00:00.000", "Cölner Chronik", N),
    ("1004", "cy", "Loan", "Borrowing", "Renewed by Customer to 7/15/2020", "2020-05-01 08:00:00.000", "Middlemarch", "2020-07-15 00:00:00.000"),
    ("1005", "dee", "Loan", "Borrowing", "Awaiting Post Receipt Processing", "2020-06-18 11:00:00.000", "Walden", N),
    ("1006", "ada", "Loan", "Lending", "Request Finished", "2020-06-01 12:00:00.000", "Lent Away", N),
    ("1007", "bob", "Article", "Doc Del", "Awaiting Doc Del Customer Contact", "2020-06-02 12:00:00.000", "Local Copy", N),
    ("1008", "ada", "Loan", "borrowing", "Checked Out to Customer", "2020-04-01 12:00:00.000", "Emma", "2020-07-01 00:00:00.000"),
    ("1009", "eve", "Loan", "Borrowing", "Request Finished", "2020-03-01 12:00:00.000", "Persuasion", N),
    ("1010", "bob", "Loan", "Borrowing", "Cancelled by ILL Staff", "2020-03-02 12:00:00.000", "Not Held Anywhere", N),
    ("1011", "ghost", "Loan", "Borrowing", "Request Sent", "2020-03-03 12:00:00.000", "Nobody's Book", N),
    ("1012", "ada", "Loan", "Borrowing", "Request Sent", "yesterday", "Bad Date", N),
    ("1013", "bob", "Loan", "Borrowing", "Rush Queue - Law", "2020-06-20 12:00:00.000", "A Local Queue", N),
    ("1014", "bob", "Loan", "Borrowing", "customer notified VIA e-mail", "2020-06-21 12:00:00.000", "Lowercase", N),
    ("abc", "ada", "Loan", "Borrowing", "Request Sent", "2020-06-22 12:00:00.000", "Bad Number", N),
]  # fmt: skip

#: (TransactionNumber, DateTime, ChangedTo, ChangedBy)
CORE_TRACKING: list[tuple[str, str, str, str]] = [
    ("1001", "2020-06-15 18:34:44.980", "Awaiting Request Processing", "System"),
    ("1001", "2020-06-16 09:12:00.000", "Request Sent", "jsmith"),
    ("1001", "2020-06-20 14:00:00.000", "Awaiting Customer Contact", "mbrown"),
    ("1001", "2020-06-20 14:00:05.120", "Customer Notified via E-mail", "System"),
    ("1002", "2020-06-16T09:00:00.5", "Awaiting Request Processing", "System"),
    ("1002", "2020-06-18 10:00:00.000", "Awaiting Customer Contact", "jsmith"),
    ("1003", "2020-06-17 10:00:00.000", "Awaiting Customer Contact", "Müller"),
    ("1004", "2020-05-01 08:00:00.000", "Awaiting Request Processing", "System"),
    ("1004", "2020-05-10 08:00:00.000", "Checked Out to Customer", "jsmith"),
    ("1004", "2020-06-30 08:00:00.000", "Renewed by Customer to 7/15/2020", "System"),
    ("1005", "2020-06-18 11:00:00.000", "Awaiting Post Receipt Processing", "jsmith"),
    ("1006", "2020-06-01 12:00:00.000", "Request Finished", "System"),
    ("1009", "2020-03-01 12:00:00.000", "Request Finished", "System"),
    ("1013", "2020-06-20 12:00:00.000", "Rush Queue - Law", "jsmith"),
    ("9999", "2020-06-20 12:00:00.000", "Request Sent", "System"),
    ("1001", "not a date", "Request Sent", "System"),
]  # fmt: skip

#: (Id, TransactionNumber, NoteDate, Note, AddedBy, NoteType)
CORE_NOTES: list[tuple[str, str, str, str, str, str]] = [
    ("1", "1001", "2020-06-16 09:13:00.000", "Patron asked for the large-print edition; none found.", "jsmith", "Staff"),
    ("2", "1001", "2020-06-16 09:14:00.000", "Needed before the exam — please hurry", "ada", "User"),
    ("3", "1006", "2020-06-01 12:00:00.000", "Lending note", "jsmith", "Staff"),
    ("4", "1003", "2020-06-17 10:00:00.000", "Multi-line note\nsecond line", "jsmith", "Staff"),
]  # fmt: skip

#: (ID, TransactionNumber, EMailDate, EMailType, EMailTo, Subject, Body, Status)
CORE_EMAILS: list[tuple[str, str, str, str, str, str, str, str]] = [
    ("501", "1001", "2020-06-20 14:00:05.000", "ILL Borrowing Loan Pickup", "ada@example.edu", "Your item is ready", "Dear Ada, …", "Sent"),
    ("502", "1002", "2020-06-18 10:00:02.000", "ILL Borrowing Article Pickup", "ada@example.edu", "Your article", "Dear Ada, the article…", "Sent"),
    ("503", "1010", "2020-03-02 12:00:00.000", "Borrowing Cancellation Loan", "bob@example.edu", "Cancelled", "Dear Bob", "Cancelled"),
    ("504", "1008", "2020-06-30 12:00:00.000", "Borrowing Overdue Reminder", "ada@example.edu", "Overdue", "Please return", "Pending"),
    ("505", "1009", "2020-03-01 12:00:00.000", "ILL Borrowing Loan Pickup", "eve@example.edu", "Ready", "Dear Eve", ""),
    ("506", "1006", "2020-06-01 12:00:00.000", "Lending Shipped", "lib@example.org", "Shipped", "Lending mail", "Sent"),
]  # fmt: skip

#: Every vocabulary variant the fixtures use, by field (the User Guide lists the same).
NOTIFICATION_VARIANTS = ("Electronic", "E-Mail", "E-mail", "Email", "email", "Phone", "Mail")
DELIVERY_VARIANTS = (
    "Hold for Pickup",
    "hold for pickup",
    "Pickup",
    "Mail to Address",
    "Electronic Delivery if Possible",
)


def _row(columns: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """A full ILLiad row: every column present, the ones we do not fill written as ``NULL``."""
    return [values.get(c, N) for c in columns]


def users(extra: int, rnd: random.Random) -> Iterator[list[str]]:
    """Users rows: the core ones, then ``extra`` random ones (user names ``u000001`` …)."""
    for values in CORE_USERS:
        yield _row(USERS_COLUMNS, {**values, "NVTGC": "ILL", "LastChangedDate": "2020-01-01 00:00:00.000"})
    for i in range(1, extra + 1):
        yield _row(
            USERS_COLUMNS,
            {
                "UserName": f"u{i:06d}",
                "FirstName": rnd.choice(("Ann", "Raúl", "Mia", "Li", "Søren")),
                "LastName": f"Name{i}",
                "EMailAddress": f"u{i}@example.edu",
                "NotificationMethod": rnd.choice(NOTIFICATION_VARIANTS),
                "DeliveryMethod": rnd.choice(DELIVERY_VARIANTS),
                "Status": rnd.choice(("GS - Graduate Student", "U - Undergraduate", "F - Faculty")),
                "NVTGC": "ILL",
                "Cleared": "Yes",
            },
        )


_RANDOM_PATH = (
    ("Awaiting Request Processing", "Request Sent", "Checked Out to Customer", "Request Finished"),
    ("Awaiting Request Processing", "Request Sent", "Awaiting Customer Contact", "Customer Notified via E-mail"),
    ("Awaiting Request Processing", "Request Sent", "Cancelled by ILL Staff", ""),
)


def transactions(extra: int, extra_users: int, rnd: random.Random) -> Iterator[list[str]]:
    """Transactions rows; the random ones belong to the random users (tracking rows follow from their number)."""
    for number, user, kind, process, status, when, title, due in CORE_TRANSACTIONS:
        values = {"TransactionNumber": number, "Username": user, "RequestType": kind, "ProcessType": process,
                  "TransactionStatus": status, "TransactionDate": when, "CreationDate": when, "DueDate": due,
                  "NVTGC": "ILL", "LibraryUseOnly": "No", "ESPNumber": "12345678"}  # fmt: skip
        values["PhotoArticleTitle" if kind == "Article" else "LoanTitle"] = title
        if kind == "Article":
            values["PhotoJournalTitle"] = "Proceedings of the London Mathematical Society"
        yield _row(TRANSACTIONS_COLUMNS, values)
    for i in range(1, extra + 1):
        path = _RANDOM_PATH[i % len(_RANDOM_PATH)]
        status = [s for s in path if s][-1]
        yield _row(
            TRANSACTIONS_COLUMNS,
            {
                "TransactionNumber": str(100000 + i),
                "Username": f"u{(i % max(extra_users, 1)) + 1:06d}" if extra_users else "ada",
                "RequestType": "Loan",
                "ProcessType": "Borrowing" if i % 10 else "Lending",
                "TransactionStatus": status,
                "TransactionDate": f"2021-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00:00.000",
                "LoanTitle": f"Title {i}",
                "LoanAuthor": rnd.choice(("Austen, Jane", "Eliot, George", "Thoreau, H. D.")),
                "NVTGC": "ILL",
            },
        )


def tracking(extra: int) -> Iterator[list[str]]:
    """Tracking rows: three per random transaction (the issue's 3,000,000 for 1,000,000 transactions)."""
    for row in CORE_TRACKING:
        yield list(row)
    for i in range(1, extra + 1):
        path = [s for s in _RANDOM_PATH[i % len(_RANDOM_PATH)] if s]
        for step, status in enumerate(path[:3] if len(path) > 3 else path):
            yield [str(100000 + i), f"2021-{1 + i % 12:02d}-{1 + i % 28:02d} 1{step}:00:00.000", status, "System"]


def write_table(path: Path, columns: Iterable[str], rows: Iterable[list[str]], encoding: str) -> None:
    """Write one table as SQL Server's export would: CRLF line ends, the given encoding."""
    codec = _CODECS[encoding]
    with path.open("w", encoding=codec, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(list(columns))
        writer.writerows(rows)


def generate(folder: Path, *, extra: int = 0, seed: int = 2020) -> Path:
    """Write ``Users.csv`` … ``EMailCopies.csv`` into ``folder``; ``extra`` random users, 10× transactions."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    write_table(folder / "Users.csv", USERS_COLUMNS, users(extra, rnd), ENCODINGS["Users"])
    write_table(
        folder / "Transactions.csv",
        TRANSACTIONS_COLUMNS,
        transactions(10 * extra, extra, rnd),
        ENCODINGS["Transactions"],
    )
    write_table(folder / "Tracking.csv", TRACKING_COLUMNS, tracking(10 * extra), ENCODINGS["Tracking"])
    write_table(folder / "Notes.csv", NOTES_COLUMNS, (list(n) for n in CORE_NOTES), ENCODINGS["Notes"])
    emails = (
        _row(
            EMAILCOPIES_COLUMNS,
            {
                "ID": i,
                "TransactionNumber": t,
                "EMailDate": d,
                "EMailType": k,
                "EMailTo": to,
                "EMailFrom": "ill@example.edu",
                "Subject": s,
                "Body": b,
                "Status": st or "",
                "Staff": "System",
                "NVTGC": "ILL",
            },
        )
        for i, t, d, k, to, s, b, st in CORE_EMAILS
    )
    write_table(folder / "EMailCopies.csv", EMAILCOPIES_COLUMNS, emails, ENCODINGS["EMailCopies"])
    return folder


def as_text(rows: list[list[str]]) -> str:
    """Rows as CSV text (for tests that build a single odd file by hand)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--extra", type=int, default=0, help="random users to add (10× transactions, 30× tracking)")
    arguments = parser.parse_args()
    print(generate(arguments.folder, extra=arguments.extra))
