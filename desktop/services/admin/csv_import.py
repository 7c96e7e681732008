"""CSV import of patrons and requests with ILLiad's field names, changing only what the file says.

The rules, because an import runs against a library's real records:

* **All or nothing.** Every row is checked first; every bad row is reported with its line and column, and
  only a clean file is written, in one transaction.
* **Only what the file says.** A column the file does not have never touches that field. An *empty* cell
  means "no value given": the stored value is kept (a new record gets the default). Contact columns
  (EMailAddress, Phone, MobilePhone, Fax) only ever *add* a contact point, never remove one, because staff may
  know numbers the other system does not. See :data:`EMPTY_CELL_RULES`.
* **Statuses move forward.** A request's status from a file only moves it forward along the pickup path
  (:data:`PATH_RANK`); a move back, or out of a finished or cancelled request, is a bad row unless the
  operator says otherwise (:class:`StatusBack`).
* **Idempotent.** Importing the same file again changes nothing: no Tracking line, no notice.
* **See before writing.** ``dry_run=True`` plans everything and writes nothing; the result lists each change.
* **A short write lock.** Reading the file, checking it and planning every change happen *before* the write
  transaction; the write itself is a few bulk statements, so other workstations wait seconds, not minutes.
  If the database changed between planning and writing, the plan is made again.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Integer, Table, bindparam, cast, delete, func, select, text, update
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    Household,
    Location,
    Patron,
    PatronChannelPreference,
    PickupLocation,
    Request,
)
from desktop.db.types import UTCDateTime
from desktop.domain.channels import NoticeEvent, Preference, check_preference, format_preference, parse_preference
from desktop.domain.clock import utcnow
from desktop.domain.contacts import ContactError, ContactKind, Normalized, normalize_email, normalize_phone
from desktop.domain.methods import (
    NotificationMethod,
    parse_delivery_method,
    parse_notification_method,
    parse_request_type,
)
from desktop.domain.statuses import CANCELLED_STATUSES, NOTIFIED_STATUSES, Status, parse_status
from desktop.services.patrons.channel_preferences import effective_default
from desktop.services.requests.status import change_status

PATRON_COLUMNS = (
    "UserName", "FirstName", "LastName", "EMailAddress", "Phone", "MobilePhone", "Fax", "NotificationMethod",
    "DeliveryMethod", "Address", "Address2", "City", "State", "Zip", "Department", "Status", "Site", "HouseholdID",
    "Country", "SMSCarrier", "NotificationPreferences",
)  # fmt: skip
REQUEST_COLUMNS = (
    "TransactionNumber", "UserName", "RequestType", "LoanTitle", "LoanAuthor", "PhotoJournalTitle",
    "PhotoArticleTitle", "TransactionStatus", "TransactionDate", "DueDate", "CallNumber", "LendingLibrary",
)  # fmt: skip
#: Patron columns that carry data (a file with only UserName has nothing to import: a requests file, usually).
PATRON_DATA_COLUMNS = PATRON_COLUMNS[1:]
#: Longest cell read at all; longer cells are refused before any parsing (no parser sees a megabyte of spaces).
MAX_FIELD = 2000
#: Longest phone cell handed to the phone parser (a number with its extension fits easily).
MAX_PHONE_CELL = 60
#: Rows written per bulk statement.
CHUNK = 1000
#: Changed rows described one by one in a preview; the rest are counted.
PREVIEW_ROWS = 20

#: What an empty cell in a column the file has does, per column (the User Guide repeats this table).
EMPTY_CELL_RULES: dict[str, str] = {
    "UserName": "refused: every row needs one",
    "TransactionNumber": "refused: every row needs one",
    "EMailAddress, Phone, MobilePhone, Fax": "nothing is added; stored contact points are never removed",
    "NotificationMethod": "kept (a new patron: E-Mail if the row has an e-mail, else Phone if a phone, else Mail)",
    "DeliveryMethod": "kept (a new patron: Hold for Pickup)",
    "RequestType": "kept (a new request: Loan)",
    "TransactionStatus": "kept (a new request: Awaiting Request Processing)",
    "TransactionDate": "kept (a new request: the time of the import)",
    "Site, HouseholdID": "kept (a new patron: none)",
    "every other column": "kept (a new record: empty)",
}

_PATRON_ATTRS: dict[str, str] = {
    "FirstName": "first_name", "LastName": "last_name", "NotificationMethod": "notification_method",
    "DeliveryMethod": "delivery_method", "Address": "address1", "Address2": "address2", "City": "city",
    "State": "state", "Zip": "zip", "Department": "department", "Status": "status", "Country": "country",
    "SMSCarrier": "sms_carrier",
}  # fmt: skip
#: ``NotificationPreferences``: events separated by ``;``, each ``event=channels`` with the channels in order
#: (``>``, or ``,``), e.g. ``Item ready for pickup=SMS>E-Mail; Pickup reminder=method``; ``method`` means "follow
#: the notification method" (no row). An event may be named by its name or a short word (:data:`EVENT_WORDS`).
PREFERENCES_COLUMN = "NotificationPreferences"
FOLLOW_METHOD = "method"
EVENT_WORDS: dict[str, NoticeEvent] = {
    **{event.value.casefold(): event for event in NoticeEvent},
    "ready": NoticeEvent.READY_FOR_PICKUP,
    "reminder": NoticeEvent.PICKUP_REMINDER,
    "reset": NoticeEvent.PASSWORD_RESET,
    "cancellation": NoticeEvent.CANCELLATION,
}
#: ``updated_by`` of the preference rows an import writes.
IMPORTED_PREFERENCES_BY = "CSV import"
_REQUEST_TEXT_ATTRS: dict[str, str] = {
    "LoanTitle": "loan_title", "LoanAuthor": "loan_author", "PhotoJournalTitle": "photo_journal_title",
    "PhotoArticleTitle": "photo_article_title", "CallNumber": "call_number", "LendingLibrary": "lending_library",
}  # fmt: skip
_REQUEST_ATTRS: dict[str, str] = {
    "RequestType": "request_type", **_REQUEST_TEXT_ATTRS, "TransactionDate": "transaction_date", "DueDate": "due_date",
}  # fmt: skip
_CONTACT_COLUMNS: tuple[tuple[str, ContactKind, str], ...] = (
    ("EMailAddress", ContactKind.EMAIL, "Home"),
    ("Phone", ContactKind.PHONE, "Home"),
    ("MobilePhone", ContactKind.PHONE, "Cell"),
    ("Fax", ContactKind.FAX, "Work"),
)
_T = TypeVar("_T")

#: Position of each status along the pickup path; a file may only move a request to a higher rank.
PATH_RANK: dict[Status, int] = {
    Status.AWAITING_REQUEST_PROCESSING: 0,
    Status.REQUEST_SENT: 1,
    Status.IN_TRANSIT_TO_PICKUP: 2,
    Status.AWAITING_CUSTOMER_CONTACT: 3,
    **dict.fromkeys(NOTIFIED_STATUSES, 4),
    Status.AWAITING_RETURN_TO_LENDER: 5,  # the hold ended unclaimed; a patron who comes late may still check out
    Status.CHECKED_OUT: 6,
    Status.REQUEST_FINISHED: 7,
}
_CLOSED = frozenset({Status.REQUEST_FINISHED, *CANCELLED_STATUSES})

_NEUTRALISED = re.compile(r"'+[=+\-@\t\r]")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\t\x1c\x1d\x1e\x85\u2028\u2029]+")
#: Unicode's control characters (category Cc): NUL breaks PostgreSQL, the others break screens and printouts.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ASCII_DIGITS = re.compile(r"[0-9]{1,10}")
_MIN_YEAR, _MAX_YEAR = 1900, 2999


class CsvFileError(ValueError):
    """The file could not be read at all (encoding, header, wrong kind of file); raised before any row is checked."""


class StatusBack(StrEnum):
    """What to do with a row whose status is behind the stored one (or re-opens a finished/cancelled request)."""

    #: A bad row: nothing is imported (the default).
    REFUSE = "refuse"
    #: Keep the stored status and import the rest of the row (``--keep-newer-status``).
    KEEP = "keep"
    #: Move the status back as the file says, with a Tracking line (``--allow-status-back``).
    ALLOW = "allow"


@dataclass(frozen=True)
class RowError:
    """One bad row (or a note about one): the physical line where it starts and what was found."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class FieldChange:
    """One field an import would change, as staff read it: the CSV column, the stored value and the new one."""

    column: str
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.column}: {self.old!r} → {self.new!r}"


@dataclass(frozen=True)
class RowChange:
    """A record an import creates or changes."""

    line: int
    key: str
    created: bool
    fields: tuple[FieldChange, ...]

    def __str__(self) -> str:
        if self.created:
            given = ", ".join(f"{f.column} {f.new!r}" for f in self.fields)
            return f"line {self.line}: {self.key}: new" + (f" ({given})" if given else "")
        return f"line {self.line}: {self.key}: " + "; ".join(str(f) for f in self.fields)


@dataclass
class ImportResult:
    """What an import found and did (or, in a dry run, would do). Nothing was written when ``errors`` is not empty.

    Attributes:
        changes: every record created or changed, in file order, with its changed fields.
        notes: things changed on the way in that staff should know (line breaks folded, statuses kept).
        lock_seconds: how long the write transaction (SQLite's write lock) was held.
    """

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    changes: list[RowChange] = field(default_factory=list)
    notes: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    lock_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the file was (or, in a dry run, can be) imported."""
        return not self.errors

    def summary(self) -> str:
        """One line for the command line and the GUI."""
        if self.errors:
            return f"{self.kind}: {len(self.errors)} bad row(s) of {self.rows}; nothing was imported"
        if self.dry_run:
            return (
                f"{self.kind} (dry run, nothing written): {self.rows} row(s): would create {self.created}, "
                f"change {self.updated}, leave {self.unchanged} alone"
            )
        return (
            f"{self.kind}: {self.rows} row(s): {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )

    def preview(self, limit: int = PREVIEW_ROWS) -> list[str]:
        """The first ``limit`` created or changed records, field by field, then counts for the rest and the notes."""
        lines = [str(change) for change in self.changes[:limit]]
        rest = self.changes[limit:]
        if rest:
            created = sum(1 for c in rest if c.created)
            lines.append(f"… and {created} more created, {len(rest) - created} more changed")
        return lines + self.note_lines(limit)

    def note_lines(self, limit: int = PREVIEW_ROWS) -> list[str]:
        """The first ``limit`` notes (line breaks folded, statuses kept), then how many more there are."""
        lines = [f"note: {note}" for note in self.notes[:limit]]
        if len(self.notes) > limit:
            lines.append(f"… and {len(self.notes) - limit} more notes")
        return lines


@dataclass
class _Row:
    line: int
    values: dict[str, str]  # only the non-empty cells


def unneutralise(cell: str) -> str:
    """Undo the export's formula guard: ``'=SUM(A1)`` read back is ``=SUM(A1)`` (one apostrophe dropped)."""
    return cell[1:] if _NEUTRALISED.match(cell) else cell


def _clean_cell(column: str, raw: str, line: int, notes: list[RowError]) -> str:
    """One cell as stored: guard undone, line breaks folded to spaces, trimmed; control characters refused."""
    value = unneutralise(raw)
    folded = _LINE_BREAKS.sub(" ", value)
    if folded != value and folded.strip() and any(ch in value for ch in "\r\n\v\f\x85\u2028\u2029"):
        notes.append(RowError(line, f"{column}: line breaks folded into spaces"))
    value = folded.strip()
    control = _CONTROL.search(value)
    if control is not None:
        raise ValueError(
            f"{column} contains the control character U+{ord(control.group()):04X} at position {control.start() + 1}"
        )
    return value


def _read_rows(
    data: bytes, required: tuple[str, ...], known: tuple[str, ...], result: ImportResult
) -> tuple[list[str], list[_Row]]:
    try:
        text_ = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvFileError(f"the file is not UTF-8 (first bad byte on line {line}); save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text_, newline=""), strict=True)
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
        values: dict[str, str] = {}
        try:
            for name, cell in zip(names, record, strict=True):
                if not name or name not in known:
                    continue
                if len(cell) > MAX_FIELD:
                    raise ValueError(f"{name} is {len(cell):,} characters long; at most {MAX_FIELD} are read")
                value = _clean_cell(name, cell, line, result.notes)
                if value:
                    values[name] = value
        except ValueError as exc:
            result.errors.append(RowError(line, str(exc)))
            continue
        rows.append(_Row(line, values))
    return names, rows


def _limit(model: type, attr: str) -> int | None:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return getattr(table.c[attr].type, "length", None)


def _check_length(column: str, value: str, limit: int | None) -> None:
    if limit is not None and len(value) > limit:
        raise ValueError(f"{column} is {len(value)} characters long; the database keeps at most {limit}")


def _chunks(values: Sequence[_T], size: int = CHUNK) -> Iterator[Sequence[_T]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _lock_tables(session: Session, tables: Sequence[str]) -> None:
    """On PostgreSQL, keep other writers off these tables until commit (SQLite's BEGIN IMMEDIATE already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE"))


def _finish(result: ImportResult) -> ImportResult:
    result.errors.sort(key=lambda e: e.line)
    if result.errors:
        result.created = result.updated = result.unchanged = 0
        result.changes.clear()
    return result


# ---------------------------------------------------------------------------------------------------- patrons


@dataclass
class _PatronRow:
    line: int
    username: str
    attrs: dict[str, str]  # attribute -> value, only for non-empty cells
    contacts: list[tuple[str, ContactKind, str, Normalized]]  # column, kind, location name, value
    site: str
    household: str
    #: From NotificationPreferences: event → channels, or None for "follow the notification method".
    preferences: dict[NoticeEvent, Preference | None] = field(default_factory=dict)


def parse_preferences_cell(text_: str) -> dict[NoticeEvent, Preference | None]:
    """A ``NotificationPreferences`` cell (see :data:`PREFERENCES_COLUMN`); None for an event that follows the method.

    Raises:
        ValueError: an unknown event or channel, an event named twice, or channels that cannot be saved.
    """
    found: dict[NoticeEvent, Preference | None] = {}
    for part in (p.strip() for p in text_.split(";")):
        if not part:
            continue
        name, sep, channels = part.partition("=")
        event = EVENT_WORDS.get(" ".join(name.split()).casefold())
        if not sep or event is None:
            raise ValueError(
                f"{PREFERENCES_COLUMN}: {part!r} is not event=channels (events: "
                + ", ".join(e.value for e in NoticeEvent)
                + ")"
            )
        if event in found:
            raise ValueError(f"{PREFERENCES_COLUMN}: {event.value} is named twice")
        if channels.strip().casefold() == FOLLOW_METHOD:
            found[event] = None
            continue
        try:
            chosen = parse_preference(channels)
        except ValueError as exc:
            raise ValueError(f"{PREFERENCES_COLUMN}: {event.value}: {exc}") from None
        problems = check_preference(chosen, event)
        if problems:
            raise ValueError(f"{PREFERENCES_COLUMN}: {' '.join(problems)}")
        found[event] = chosen
    return found


def format_preferences_cell(stored: dict[str, str]) -> str:
    """Stored rows (event name → ``SMS>E-Mail``) as a ``NotificationPreferences`` cell, in the events' order."""
    return "; ".join(f"{e.value}={stored[e.value]}" for e in NoticeEvent if e.value in stored)


def _parse_patron(row: _Row, region: str) -> _PatronRow:
    v = row.values
    username = v.get("UserName", "")
    if not username:
        raise ValueError("UserName is empty: every row needs one")
    _check_length("UserName", username, _limit(Patron, "username"))
    attrs: dict[str, str] = {}
    for column, attr in _PATRON_ATTRS.items():
        if column in v:
            attrs[attr] = v[column]
    if "notification_method" in attrs:
        attrs["notification_method"] = parse_notification_method(attrs["notification_method"]).value
    if "delivery_method" in attrs:
        attrs["delivery_method"] = parse_delivery_method(attrs["delivery_method"]).value
    for column, attr in _PATRON_ATTRS.items():
        if attr in attrs:
            _check_length(column, attrs[attr], _limit(Patron, attr))
    contacts: list[tuple[str, ContactKind, str, Normalized]] = []
    for column, kind, location in _CONTACT_COLUMNS:
        raw = v.get(column, "")
        if not raw:
            continue
        if kind is not ContactKind.EMAIL and len(raw) > MAX_PHONE_CELL:
            raise ValueError(f"{column} is {len(raw)} characters long; a phone number is at most {MAX_PHONE_CELL}")
        try:
            value = normalize_email(raw) if kind is ContactKind.EMAIL else normalize_phone(raw, region)
        except ContactError as exc:
            raise ValueError(f"{column} {raw!r}: {exc}") from None
        _check_length(column, value.display, _limit(ContactPoint, "value"))
        contacts.append((column, kind, location, value))
    site, household = v.get("Site", ""), v.get("HouseholdID", "")
    _check_length("Site", site, _limit(PickupLocation, "code"))
    _check_length("HouseholdID", household, _limit(Household, "code"))
    preferences = parse_preferences_cell(v[PREFERENCES_COLUMN]) if PREFERENCES_COLUMN in v else {}
    return _PatronRow(row.line, username, attrs, contacts, site, household, preferences)


@dataclass
class _Contact:
    id: int | None
    kind: str
    value: str
    normalized: str
    is_primary: bool


@dataclass
class _PatronSnapshot:
    id: int
    attrs: dict[str, str]
    site: str
    household: str
    contacts: list[_Contact]
    #: Stored preference rows: event name → channels as stored.
    preferences: dict[str, str] = field(default_factory=dict)


@dataclass
class _NewContact:
    patron_key: str  # casefolded user name (new patrons have no id yet)
    patron_id: int | None
    kind: str
    location: str
    value: Normalized
    is_primary: bool
    position: int


@dataclass
class _PatronPlan:
    creates: list[dict[str, Any]] = field(default_factory=list)  # patron columns + "_site"/"_household" codes
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # id, changed columns
    new_contacts: list[_NewContact] = field(default_factory=list)
    unset_primary: list[int] = field(default_factory=list)
    set_primary: list[int] = field(default_factory=list)
    new_sites: dict[str, str] = field(default_factory=dict)  # casefold -> code
    new_households: set[str] = field(default_factory=set)
    key_to_id: dict[str, int] = field(default_factory=dict)
    #: Preference rows to (re)write: (patron id or None for a new patron, patron key, event, channels).
    preference_rows: list[tuple[int | None, str, str, str]] = field(default_factory=list)
    #: Preference rows to remove (the event follows the method again): (patron id, event).
    preference_deletes: list[tuple[int, str]] = field(default_factory=list)


_PATRON_DEFAULTS: dict[str, str] = {attr: "" for attr in _PATRON_ATTRS.values()} | {
    "delivery_method": "Hold for Pickup"
}


def _patron_fingerprint(session: Session) -> tuple[Any, ...]:
    """A cheap summary that changes when any patron, contact point, site or household is written."""
    patrons = session.execute(
        select(func.count(), func.max(Patron.id), func.coalesce(func.sum(Patron.version_id), 0))
    ).one()
    contacts = session.execute(
        select(func.count(), func.max(ContactPoint.id), func.sum(cast(ContactPoint.is_primary, Integer)))
    ).one()
    sites = session.execute(select(func.count(), func.max(PickupLocation.id))).one()
    households = session.execute(select(func.count(), func.max(Household.id))).one()
    return (*patrons, *contacts, *sites, *households)


def _load_patrons(session: Session, keys: set[str], with_preferences: bool = False) -> dict[str, _PatronSnapshot]:
    """Snapshots of the stored patrons whose user names (case-folded) are in ``keys``."""
    ids: dict[int, str] = {}
    for patron_id, username in session.execute(select(Patron.id, Patron.username)):
        if username.casefold() in keys:
            ids[patron_id] = username.casefold()
    attrs = list(_PATRON_ATTRS.values())
    snapshots: dict[str, _PatronSnapshot] = {}
    id_list = sorted(ids)
    for chunk in _chunks(id_list, 500):
        query = (
            select(Patron.id, PickupLocation.code, Household.code, *(getattr(Patron, a) for a in attrs))
            .outerjoin(PickupLocation, Patron.pickup_location_id == PickupLocation.id)
            .outerjoin(Household, Patron.household_id == Household.id)
            .where(Patron.id.in_(chunk))
        )
        for patron_id, site, household, *values in session.execute(query):
            snapshots[ids[patron_id]] = _PatronSnapshot(
                patron_id, dict(zip(attrs, (v or "" for v in values), strict=True)), site or "", household or "", []
            )
        by_id = {s.id: s for s in snapshots.values()}
        contacts = select(
            ContactPoint.id,
            ContactPoint.patron_id,
            ContactPoint.kind,
            ContactPoint.value,
            ContactPoint.normalized,
            ContactPoint.is_primary,
        ).where(ContactPoint.patron_id.in_(chunk))
        for cid, pid, kind, value, normalized, primary in session.execute(contacts.order_by(ContactPoint.position)):
            by_id[pid].contacts.append(_Contact(cid, kind, value, normalized, bool(primary)))
        if with_preferences:
            prefs = PatronChannelPreference
            stored = select(prefs.patron_id, prefs.event, prefs.channels).where(prefs.patron_id.in_(chunk))
            for pid, event, channels in session.execute(stored):
                by_id[pid].preferences[event] = channels
    return snapshots


def _plan_patrons(session: Session, parsed: list[_PatronRow], create_sites: bool, result: ImportResult) -> _PatronPlan:
    plan = _PatronPlan()
    snapshots = _load_patrons(session, {p.username.casefold() for p in parsed}, any(p.preferences for p in parsed))
    sites = {code.casefold(): code for code in session.scalars(select(PickupLocation.code))}
    households = set(session.scalars(select(Household.code)))
    for item in parsed:
        key = item.username.casefold()
        snapshot = snapshots.get(key)
        change: RowChange | None
        try:
            if snapshot is None:
                change = _plan_new_patron(item, plan, sites, households, create_sites)
            else:
                change = _plan_patron_update(item, snapshot, plan, sites, households, create_sites)
        except ValueError as exc:
            result.errors.append(RowError(item.line, str(exc)))
            continue
        if change is None:
            result.unchanged += 1
        else:
            result.changes.append(change)
            if change.created:
                result.created += 1
            else:
                result.updated += 1
    return plan


def _site(code: str, sites: dict[str, str], plan: _PatronPlan, create_sites: bool) -> str:
    found = sites.get(code.casefold()) or plan.new_sites.get(code.casefold())
    if found is not None:
        return found
    if not create_sites:
        known = ", ".join(sorted(sites.values())) or "none yet"
        raise ValueError(
            f"Site {code!r} is not a pickup location (known: {known}); add it under Locations, "
            "or import with --create-sites to create it"
        )
    plan.new_sites[code.casefold()] = code
    return code


def _plan_new_patron(
    item: _PatronRow, plan: _PatronPlan, sites: dict[str, str], households: set[str], create_sites: bool
) -> RowChange:
    attrs = _PATRON_DEFAULTS | item.attrs
    emails = [c for c in item.contacts if c[1] is ContactKind.EMAIL]
    if "notification_method" not in item.attrs:  # nothing given: the channel the patron can actually be reached on
        has_phone = any(c[1] is ContactKind.PHONE for c in item.contacts)
        method = (
            NotificationMethod.EMAIL if emails else NotificationMethod.PHONE if has_phone else NotificationMethod.MAIL
        )
        attrs["notification_method"] = method.value
    elif attrs["notification_method"] == NotificationMethod.EMAIL.value and not emails:
        raise ValueError("NotificationMethod is E-Mail but EMailAddress is empty")
    site = _site(item.site, sites, plan, create_sites) if item.site else ""
    if item.household and item.household not in households:
        plan.new_households.add(item.household)
    key = item.username.casefold()
    plan.creates.append({"username": item.username, **attrs, "_site": site, "_household": item.household, "_key": key})
    seen: set[tuple[str, str]] = set()
    kinds_with_primary: set[str] = set()
    for _column, kind, location, value in item.contacts:
        if (kind.value, value.normalized) in seen:
            continue
        seen.add((kind.value, value.normalized))
        primary = kind.value not in kinds_with_primary
        kinds_with_primary.add(kind.value)
        plan.new_contacts.append(_NewContact(key, None, kind.value, location, value, primary, len(seen) - 1))
    given = [FieldChange(c, "", attrs[a]) for c, a in _PATRON_ATTRS.items() if a in item.attrs]
    given += [FieldChange(column, "", value.display) for column, _k, _l, value in item.contacts]
    given += [FieldChange(c, "", v) for c, v in (("Site", site), ("HouseholdID", item.household)) if v]
    given += _plan_preferences(item, None, attrs["notification_method"], {}, plan)
    return RowChange(item.line, item.username, True, tuple(given))


def _plan_preferences(
    item: _PatronRow, patron_id: int | None, method: str, stored: dict[str, str], plan: _PatronPlan
) -> list[FieldChange]:
    """The preference rows the row's NotificationPreferences asks for (events it names only), as changes.

    A preference equal to the method (the patron's new one, when the row changes it) is stored as no row, like
    the Contact Card does, so the patron keeps following the method.
    """
    changes: list[FieldChange] = []
    key = item.username.casefold()
    for event, chosen in item.preferences.items():
        default = effective_default(method, event)
        want = None if chosen is None or chosen == default else format_preference(chosen)
        have = stored.get(event.value)
        if want == have:
            continue
        if want is None:
            assert patron_id is not None and have is not None  # a new patron has nothing stored
            plan.preference_deletes.append((patron_id, event.value))
        else:
            plan.preference_rows.append((patron_id, key, event.value, want))
        shown = "(the notification method)"
        changes.append(FieldChange(f"{PREFERENCES_COLUMN}: {event.value}", have or shown, want or shown))
    return changes


def _plan_patron_update(
    item: _PatronRow,
    snapshot: _PatronSnapshot,
    plan: _PatronPlan,
    sites: dict[str, str],
    households: set[str],
    create_sites: bool,
) -> RowChange | None:
    changes: list[FieldChange] = []
    columns: dict[str, Any] = {}
    for column, attr in _PATRON_ATTRS.items():
        if attr in item.attrs and item.attrs[attr] != snapshot.attrs[attr]:
            changes.append(FieldChange(column, snapshot.attrs[attr], item.attrs[attr]))
            columns[attr] = item.attrs[attr]
    has_email = any(c.kind == ContactKind.EMAIL.value for c in snapshot.contacts) or any(
        c[1] is ContactKind.EMAIL for c in item.contacts
    )
    if columns.get("notification_method") == NotificationMethod.EMAIL.value and not has_email:
        raise ValueError("NotificationMethod is E-Mail but EMailAddress is empty and the patron has no e-mail address")
    if item.site and item.site.casefold() != snapshot.site.casefold():
        site = _site(item.site, sites, plan, create_sites)
        changes.append(FieldChange("Site", snapshot.site, site))
        columns["_site"] = site
    if item.household and item.household != snapshot.household:
        if item.household not in households:
            plan.new_households.add(item.household)
        changes.append(FieldChange("HouseholdID", snapshot.household, item.household))
        columns["_household"] = item.household
    contacts = snapshot.contacts
    key = item.username.casefold()
    for column, kind, location, value in item.contacts:
        same_kind = [c for c in contacts if c.kind == kind.value]
        match = next((c for c in same_kind if c.normalized == value.normalized), None)
        wants_primary = kind is ContactKind.EMAIL or not any(c.is_primary for c in same_kind)
        old_primary = next((c for c in same_kind if c.is_primary), None)
        if match is None:
            match = _Contact(None, kind.value, value.display, value.normalized, False)
            contacts.append(match)
            plan.new_contacts.append(
                _NewContact(key, snapshot.id, kind.value, location, value, False, len(contacts) - 1)
            )
            changes.append(FieldChange(column, "", f"{value.display} (added)"))
        if wants_primary and not match.is_primary:
            if old_primary is not None:
                old_primary.is_primary = False
                if old_primary.id is not None:
                    plan.unset_primary.append(old_primary.id)
                else:
                    _new_contact(plan, key, old_primary).is_primary = False
            match.is_primary = True
            if match.id is not None:
                plan.set_primary.append(match.id)
            else:
                _new_contact(plan, key, match).is_primary = True
            old = old_primary.value if old_primary else ""
            changes.append(FieldChange(f"{column} (primary)", old, match.value))
    method = str(columns.get("notification_method", snapshot.attrs["notification_method"]))
    changes += _plan_preferences(item, snapshot.id, method, snapshot.preferences, plan)
    if not changes:
        return None
    # Every write to a patron or to its contact points bumps version_id: a Contact Card opened earlier must
    # then get a conflict instead of saving over (and deleting) what the import added.
    plan.updates.append((snapshot.id, columns))
    return RowChange(item.line, item.username, False, tuple(changes))


def _new_contact(plan: _PatronPlan, key: str, contact: _Contact) -> _NewContact:
    return next(
        n
        for n in reversed(plan.new_contacts)
        if n.patron_key == key and n.kind == contact.kind and n.value.normalized == contact.normalized
    )


def _executemany(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys) with the driver's own executemany.

    Kept for speed alone, as STYLE.md allows while a benchmark shows the gain: SQLAlchemy's executemany builds
    and converts every row's parameters in Python, which tripled the write lock of a 100,000-patron import
    (``bench/import_patrons.py``). Values go to the driver as they are, except timestamps, which are converted
    once per distinct value by the column's own type.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect
    names = list(rows[0])
    converters: dict[int, Any] = {}
    for index, name in enumerate(names):
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if isinstance(table.c[name].type, UTCDateTime) and processor is not None:
            converters[index] = processor
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    cache: dict[tuple[int, Any], Any] = {}
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = [row[name] for name in names]
        for index, convert in converters.items():
            key = (index, values[index])
            if key not in cache:
                cache[key] = convert(values[index])
            values[index] = cache[key]
        params.append(tuple(values))
    connection = session.connection()
    for chunk in _chunks(params, 10 * CHUNK):
        connection.exec_driver_sql(sql, list(chunk))


def _write_patrons(session: Session, plan: _PatronPlan) -> None:
    """The write phase: a handful of bulk statements, everything already decided."""
    now = utcnow()
    patrons: Table = Patron.__table__  # type: ignore[assignment]
    points: Table = ContactPoint.__table__  # type: ignore[assignment]
    for code in plan.new_sites.values():
        session.add(PickupLocation(code=code, name=code))
    for code in sorted(plan.new_households):
        session.add(Household(code=code, name=f"Household {code}"))
    session.flush()
    site_ids = {code.casefold(): i for i, code in session.execute(select(PickupLocation.id, PickupLocation.code))}
    household_ids = {code: i for i, code in session.execute(select(Household.id, Household.code))}
    location_ids = {name: i for i, name in session.execute(select(Location.id, Location.name))}

    def links(values: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in values.items() if not k.startswith("_")}
        if "_site" in values:
            out["pickup_location_id"] = site_ids[values["_site"].casefold()] if values["_site"] else None
        if "_household" in values:
            out["household_id"] = household_ids[values["_household"]] if values["_household"] else None
        return out

    stamps = {"created_at": now, "updated_at": now, "version_id": 1}
    _executemany(session, patrons, [links(c) | stamps for c in plan.creates])
    for chunk in _chunks([c["username"] for c in plan.creates], 500):
        query = select(patrons.c.id, patrons.c.username).where(patrons.c.username.in_(chunk))
        plan.key_to_id.update((username.casefold(), patron_id) for patron_id, username in session.execute(query))
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for patron_id, columns in plan.updates:
        values = links(columns)
        groups.setdefault(tuple(sorted(values)), []).append(
            {"b_id": patron_id, "b_now": now, **{f"b_{k}": v for k, v in values.items()}}
        )
    for names, params in groups.items():
        stmt = (
            update(patrons)
            .where(patrons.c.id == bindparam("b_id"))
            .values({n: bindparam(f"b_{n}") for n in names})
            .values(version_id=patrons.c.version_id + 1, updated_at=bindparam("b_now"))
        )
        for chunk in _chunks(params):
            session.execute(stmt, list(chunk))
    for ids_chunk in _chunks(plan.unset_primary):
        session.execute(update(points).where(points.c.id.in_(ids_chunk)).values(is_primary=False))
    if plan.new_contacts:
        rows = [
            {
                "patron_id": n.patron_id if n.patron_id is not None else plan.key_to_id[n.patron_key],
                "kind": n.kind,
                "location_id": location_ids.get(n.location),
                "value": n.value.display,
                "normalized": n.value.normalized,
                "extension": n.value.extension,
                "is_primary": n.is_primary,
                "position": n.position,
                "created_at": now,
            }
            for n in plan.new_contacts
        ]
        _executemany(session, points, rows)
    for ids_chunk in _chunks(plan.set_primary):
        session.execute(update(points).where(points.c.id.in_(ids_chunk)).values(is_primary=True))
    _write_preferences(session, plan, now)


def _write_preferences(session: Session, plan: _PatronPlan, now: datetime) -> None:
    """Replace the planned preference rows (delete, then insert) and remove the ones that follow the method."""
    table: Table = PatronChannelPreference.__table__  # type: ignore[assignment]
    rows = [
        {"patron_id": pid if pid is not None else plan.key_to_id[key], "event": event, "channels": channels,
         "updated_by": IMPORTED_PREFERENCES_BY, "updated_at": now}
        for pid, key, event, channels in plan.preference_rows
    ]  # fmt: skip
    gone = [{"b_id": pid, "b_event": event} for pid, event in plan.preference_deletes]
    gone += [{"b_id": r["patron_id"], "b_event": r["event"]} for r in rows]
    for chunk in _chunks(gone):
        session.execute(
            delete(table).where(table.c.patron_id == bindparam("b_id"), table.c.event == bindparam("b_event")),
            list(chunk),
        )
    _executemany(session, table, rows)


def import_patrons(
    db: Database, data: bytes, *, region: str = "US", dry_run: bool = False, create_sites: bool = False
) -> ImportResult:
    """Import (upsert by UserName) patrons from ILLiad-style CSV bytes; all or nothing, only the file's columns.

    Args:
        dry_run: plan and report every change, write nothing.
        create_sites: a ``Site`` that is not a pickup location creates one (otherwise the row is bad).
    """
    result = ImportResult(kind="patrons", dry_run=dry_run)
    names, rows = _read_rows(data, ("UserName",), PATRON_COLUMNS, result)
    if not any(n in PATRON_DATA_COLUMNS for n in names):
        hint = " (it looks like a requests file: use import-requests)" if "TransactionNumber" in names else ""
        raise CsvFileError(
            "the file has none of the patron columns besides UserName; expected at least one of: "
            + ", ".join(PATRON_DATA_COLUMNS)
            + hint
        )
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

    def plan_in(session: Session, into: ImportResult) -> _PatronPlan:
        return _plan_patrons(session, parsed, create_sites, into)

    return _plan_and_write(
        db, result, plan_in, _write_patrons, _patron_fingerprint, ("patrons", "contact_points", "pickup_locations",
        "households", "patron_channel_preferences"),
    )  # fmt: skip


_P = TypeVar("_P")


def _plan_and_write(
    db: Database,
    result: ImportResult,
    plan_in: Callable[[Session, ImportResult], _P],
    write: Callable[[Session, _P], None],
    fingerprint: Callable[[Session], tuple[Any, ...]],
    tables: tuple[str, ...],
    attempts: int = 3,
) -> ImportResult:
    """Plan outside the write lock, then write under it if nothing changed meanwhile (else plan again)."""
    if result.errors:  # the file is refused: still check the good rows against the database to name them all
        with db.read() as session:
            plan_in(session, result)
        return _finish(result)
    base = (result.rows, list(result.notes))
    for attempt in range(attempts + 1):
        outcome = ImportResult(result.kind, base[0], notes=list(base[1]), dry_run=result.dry_run)
        outcome.unknown_columns = result.unknown_columns
        last = attempt == attempts
        if not last:
            with db.read() as session:
                plan = plan_in(session, outcome)
                before = fingerprint(session)
            if outcome.errors or outcome.dry_run or not outcome.changes:
                return _finish(outcome)
        started = time.perf_counter()
        with db.write() as session:
            _lock_tables(session, tables)
            if last:  # others kept writing: plan under the lock this time
                plan = plan_in(session, outcome)
                if outcome.errors:
                    session.rollback()
                    return _finish(outcome)
            elif fingerprint(session) != before:
                continue
            write(session, plan)
        outcome.lock_seconds = time.perf_counter() - started
        return _finish(outcome)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------------- requests


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d")
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M:%S",
                     "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M")  # fmt: skip


def parse_date(text_: str) -> date:
    """Parse ``YYYY-MM-DD`` or ILLiad's ``M/D/YYYY``; years outside 1900–2999 are refused."""
    for fmt in _DATE_FORMATS:
        try:
            value = datetime.strptime(text_, fmt).date()
        except ValueError:
            continue
        _check_year(text_, value.year)
        return value
    return parse_datetime(text_).date()


def parse_datetime(text_: str) -> datetime:
    """Parse an ISO or ILLiad timestamp; one without an offset is taken as UTC; years outside 1900–2999 refused."""
    try:
        value = datetime.fromisoformat(text_)
    except ValueError:
        for fmt in (*_DATETIME_FORMATS, *_DATE_FORMATS):
            try:
                value = datetime.strptime(text_, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{text_!r} is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)") from None
    _check_year(text_, value.year)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_year(text_: str, year: int) -> None:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"{text_!r}: the year must be between {_MIN_YEAR} and {_MAX_YEAR}")


@dataclass
class _RequestRow:
    line: int
    number: int
    username: str
    status: Status | None
    attrs: dict[str, Any]  # only the non-empty cells


def parse_transaction_number(raw: str) -> int:
    """A TransactionNumber: ASCII digits only (no signs, underscores or other scripts' digits), 1 to 2³¹−1."""
    if not _ASCII_DIGITS.fullmatch(raw):
        raise ValueError(f"TransactionNumber {raw!r} is not a whole number written with the digits 0-9")
    number = int(raw)
    if not 0 < number < 2**31:
        raise ValueError(f"TransactionNumber {number} is out of range (1 to {2**31 - 1})")
    return number


def _parse_request(row: _Row) -> _RequestRow:
    v = row.values
    raw_number = v.get("TransactionNumber", "")
    if not raw_number:
        raise ValueError("TransactionNumber is empty: every row needs one")
    number = parse_transaction_number(raw_number)
    username = v.get("UserName", "")
    if not username:
        raise ValueError("UserName is empty: every row needs one")
    attrs: dict[str, Any] = {}
    if "RequestType" in v:
        attrs["request_type"] = parse_request_type(v["RequestType"]).value
    for column, attr in _REQUEST_TEXT_ATTRS.items():
        if column in v:
            _check_length(column, v[column], _limit(Request, attr))
            attrs[attr] = v[column]
    status = parse_status(v["TransactionStatus"]) if "TransactionStatus" in v else None
    if "TransactionDate" in v:
        try:
            attrs["transaction_date"] = parse_datetime(v["TransactionDate"])
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"TransactionDate: {exc}") from None
    if "DueDate" in v:
        try:
            attrs["due_date"] = parse_date(v["DueDate"])
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"DueDate: {exc}") from None
    return _RequestRow(row.line, number, username, status, attrs)


def status_move(current: Status, target: Status) -> str:
    """``same``, ``forward`` or ``back`` (which includes leaving a finished or cancelled request)."""
    if current is target:
        return "same"
    if current in _CLOSED:
        return "back"
    if target in CANCELLED_STATUSES:
        return "forward"
    return "forward" if PATH_RANK[target] > PATH_RANK[current] else "back"


@dataclass
class _RequestSnapshot:
    id: int
    version: int
    patron_id: int
    username: str
    status: Status
    attrs: dict[str, Any]


@dataclass
class _RequestOp:
    number: int
    patron_id: int
    request_id: int | None  # None: a new request
    version: int
    attrs: dict[str, Any]
    status: Status | None


@dataclass
class _RequestPlan:
    ops: list[_RequestOp] = field(default_factory=list)
    changed_by: str = "Import"


def _request_fingerprint(session: Session) -> tuple[Any, ...]:
    """Changes when any request is written or a patron is added or removed."""
    requests = session.execute(
        select(func.count(), func.max(Request.id), func.coalesce(func.sum(Request.version_id), 0))
    ).one()
    patrons = session.execute(select(func.count(), func.max(Patron.id))).one()
    return (*requests, *patrons)


def _same(new: Any, old: Any) -> bool:
    """Equal as a file can say it: timestamps to the second (exports and ILLiad files carry no fractions)."""
    if isinstance(new, datetime) and isinstance(old, datetime):
        return new.replace(microsecond=0) == old.astimezone(UTC).replace(microsecond=0)
    return bool(new == old)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _plan_requests(
    session: Session, parsed: list[_RequestRow], status_back: StatusBack, changed_by: str, result: ImportResult
) -> _RequestPlan:
    plan = _RequestPlan(changed_by=changed_by)
    wanted = {p.username.casefold() for p in parsed}
    patrons = {u.casefold(): (i, u) for i, u in session.execute(select(Patron.id, Patron.username))}
    patrons = {k: v for k, v in patrons.items() if k in wanted}
    names_by_id = {i: u for i, u in patrons.values()}
    attrs = list(_REQUEST_ATTRS.values())
    existing: dict[int, _RequestSnapshot] = {}
    for chunk in _chunks([p.number for p in parsed], 500):
        query = (
            select(Request.id, Request.transaction_number, Request.version_id, Request.patron_id, Patron.username,
                   Request.status, *(getattr(Request, a) for a in attrs))
            .join(Patron, Request.patron_id == Patron.id)
            .where(Request.transaction_number.in_(chunk))
        )  # fmt: skip
        for rid, number, version, pid, username, status, *values in session.execute(query):
            existing[number] = _RequestSnapshot(
                rid, version, pid, username, Status(status), dict(zip(attrs, values, strict=True))
            )
    for item in parsed:
        found = patrons.get(item.username.casefold())
        if found is None:
            result.errors.append(
                RowError(item.line, f"UserName {item.username!r} is not a known patron (import the patrons first)")
            )
            continue
        patron_id, username = found
        snapshot = existing.get(item.number)
        if snapshot is None:
            status = item.status or Status.AWAITING_REQUEST_PROCESSING
            plan.ops.append(_RequestOp(item.number, patron_id, None, 0, item.attrs, status))
            given = [FieldChange(c, "", _shown(item.attrs[a])) for c, a in _REQUEST_ATTRS.items() if a in item.attrs]
            given = [FieldChange("UserName", "", username), *given, FieldChange("TransactionStatus", "", status.value)]
            result.changes.append(RowChange(item.line, str(item.number), True, tuple(given)))
            result.created += 1
            continue
        changes: list[FieldChange] = []
        columns: dict[str, Any] = {}
        for column, attr in _REQUEST_ATTRS.items():
            if attr in item.attrs and not _same(item.attrs[attr], snapshot.attrs[attr]):
                changes.append(FieldChange(column, _shown(snapshot.attrs[attr]), _shown(item.attrs[attr])))
                columns[attr] = item.attrs[attr]
        if patron_id != snapshot.patron_id:
            changes.append(FieldChange("UserName", snapshot.username, names_by_id[patron_id]))
        target: Status | None = None
        if item.status is not None:
            move = status_move(snapshot.status, item.status)
            if move == "forward" or (move == "back" and status_back is StatusBack.ALLOW):
                target = item.status
            elif move == "back" and status_back is StatusBack.KEEP:
                result.notes.append(
                    RowError(item.line, f"TransactionStatus: kept {snapshot.status.value!r}, which is ahead of the "
                             f"file's {item.status.value!r}")
                )  # fmt: skip
            elif move == "back":
                what = "re-open" if snapshot.status in _CLOSED else "move back"
                result.errors.append(
                    RowError(
                        item.line,
                        f"TransactionStatus {item.status.value!r} would {what} request {item.number} "
                        f"(stored: {snapshot.status.value!r}); an import only moves a status forward — "
                        "--allow-status-back moves it anyway, --keep-newer-status keeps the stored one",
                    )
                )
                continue
            if target is not None:
                changes.append(FieldChange("TransactionStatus", snapshot.status.value, target.value))
        if not changes:
            result.unchanged += 1
            continue
        plan.ops.append(_RequestOp(item.number, patron_id, snapshot.id, snapshot.version, columns, target))
        result.changes.append(RowChange(item.line, str(item.number), False, tuple(changes)))
        result.updated += 1
    return plan


def _write_requests(session: Session, plan: _RequestPlan) -> None:
    patron_ids = sorted({op.patron_id for op in plan.ops})
    patrons: dict[int, Patron] = {}
    for chunk in _chunks(patron_ids, 500):
        patrons.update((p.id, p) for p in session.scalars(select(Patron).where(Patron.id.in_(chunk))))
    request_ids = [op.request_id for op in plan.ops if op.request_id is not None]
    requests: dict[int, Request] = {}
    for chunk in _chunks(request_ids, 500):
        requests.update((r.id, r) for r in session.scalars(select(Request).where(Request.id.in_(chunk))))
    for op in plan.ops:
        if op.request_id is None:
            request = Request(transaction_number=op.number, status="", **op.attrs)
            request.patron = patrons[op.patron_id]
            session.add(request)
        else:
            request = requests[op.request_id]
            for name, value in op.attrs.items():
                setattr(request, name, value)
            if request.patron_id != op.patron_id:
                request.patron = patrons[op.patron_id]
        if op.status is not None:
            # Imports record another system's status; check=False because the file may skip steps forward.
            change_status(session, request, op.status, plan.changed_by, check=False, note="imported")
    session.flush()


def import_requests(
    db: Database,
    data: bytes,
    *,
    changed_by: str = "Import",
    dry_run: bool = False,
    status_back: StatusBack = StatusBack.REFUSE,
) -> ImportResult:
    """Import (upsert by TransactionNumber) requests; a status change is recorded in Tracking.

    Args:
        dry_run: plan and report every change, write nothing.
        status_back: what to do with a row whose status is behind the stored one (see :class:`StatusBack`).
    """
    result = ImportResult(kind="requests", dry_run=dry_run)
    _names, rows = _read_rows(data, ("TransactionNumber", "UserName"), REQUEST_COLUMNS, result)
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

    def plan_in(session: Session, into: ImportResult) -> _RequestPlan:
        return _plan_requests(session, parsed, status_back, changed_by, into)

    return _plan_and_write(db, result, plan_in, _write_requests, _request_fingerprint, ("requests", "tracking"))
