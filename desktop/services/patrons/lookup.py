"""Finding patrons and reading one patron's record (header, contact points, household, requests).

Search takes whatever staff have in front of them: a name, a user name, an e-mail address or a phone number in
any format (``(217) 555-0101``, ``217.555.0101`` and ``+12175550101`` all find the stored E.164 value).
Everything returned is a frozen dataclass, safe to hand to the GUI thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session, selectinload

from desktop.db.models import ContactPoint, Location, Patron, Request
from desktop.db.text_match import contains_folded, like_contains, search_text
from desktop.domain.clock import Clock, as_utc, utcnow
from desktop.domain.contacts import ContactKind, email_key, format_phone, phone_search_key
from desktop.services.database import Database
from desktop.services.errors import NotFoundError
from desktop.services.notices.notice_context import address_lines

DEFAULT_LIMIT = 200
MAX_REQUESTS = 1000
_MIN_PARTIAL_DIGITS = 4
_PHONE_KINDS = (ContactKind.PHONE.value, ContactKind.FAX.value)


@dataclass(frozen=True, slots=True)
class PatronHit:
    """One line of the patron search results."""

    id: int
    username: str
    full_name: str
    household_name: str
    email: str
    phone: str
    notification_method: str


@dataclass(frozen=True, slots=True)
class ContactRow:
    """One contact point as the Contact Info tab shows it.

    Attributes:
        display: the value for people (phones formatted for ``region``, with the extension).
        reset_note: "reset sent at …, expires …" for an e-mail with a live reset token, else empty.
        bounce_flag: "bounced on <date>: 550 5.1.1 user unknown" for an e-mail a bounce flagged, else empty.
    """

    id: int
    kind: str
    location_id: int | None
    location_name: str
    value: str
    normalized: str
    extension: str
    display: str
    is_primary: bool
    position: int
    reset_note: str = ""
    bounce_flag: str = ""


@dataclass(frozen=True, slots=True)
class HouseholdMember:
    """Another patron of the same household."""

    id: int
    username: str
    full_name: str


@dataclass(frozen=True, slots=True)
class PatronRequest:
    """One of the patron's requests (Requests tab)."""

    transaction_number: int
    request_type: str
    title: str
    status: str
    status_changed_at: datetime


@dataclass(frozen=True, slots=True)
class PatronRecord:
    """Everything the patron record window shows, read in one transaction."""

    id: int
    username: str
    first_name: str
    last_name: str
    full_name: str
    status: str
    department: str
    household_id: int | None
    household_name: str
    household_members: tuple[HouseholdMember, ...]
    notification_method: str
    delivery_method: str
    pickup_location: str
    address_lines: tuple[str, ...]
    version_id: int
    contacts: tuple[ContactRow, ...]
    requests: tuple[PatronRequest, ...]
    has_web_password: bool

    def contacts_of(self, kind: str) -> tuple[ContactRow, ...]:
        """The contact points of one kind, in order."""
        return tuple(c for c in self.contacts if c.kind == kind)


def _patrons_with_contact(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """``Patron.id IN (contact points matching …)``: one pass over the (indexed) contact points, not one
    correlated lookup per patron."""
    return Patron.id.in_(select(ContactPoint.patron_id).where(*conditions))


def search_conditions(text: str, region: str = "US") -> ColumnElement[bool] | None:
    """The WHERE clause for a search box's text, or ``None`` when the text is blank.

    Digits typed in any format are tried as a full phone number (E.164 equality on the ``(kind, normalized)``
    index) or, when they are not a whole number but there are enough of them, as a fragment of a stored number;
    ``@`` makes the text an e-mail fragment; otherwise every word must match the first name, last name, user
    name or an e-mail address.
    """
    cleaned = search_text(text)
    if cleaned is None:  # longer than any name, e-mail or number: nothing can match, and nothing is parsed
        return false()
    value = cleaned.strip()
    if not value:
        return None
    alternatives: list[ColumnElement[bool]] = []
    digits = re.sub(r"\D", "", value)
    looks_numeric = bool(digits) and not re.search(r"[^\d\s().+\-/x#]", value, re.IGNORECASE)
    if looks_numeric:
        key = phone_search_key(value, region)
        if key is not None:
            alternatives.append(
                _patrons_with_contact(ContactPoint.kind.in_(_PHONE_KINDS), ContactPoint.normalized == key)
            )
        elif len(digits) >= _MIN_PARTIAL_DIGITS:
            alternatives.append(
                _patrons_with_contact(
                    ContactPoint.kind.in_(_PHONE_KINDS), ContactPoint.normalized.like(like_contains(digits), "\\")
                )
            )
    if "@" in value:
        alternatives.append(
            _patrons_with_contact(
                ContactPoint.kind == ContactKind.EMAIL.value,
                ContactPoint.normalized.like(like_contains(email_key(value)), "\\"),
            )
        )
    words = [w for w in re.split(r"[\s,]+", value) if w]
    if words and not looks_numeric and "@" not in value:
        per_word = []
        for word in words:
            per_word.append(
                or_(
                    contains_folded(Patron.first_name, word),
                    contains_folded(Patron.last_name, word),
                    contains_folded(Patron.username, word),
                    _patrons_with_contact(
                        ContactPoint.kind == ContactKind.EMAIL.value,
                        ContactPoint.normalized.like(like_contains(email_key(word)), "\\"),
                    ),
                )
            )
        alternatives.append(and_(*per_word))
    if not alternatives:
        return Patron.username == value
    return or_(*alternatives)


def search_patrons(db: Database, text: str, *, region: str = "US", limit: int = DEFAULT_LIMIT) -> list[PatronHit]:
    """Patrons matching ``text`` (see :func:`search_conditions`), by last and first name; blank lists all.

    At most ``limit`` hits come back: a search box is for finding one person, not for paging the whole table.
    """
    condition = search_conditions(text, region)
    query = (
        select(Patron)
        .options(selectinload(Patron.household))
        .order_by(Patron.last_name, Patron.first_name, Patron.id)
        .limit(limit)
    )
    if condition is not None:
        query = query.where(condition)
    with db.read() as session:
        patrons = list(session.scalars(query))
        primaries = _primary_contacts(session, [p.id for p in patrons], region)
        return [
            PatronHit(
                id=p.id,
                username=p.username,
                full_name=p.full_name,
                household_name=(p.household.name or p.household.code) if p.household else "",
                email=primaries.get((p.id, ContactKind.EMAIL.value), ("", ""))[0],
                phone=primaries.get((p.id, ContactKind.PHONE.value), ("", ""))[1],
                notification_method=p.notification_method,
            )
            for p in patrons
        ]


def _primary_contacts(
    session: Session, patron_ids: list[int], region: str = "US"
) -> dict[tuple[int, str], tuple[str, str]]:
    """(patron id, kind) → (value, display) of the primary point, or the first one when none is marked."""
    if not patron_ids:
        return {}
    points = session.scalars(
        select(ContactPoint)
        .where(ContactPoint.patron_id.in_(patron_ids))
        .order_by(ContactPoint.patron_id, ContactPoint.kind, ContactPoint.is_primary.desc(), ContactPoint.position)
    )
    found: dict[tuple[int, str], tuple[str, str]] = {}
    for point in points:
        found.setdefault((point.patron_id, point.kind), (point.value, display_value(point, region)))
    return found


def display_value(point: ContactPoint, region: str = "US") -> str:
    """A contact point's value for people: phones and faxes formatted, with the extension."""
    if point.kind in _PHONE_KINDS:
        return format_phone(point.normalized, region, point.extension)
    return point.value


def get_patron_record(db: Database, patron_id: int, *, region: str = "US", clock: Clock = utcnow) -> PatronRecord:
    """Read one patron's record.

    Raises:
        NotFoundError: the patron no longer exists (deleted on another workstation).
    """
    from desktop.services.notices.outbox import flag_text
    from desktop.services.patrons.password_reset import reset_notes

    with db.read() as session:
        patron = session.get(Patron, patron_id)
        if patron is None:
            raise NotFoundError(f"Patron {patron_id} does not exist (any more).")
        locations = {loc.id: loc.name for loc in session.scalars(select(Location))}
        notes = reset_notes(session, patron_id, clock())
        contacts = tuple(
            ContactRow(
                id=c.id,
                kind=c.kind,
                location_id=c.location_id,
                location_name=locations.get(c.location_id, "") if c.location_id is not None else "",
                value=c.value,
                normalized=c.normalized,
                extension=c.extension,
                display=display_value(c, region),
                is_primary=c.is_primary,
                position=c.position,
                reset_note=notes.get(c.normalized, "") if c.kind == ContactKind.EMAIL.value else "",
                bounce_flag=flag_text(c.bounced_at, c.bounce_reason) if c.bounced_at is not None else "",
            )
            for c in sorted(patron.contact_points, key=_contact_order)
        )
        members: tuple[HouseholdMember, ...] = ()
        if patron.household_id is not None:
            others = session.scalars(
                select(Patron)
                .where(Patron.household_id == patron.household_id, Patron.id != patron.id)
                .order_by(Patron.last_name, Patron.first_name, Patron.id)
            )
            members = tuple(HouseholdMember(o.id, o.username, o.full_name) for o in others)
        requests = tuple(
            PatronRequest(r.transaction_number, r.request_type, r.title, r.status, as_utc(r.status_changed_at))
            for r in session.scalars(
                select(Request)
                .where(Request.patron_id == patron.id)
                .order_by(Request.transaction_number.desc())
                .limit(MAX_REQUESTS)
            )
        )
        household = patron.household
        pickup = patron.pickup_location
        return PatronRecord(
            id=patron.id,
            username=patron.username,
            first_name=patron.first_name,
            last_name=patron.last_name,
            full_name=patron.full_name,
            status=patron.status,
            department=patron.department,
            household_id=patron.household_id,
            household_name=(household.name or household.code) if household is not None else "",
            household_members=members,
            notification_method=patron.notification_method,
            delivery_method=patron.delivery_method,
            pickup_location=pickup.name if pickup is not None else "",
            address_lines=tuple(address_lines(patron)[1:]),
            version_id=patron.version_id,
            contacts=contacts,
            requests=requests,
            has_web_password=_usable_hash(patron.web_password_hash),
        )


_KIND_ORDER = {k.value: n for n, k in enumerate(ContactKind)}


def _contact_order(point: ContactPoint) -> tuple[int, int, int]:
    return (_KIND_ORDER.get(point.kind, 99), point.position, point.id)


def _usable_hash(value: str | None) -> bool:
    return bool(value) and not str(value).startswith("!")


def patron_count(db: Database) -> int:
    """How many patrons there are (for the search window's status line)."""
    with db.read() as session:
        return int(session.scalar(select(func.count(Patron.id))) or 0)
