"""Plain-data template contexts built from the database (never ORM objects: templates must not lazy-load).

A request's context is built from light rows read with two queries (:func:`load_request_rows`), not from ORM
objects: the System Manager builds thousands per batch, and loading ORM objects cost more than the SMTP
exchange. The builders accept anything shaped like the ORM classes (the ``…Like`` protocols), so a patron's
context is the same whether it comes from a row or from the Patron being edited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from desktop.db.models import ContactPoint, Patron, PickupLocation, Request, SystemSetting, Tracking
from desktop.domain.clock import as_utc, utcnow
from desktop.domain.contacts import format_phone, person_name
from desktop.domain.methods import request_title
from desktop.domain.statuses import NOTIFIED_STATUSES, Status
from desktop.services.admin.shelf_settings import shelf_hold_until
from desktop.services.database import DEFAULT_SYSTEM_SETTINGS
from desktop.services.notices.mail_addresses import mailbox

#: Control characters (C0, DEL, C1) and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` on one line: line breaks, tabs and other control characters folded to single spaces.

    A safety net for imported data (a title with a line break): a notice must not fail blaming the template for
    what an import let in. Text without control characters is returned unchanged (spaces kept as typed).
    """
    if not _CONTROL.search(text):
        return text
    return " ".join(_CONTROL.sub(" ", text).split())


class ContactLike(Protocol):
    """What a context needs of a contact point."""

    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def normalized(self) -> str: ...
    @property
    def extension(self) -> str: ...
    @property
    def is_primary(self) -> bool: ...


C = TypeVar("C", bound=ContactLike, covariant=True)


class HasContacts(Protocol[C]):
    """A patron's contact points, in their order on the Contact Info tab."""

    @property
    def contact_points(self) -> Sequence[C]: ...


class PatronLike(HasContacts[ContactLike], Protocol):
    """What a context needs of a patron."""

    @property
    def first_name(self) -> str: ...
    @property
    def last_name(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def department(self) -> str: ...
    @property
    def address1(self) -> str: ...
    @property
    def address2(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def zip(self) -> str: ...
    @property
    def country(self) -> str: ...


class RequestLike(Protocol):
    """What a context needs of a request."""

    @property
    def transaction_number(self) -> int: ...
    @property
    def request_type(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def loan_author(self) -> str: ...
    @property
    def photo_journal_title(self) -> str: ...
    @property
    def photo_article_title(self) -> str: ...
    @property
    def call_number(self) -> str: ...
    @property
    def lending_library(self) -> str: ...
    @property
    def due_date(self) -> date | None: ...
    @property
    def status(self) -> str: ...


class PickupLike(Protocol):
    """What a context needs of a pickup location."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def hold_days(self) -> int: ...


def system_settings(session: Session) -> dict[str, Any]:
    """Shared settings (library name, address, poll interval, …), defaults filled in."""
    values = dict(DEFAULT_SYSTEM_SETTINGS)
    for row in session.scalars(select(SystemSetting)):
        try:
            values[row.key] = json.loads(row.value)
        except ValueError:
            values[row.key] = row.value
    return values


def primary_contact(patron: HasContacts[C], kind: str) -> C | None:
    """The patron's primary contact point of ``kind`` (or the first one, if none is marked)."""
    points = [c for c in patron.contact_points if c.kind == kind]
    return next((c for c in points if c.is_primary), points[0] if points else None)


def address_lines(patron: PatronLike) -> list[str]:
    """Name and postal address as lines for a window envelope; only the name when there is no address."""
    city_line = " ".join(p for p in (f"{patron.city}," if patron.city else "", patron.state, patron.zip) if p)
    lines = [patron.full_name, patron.address1, patron.address2, city_line.rstrip(","), patron.country]
    return [line for line in lines if line.strip()]


def has_postal_address(patron: PatronLike) -> bool:
    """True when a printed notice can reach the patron (street and city or zip)."""
    return bool(patron.address1.strip() and (patron.city.strip() or patron.zip.strip()))


def patron_context(patron: PatronLike, region: str = "US") -> dict[str, Any]:
    """The ``patron`` part of a template context."""
    email = primary_contact(patron, "email")
    phone = primary_contact(patron, "phone")
    full_name = one_line(patron.full_name)
    address = email.value if email else ""
    return {
        "first_name": one_line(patron.first_name),
        "last_name": one_line(patron.last_name),
        "full_name": full_name,
        "username": one_line(patron.username),
        "email": address,
        "mailbox": mailbox(full_name, address),
        "phone": format_phone(phone.normalized, region, phone.extension) if phone else "",
        "address_lines": [one_line(line) for line in address_lines(patron)],
        "department": one_line(patron.department),
    }


def library_context(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``library`` part of a template context."""
    return {
        "name": str(settings.get("library_name", "")),
        "address_lines": [line for line in str(settings.get("library_address", "")).splitlines() if line.strip()],
        "email": str(settings.get("library_email", "")),
        "phone": str(settings.get("library_phone", "")),
    }


def request_context(request: RequestLike) -> dict[str, Any]:
    """The ``request`` part of a template context."""
    return {
        "transaction_number": request.transaction_number,
        "request_type": request.request_type,
        "title": one_line(request.title),
        "author": one_line(request.loan_author),
        "journal_title": one_line(request.photo_journal_title),
        "article_title": one_line(request.photo_article_title),
        "call_number": one_line(request.call_number),
        "lending_library": one_line(request.lending_library),
        "due_date": request.due_date.isoformat() if request.due_date else "",
        "status": request.status,
    }


def pickup_context(pickup: PickupLike | None, since: datetime | None = None) -> dict[str, Any]:
    """The ``pickup`` part: where, and until when the item is held (counted from ``since``, default now)."""
    start = (since or utcnow()).date()
    if pickup is None:
        return {"name": "the Interlibrary Loan desk", "address": "", "hold_days": 10,
                "hold_until": (start + timedelta(days=10)).isoformat()}  # fmt: skip
    return {
        "name": one_line(pickup.name),
        "address": one_line(pickup.address),
        "hold_days": pickup.hold_days,
        "hold_until": (start + timedelta(days=pickup.hold_days)).isoformat(),
    }


def empty_reset() -> dict[str, Any]:
    """The ``reset`` part for notices that are not password resets (so templates can test ``reset.link``)."""
    return {"link": "", "expires_at": "", "hours": 48}


@dataclass(frozen=True, slots=True)
class ContactRow:
    """A patron's e-mail address or phone number, as read for a context."""

    kind: str
    value: str
    normalized: str
    extension: str
    is_primary: bool


@dataclass(frozen=True, slots=True)
class PatronRow:
    """The patron of a request, as read for a context (:class:`PatronLike`)."""

    id: int
    first_name: str
    last_name: str
    username: str
    department: str
    address1: str
    address2: str
    city: str
    state: str
    zip: str
    country: str
    notification_method: str
    contact_points: tuple[ContactRow, ...]

    @property
    def full_name(self) -> str:
        """ "First Last", or the user name when both are blank."""
        return person_name(self.first_name, self.last_name, self.username)


@dataclass(frozen=True, slots=True)
class PickupRow:
    """A pickup location, as read for a context (:class:`PickupLike`)."""

    name: str
    address: str
    hold_days: int
    id: int | None = None  # the location's id: the hold shelf's policy is per location


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A request with its patron and pickup location, as read for a context (:class:`RequestLike`)."""

    id: int
    status: str
    status_changed_at: datetime
    transaction_number: int
    request_type: str
    loan_title: str
    loan_author: str
    photo_journal_title: str
    photo_article_title: str
    call_number: str
    lending_library: str
    due_date: date | None
    patron: PatronRow
    pickup: PickupRow | None  # the request's own pickup location, else the patron's
    #: When it went on the hold shelf, for a request that has left it (Awaiting Return to Lender): its hold was
    #: counted from then, not from the expiry (``None``: the request's own status_changed_at counts).
    shelved_at: datetime | None = None

    @property
    def title(self) -> str:
        """The loan title, or the article title for copies."""
        return request_title(self.request_type, self.loan_title, self.photo_article_title, self.photo_journal_title)


#: The columns of RequestRow and PatronRow, in their field order.
_REQUEST_COLUMNS = (Request.id, Request.status, Request.status_changed_at, Request.transaction_number,
                    Request.request_type, Request.loan_title, Request.loan_author, Request.photo_journal_title,
                    Request.photo_article_title, Request.call_number, Request.lending_library,
                    Request.due_date)  # fmt: skip
_PATRON_COLUMNS = (Patron.id, Patron.first_name, Patron.last_name, Patron.username, Patron.department,
                   Patron.address1, Patron.address2, Patron.city, Patron.state, Patron.zip, Patron.country,
                   Patron.notification_method)  # fmt: skip


_OWN_PICKUP, _PATRON_PICKUP = aliased(PickupLocation), aliased(PickupLocation)
#: Built once (with the ids as an expanding parameter): building a query costs more than running it for a batch.
_REQUEST_ROWS = (
    select(*_REQUEST_COLUMNS, *_PATRON_COLUMNS,
           _OWN_PICKUP.name, _OWN_PICKUP.address, _OWN_PICKUP.hold_days, _OWN_PICKUP.id,
           _PATRON_PICKUP.name, _PATRON_PICKUP.address, _PATRON_PICKUP.hold_days, _PATRON_PICKUP.id)
    .join(Patron, Patron.id == Request.patron_id)
    .outerjoin(_OWN_PICKUP, _OWN_PICKUP.id == Request.pickup_location_id)
    .outerjoin(_PATRON_PICKUP, _PATRON_PICKUP.id == Patron.pickup_location_id)
    .where(Request.id.in_(bindparam("request_ids", expanding=True)))
)  # fmt: skip
_CONTACT_ROWS = (
    select(ContactPoint.patron_id, ContactPoint.kind, ContactPoint.value, ContactPoint.normalized,
           ContactPoint.extension, ContactPoint.is_primary)
    .where(ContactPoint.patron_id.in_(bindparam("patron_ids", expanding=True)),
           ContactPoint.kind.in_(("email", "phone")))
    .order_by(ContactPoint.patron_id, ContactPoint.position)
)  # fmt: skip


def load_request_rows(session: Session, request_ids: Iterable[int]) -> dict[int, RequestRow]:
    """The requests of ``request_ids`` with what a context needs, in two queries; missing ids are left out."""
    wanted = list(request_ids)
    if not wanted:
        return {}
    rows: list[Any] = session.execute(_REQUEST_ROWS, {"request_ids": wanted}).all()  # type: ignore[assignment]
    n, m = len(_REQUEST_COLUMNS), len(_PATRON_COLUMNS)  # the patron's columns start at n
    contacts: dict[int, list[ContactRow]] = {}
    for patron_id, kind, value, normalized, extension, is_primary in session.execute(
        _CONTACT_ROWS, {"patron_ids": list({row[n] for row in rows})}
    ):
        contacts.setdefault(patron_id, []).append(ContactRow(kind, value, normalized, extension, is_primary))
    result: dict[int, RequestRow] = {}
    for row in rows:
        patron_values = row[n : n + m]
        patron = PatronRow(*(*patron_values, tuple(contacts.get(patron_values[0], ()))))
        own_name, own_address, own_days, own_id, home_name, home_address, home_days, home_id = row[n + m :]
        pickup = (
            PickupRow(own_name, own_address, own_days, own_id)
            if own_name is not None
            else PickupRow(home_name, home_address, home_days, home_id)
            if home_name is not None
            else None
        )
        result[row[0]] = RequestRow(*(*row[:n], patron, pickup))
    returning = [rid for rid, request in result.items() if request.status == Status.AWAITING_RETURN_TO_LENDER.value]
    if returning:  # the hold's end in an expiry notice is counted from the move to the shelf, not the expiry
        for rid, shelved_at in session.execute(
            select(Tracking.request_id, func.max(Tracking.changed_at))
            .where(Tracking.request_id.in_(returning), Tracking.to_status.in_([s.value for s in NOTIFIED_STATUSES]))
            .group_by(Tracking.request_id)
        ):
            result[rid] = replace(result[rid], shelved_at=as_utc(shelved_at))
    return result


def request_row_context(
    request: RequestRow, *, region: str = "US", today: date | None = None, shared: dict[str, Any]
) -> dict[str, Any]:
    """The full context for a notice about one request, from its row and the shared settings."""
    since = request.shelved_at or request.status_changed_at
    pickup = pickup_context(request.pickup, since)
    if request.pickup is not None:  # the hold's end as the shelf counts it: closed days move it
        pickup["hold_until"] = shelf_hold_until(shared, since, request.pickup.hold_days)
    item = request_context(request)
    return {
        "patron": patron_context(request.patron, region),
        "request": item,
        "requests": [item],  # a printed letter lists several (desktop.services.requests.printing)
        "pickup": pickup,
        "library": library_context(shared),
        "reset": empty_reset(),
        "today": (today or utcnow().date()).isoformat(),
    }


def request_notice_context(
    session: Session,
    request_id: int,
    *,
    region: str = "US",
    today: date | None = None,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full context for a notice about one request (arrival e-mail, printed notice, template preview).

    Args:
        shared: :func:`system_settings` already read (read here when not given).
    """
    row = load_request_rows(session, [request_id]).get(request_id)
    if row is None:
        raise LookupError(f"request id {request_id} does not exist")
    return request_row_context(row, region=region, today=today,
                               shared=shared if shared is not None else system_settings(session))  # fmt: skip


def patron_notice_context(
    session: Session, patron_id: int, *, region: str = "US", reset: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The context for a notice about a patron alone (Password Reset): request and pickup parts are blank."""
    patron = session.get(Patron, patron_id)
    if patron is None:
        raise LookupError(f"patron id {patron_id} does not exist")
    return {
        "patron": patron_context(patron, region),
        "request": {key: "" for key in request_context_keys()},
        "requests": [],
        "pickup": pickup_context(patron.pickup_location),
        "library": library_context(system_settings(session)),
        "reset": reset or empty_reset(),
        "today": utcnow().date().isoformat(),
    }


def request_context_keys() -> tuple[str, ...]:
    """The keys of the ``request`` part."""
    return ("transaction_number", "request_type", "title", "author", "journal_title", "article_title",
            "call_number", "lending_library", "due_date", "status")  # fmt: skip
