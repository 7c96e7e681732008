"""Move a library from ILLiad: import its exported tables (Users, Transactions, Tracking, Notes, EMailCopies).

The folder holds CSV exports of ILLiad's tables with their own column names, as SQL Server's tools write them:
UTF-16 LE with a BOM, UTF-8 with or without a BOM, or the Windows code page (each file's encoding is detected
and named in the report), ``NULL`` as text, dates as ``2020-06-15 18:34:44.980`` or ISO with ``T``. The rules are
:mod:`desktop.services.admin.csv_import`'s, because a migration runs against a library's real records:

* **Dry run first.** ``dry_run=True`` reads, checks and plans everything and writes nothing; the report says what
  would happen, including the status mapping table in use.
* **Bad rows are refused, by file and line**, and the good rows are imported (a migration of years of data must
  not stop at one odd row); every refusal is in the report.
* **Only Borrowing requests** (``ProcessType``) become requests; Lending and Doc Del rows are counted as skipped.
* **History comes along.** Tracking rows keep ILLiad's status names (a status Callslip lacks stays as it is in the
  history) with their dates and staff names; the request's current status is the nearest Callslip status by an
  editable table (:data:`DEFAULT_STATUS_MAP`, overridden by a TOML file). EMailCopies become the request's notice
  history, linked to the Tracking row they followed, so a request ILLiad already notified is not notified again
  (the System Manager's arrival scan sees its notice). Notes become request notes.
* **Idempotent.** A request already in Callslip (same TransactionNumber) is left alone with its history; importing
  the same folder again adds nothing. Patrons go through :func:`csv_import.import_patrons` (upsert, only the
  file's columns, contact points only added).
* **A short write lock.** Everything is decided before the write transaction, which is a few bulk inserts.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, Request, RequestNote, Tracking
from desktop.domain.methods import parse_request_type
from desktop.domain.statuses import Status
from desktop.services.admin import csv_import
from desktop.services.admin.csv_import import CsvFileError, ImportResult, parse_transaction_number
from desktop.services.notices.templates import ARTICLE_PICKUP, LOAN_PICKUP

#: How ILLiad statuses become Callslip statuses (keys compared by :func:`status_key`); the dry run shows it and
#: ``--status-map FILE`` overrides any line. A status missing here becomes Awaiting Request Processing (reported).
DEFAULT_STATUS_MAP: dict[str, Status] = {
    "Awaiting Copyright Clearance": Status.AWAITING_REQUEST_PROCESSING,
    "Awaiting Request Processing": Status.AWAITING_REQUEST_PROCESSING,
    "Awaiting Account Validation": Status.AWAITING_REQUEST_PROCESSING,
    "In Depth Searching": Status.AWAITING_REQUEST_PROCESSING,
    "Duplicate Request Review": Status.AWAITING_REQUEST_PROCESSING,
    "Awaiting Unfilled Processing": Status.AWAITING_REQUEST_PROCESSING,
    "Request Sent": Status.REQUEST_SENT,
    "Awaiting Conditional Processing": Status.REQUEST_SENT,
    # Received but not yet processed by staff: Request Sent, so Callslip does not e-mail before staff check it in.
    "Awaiting Post Receipt Processing": Status.REQUEST_SENT,
    "In Transit to Pickup Location": Status.IN_TRANSIT_TO_PICKUP,
    "Awaiting Customer Contact": Status.AWAITING_CUSTOMER_CONTACT,
    "Awaiting Doc Del Customer Contact": Status.AWAITING_CUSTOMER_CONTACT,
    "Customer Notified via E-Mail": Status.NOTIFIED_VIA_EMAIL,
    "Customer Notified via Phone": Status.NOTIFIED_VIA_PHONE,
    "Customer Notified via Mail": Status.NOTIFIED_VIA_MAIL,
    "Checked Out to Customer": Status.CHECKED_OUT,
    "Renewal Requested by Customer": Status.CHECKED_OUT,
    "Renewed by Customer to <date>": Status.CHECKED_OUT,
    "Renewed by ILL Staff to <date>": Status.CHECKED_OUT,
    "Awaiting Recalled Processing": Status.CHECKED_OUT,
    "Awaiting Denied Renewal Processing": Status.CHECKED_OUT,
    "Item Checked In": Status.REQUEST_FINISHED,
    "Item Returned": Status.REQUEST_FINISHED,
    "Delivered to Web": Status.REQUEST_FINISHED,
    "Request Finished": Status.REQUEST_FINISHED,
    "Cancelled by ILL Staff": Status.CANCELLED_BY_STAFF,
    "Cancelled by Customer": Status.CANCELLED_BY_CUSTOMER,
}
UNMAPPED_STATUS = Status.AWAITING_REQUEST_PROCESSING

#: ILLiad's notification template names (EMailType) → Callslip's, for the notice history.
TEMPLATE_NAMES: dict[str, str] = {
    "ill borrowing loan pickup": LOAN_PICKUP,
    "ill borrowing article pickup": ARTICLE_PICKUP,
    "borrowing password reset": "Password Reset",
}

#: ILLiad's e-mail (and SMS) log statuses → Callslip notice states. ``Pending`` means ILLiad had not sent it when
#: the export was made; Callslip does not send it either (ILLiad may still have), it is kept as cancelled.
EMAIL_STATES: dict[str, str] = {
    "": "sent",  # older rows leave Status empty: they were sent
    "sent": "sent",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "pending": "cancelled",
    "sending": "cancelled",
    "not handled": "cancelled",
    "failed": "failed",
}

#: Delivery methods ILLiad has and Callslip does not, and what they become.
DELIVERY_VARIANTS = {"electronic delivery if possible": "Hold for Pickup"}

TABLES = ("Users", "Transactions", "Tracking", "Notes", "EMailCopies")
_USED: dict[str, tuple[str, ...]] = {
    "Users": ("UserName", "FirstName", "LastName", "EMailAddress", "Phone", "MobilePhone", "Fax",
              "NotificationMethod", "DeliveryMethod", "LoanDeliveryMethod", "Address", "Address2", "City", "State",
              "Zip", "Country", "Department", "Status", "Site", "Cleared"),
    "Transactions": ("TransactionNumber", "Username", "RequestType", "ProcessType", "TransactionStatus",
                     "TransactionDate", "DueDate", "LoanTitle", "LoanAuthor", "PhotoJournalTitle", "PhotoArticleTitle",
                     "CallNumber", "LendingLibrary"),
    "Tracking": ("TransactionNumber", "DateTime", "ChangedTo", "ChangedBy"),
    "Notes": ("Id", "TransactionNumber", "NoteDate", "Note", "AddedBy", "NoteType"),
    "EMailCopies": ("ID", "TransactionNumber", "EMailDate", "EMailType", "EMailTo", "EMailFrom", "EMailCC",
                    "EMailBCC", "Subject", "Body", "Status"),
}  # fmt: skip
_REQUIRED: dict[str, tuple[str, ...]] = {
    "Users": ("UserName",),
    "Transactions": ("TransactionNumber", "Username", "ProcessType", "TransactionStatus"),
    "Tracking": ("TransactionNumber", "DateTime", "ChangedTo"),
    "Notes": ("Id", "TransactionNumber", "Note"),
    "EMailCopies": ("ID", "TransactionNumber", "EMailDate"),
}
IMPORTED_BY = "ILLiad import"
_RENEWED = re.compile(r"^(renewed by (?:customer|ill staff)) to .*$")
_TRACKING_LIMIT = 60
#: Tracking rows built and written at a time.
_WRITE_BATCH = 50_000


# ----------------------------------------------------------------------------------------------------- reading


@dataclass
class ExportTable:
    """One export file as read: its encoding, the columns used and ignored, and its rows by physical line."""

    name: str
    file: str
    encoding: str
    rows: list[tuple[int, dict[str, str]]]
    ignored_columns: list[str]


def detect_encoding(data: bytes) -> tuple[str, str]:
    """(Python codec, the name staff know) of an export: a BOM says it; else UTF-8 if it decodes, else Windows-1252.

    SQL Server's tools write UTF-16 LE with a BOM ("Unicode"), UTF-8 with a BOM, or the Windows code page ("ANSI").
    """
    if data.startswith(b"\xff\xfe"):
        return "utf-16", "UTF-16 LE with BOM"
    if data.startswith(b"\xfe\xff"):
        return "utf-16", "UTF-16 BE with BOM"
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", "UTF-8 with BOM"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252", "Windows-1252"
    return "utf-8", "UTF-8"


def find_tables(folder: Path) -> dict[str, Path]:
    """The export files in ``folder`` by table name (``Users.csv``, ``usersall.txt`` …; UsersALL wins over Users)."""
    if not folder.is_dir():
        raise CsvFileError(f"{folder} is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.casefold() not in (".csv", ".txt", ".tsv") or not path.is_file():
            continue
        stem = path.stem.casefold()
        for name in TABLES:
            if stem == name.casefold() or (name == "Users" and stem == "usersall"):
                if name == "Users" and "Users" in found and stem != "usersall":
                    continue
                found[name] = path
    if "Users" not in found and "Transactions" not in found:
        raise CsvFileError(
            f"{folder} holds no ILLiad export: expected Users.csv (or UsersALL.csv) and Transactions.csv, "
            "with Tracking.csv, Notes.csv and EMailCopies.csv if exported"
        )
    return found


def file_encoding(path: Path) -> tuple[str, str]:
    """:func:`detect_encoding` for a file, read in chunks (an export of millions of rows is never held whole)."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
            return detect_encoding(head)
        decoder = codecs.getincrementaldecoder("utf-8")()
        handle.seek(0)
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252", "Windows-1252"
    return "utf-8", "UTF-8"


def _open_reader(name: str, path: Path, handle: TextIO) -> tuple[Any, list[str]]:
    first = handle.readline()
    handle.seek(0)
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise CsvFileError(f"{path.name}: the file is empty: expected a header row") from None
    except csv.Error as exc:
        raise CsvFileError(f"{path.name}: line 1: the header is not valid CSV: {exc}") from None
    folded = {h.casefold() for h in header}
    missing = [c for c in _REQUIRED[name] if c.casefold() not in folded]
    if missing:
        raise CsvFileError(f"{path.name}: the {name} export lacks column(s): {', '.join(missing)}")
    return reader, header


def check_table(name: str, path: Path) -> None:
    """Refuse a file whose header lacks a required column, before anything is read or written.

    Raises:
        CsvFileError: no header, or a required column missing (one line naming the file).
    """
    codec = detect_encoding(path.read_bytes()[:4])[0] if path.stat().st_size else "utf-8"
    with path.open(encoding="utf-8" if codec == "utf-8" else codec, errors="replace", newline="") as handle:
        _open_reader(name, path, handle)


def read_table(name: str, path: Path) -> tuple[ExportTable, list[tuple[str, int, str]]]:
    """Read one export; return it and its refused rows (file, line, reason). ``NULL`` cells are empty.

    Raises:
        CsvFileError: the file cannot be read at all (no header, a required column missing).
    """
    codec, encoding = file_encoding(path)
    with path.open(encoding=codec, errors="replace", newline="") as handle:
        return _read_rows(name, path, encoding, handle)


def _read_rows(name: str, path: Path, encoding: str, handle: TextIO) -> tuple[ExportTable, list[tuple[str, int, str]]]:
    reader, header = _open_reader(name, path, handle)
    folded = {h.casefold(): i for i, h in enumerate(header)}
    used = {c: folded[c.casefold()] for c in _USED[name] if c.casefold() in folded}
    ignored = [h for h in header if h and h.casefold() not in {c.casefold() for c in used}]
    rows: list[tuple[int, dict[str, str]]] = []
    refused: list[tuple[str, int, str]] = []
    start = 2
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            refused.append((path.name, start, f"not valid CSV: {exc}; the rest of the file was not read"))
            break
        line, start = start, reader.line_num + 1
        if not "".join(record).strip():
            continue
        if len(record) != len(header):
            refused.append((path.name, line, f"has {len(record)} field(s) but the header has {len(header)}"))
            continue
        values: dict[str, str] = {}
        for column, index in used.items():
            cell = record[index].replace("\x00", "").strip()
            if cell and cell != "NULL":
                values[column] = cell
        rows.append((line, values))
    return ExportTable(name, path.name, encoding, rows, ignored), refused


# ------------------------------------------------------------------------------------------------ vocabularies


@lru_cache(maxsize=4096)
def status_key(text: str) -> str:
    """ILLiad status text compared without case, spacing, ``E-Mail``/``Email`` spelling or a renewal's date."""
    key = " ".join(text.split()).casefold()
    key = re.sub(r"e-?mail", "email", key)
    return _RENEWED.sub(r"\1 to <date>", key)


_CALLSLIP_SPELLING = {status_key(s.value): s.value for s in Status}


def tracking_status(text: str) -> str:
    """How a Tracking row keeps ILLiad's status: Callslip's spelling where it is one of Callslip's, else as it is."""
    return _CALLSLIP_SPELLING.get(status_key(text), text)[:_TRACKING_LIMIT]


def parse_status_name(text: str) -> Status:
    """A Callslip status named in a status map file (any case or E-Mail spelling)."""
    found = _CALLSLIP_SPELLING.get(status_key(text))
    if found is None:
        raise ValueError(f"{text!r} is not a Callslip status; expected one of: " + ", ".join(s.value for s in Status))
    return Status(found)


def load_status_map(path: Path) -> dict[str, Status]:
    """The default table with the lines of a TOML file applied: ``"ILLiad status" = "Callslip status"``.

    Raises:
        CsvFileError: the file cannot be read, is not TOML, or names a status Callslip does not have.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise CsvFileError(f"cannot read the status map {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CsvFileError(f"the status map {path} is not TOML: {exc}") from None
    lines = data.get("statuses", data)
    table = dict(DEFAULT_STATUS_MAP)
    for illiad, callslip in lines.items():
        if not isinstance(callslip, str):
            raise CsvFileError(f"the status map {path}: {illiad!r} must name a Callslip status in quotes")
        try:
            table[illiad] = parse_status_name(callslip)
        except ValueError as exc:
            raise CsvFileError(f"the status map {path}: {illiad!r}: {exc}") from None
    return table


def status_map_toml(table: dict[str, Status]) -> str:
    """The table as a status map file, to save, edit and pass back with ``--status-map``."""
    lines = ["[statuses]"]
    lines += [f'"{k}" = "{v.value}"' for k, v in table.items()]
    return "\n".join(lines) + "\n"


def parse_illiad_datetime(text: str) -> datetime:
    """A SQL Server ``datetime`` as exported; ILLiad stores local time, taken as this computer's time zone."""
    value = csv_import.parse_datetime(text) if "+" in text[10:] or text.endswith("Z") else None
    if value is not None:
        return value
    naive = csv_import.parse_datetime(text).replace(tzinfo=None)
    return naive.astimezone(UTC)


# ------------------------------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class Refused:
    """A row not imported because something in it is wrong."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.reason}"


@dataclass
class TableCount:
    """Rows read, imported and skipped (for a reason staff expect) of one table."""

    file: str = ""
    encoding: str = ""
    read: int = 0
    imported: int = 0
    skipped: int = 0
    ignored_columns: int = 0


@dataclass
class MigrationReport:
    """What an ILLiad import found and did (or, in a dry run, would do)."""

    dry_run: bool
    tables: dict[str, TableCount] = field(default_factory=dict)
    status_mappings: Counter[tuple[str, str, bool]] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)
    patrons: ImportResult | None = None
    will_notify: int = 0
    #: Seconds the write transactions (patrons, then requests with their history) held the write lock.
    lock_seconds: float = 0.0
    status_map: dict[str, Status] = field(default_factory=lambda: dict(DEFAULT_STATUS_MAP))

    def lines(self) -> list[str]:
        """The migration report, as the command line prints it and the wizard shows it."""
        head = "ILLiad import (dry run, nothing written)" if self.dry_run else "ILLiad import"
        out = [head, "", "Tables:"]
        for name, count in self.tables.items():
            verb = "would import" if self.dry_run else "imported"
            out.append(
                f"  {name}: {count.file} ({count.encoding}): {count.read} row(s) read, {verb} {count.imported}, "
                f"skipped {count.skipped}, {count.ignored_columns} column(s) not used"
            )
        if self.patrons is not None:
            out.append(f"  patrons: {self.patrons.summary()}")
        out += ["", "Status mapping (ILLiad → Callslip, requests at each):"]
        for (illiad, callslip, defaulted), n in sorted(self.status_mappings.items()):
            flag = "  (not in the table: add it to a --status-map file)" if defaulted else ""
            out.append(f"  {illiad} → {callslip}: {n}{flag}")
        if self.skipped:
            out += ["", "Skipped:"]
            out += [f"  {reason}: {n}" for reason, n in sorted(self.skipped.items())]
        if self.will_notify:
            out += ["", f"{self.will_notify} request(s) at Awaiting Customer Contact have no e-mail in ILLiad's log: "
                    "the System Manager will notify those patrons"]  # fmt: skip
        out += ["", f"Refused rows: {len(self.refused)}"]
        out += [f"  {r}" for r in self.refused]
        return out


# ------------------------------------------------------------------------------------------------------ import


@dataclass
class _Txn:
    line: int
    number: int
    username: str
    illiad_status: str
    status: Status
    values: dict[str, Any]


@dataclass
class _Plan:
    requests: list[_Txn] = field(default_factory=list)
    tracking: dict[int, list[tuple[datetime, str, str, str]]] = field(default_factory=dict)
    notes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    emails: list[tuple[int, datetime, dict[str, Any]]] = field(default_factory=list)


_TEXT_ATTRS = {"LoanTitle": "loan_title", "LoanAuthor": "loan_author", "PhotoJournalTitle": "photo_journal_title",
               "PhotoArticleTitle": "photo_article_title", "CallNumber": "call_number",
               "LendingLibrary": "lending_library"}  # fmt: skip


def _limit(attr: str) -> int | None:
    table: Table = Request.__table__  # type: ignore[assignment]
    return getattr(table.c[attr].type, "length", None)


def _patron_csv(table: ExportTable, report: MigrationReport) -> tuple[bytes, list[int]]:
    """Users rows as Callslip's patron CSV (one line per row) and the export line of each."""
    columns = [c for c in csv_import.PATRON_COLUMNS if c != "HouseholdID"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    lines: list[int] = []
    for line, values in table.rows:
        row = dict(values)
        delivery = row.pop("LoanDeliveryMethod", "") or row.get("DeliveryMethod", "")
        if delivery.casefold().strip() in DELIVERY_VARIANTS:
            report.skipped[
                f"Users: DeliveryMethod {delivery!r} kept as Hold for Pickup (Callslip has no such method)"
            ] += 1
            delivery = DELIVERY_VARIANTS[delivery.casefold().strip()]
        if delivery:
            row["DeliveryMethod"] = delivery
        cleared = row.get("Cleared", "")
        if cleared.casefold() in ("b", "bo", "dis"):
            report.skipped[f"Users: Cleared {cleared!r} (blocked) not kept: Callslip has no blocks"] += 1
        writer.writerow([" ".join(row.get(c, "").split()) for c in columns])
        lines.append(line)
    return out.getvalue().encode("utf-8"), lines


def _import_patrons(db: Database, table: ExportTable, report: MigrationReport, region: str) -> set[str]:
    """Users through the patron import (its rules); refused rows are reported and left out. Returns the user names."""
    data, lines = _patron_csv(table, report)
    bad: set[int] = set()
    # The patron import is all or nothing: a round with refused rows writes nothing, and the next leaves them out.
    # Each round leaves out at least one row, so this ends; usually after one or two rounds.
    lines_of = data.decode().split("\n")
    for _attempt in range(len(lines) + 1):
        kept = [row for i, row in enumerate(lines_of[1:-1]) if i not in bad]
        body = (lines_of[0] + "\n" + "\n".join(kept) + ("\n" if kept else "")).encode()
        index = [i for i in range(len(lines)) if i not in bad]
        result = csv_import.import_patrons(db, body, region=region, dry_run=report.dry_run, create_sites=True)
        if not result.errors:
            break
        for error in result.errors:
            row = index[error.line - 2]
            bad.add(row)
            report.refused.append(Refused(table.file, lines[row], error.reason))
    report.patrons = result
    report.lock_seconds += result.lock_seconds
    count = report.tables["Users"]
    count.imported = result.created + result.updated + result.unchanged
    return {values.get("UserName", "").casefold() for i, (_l, values) in enumerate(table.rows) if i not in bad}


def _parse_transaction(line: int, v: dict[str, str], lookup: dict[str, Status]) -> _Txn:
    number = parse_transaction_number(v.get("TransactionNumber", ""))
    username = v.get("Username", "")
    if not username:
        raise ValueError("Username is empty")
    raw_status = v.get("TransactionStatus", "")
    if not raw_status:
        raise ValueError("TransactionStatus is empty")
    values: dict[str, Any] = {"request_type": parse_request_type(v.get("RequestType", "Loan")).value}
    for column, attr in _TEXT_ATTRS.items():
        if column in v:
            limit = _limit(attr)
            if limit is not None and len(v[column]) > limit:
                raise ValueError(f"{column} is {len(v[column])} characters long; the database keeps at most {limit}")
            values[attr] = v[column]
    if "TransactionDate" in v:
        try:
            values["transaction_date"] = parse_illiad_datetime(v["TransactionDate"])
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"TransactionDate: {exc}") from None
    if "DueDate" in v:
        try:
            values["due_date"] = parse_illiad_datetime(v["DueDate"]).date()
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"DueDate: {exc}") from None
    status = lookup.get(status_key(raw_status))
    return _Txn(line, number, username, raw_status, status or UNMAPPED_STATUS, values)


def import_illiad(
    db: Database,
    folder: Path,
    *,
    dry_run: bool = False,
    status_map: dict[str, Status] | None = None,
    region: str = "US",
) -> MigrationReport:
    """Import an ILLiad export folder (see the module docstring); return the migration report.

    Raises:
        CsvFileError: the folder or one of its files cannot be used at all (one line naming the file).
    """
    table_map = status_map or dict(DEFAULT_STATUS_MAP)
    report = MigrationReport(dry_run=dry_run, status_map=table_map)
    tables: dict[str, ExportTable] = {}
    found = find_tables(folder)
    for name in TABLES:
        if name in found:
            check_table(name, found[name])
            report.tables[name] = TableCount(found[name].name)

    def load(name: str) -> list[tuple[int, dict[str, str]]]:
        """Read one table when its turn comes (one table's rows in memory at a time)."""
        if name not in found:
            return []
        table, refused = read_table(name, found[name])
        tables[name] = table
        report.refused.extend(Refused(*r) for r in refused)
        count = report.tables[name]
        count.encoding, count.read = table.encoding, len(table.rows) + len(refused)
        count.ignored_columns = len(table.ignored_columns)
        return table.rows

    usernames: set[str] = set()
    if load("Users"):
        usernames = _import_patrons(db, tables["Users"], report, region)
        tables["Users"].rows = []

    # Transactions: Borrowing only, checked, one per number.
    lookup = {status_key(k): s for k, s in table_map.items()}
    txns: dict[int, _Txn] = {}
    other: set[int] = set()
    refused_numbers: set[int] = set()
    for line, v in load("Transactions"):
        process = " ".join(v.get("ProcessType", "").split())
        file = tables["Transactions"].file
        if process.casefold() != "borrowing":
            report.skipped[
                f"Transactions: ProcessType {process or '(empty)'!r} (only Borrowing becomes a request)"
            ] += 1
            report.tables["Transactions"].skipped += 1
            raw = v.get("TransactionNumber", "")
            if raw.isdigit():
                other.add(int(raw))
            continue
        try:
            txn = _parse_transaction(line, v, lookup)
        except ValueError as exc:
            report.refused.append(Refused(file, line, str(exc)))
            raw = v.get("TransactionNumber", "")
            if raw.isdigit():
                refused_numbers.add(int(raw))
            continue
        if txn.number in txns:
            report.refused.append(Refused(file, line, f"TransactionNumber {txn.number} already on line "
                                                      f"{txns[txn.number].line}"))  # fmt: skip
            continue
        if txn.username.casefold() not in usernames:
            with db.read() as session:
                known = session.scalar(select(Patron.id).where(Patron.username == txn.username)) is not None
            if not known:
                report.refused.append(
                    Refused(file, line, f"Username {txn.username!r} is not in the Users export (or was refused there)")
                )
                refused_numbers.add(txn.number)
                continue
        txns[txn.number] = txn

    with db.read() as session:
        existing: set[int] = set()
        for chunk in csv_import._chunks(sorted(txns), 500):
            existing.update(
                session.scalars(select(Request.transaction_number).where(Request.transaction_number.in_(chunk)))
            )
    for number in existing:
        report.skipped["Transactions: already in Callslip (left alone with its history)"] += 1
        report.tables["Transactions"].skipped += 1
        del txns[number]

    def belongs(table: str, line: int, raw: str) -> int | None:
        """The request this history row belongs to, or None (counted as skipped or refused)."""
        number = int(raw) if raw.isdigit() else None
        if number is not None and number in txns:
            return number
        if number in other:
            reason = "its transaction is not a Borrowing request"
        elif number in existing:
            reason = "its request was already in Callslip"
        elif number in refused_numbers:
            reason = "its transaction was refused"
        else:
            report.refused.append(
                Refused(tables[table].file, line, f"TransactionNumber {raw!r} is not in Transactions")
            )
            return None
        report.skipped[f"{table}: {reason}"] += 1
        report.tables[table].skipped += 1
        return None

    plan = _Plan()
    history: dict[int, list[tuple[datetime, int, str, str]]] = defaultdict(list)
    if "Transactions" in tables:
        tables["Transactions"].rows = []
    for line, v in load("Tracking"):
        hit = belongs("Tracking", line, v.get("TransactionNumber", ""))
        if hit is None:
            continue
        try:
            when = parse_illiad_datetime(v.get("DateTime", ""))
        except (ValueError, OverflowError) as exc:
            report.refused.append(Refused(tables["Tracking"].file, line, f"DateTime: {exc}"))
            continue
        if not v.get("ChangedTo"):
            report.refused.append(Refused(tables["Tracking"].file, line, "ChangedTo is empty"))
            continue
        history[hit].append((when, line, v["ChangedTo"], v.get("ChangedBy", "System")[:100]))
    for number, txn in txns.items():
        rows = sorted(history.pop(number, []))
        steps = [(when, tracking_status(status), by, "") for when, _l, status, by in rows]
        if not steps or status_key(rows[-1][2]) != status_key(txn.illiad_status):
            when = max([txn.values.get("transaction_date") or datetime.now(UTC), *(s[0] for s in steps)])
            steps.append((when, tracking_status(txn.illiad_status), IMPORTED_BY, "ILLiad's TransactionStatus"))
        if steps[-1][1] != txn.status.value:
            last = steps[-1]
            steps[-1] = (last[0], last[1], last[2], f"ILLiad status; in Callslip: {txn.status.value}")
        plan.tracking[number] = steps
        report.tables["Tracking"].imported += len(rows) if "Tracking" in report.tables else 0
        defaulted = status_key(txn.illiad_status) not in lookup
        report.status_mappings[(tracking_status(txn.illiad_status), txn.status.value, defaulted)] += 1
        plan.requests.append(txn)
    if "Transactions" in report.tables:
        report.tables["Transactions"].imported = len(plan.requests)

    if "Tracking" in tables:
        tables["Tracking"].rows = []
    for line, v in load("Notes"):
        hit = belongs("Notes", line, v.get("TransactionNumber", ""))
        if hit is None:
            continue
        try:
            noted = parse_illiad_datetime(v["NoteDate"]) if v.get("NoteDate") else None
        except (ValueError, OverflowError) as exc:
            report.refused.append(Refused(tables["Notes"].file, line, f"NoteDate: {exc}"))
            continue
        if not v.get("Note") or not v.get("Id"):
            report.refused.append(Refused(tables["Notes"].file, line, "Id or Note is empty"))
            continue
        plan.notes.append((hit, {"noted_at": noted or plan.tracking[hit][0][0], "note": v["Note"],
                                    "added_by": v.get("AddedBy", "")[:100] or IMPORTED_BY,
                                    "note_type": v.get("NoteType", "Staff")[:20],
                                    "source_key": f"illiad:note:{v['Id']}"[:100]}))  # fmt: skip
        report.tables["Notes"].imported += 1

    notified: set[int] = set()
    for line, v in load("EMailCopies"):
        hit = belongs("EMailCopies", line, v.get("TransactionNumber", ""))
        if hit is None:
            continue
        file = tables["EMailCopies"].file
        state = EMAIL_STATES.get(" ".join(v.get("Status", "").split()).casefold())
        if state is None:
            report.refused.append(Refused(file, line, f"Status {v['Status']!r} is not one of Sent, Pending, Cancelled"))
            continue
        try:
            when = parse_illiad_datetime(v.get("EMailDate", ""))
        except (ValueError, OverflowError) as exc:
            report.refused.append(Refused(file, line, f"EMailDate: {exc}"))
            continue
        kind = v.get("EMailType", "")
        reply = f"imported from ILLiad (EMailCopies ID {v.get('ID')}, Status {v.get('Status') or 'empty'})"
        plan.emails.append((hit, when, {
            "dedupe_key": f"illiad:email:{v.get('ID')}"[:200], "channel": "email",
            "template_name": TEMPLATE_NAMES.get(kind.casefold(), kind)[:100] or "ILLiad e-mail",
            "state": state, "to_address": v.get("EMailTo", "")[:500], "cc": v.get("EMailCC", "")[:500],
            "bcc": v.get("EMailBCC", "")[:500], "from_address": v.get("EMailFrom", "")[:300],
            "subject": v.get("Subject", "")[:500], "body_text": v.get("Body", ""), "body_html": "",
            "message_id": "", "attempts": 1 if state == "sent" else 0, "next_attempt_at": when,
            "last_reply": reply, "created_at": when, "updated_at": when,
            "sent_at": when if state == "sent" else None,
        }))  # fmt: skip
        notified.add(hit)
        report.tables["EMailCopies"].imported += 1
    report.will_notify = sum(
        1 for t in plan.requests if t.status is Status.AWAITING_CUSTOMER_CONTACT and t.number not in notified
    )
    if not dry_run and plan.requests:
        _write(db, plan, report)
    report.refused.sort(key=lambda r: (TABLES.index(_table_of(r.file, report)), r.line))
    return report


def _table_of(file: str, report: MigrationReport) -> str:
    for name, count in report.tables.items():
        if count.file == file:
            return name
    return TABLES[0]


def _write(db: Database, plan: _Plan, report: MigrationReport) -> None:
    """The write phase: bulk inserts under one short lock; requests someone added meanwhile are left out."""
    started = time.perf_counter()
    requests_t: Table = Request.__table__  # type: ignore[assignment]
    tracking_t: Table = Tracking.__table__  # type: ignore[assignment]
    notes_t: Table = RequestNote.__table__  # type: ignore[assignment]
    notices_t: Table = Notification.__table__  # type: ignore[assignment]
    with db.write() as session:
        csv_import._lock_tables(session, ("requests", "tracking", "request_notes", "notifications"))
        numbers = [t.number for t in plan.requests]
        taken: set[int] = set()
        for chunk in csv_import._chunks(numbers, 500):
            taken.update(
                session.scalars(select(Request.transaction_number).where(Request.transaction_number.in_(chunk)))
            )
        patron_ids = _patron_ids(session, {t.username for t in plan.requests})
        rows = []
        for txn in plan.requests:
            if txn.number in taken:
                continue
            if txn.username.casefold() not in patron_ids:  # its patron was not written after all
                report.refused.append(Refused(report.tables["Transactions"].file, txn.line,
                                              f"Username {txn.username!r} was not imported"))  # fmt: skip
                continue
            steps = plan.tracking[txn.number]
            rows.append({
                "transaction_number": txn.number, "patron_id": patron_ids[txn.username.casefold()],
                "request_type": "Loan", "loan_title": "", "loan_author": "", "photo_journal_title": "",
                "photo_article_title": "", "call_number": "", "lending_library": "", "due_date": None,
                "transaction_date": steps[0][0], **txn.values, "status": txn.status.value,
                "status_changed_at": steps[-1][0], "updated_at": steps[-1][0], "version_id": 1,
            })  # fmt: skip
        csv_import._executemany(session, requests_t, rows)
        ids: dict[int, int] = {}
        for chunk in csv_import._chunks([r["transaction_number"] for r in rows], 500):
            query = select(Request.transaction_number, Request.id).where(Request.transaction_number.in_(chunk))
            ids.update((n, i) for n, i in session.execute(query))
        tracking_rows = []
        for number, request_id in ids.items():
            previous: str | None = None
            for when, status, by, note in plan.tracking[number]:
                tracking_rows.append({"request_id": request_id, "from_status": previous, "to_status": status,
                                      "changed_by": by, "changed_at": when, "note": note[:500]})  # fmt: skip
                previous = status
            if len(tracking_rows) >= _WRITE_BATCH:  # bounded memory: millions of Tracking rows go in batches
                csv_import._executemany(session, tracking_t, tracking_rows)
                tracking_rows = []
        csv_import._executemany(session, tracking_t, tracking_rows)
        csv_import._executemany(
            session, notes_t, [{"request_id": ids[n], **values} for n, values in plan.notes if n in ids]
        )
        emails = [(n, when, values) for n, when, values in plan.emails if n in ids]
        owner = {r["transaction_number"]: r["patron_id"] for r in rows}
        if emails:
            # Each e-mail belongs to the Tracking row it followed: the arrival scan then sees the arrival as notified.
            arrivals: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
            wanted = sorted({ids[n] for n, _w, _v in emails})
            for chunk in csv_import._chunks(wanted, 500):
                tq = select(Tracking.request_id, Tracking.changed_at, Tracking.id).where(Tracking.request_id.in_(chunk))
                for request_id, changed, tracking_id in session.execute(tq):
                    arrivals[request_id].append((changed, tracking_id))
            notice_rows = []
            for n, when, values in emails:
                request_id = ids[n]
                ordered = sorted(arrivals[request_id], key=lambda s: (s[0], s[1]))
                before = [t for w, t in ordered if w <= when] or [ordered[0][1]]
                notice_rows.append({**values, "request_id": request_id, "patron_id": owner[n],
                                    "tracking_id": before[-1]})  # fmt: skip
            csv_import._executemany(session, notices_t, notice_rows)
    report.lock_seconds += time.perf_counter() - started


def _patron_ids(session: Session, usernames: set[str]) -> dict[str, int]:
    wanted = {u.casefold() for u in usernames}
    return {u.casefold(): i for i, u in session.execute(select(Patron.id, Patron.username)) if u.casefold() in wanted}
