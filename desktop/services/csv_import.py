"""CSV import of patrons and requests with ILLiad's field names.

A file is imported whole or not at all: every row is checked first, every bad row is reported with its line
number and reason, and only a clean file is written, in one transaction. Re-importing the same file changes
nothing (upsert by ``UserName`` / ``TransactionNumber``). Columns we do not know are reported, not dropped
silently; they are ignored because ILLiad exports carry many fields Callslip has no use for.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Household, Location, Patron, PickupLocation, Request
from desktop.domain.contacts import ContactError, ContactKind, Normalized, normalize_email, normalize_phone
from desktop.domain.methods import (
    NotificationMethod,
    parse_delivery_method,
    parse_notification_method,
    parse_request_type,
)
from desktop.domain.statuses import Status, parse_status
from desktop.services.status import change_status

PATRON_COLUMNS = (
    "UserName", "FirstName", "LastName", "EMailAddress", "Phone", "MobilePhone", "Fax", "NotificationMethod",
    "DeliveryMethod", "Address", "Address2", "City", "State", "Zip", "Department", "Status", "Site", "HouseholdID",
)  # fmt: skip
REQUEST_COLUMNS = (
    "TransactionNumber", "UserName", "RequestType", "LoanTitle", "LoanAuthor", "PhotoJournalTitle",
    "PhotoArticleTitle", "TransactionStatus", "TransactionDate", "DueDate", "CallNumber", "LendingLibrary",
)  # fmt: skip
MAX_FIELD = 2000
_T = TypeVar("_T")


class CsvFileError(ValueError):
    """The file could not be read at all (encoding, no header); raised before any row is checked."""


@dataclass(frozen=True)
class RowError:
    """One bad row: the physical line where it starts and why it was refused."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportResult:
    """What an import found and did. Nothing was written when ``errors`` is not empty."""

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the file was imported."""
        return not self.errors

    def summary(self) -> str:
        """One line for the command line and the GUI."""
        if self.errors:
            return f"{self.kind}: {len(self.errors)} bad row(s) of {self.rows}; nothing was imported"
        return (
            f"{self.kind}: {self.rows} row(s): {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )


@dataclass
class _Row:
    line: int
    values: dict[str, str]


def _read_rows(data: bytes, required: tuple[str, ...], known: tuple[str, ...], result: ImportResult) -> list[_Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvFileError(f"the file is not UTF-8 (first bad byte on line {line}); save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFileError("the file is empty: expected a header row") from None
    except csv.Error as exc:
        raise CsvFileError(f"line 1: the header is not valid CSV: {exc}") from None
    names = [h.strip() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise CsvFileError("the header lacks required column(s): " + ", ".join(missing))
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        raise CsvFileError("the header names column(s) twice: " + ", ".join(duplicates))
    result.unknown_columns = [n for n in names if n and n not in known]
    rows: list[_Row] = []
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(RowError(start, f"not valid CSV: {exc}"))
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines are not rows
        result.rows += 1
        if len(record) != len(names):
            result.errors.append(
                RowError(line, f"has {len(record)} field(s) but the header has {len(names)} (check quotes)")
            )
            continue
        too_long = [n for n, v in zip(names, record, strict=True) if len(v) > MAX_FIELD]
        if too_long:
            result.errors.append(RowError(line, f"{too_long[0]} is longer than {MAX_FIELD} characters"))
            continue
        rows.append(_Row(line, {n: v.strip() for n, v in zip(names, record, strict=True) if n}))
    return rows


# ---------------------------------------------------------------------------------------------------- patrons


@dataclass
class _PatronRow:
    line: int
    username: str
    attrs: dict[str, Any]
    contacts: list[tuple[ContactKind, str, Normalized]]  # kind, location name, value
    site: str
    household: str


def _parse_patron(row: _Row, region: str) -> _PatronRow:
    v = row.values.get
    username = v("UserName", "")
    if not username:
        raise ValueError("UserName is required")
    if len(username) > 100:
        raise ValueError("UserName is longer than 100 characters")
    contacts: list[tuple[ContactKind, str, Normalized]] = []
    email = v("EMailAddress", "")
    if email:
        try:
            contacts.append((ContactKind.EMAIL, "Home", normalize_email(email)))
        except ContactError as exc:
            raise ValueError(f"EMailAddress {email!r}: {exc}") from None
    for column, kind, location in (
        ("Phone", ContactKind.PHONE, "Home"),
        ("MobilePhone", ContactKind.PHONE, "Cell"),
        ("Fax", ContactKind.FAX, "Work"),
    ):
        raw = v(column, "")
        if raw:
            try:
                contacts.append((kind, location, normalize_phone(raw, region)))
            except ContactError as exc:
                raise ValueError(f"{column} {raw!r}: {exc}") from None
    method_text = v("NotificationMethod", "")
    if method_text:
        method = parse_notification_method(method_text)
    else:  # nothing given: the channel the patron can actually be reached on
        method = (
            NotificationMethod.EMAIL if email else NotificationMethod.PHONE if v("Phone") else NotificationMethod.MAIL
        )
    if method is NotificationMethod.EMAIL and not email:
        raise ValueError("NotificationMethod is E-Mail but EMailAddress is empty")
    delivery_text = v("DeliveryMethod", "")
    delivery = parse_delivery_method(delivery_text).value if delivery_text else "Hold for Pickup"
    attrs = {
        "first_name": v("FirstName", ""),
        "last_name": v("LastName", ""),
        "notification_method": method.value,
        "delivery_method": delivery,
        "address1": v("Address", ""),
        "address2": v("Address2", ""),
        "city": v("City", ""),
        "state": v("State", ""),
        "zip": v("Zip", ""),
        "department": v("Department", ""),
        "status": v("Status", ""),
    }
    for name, limit in (("first_name", 100), ("last_name", 100), ("city", 100), ("zip", 20)):
        if len(attrs[name]) > limit:
            raise ValueError(f"{name} is longer than {limit} characters")
    return _PatronRow(row.line, username, attrs, contacts, v("Site", ""), v("HouseholdID", ""))


def import_patrons(db: Database, data: bytes, *, region: str = "US") -> ImportResult:
    """Import (upsert) patrons from ILLiad-style CSV bytes; all or nothing."""
    result = ImportResult(kind="patrons")
    rows = _read_rows(data, ("UserName",), PATRON_COLUMNS, result)
    parsed: list[_PatronRow] = []
    seen: dict[str, int] = {}
    for row in rows:
        try:
            item = _parse_patron(row, region)
        except ValueError as exc:
            result.errors.append(RowError(row.line, str(exc)))
            continue
        key = item.username.casefold()
        if key in seen:
            result.errors.append(RowError(row.line, f"UserName {item.username!r} already on line {seen[key]}"))
            continue
        seen[key] = row.line
        parsed.append(item)
    if result.errors:
        result.errors.sort(key=lambda e: e.line)
        return result
    with db.write() as session:
        locations = {loc.name: loc for loc in session.scalars(select(Location))}
        sites = {p.code.casefold(): p for p in session.scalars(select(PickupLocation))}
        households = {h.code: h for h in session.scalars(select(Household))}
        existing = {p.username.casefold(): p for p in session.scalars(select(Patron))}
        for item in parsed:
            patron = existing.get(item.username.casefold())
            created = patron is None
            if patron is None:
                patron = Patron(username=item.username)
                session.add(patron)
            changed = _apply(patron, item.attrs)
            if item.site:
                site = sites.get(item.site.casefold())
                if site is None:
                    site = PickupLocation(code=item.site, name=item.site)
                    session.add(site)
                    sites[item.site.casefold()] = site
                if patron.pickup_location is not site:
                    patron.pickup_location = site
                    changed = True
            if item.household:
                household = households.get(item.household)
                if household is None:
                    household = Household(code=item.household, name=f"Household {item.household}")
                    session.add(household)
                    households[item.household] = household
                if patron.household is not household:
                    patron.household = household
                    changed = True
            changed |= _merge_contacts(session, patron, item.contacts, locations)
            if created:
                result.created += 1
            elif changed:
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def _apply(obj: object, attrs: dict[str, Any]) -> bool:
    changed = False
    for name, value in attrs.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _merge_contacts(
    session: Session,
    patron: Patron,
    contacts: list[tuple[ContactKind, str, Normalized]],
    locations: dict[str, Location],
) -> bool:
    """Add the file's contact points the patron lacks; the file's e-mail becomes the primary one.

    Nothing the patron already has is removed: staff may have added points the other system does not know.
    """
    changed = False
    for kind, location_name, value in contacts:
        same_kind = [c for c in patron.contact_points if c.kind == kind.value]
        match = next((c for c in same_kind if c.normalized == value.normalized), None)
        if match is None:
            match = ContactPoint(
                kind=kind.value,
                value=value.display,
                normalized=value.normalized,
                extension=value.extension,
                location=locations.get(location_name),
                position=len(patron.contact_points),
            )
            patron.contact_points.append(match)
            changed = True
        wants_primary = kind is ContactKind.EMAIL or not any(c.is_primary for c in same_kind)
        if wants_primary and not match.is_primary:
            for other in same_kind:
                if other.is_primary:
                    other.is_primary = False
            session.flush()  # the partial unique index allows one primary: clear the old one first
            match.is_primary = True
            changed = True
    return changed


# --------------------------------------------------------------------------------------------------- requests


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M:%S",
                     "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M")  # fmt: skip


def parse_date(text: str) -> date:
    """Parse ``YYYY-MM-DD`` or ILLiad's ``M/D/YYYY``."""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return parse_datetime(text).date()


def parse_datetime(text: str) -> datetime:
    """Parse an ISO or ILLiad timestamp; one without an offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        for fmt in (*_DATETIME_FORMATS, *_DATE_FORMATS):
            try:
                value = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class _RequestRow:
    line: int
    number: int
    username: str
    status: Status
    attrs: dict[str, Any]


def _parse_request(row: _Row) -> _RequestRow:
    v = row.values.get
    raw_number = v("TransactionNumber", "")
    if not raw_number:
        raise ValueError("TransactionNumber is required")
    try:
        number = int(raw_number)
    except ValueError:
        raise ValueError(f"TransactionNumber {raw_number!r} is not a whole number") from None
    if not 0 < number < 2**31:
        raise ValueError(f"TransactionNumber {number} is out of range")
    username = v("UserName", "")
    if not username:
        raise ValueError("UserName is required")
    request_type = parse_request_type(v("RequestType") or "Loan")
    status = parse_status(v("TransactionStatus") or Status.AWAITING_REQUEST_PROCESSING.value)
    attrs: dict[str, Any] = {
        "request_type": request_type.value,
        "loan_title": v("LoanTitle", ""),
        "loan_author": v("LoanAuthor", ""),
        "photo_journal_title": v("PhotoJournalTitle", ""),
        "photo_article_title": v("PhotoArticleTitle", ""),
        "call_number": v("CallNumber", ""),
        "lending_library": v("LendingLibrary", ""),
    }
    if v("TransactionDate"):
        try:
            attrs["transaction_date"] = parse_datetime(v("TransactionDate", ""))
        except ValueError as exc:
            raise ValueError(f"TransactionDate: {exc}") from None
    due = v("DueDate", "")
    try:
        attrs["due_date"] = parse_date(due) if due else None
    except ValueError as exc:
        raise ValueError(f"DueDate: {exc}") from None
    return _RequestRow(row.line, number, username, status, attrs)


def import_requests(db: Database, data: bytes, *, changed_by: str = "Import") -> ImportResult:
    """Import (upsert) requests; a status that differs from the stored one is recorded in Tracking."""
    result = ImportResult(kind="requests")
    rows = _read_rows(data, ("TransactionNumber", "UserName"), REQUEST_COLUMNS, result)
    parsed: list[_RequestRow] = []
    seen: dict[int, int] = {}
    for row in rows:
        try:
            item = _parse_request(row)
        except ValueError as exc:
            result.errors.append(RowError(row.line, str(exc)))
            continue
        if item.number in seen:
            result.errors.append(
                RowError(row.line, f"TransactionNumber {item.number} already on line {seen[item.number]}")
            )
            continue
        seen[item.number] = row.line
        parsed.append(item)
    with db.write() as session:
        wanted = sorted({p.username.lower() for p in parsed})
        patrons: dict[str, Patron] = {}
        for names in _chunks(wanted, 500):
            for patron in session.scalars(select(Patron).where(func.lower(Patron.username).in_(names))):
                patrons[patron.username.lower()] = patron
        for item in parsed:
            if item.username.lower() not in patrons:
                result.errors.append(RowError(item.line, f"UserName {item.username!r} is not a known patron"))
        if result.errors:
            result.errors.sort(key=lambda e: e.line)
            session.rollback()
            return result
        numbers = [p.number for p in parsed]
        existing: dict[int, Request] = {}
        for chunk in _chunks(numbers, 500):
            for request in session.scalars(select(Request).where(Request.transaction_number.in_(chunk))):
                existing[request.transaction_number] = request
        for item in parsed:
            patron = patrons[item.username.lower()]
            found = existing.get(item.number)
            if found is None:
                request = Request(transaction_number=item.number, patron=patron, status="")
                _apply(request, item.attrs)
                session.add(request)
                change_status(session, request, item.status, changed_by, check=False, note="imported")
                result.created += 1
                continue
            request = found
            changed = _apply(request, item.attrs)
            if request.patron_id != patron.id:
                request.patron = patron
                changed = True
            if request.status != item.status.value:
                change_status(session, request, item.status, changed_by, check=False, note="imported")
                changed = True
            if changed:
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def _chunks(values: list[_T], size: int) -> Iterator[list[_T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


Importer = Callable[[Database, bytes], ImportResult]


def import_file(db: Database, path: Path, importer: Importer) -> ImportResult:
    """Read ``path`` and import it with ``importer``; a missing or unreadable file raises :class:`CsvFileError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return importer(db, data)
