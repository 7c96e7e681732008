"""Plain-data template contexts built from the database (never ORM objects: templates must not lazy-load)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from desktop.db.models import ContactPoint, Patron, PickupLocation, Request, SystemSetting
from desktop.domain.clock import utcnow
from desktop.domain.contacts import format_phone
from desktop.services.database import DEFAULT_SYSTEM_SETTINGS


def system_settings(session: Session) -> dict[str, Any]:
    """Shared settings (library name, address, poll interval, …), defaults filled in."""
    values = dict(DEFAULT_SYSTEM_SETTINGS)
    for row in session.scalars(select(SystemSetting)):
        try:
            values[row.key] = json.loads(row.value)
        except ValueError:
            values[row.key] = row.value
    return values


def primary_contact(patron: Patron, kind: str) -> ContactPoint | None:
    """The patron's primary contact point of ``kind`` (or the first one, if none is marked)."""
    points = [c for c in patron.contact_points if c.kind == kind]
    return next((c for c in points if c.is_primary), points[0] if points else None)


def address_lines(patron: Patron) -> list[str]:
    """Name and postal address as lines for a window envelope; only the name when there is no address."""
    city_line = " ".join(p for p in (f"{patron.city}," if patron.city else "", patron.state, patron.zip) if p)
    lines = [patron.full_name, patron.address1, patron.address2, city_line.rstrip(",")]
    return [line for line in lines if line.strip()]


def has_postal_address(patron: Patron) -> bool:
    """True when a printed notice can reach the patron (street and city or zip)."""
    return bool(patron.address1.strip() and (patron.city.strip() or patron.zip.strip()))


def patron_context(patron: Patron, region: str = "US") -> dict[str, Any]:
    """The ``patron`` part of a template context."""
    email = primary_contact(patron, "email")
    phone = primary_contact(patron, "phone")
    return {
        "first_name": patron.first_name,
        "last_name": patron.last_name,
        "full_name": patron.full_name,
        "username": patron.username,
        "email": email.value if email else "",
        "phone": format_phone(phone.normalized, region, phone.extension) if phone else "",
        "address_lines": address_lines(patron),
        "department": patron.department,
    }


def library_context(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``library`` part of a template context."""
    return {
        "name": str(settings.get("library_name", "")),
        "address_lines": [line for line in str(settings.get("library_address", "")).splitlines() if line.strip()],
        "email": str(settings.get("library_email", "")),
        "phone": str(settings.get("library_phone", "")),
    }


def request_context(request: Request) -> dict[str, Any]:
    """The ``request`` part of a template context."""
    return {
        "transaction_number": request.transaction_number,
        "request_type": request.request_type,
        "title": request.title,
        "author": request.loan_author,
        "journal_title": request.photo_journal_title,
        "article_title": request.photo_article_title,
        "call_number": request.call_number,
        "lending_library": request.lending_library,
        "due_date": request.due_date.isoformat() if request.due_date else "",
        "status": request.status,
    }


def pickup_context(pickup: PickupLocation | None, since: datetime | None = None) -> dict[str, Any]:
    """The ``pickup`` part: where, and until when the item is held (counted from ``since``, default now)."""
    start = (since or utcnow()).date()
    if pickup is None:
        return {"name": "the Interlibrary Loan desk", "address": "", "hold_days": 10,
                "hold_until": (start + timedelta(days=10)).isoformat()}  # fmt: skip
    return {
        "name": pickup.name,
        "address": pickup.address,
        "hold_days": pickup.hold_days,
        "hold_until": (start + timedelta(days=pickup.hold_days)).isoformat(),
    }


def empty_reset() -> dict[str, Any]:
    """The ``reset`` part for notices that are not password resets (so templates can test ``reset.link``)."""
    return {"link": "", "expires_at": "", "hours": 48}


def request_notice_context(
    session: Session,
    request_id: int,
    *,
    region: str = "US",
    today: date | None = None,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full context for a notice about one request (arrival e-mail, printed notice).

    Args:
        shared: :func:`system_settings` already read (the outbox renders thousands per batch: one query, not one
            per notice).
    """
    request = session.get(Request, request_id)
    if request is None:
        raise LookupError(f"request id {request_id} does not exist")
    patron = request.patron
    pickup = request.pickup_location or patron.pickup_location
    return {
        "patron": patron_context(patron, region),
        "request": request_context(request),
        "pickup": pickup_context(pickup, request.status_changed_at),
        "library": library_context(shared if shared is not None else system_settings(session)),
        "reset": empty_reset(),
        "today": (today or utcnow().date()).isoformat(),
    }


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
        "pickup": pickup_context(patron.pickup_location),
        "library": library_context(system_settings(session)),
        "reset": reset or empty_reset(),
        "today": utcnow().date().isoformat(),
    }


def request_context_keys() -> tuple[str, ...]:
    """The keys of the ``request`` part."""
    return ("transaction_number", "request_type", "title", "author", "journal_title", "article_title",
            "call_number", "lending_library", "due_date", "status")  # fmt: skip
