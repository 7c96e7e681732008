"""Building patrons with contact points in a real database, for the patron / Contact Card / reset tests."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import ContactPoint, Household, Location, Patron
from desktop.domain.contacts import ContactKind, normalize


def location_id(db: Database, name: str) -> int:
    """Id of the Locations row called ``name``."""
    with db.read() as session:
        found = session.scalar(select(Location.id).where(Location.name == name))
    assert found is not None, name
    return found


def household(db: Database, code: str) -> int:
    """Id of household ``code``, created if needed."""
    with db.write() as session:
        existing = session.scalar(select(Household.id).where(Household.code == code))
        if existing is not None:
            return existing
        row = Household(code=code, name=f"The {code} household")
        session.add(row)
        session.flush()
        return row.id


def make_patron(
    db: Database,
    username: str,
    first: str = "Ada",
    last: str = "Lovelace",
    *,
    household_code: str | None = None,
    emails: Sequence[tuple[str, str]] = (),
    phones: Sequence[tuple[str, str]] = (),
    notification_method: str = "E-Mail",
) -> int:
    """A patron with e-mails and phones given as (location name, value); the first of each kind is primary."""
    hid = household(db, household_code) if household_code else None
    locations: dict[str, int] = {}
    with db.read() as session:
        locations = {loc.name: loc.id for loc in session.scalars(select(Location))}
    with db.write() as session:
        patron = Patron(
            username=username,
            first_name=first,
            last_name=last,
            household_id=hid,
            notification_method=notification_method,
            address1="1 Main St",
            city="Springfield",
            state="IL",
            zip="62701",
        )
        session.add(patron)
        position = 0
        for kind, items in ((ContactKind.EMAIL, emails), (ContactKind.PHONE, phones)):
            for n, (loc, value) in enumerate(items):
                result = normalize(kind, value)
                patron.contact_points.append(
                    ContactPoint(
                        kind=kind.value,
                        location_id=locations[loc],
                        value=result.display,
                        normalized=result.normalized,
                        extension=result.extension,
                        is_primary=n == 0,
                        position=position,
                    )
                )
                position += 1
        session.flush()
        return patron.id


def points_of(db: Database, patron_id: int, kind: str | None = None) -> list[ContactPoint]:
    """The patron's contact points (detached copies to assert on), in position order."""
    with db.read() as session:
        query = select(ContactPoint).where(ContactPoint.patron_id == patron_id)
        if kind:
            query = query.where(ContactPoint.kind == kind)
        rows = list(session.scalars(query.order_by(ContactPoint.position, ContactPoint.id)))
        session.expunge_all()
        return rows


def primary_count(db: Database, patron_id: int, kind: str) -> int:
    """How many primaries of ``kind`` the database holds for the patron."""
    return sum(1 for p in points_of(db, patron_id, kind) if p.is_primary)
