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
* **Idempotent, forward only.** A request already in Callslip (same TransactionNumber) is left alone with its
  history; importing the same folder again adds nothing. If a newer export shows ILLiad moved its status forward,
  it moves forward too, with the newer Tracking rows (and e-mails and notes not imported before); a status is
  never moved back unless ``status_back`` allows it (the safe-import rules of :mod:`csv_import`). Patrons go
  through :func:`csv_import.import_patrons` (upsert, only the file's columns, contact points only added).
* **Streaming.** Each table is read row by row and written in batches with the driver's executemany (no ORM
  object per row); only small maps are kept (TransactionNumber → slot, a few integers per request), so memory
  stays flat from a hundred requests to millions (``bench/import_illiad.py``). A dry run takes the same path
  and writes nothing. Patrons are written in chunks, each its own short transaction; the requests and their
  history in one transaction that holds the write lock while the files stream (a migration runs before the
  desk works in Callslip), with new request ids assigned under that lock so nothing is read back.
* **SMS opt-in becomes a channel preference.** ILLiad exports an SMS preference next to ``NotificationMethod``
  (the column's name varies by version and site: :data:`SMS_OPT_IN_COLUMNS`) and sometimes the mobile carrier
  (:data:`CARRIER_COLUMNS`). An opted-in user's item notices (ready for pickup, pickup reminder, cancellation)
  become "SMS, else their method" (:func:`desktop.domain.channels.illiad_preference`); a password reset stays
  E-Mail. A result equal to the method stores no row, so nothing changes for users without SMS; a preference
  staff chose in Callslip is never overwritten by a re-import. Written set-based, a chunk of users at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
import tomllib
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, PatronChannelPreference, Request, RequestNote, Tracking
from desktop.domain.channels import NoticeEvent, format_preference, illiad_preference
from desktop.domain.clock import utcnow
from desktop.domain.methods import parse_request_type
from desktop.domain.statuses import Status
from desktop.services.admin import csv_import
from desktop.services.admin.csv_import import CsvFileError, ImportResult, StatusBack, parse_transaction_number
from desktop.services.admin.sms_settings import load_sms_settings
from desktop.services.notices.templates import ARTICLE_PICKUP, LOAN_PICKUP
from desktop.services.patrons.channel_preferences import CARRIER_LIMIT, effective_default

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

#: Users columns that hold ILLiad's SMS opt-in, as versions and sites name them (matched without case; the first
#: one present wins), and the values they hold.
SMS_OPT_IN_COLUMNS = ("SMSPreference", "SMSOptIn", "SMS", "TextMessage", "NotifyBySMS")
SMS_YES = frozenset({"yes", "true", "1", "y"})
SMS_NO = frozenset({"no", "false", "0", "n"})
#: Users columns that name the patron's mobile carrier (the e-mail-to-SMS gateway's), first present wins.
CARRIER_COLUMNS = ("SMSCarrier", "Carrier", "MobileCarrier")
#: The events an ILLiad SMS opt-in applies to (a password reset carries a link: it stays E-Mail).
SMS_EVENTS = (NoticeEvent.READY_FOR_PICKUP, NoticeEvent.PICKUP_REMINDER, NoticeEvent.CANCELLATION)

TABLES = ("Users", "Transactions", "Tracking", "Notes", "EMailCopies")
_USED: dict[str, tuple[str, ...]] = {
    "Users": ("UserName", "FirstName", "LastName", "EMailAddress", "Phone", "MobilePhone", "Fax",
              "NotificationMethod", "DeliveryMethod", "LoanDeliveryMethod", "Address", "Address2", "City", "State",
              "Zip", "Country", "Department", "Status", "Site", "Cleared", *SMS_OPT_IN_COLUMNS, *CARRIER_COLUMNS),
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
#: Rows built and written at a time (Tracking, notes): memory stays flat whatever the export's size.
_WRITE_BATCH = 50_000
#: Transactions (and e-mails) checked against the database and written at a time.
_BATCH = 10_000
#: Users rows given to the patron import at a time (each chunk its own short write).
_USERS_BATCH = 5_000


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
    """Read one export whole; return it and its refused rows (file, line, reason). ``NULL`` cells are empty.

    The import streams instead (:func:`iter_table`); this is for tools and tests that want a small table at once.

    Raises:
        CsvFileError: the file cannot be read at all (no header, a required column missing).
    """
    codec, encoding = file_encoding(path)
    refused: list[tuple[str, int, str]] = []
    ignored: list[str] = []
    with path.open(encoding=codec, errors="replace", newline="") as handle:
        rows = list(_iter_rows(name, path, handle, refused, ignored))
    return ExportTable(name, path.name, encoding, rows, ignored), refused


def iter_table(
    name: str, path: Path, count: TableCount, refused: list[Refused]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream one export's rows (line, used cells): an export of millions of rows is never held whole.

    Refused rows are appended to ``refused`` as they are met; ``count`` gets the encoding, rows read and columns
    not used.
    """
    codec, count.encoding = file_encoding(path)
    problems: list[tuple[str, int, str]] = []
    ignored: list[str] = []
    with path.open(encoding=codec, errors="replace", newline="") as handle:
        for row in _iter_rows(name, path, handle, problems, ignored):
            count.read += 1
            yield row
            if problems:
                count.read += len(problems)
                refused.extend(Refused(*r) for r in problems)
                problems.clear()
    count.read += len(problems)
    refused.extend(Refused(*r) for r in problems)
    count.ignored_columns = len(ignored)


def _iter_rows(
    name: str, path: Path, handle: TextIO, refused: list[tuple[str, int, str]], ignored_out: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    reader, header = _open_reader(name, path, handle)
    folded = {h.casefold(): i for i, h in enumerate(header)}
    used = {c: folded[c.casefold()] for c in _USED[name] if c.casefold() in folded}
    ignored_out.extend(h for h in header if h and h.casefold() not in {c.casefold() for c in used})
    items = list(used.items())
    width = len(header)
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
        if len(record) != width:
            if not "".join(record).strip():
                continue
            refused.append((path.name, line, f"has {len(record)} field(s) but the header has {width}"))
            continue
        values: dict[str, str] = {}
        for column, index in items:
            cell = record[index]
            if "\x00" in cell:
                cell = cell.replace("\x00", "")
            cell = cell.strip()
            if cell and cell != "NULL":
                values[column] = cell
        if not values and not "".join(record).strip():
            continue
        yield line, values


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
    """A SQL Server ``datetime`` as exported; ILLiad stores local time, taken as this computer's time zone.

    Millions of Tracking rows pass here, so the common spellings take ``fromisoformat`` and the local offset is
    looked up once per hour (offsets change only on whole hours); anything else goes through the CSV import's
    parser, which also names a bad value.
    """
    try:
        value: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or not 1900 <= value.year <= 2999:
        value = csv_import.parse_datetime(text)
        if "+" in text[10:] or text.endswith("Z"):
            return value
        value = value.replace(tzinfo=None)
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return (value + _local_offset(value.replace(minute=0, second=0, microsecond=0))).replace(tzinfo=UTC)


@lru_cache(maxsize=1 << 16)
def _local_offset(hour: datetime) -> timedelta:
    """UTC minus local time at a (naive, local) hour."""
    return hour.astimezone(UTC).replace(tzinfo=None) - hour


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
    #: Requests already in Callslip whose status moved as ILLiad's did (a re-import).
    moved: int = 0


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
    #: Users who opted in to SMS in ILLiad; the preference rows written (or that would be) for them.
    sms_opt_in: int = 0
    preferences_written: int = 0
    #: Preferences staff chose in Callslip that a re-import left alone (one per patron and event).
    preferences_kept: int = 0
    #: Patrons whose SMS carrier was set (or would be).
    carriers_set: int = 0

    def lines(self) -> list[str]:
        """The migration report, as the command line prints it and the wizard shows it."""
        head = "ILLiad import (dry run, nothing written)" if self.dry_run else "ILLiad import"
        out = [head, "", "Tables:"]
        for name, count in self.tables.items():
            verb = "would import" if self.dry_run else "imported"
            out.append(
                f"  {name}: {count.file} ({count.encoding}): {count.read} row(s) read, {verb} {count.imported}, "
                f"skipped {count.skipped}, {count.ignored_columns} column(s) not used"
                + (f"; {count.moved} request(s) already in Callslip moved on as ILLiad's did" if count.moved else "")
            )
        if self.patrons is not None:
            out.append(f"  patrons: {self.patrons.summary()}")
        if self.sms_opt_in or self.preferences_written or self.carriers_set or self.preferences_kept:
            verb = "would store" if self.dry_run else "stored"
            out += ["", f"SMS opt-in: {self.sms_opt_in} user(s); {verb} {self.preferences_written} channel "
                    "preference(s) (SMS, else their method, for item notices)"]  # fmt: skip
            if self.carriers_set:
                out.append(f"  SMS carrier {'would be ' if self.dry_run else ''}set for {self.carriers_set} patron(s)")
            if self.preferences_kept:
                out.append(f"  {self.preferences_kept} preference(s) chosen by staff in Callslip kept as they are")
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
class _Move:
    """A request already in Callslip that ILLiad moved on since (a re-import): its ILLiad history after the stored
    status change comes along, and the status moves as the safe-import rules allow."""

    line: int
    request_id: int
    patron_id: int
    version: int
    stored: Status
    stored_at: datetime
    target: Status
    illiad_status: str
    steps: list[tuple[datetime, int, str, str]] = field(default_factory=list)


_TEXT_ATTRS = {"LoanTitle": "loan_title", "LoanAuthor": "loan_author", "PhotoJournalTitle": "photo_journal_title",
               "PhotoArticleTitle": "photo_article_title", "CallNumber": "call_number",
               "LendingLibrary": "lending_library"}  # fmt: skip


def _limit(attr: str) -> int | None:
    table: Table = Request.__table__  # type: ignore[assignment]
    return getattr(table.c[attr].type, "length", None)


def _patron_csv(rows: list[tuple[int, dict[str, str]]], report: MigrationReport) -> tuple[list[str], list[int]]:
    """Users rows as Callslip's patron CSV lines (header first, one line per row) and the export line of each."""
    # The carrier and the preferences come from ILLiad's own columns (:func:`_import_preferences`).
    columns = [
        c for c in csv_import.PATRON_COLUMNS if c not in ("HouseholdID", "SMSCarrier", "NotificationPreferences")
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    lines: list[int] = []
    for line, values in rows:
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
    return out.getvalue().split("\n")[:-1], lines


def _import_patrons(
    db: Database, file: str, rows: list[tuple[int, dict[str, str]]], report: MigrationReport, region: str
) -> set[str]:
    """One chunk of Users through the patron import (its rules); refused rows are reported and left out.

    Returns the chunk's imported user names (case-folded).
    """
    csv_lines, lines = _patron_csv(rows, report)
    bad: set[int] = set()
    # The patron import is all or nothing: a round with refused rows writes nothing, and the next leaves them out.
    # Each round leaves out at least one row, so this ends; usually after one or two rounds.
    for _attempt in range(len(lines) + 1):
        index = [i for i in range(len(lines)) if i not in bad]
        body = "\n".join([csv_lines[0], *(csv_lines[i + 1] for i in index)]) + "\n"
        result = csv_import.import_patrons(
            db, body.encode("utf-8"), region=region, dry_run=report.dry_run, create_sites=True
        )
        if not result.errors:
            break
        for error in result.errors:
            row = index[error.line - 2]
            bad.add(row)
            report.refused.append(Refused(file, lines[row], error.reason))
    total = report.patrons
    assert total is not None
    total.rows += result.rows
    total.created += result.created
    total.updated += result.updated
    total.unchanged += result.unchanged
    total.notes.extend(result.notes)
    report.lock_seconds += result.lock_seconds
    report.tables["Users"].imported += result.created + result.updated + result.unchanged
    kept = [row for i, row in enumerate(rows) if i not in bad]
    _import_preferences(db, kept, report)
    return {values.get("UserName", "").casefold() for _l, values in kept}


def _first(values: dict[str, str], columns: tuple[str, ...]) -> tuple[str, str] | None:
    """(column, value) of the first of ``columns`` the row has a value in."""
    return next(((c, values[c]) for c in columns if c in values), None)


def _import_preferences(db: Database, rows: list[tuple[int, dict[str, str]]], report: MigrationReport) -> None:
    """One chunk of Users' SMS opt-in and carrier as channel preferences and ``sms_carrier`` (set-based).

    Per patron and item event: no stored row and the ILLiad result differs from the method → insert; a row the
    import wrote before → updated, or removed when the result is the method again; a row staff wrote → kept.
    A carrier named like one in the shared carrier table takes the table's spelling.
    """
    wanted: dict[str, tuple[bool | None, str | None, str]] = {}  # user → (opt-in, carrier, ILLiad's method)
    for _line, values in rows:
        opt = _first(values, SMS_OPT_IN_COLUMNS)
        carrier = _first(values, CARRIER_COLUMNS)
        if opt is None and carrier is None:
            continue
        opt_in: bool | None = None
        if opt is not None:
            answer = opt[1].strip().casefold()
            if answer in SMS_YES or answer in SMS_NO:
                opt_in = answer in SMS_YES
            else:
                report.skipped[
                    f"Users: {opt[0]} {opt[1]!r} is not Yes or No (the SMS preference was left as it was)"
                ] += 1
        name = " ".join(carrier[1].split()) if carrier is not None else None
        if name is not None and len(name) > CARRIER_LIMIT:
            report.skipped[f"Users: a carrier longer than {CARRIER_LIMIT} characters was not kept"] += 1
            name = None
        wanted[values.get("UserName", "").casefold()] = (opt_in, name, values.get("NotificationMethod", ""))
    if not wanted:
        return
    report.sms_opt_in += sum(1 for opt_in, _c, _m in wanted.values() if opt_in)
    table_names = {n.casefold(): n for n in load_sms_settings(db).gateways}
    pref_table: Table = PatronChannelPreference.__table__  # type: ignore[assignment]
    with db.read() if report.dry_run else db.write() as session:
        patrons: dict[str, tuple[int, str, str]] = {}
        stored: dict[tuple[int, str], tuple[str, str]] = {}
        # One pass over the patrons, matched without case in Python like the patron import (no index on lower()).
        for pid, username, method, current_carrier in session.execute(
            select(Patron.id, Patron.username, Patron.notification_method, Patron.sms_carrier)
        ):
            if username.casefold() in wanted:
                patrons[username.casefold()] = (pid, method, current_carrier)
        ids = sorted(pid for pid, _m, _c in patrons.values())
        for start in range(0, len(ids), 1000):  # bounded IN lists on every database
            for pid, event, channels, by in session.execute(
                select(
                    PatronChannelPreference.patron_id,
                    PatronChannelPreference.event,
                    PatronChannelPreference.channels,
                    PatronChannelPreference.updated_by,
                ).where(PatronChannelPreference.patron_id.in_(ids[start : start + 1000]))
            ):
                stored[(pid, event)] = (channels, by)
        now = utcnow()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        deletes: list[dict[str, Any]] = []
        carriers: list[dict[str, Any]] = []
        touched: set[int] = set()
        for user, (opt_in, carrier_name, illiad_method) in wanted.items():
            if user not in patrons and not report.dry_run:
                continue  # not written by the patron import (refused): nothing to attach a preference to
            pid, method, old_carrier = patrons.get(user, (0, illiad_method or "E-Mail", ""))
            if carrier_name is not None:
                carrier_name = table_names.get(carrier_name.casefold(), carrier_name)
                if carrier_name and carrier_name != old_carrier:
                    report.carriers_set += 1
                    carriers.append({"b_id": pid, "b_carrier": carrier_name})
                    touched.add(pid)
            if opt_in is None:
                continue
            try:
                chosen = illiad_preference(method, opt_in)
            except ValueError:  # a method Callslip does not know: the patron import already reported it
                continue
            for event in SMS_EVENTS:
                default = effective_default(method, event)
                want = chosen if chosen != default else None
                have = stored.get((pid, event.value))
                if have is not None and have[1] != IMPORTED_BY:
                    if want is not None and have[0] != format_preference(want):
                        report.preferences_kept += 1
                    continue
                key = {"b_id": pid, "b_event": event.value}
                if want is None:
                    if have is not None:
                        deletes.append(key)
                        touched.add(pid)
                    continue
                text_value = format_preference(want)
                if have is None:
                    inserts.append({"patron_id": pid, "event": event.value, "channels": text_value,
                                    "updated_by": IMPORTED_BY, "updated_at": now})  # fmt: skip
                elif have[0] != text_value:
                    updates.append({**key, "b_channels": text_value, "b_at": now})
                else:
                    continue
                report.preferences_written += 1
                touched.add(pid)
        if report.dry_run:
            return
        csv_import._executemany(session, pref_table, inserts)
        columns = pref_table.c
        if updates:
            session.execute(
                update(pref_table)
                .where(columns.patron_id == bindparam("b_id"), columns.event == bindparam("b_event"))
                .values(channels=bindparam("b_channels"), updated_at=bindparam("b_at"), updated_by=IMPORTED_BY),
                updates,
            )
        if deletes:
            session.execute(
                delete(pref_table).where(columns.patron_id == bindparam("b_id"), columns.event == bindparam("b_event")),
                deletes,
            )
        patron_table: Table = Patron.__table__  # type: ignore[assignment]
        if carriers:
            session.execute(
                update(patron_table)
                .where(patron_table.c.id == bindparam("b_id"))
                .values(sms_carrier=bindparam("b_carrier")),
                carriers,
            )
        if touched:  # a Contact Card opened before the import must not save over it
            session.execute(
                update(patron_table)
                .where(patron_table.c.id == bindparam("b_id"))
                .values(version_id=patron_table.c.version_id + 1, updated_at=now),
                [{"b_id": pid} for pid in sorted(touched)],
            )


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
            limit = _LIMITS[attr]
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


_LIMITS = {attr: _limit(attr) for attr in _TEXT_ATTRS.values()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NONE = -(1 << 62)  # "no time yet" in the per-request time arrays


def _us(when: datetime) -> int:
    """A UTC time as whole microseconds (exact, unlike a float timestamp), for the compact per-request arrays."""
    return (when - _EPOCH) // _MICRO


def _at(us: int) -> datetime:
    return _EPOCH + us * _MICRO


def import_illiad(
    db: Database,
    folder: Path,
    *,
    dry_run: bool = False,
    status_map: dict[str, Status] | None = None,
    region: str = "US",
    status_back: StatusBack = StatusBack.REFUSE,
) -> MigrationReport:
    """Import an ILLiad export folder (see the module docstring); return the migration report.

    Args:
        status_back: a request already in Callslip whose ILLiad status is behind the stored one (a re-import after
            Callslip moved it on): refuse the row (default), keep the stored status, or move it back.

    Raises:
        CsvFileError: the folder or one of its files cannot be used at all (one line naming the file).
    """
    table_map = status_map or dict(DEFAULT_STATUS_MAP)
    report = MigrationReport(dry_run=dry_run, status_map=table_map)
    found = find_tables(folder)
    for name in TABLES:
        if name in found:
            check_table(name, found[name])
            report.tables[name] = TableCount(found[name].name)
    run = _Run(db, report, {status_key(k): s for k, s in table_map.items()}, status_back)
    if "Users" in found:
        run.users(found["Users"], region)
    run.load_patron_ids()
    started = time.perf_counter()
    with db.read() if dry_run else db.write() as session:
        if not dry_run:
            csv_import._lock_tables(session, ("requests", "tracking", "request_notes", "notifications"))
        run.session = session
        run.base = session.scalar(select(func.coalesce(func.max(Request.id), 0))) or 0
        for name, step in (("Transactions", run.transactions), ("Tracking", run.tracking)):
            if name in found:
                step(run.rows(name, found[name]))
        run.finish_requests()
        for name, step in (("Notes", run.notes), ("EMailCopies", run.emails)):
            if name in found:
                step(run.rows(name, found[name]))
    if not dry_run:
        report.lock_seconds += time.perf_counter() - started
    report.will_notify = run.will_notify()
    order = {count.file: TABLES.index(name) for name, count in report.tables.items()}
    report.refused.sort(key=lambda r: (order.get(r.file, 0), r.line))
    return report


class _Run:
    """One import's state while it streams the tables.

    Only small maps are kept (TransactionNumber → slot, and per slot a few integers in arrays: the ILLiad status,
    dates as microseconds, the last Tracking status); rows are read, checked and written in batches, so memory
    stays flat however large the export is. New requests get the ids after the largest one (the write lock is
    held), so their Tracking, notes and notices can be written without reading ids back.
    """

    def __init__(self, db: Database, report: MigrationReport, lookup: dict[str, Status], back: StatusBack) -> None:
        self.db, self.report, self.lookup, self.back = db, report, lookup, back
        self.session: Session | None = None
        self.dry_run = report.dry_run
        self.usernames: set[str] = set()
        self.patron_ids: dict[str, int] = {}
        self.base = 0
        self.index: dict[int, int] = {}  # TransactionNumber → slot of a new request (its id is base + slot + 1)
        self.line_of = array("q")
        self.patron_of = array("q")
        self.status_of = array("H")  # slot → index in self.illiad
        self.illiad: list[str] = []
        self.mapped: list[Status] = []
        self._illiad_ids: dict[str, int] = {}
        self.txn_at = array("q")
        self.first_at = array("q")
        self.last_at = array("q")
        self.last_step = array("l")  # slot → index in self.step_names, -1 before the first Tracking row
        self.step_names: list[str] = []
        self._step_ids: dict[str, int] = {}
        self.unordered: set[int] = set()
        self.undated: set[int] = set()
        self.notified: set[int] = set()
        self.other: set[int] = set()
        self.refused_numbers: set[int] = set()
        self.existing: dict[int, int] = {}  # TransactionNumber already in Callslip → its line in the export
        self.moves: dict[int, _Move] = {}
        self.moved_ids: dict[int, int] = {}  # request id of a moved request → its patron id
        self.seen_ids: dict[str, int] = {}  # "Notes 12" / "EMailCopies 501" → line: a repeated Id is refused

    # ------------------------------------------------------------------------------------------------ helpers

    def rows(self, name: str, path: Path) -> Iterator[tuple[int, dict[str, str]]]:
        return iter_table(name, path, self.report.tables[name], self.report.refused)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows and not self.dry_run:
            assert self.session is not None
            csv_import._executemany(self.session, table, rows)

    def refuse(self, table: str, line: int, reason: str) -> None:
        self.report.refused.append(Refused(self.report.tables[table].file, line, reason))

    def skip(self, table: str, reason: str) -> None:
        self.report.skipped[f"{table}: {reason}"] += 1
        self.report.tables[table].skipped += 1

    def slot(self, table: str, line: int, raw: str) -> int | None:
        """The slot of the new request a history row belongs to, or None (counted as skipped or refused)."""
        number = int(raw) if raw.isdigit() else None
        if number is not None:
            found = self.index.get(number)
            if found is not None:
                return found
        if number in self.other:
            self.skip(table, "its transaction is not a Borrowing request")
        elif number in self.existing:
            if number not in self.moves:
                self.skip(table, "its request was already in Callslip")
        elif number in self.refused_numbers:
            self.skip(table, "its transaction was refused")
        else:
            self.refuse(table, line, f"TransactionNumber {raw!r} is not in Transactions")
        return None

    def repeated(self, table: str, line: int, key: str) -> bool:
        """Refuse a second row with the same Id (a dirty export): the first one is imported."""
        first = self.seen_ids.setdefault(f"{table} {key}", line)
        if first != line:
            self.refuse(table, line, f"{'Id' if table == 'Notes' else 'ID'} {key} already on line {first}")
        return first != line

    def moved(self, raw: str) -> _Move | None:
        return self.moves.get(int(raw)) if raw.isdigit() else None

    # ------------------------------------------------------------------------------------------------ patrons

    def users(self, path: Path, region: str) -> None:
        """Users in chunks through the patron import (each chunk its own short write)."""
        self.report.patrons = ImportResult(kind="patrons", dry_run=self.dry_run)
        chunk: list[tuple[int, dict[str, str]]] = []
        for row in self.rows("Users", path):
            chunk.append(row)
            if len(chunk) >= _USERS_BATCH:
                self.usernames |= _import_patrons(self.db, path.name, chunk, self.report, region)
                chunk = []
        if chunk or not self.report.patrons.rows:
            self.usernames |= _import_patrons(self.db, path.name, chunk, self.report, region)

    def load_patron_ids(self) -> None:
        with self.db.read() as session:
            self.patron_ids = {u.casefold(): i for i, u in session.execute(select(Patron.id, Patron.username))}
        for name in self.usernames:  # a dry run: the export's patrons are not written yet
            self.patron_ids.setdefault(name, 0)

    # ------------------------------------------------------------------------------------------- transactions

    def transactions(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        batch: list[_Txn] = []
        for line, v in rows:
            process = " ".join(v.get("ProcessType", "").split())
            raw = v.get("TransactionNumber", "")
            if process.casefold() != "borrowing":
                self.skip("Transactions", f"ProcessType {process or '(empty)'!r} (only Borrowing becomes a request)")
                if raw.isdigit():
                    self.other.add(int(raw))
                continue
            try:
                txn = _parse_transaction(line, v, self.lookup)
            except ValueError as exc:
                self.refuse("Transactions", line, str(exc))
                if raw.isdigit():
                    self.refused_numbers.add(int(raw))
                continue
            if txn.username.casefold() not in self.patron_ids:
                self.refuse(
                    "Transactions", line, f"Username {txn.username!r} is not in the Users export (or was refused there)"
                )
                self.refused_numbers.add(txn.number)
                continue
            batch.append(txn)
            if len(batch) >= _BATCH:
                self._transaction_batch(batch)
                batch = []
        self._transaction_batch(batch)

    def _transaction_batch(self, batch: list[_Txn]) -> None:
        assert self.session is not None
        stored: dict[int, tuple[int, int, int, str, datetime]] = {}
        for chunk in csv_import._chunks(sorted({t.number for t in batch}), 500):
            columns = (Request.id, Request.patron_id, Request.version_id, Request.status, Request.status_changed_at)
            query = select(Request.transaction_number, *columns).where(Request.transaction_number.in_(chunk))
            stored.update((n, (i, p, v, s, at)) for n, i, p, v, s, at in self.session.execute(query))
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for txn in batch:
            number = txn.number
            earlier = self.index.get(number)
            if earlier is not None or number in self.existing:
                first = self.line_of[earlier] if earlier is not None else self.existing[number]
                self.refuse("Transactions", txn.line, f"TransactionNumber {number} already on line {first}")
                continue
            if number in stored:
                self.existing[number] = txn.line
                self._existing(txn, *stored[number])
                continue
            status_id = self._illiad_ids.get(txn.illiad_status)
            if status_id is None:
                status_id = self._illiad_ids[txn.illiad_status] = len(self.illiad)
                self.illiad.append(txn.illiad_status)
                self.mapped.append(txn.status)
            slot = len(self.line_of)
            self.index[number] = slot
            patron_id = self.patron_ids[txn.username.casefold()]
            self.line_of.append(txn.line)
            self.patron_of.append(patron_id)
            self.status_of.append(status_id)
            when = txn.values.get("transaction_date")
            if when is None:
                self.undated.add(slot)
            self.txn_at.append(_us(when) if when is not None else _NONE)
            self.first_at.append(-_NONE)
            self.last_at.append(_NONE)
            self.last_step.append(-1)
            self._count_mapping(txn.illiad_status, txn.status)
            rows.append({
                "id": self.base + slot + 1, "transaction_number": number, "patron_id": patron_id,
                "request_type": "Loan", "loan_title": "", "loan_author": "", "photo_journal_title": "",
                "photo_article_title": "", "call_number": "", "lending_library": "", "due_date": None,
                "transaction_date": now, **txn.values, "status": txn.status.value,
                "status_changed_at": now, "updated_at": now, "version_id": 1,
            })  # fmt: skip
        self.report.tables["Transactions"].imported += len(rows)
        self.insert(_REQUESTS, rows)

    def _count_mapping(self, illiad: str, status: Status) -> None:
        defaulted = status_key(illiad) not in self.lookup
        self.report.status_mappings[(tracking_status(illiad), status.value, defaulted)] += 1

    def _existing(self, txn: _Txn, request_id: int, patron_id: int, version: int, status: str, at: datetime) -> None:
        """A request already in Callslip: left alone, or moved as ILLiad moved it (forward only unless allowed)."""
        current = Status(status)
        move = csv_import.status_move(current, txn.status)
        if move == "same":
            self.skip("Transactions", "already in Callslip (left alone with its history)")
        elif move == "forward" or self.back is StatusBack.ALLOW:
            self.moves[txn.number] = _Move(txn.line, request_id, patron_id, version, current, at, txn.status,
                                           txn.illiad_status)  # fmt: skip
            self.moved_ids[request_id] = patron_id
            self._count_mapping(txn.illiad_status, txn.status)
            self.report.tables["Transactions"].moved += 1
        elif self.back is StatusBack.KEEP:
            self.skip("Transactions", "already in Callslip at a status ahead of ILLiad's (kept)")
        else:
            what = "re-open" if current in csv_import._CLOSED else "move back"
            self.refuse("Transactions", txn.line,
                        f"TransactionStatus {txn.illiad_status!r} ({txn.status.value}) would {what} request "
                        f"{txn.number} (stored: {current.value!r}); an import only moves a status forward — "
                        "--allow-status-back moves it anyway, --keep-newer-status keeps the stored one")  # fmt: skip

    # ----------------------------------------------------------------------------------------------- tracking

    def tracking(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        out: list[dict[str, Any]] = []
        count = self.report.tables["Tracking"]
        for line, v in rows:
            raw = v.get("TransactionNumber", "")
            slot = self.slot("Tracking", line, raw)
            move = self.moved(raw) if slot is None else None
            if slot is None and move is None:
                continue
            try:
                when = parse_illiad_datetime(v.get("DateTime", ""))
            except (ValueError, OverflowError) as exc:
                self.refuse("Tracking", line, f"DateTime: {exc}")
                continue
            changed_to = v.get("ChangedTo")
            if not changed_to:
                self.refuse("Tracking", line, "ChangedTo is empty")
                continue
            by = v.get("ChangedBy", "System")[:100]
            if move is not None:
                move.steps.append((when, line, changed_to, by))
                continue
            assert slot is not None
            status = tracking_status(changed_to)
            step = self._step_ids.get(status)
            if step is None:
                step = self._step_ids[status] = len(self.step_names)
                self.step_names.append(status)
            us = _us(when)
            previous = self.last_step[slot]
            from_status: str | None = None
            if us >= self.last_at[slot]:
                from_status = self.step_names[previous] if previous >= 0 else None
                self.last_at[slot], self.last_step[slot] = us, step
            else:  # out of time order in the export: its from_status is set once all are written
                self.unordered.add(slot)
            if us < self.first_at[slot]:
                self.first_at[slot] = us
            out.append({"request_id": self.base + slot + 1, "from_status": from_status, "to_status": status,
                        "changed_by": by, "changed_at": when, "note": ""})  # fmt: skip
            count.imported += 1
            if len(out) >= _WRITE_BATCH:
                self.insert(_TRACKING, out)
                out = []
        self.insert(_TRACKING, out)

    def finish_requests(self) -> None:
        """The last Tracking step of each new request (ILLiad's TransactionStatus where the history does not end at
        it), the dates that follow from the history, and the requests ILLiad moved on since the last import."""
        now_us = _us(datetime.now(UTC))
        out: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        for slot in range(len(self.line_of)):
            illiad = self.illiad[self.status_of[slot]]
            mapped = self.mapped[self.status_of[slot]].value
            previous = self.last_step[slot]
            last = self.step_names[previous] if previous >= 0 else None
            request_id = self.base + slot + 1
            if last is None or status_key(last) != status_key(illiad):
                txn_at = self.txn_at[slot]
                us = max(txn_at if txn_at != _NONE else now_us, self.last_at[slot])
                final = tracking_status(illiad)
                note = "ILLiad's TransactionStatus" if final == mapped else f"ILLiad status; in Callslip: {mapped}"
                out.append({"request_id": request_id, "from_status": last, "to_status": final,
                            "changed_by": IMPORTED_BY, "changed_at": _at(us), "note": note})  # fmt: skip
                self.last_at[slot] = us
                if self.first_at[slot] > us:
                    self.first_at[slot] = us
            elif last != mapped:
                notes.append({"rid": request_id, "status": last, "at": _at(self.last_at[slot]),
                              "new_note": f"ILLiad status; in Callslip: {mapped}"})  # fmt: skip
            if len(out) >= _WRITE_BATCH:
                self.insert(_TRACKING, out)
                out = []
        self.insert(_TRACKING, out)
        if self.dry_run or self.session is None:
            return
        session = self.session
        if notes:
            session.connection().execute(
                update(_TRACKING)
                .where(_TRACKING.c.request_id == bindparam("rid"), _TRACKING.c.to_status == bindparam("status"),
                       _TRACKING.c.changed_at == bindparam("at"))
                .values(note=bindparam("new_note")),
                notes
            )  # fmt: skip
        self._fix_order(session)
        if self.line_of:
            newest = (
                select(func.max(_TRACKING.c.changed_at))
                .where(_TRACKING.c.request_id == _REQUESTS.c.id)
                .scalar_subquery()
            )
            # One pass over the new requests (each row and its indexes rewritten once): both dates are the last step's.
            session.connection().execute(
                update(_REQUESTS).where(_REQUESTS.c.id > self.base).values(status_changed_at=newest, updated_at=newest)
            )
            if self.undated:
                session.connection().execute(
                    update(_REQUESTS)
                    .where(_REQUESTS.c.id == bindparam("rid"))
                    .values(transaction_date=bindparam("at")),
                    [{"rid": self.base + s + 1, "at": _at(self.first_at[s])} for s in sorted(self.undated)],
                )
            if session.get_bind().dialect.name == "postgresql":
                session.connection().execute(
                    text("SELECT setval(pg_get_serial_sequence('requests', 'id'), (SELECT MAX(id) FROM requests))")
                )
        self._apply_moves(session)

    def _fix_order(self, session: Session) -> None:
        """from_status of requests whose Tracking rows came out of time order in the export (rare)."""
        fixes: list[dict[str, Any]] = []
        for slot in sorted(self.unordered):
            query = (
                select(Tracking.id, Tracking.to_status)
                .where(Tracking.request_id == self.base + slot + 1)
                .order_by(Tracking.changed_at, Tracking.id)
            )
            previous: str | None = None
            for tracking_id, status in session.execute(query):
                fixes.append({"tid": tracking_id, "new_from": previous})
                previous = status
        if fixes:
            session.connection().execute(
                update(_TRACKING).where(_TRACKING.c.id == bindparam("tid")).values(from_status=bindparam("new_from")),
                fixes,
            )

    def _apply_moves(self, session: Session) -> None:
        """Requests ILLiad moved on since they were imported: their newer Tracking and the new status."""
        now = datetime.now(UTC)
        out: list[dict[str, Any]] = []
        for move in self.moves.values():
            newer = [step for step in sorted(move.steps) if step[0] > move.stored_at]
            steps = [(when, tracking_status(s), by, "") for when, _l, s, by in newer]
            if not steps or status_key(steps[-1][1]) != status_key(move.illiad_status):
                steps.append((max([now, *(s[0] for s in steps)]), tracking_status(move.illiad_status), IMPORTED_BY,
                              "ILLiad's TransactionStatus (re-import)"))  # fmt: skip
            if steps[-1][1] != move.target.value:
                last = steps[-1]
                steps[-1] = (last[0], last[1], last[2], f"ILLiad status; in Callslip: {move.target.value}")
            previous: str | None = move.stored.value
            for when, status, by, note in steps:
                out.append({"request_id": move.request_id, "from_status": previous, "to_status": status,
                            "changed_by": by, "changed_at": when, "note": note})  # fmt: skip
                previous = status
            self.report.tables["Tracking"].imported += len(steps)
            session.connection().execute(
                update(_REQUESTS)
                .where(_REQUESTS.c.id == move.request_id, _REQUESTS.c.version_id == move.version)
                .values(status=move.target.value, status_changed_at=steps[-1][0], updated_at=now,
                        version_id=move.version + 1)
            )  # fmt: skip
        self.insert(_TRACKING, out)

    # ------------------------------------------------------------------------------------------ notes, e-mail

    def _owner(self, raw: str, slot: int | None) -> tuple[int, int, int] | None:
        """(request id, patron id, slot or -1) of a history row's request, new or moved; None: not imported."""
        if slot is not None:
            return self.base + slot + 1, self.patron_of[slot], slot
        move = self.moved(raw)
        return (move.request_id, move.patron_id, -1) if move is not None else None

    def notes(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        out: list[dict[str, Any]] = []
        for line, v in rows:
            raw = v.get("TransactionNumber", "")
            owner = self._owner(raw, self.slot("Notes", line, raw))
            if owner is None:
                continue
            request_id, _patron, slot = owner
            try:
                noted = parse_illiad_datetime(v["NoteDate"]) if v.get("NoteDate") else None
            except (ValueError, OverflowError) as exc:
                self.refuse("Notes", line, f"NoteDate: {exc}")
                continue
            if not v.get("Note") or not v.get("Id"):
                self.refuse("Notes", line, "Id or Note is empty")
                continue
            if self.repeated("Notes", line, v["Id"]):
                continue
            if noted is None:
                noted = _at(self.first_at[slot]) if slot >= 0 else datetime.now(UTC)
            out.append({"request_id": request_id, "noted_at": noted, "note": v["Note"],
                        "added_by": v.get("AddedBy", "")[:100] or IMPORTED_BY,
                        "note_type": v.get("NoteType", "Staff")[:20],
                        "source_key": f"illiad:note:{v['Id']}"[:100]})  # fmt: skip
            if len(out) >= _WRITE_BATCH:
                self._write_notes(out)
                out = []
        self._write_notes(out)

    def _write_notes(self, rows: list[dict[str, Any]]) -> None:
        rows = self._new_only(rows, RequestNote.source_key, "source_key", "Notes")
        self.report.tables["Notes"].imported += len(rows)
        self.insert(_NOTES, rows)

    def _new_only(self, rows: list[dict[str, Any]], column: Any, key: str, table: str) -> list[dict[str, Any]]:
        """Rows of moved requests whose key is already stored are left out (imported the first time)."""
        assert self.session is not None
        keys = [r[key] for r in rows if r["request_id"] in self.moved_ids]
        if not keys:
            return rows
        have: set[str] = set()
        for chunk in csv_import._chunks(keys, 500):
            have.update(self.session.scalars(select(column).where(column.in_(chunk))))
        for _key in have:
            self.skip(table, "already in Callslip")
        return [r for r in rows if r[key] not in have]

    def emails(self, rows: Iterator[tuple[int, dict[str, str]]]) -> None:
        batch: list[tuple[int, dict[str, Any]]] = []
        for line, v in rows:
            raw = v.get("TransactionNumber", "")
            owner = self._owner(raw, self.slot("EMailCopies", line, raw))
            if owner is None:
                continue
            request_id, patron_id, slot = owner
            state = EMAIL_STATES.get(" ".join(v.get("Status", "").split()).casefold())
            if state is None:
                self.refuse("EMailCopies", line, f"Status {v['Status']!r} is not one of Sent, Pending, Cancelled")
                continue
            try:
                when = parse_illiad_datetime(v.get("EMailDate", ""))
            except (ValueError, OverflowError) as exc:
                self.refuse("EMailCopies", line, f"EMailDate: {exc}")
                continue
            if self.repeated("EMailCopies", line, v.get("ID", "")):
                continue
            kind = v.get("EMailType", "")
            reply = f"imported from ILLiad (EMailCopies ID {v.get('ID')}, Status {v.get('Status') or 'empty'})"
            batch.append((slot, {
                "request_id": request_id, "patron_id": patron_id,
                "dedupe_key": f"illiad:email:{v.get('ID')}"[:200], "channel": "email",
                "template_name": TEMPLATE_NAMES.get(kind.casefold(), kind)[:100] or "ILLiad e-mail",
                "state": state, "to_address": v.get("EMailTo", "")[:500], "cc": v.get("EMailCC", "")[:500],
                "bcc": v.get("EMailBCC", "")[:500], "from_address": v.get("EMailFrom", "")[:300],
                "subject": v.get("Subject", "")[:500], "body_text": v.get("Body", ""), "body_html": "",
                "message_id": "", "attempts": 1 if state == "sent" else 0, "next_attempt_at": when,
                "last_reply": reply, "created_at": when, "updated_at": when,
                "sent_at": when if state == "sent" else None,
            }))  # fmt: skip
            if len(batch) >= _BATCH:
                self._email_batch(batch)
                batch = []
        self._email_batch(batch)

    def _email_batch(self, batch: list[tuple[int, dict[str, Any]]]) -> None:
        """Each e-mail is linked to the Tracking row it followed: the arrival scan then sees the arrival notified."""
        assert self.session is not None
        rows = self._new_only([r for _s, r in batch], Notification.dedupe_key, "dedupe_key", "EMailCopies")
        kept = {r["dedupe_key"] for r in rows}
        for slot, values in batch:
            if values["dedupe_key"] in kept:
                if slot >= 0:
                    self.notified.add(slot)
                elif values["request_id"] in self.moved_ids:
                    self.notified.add(-values["request_id"])
        self.report.tables["EMailCopies"].imported += len(rows)
        if self.dry_run or not rows:
            return
        arrivals: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
        for chunk in csv_import._chunks(sorted({r["request_id"] for r in rows}), 500):
            query = select(Tracking.request_id, Tracking.changed_at, Tracking.id).where(Tracking.request_id.in_(chunk))
            for request_id, changed, tracking_id in self.session.execute(query):
                arrivals[request_id].append((changed, tracking_id))
        for values in rows:
            ordered = sorted(arrivals[values["request_id"]])
            before = [t for w, t in ordered if w <= values["created_at"]] or [ordered[0][1]]
            values["tracking_id"] = before[-1]
        self.insert(_NOTICES, rows)

    def will_notify(self) -> int:
        """Requests left at Awaiting Customer Contact with no e-mail in ILLiad's log: the System Manager notifies."""
        waiting = Status.AWAITING_CUSTOMER_CONTACT
        count = sum(
            1
            for slot in range(len(self.line_of))
            if self.mapped[self.status_of[slot]] is waiting and slot not in self.notified
        )
        return count + sum(1 for m in self.moves.values() if m.target is waiting and -m.request_id not in self.notified)


_REQUESTS: Table = Request.__table__  # type: ignore[assignment]
_TRACKING: Table = Tracking.__table__  # type: ignore[assignment]
_NOTES: Table = RequestNote.__table__  # type: ignore[assignment]
_NOTICES: Table = Notification.__table__  # type: ignore[assignment]
