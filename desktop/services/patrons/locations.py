"""The Locations code table (System tab): Home, Work, Cell, … and which kinds of contact each allows.

A location in use by contact points is never deleted (the points would lose their label); it is deactivated
instead: it stays on the points that have it and is no longer offered for new ones. Each kind has at most one
default location, preselected on a new field of that kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desktop.db.models import ContactPoint, Location
from desktop.domain.contacts import ALL_PERMISSIONS
from desktop.services.database import Database
from desktop.services.errors import NotFoundError, ValidationError

MAX_NAME = 60
KIND_LABELS = {"email": "E-mail", "phone": "Phone", "fax": "Fax", "web": "Web site", "address": "Address"}


@dataclass(frozen=True, slots=True)
class LocationRow:
    """One line of the Locations code table.

    Attributes:
        in_use: contact points per kind that use this location (so staff see why a change is refused).
    """

    id: int
    name: str
    sort_order: int
    active: bool
    kinds: tuple[str, ...]
    default_for: tuple[str, ...]
    in_use: tuple[tuple[str, int], ...]

    @property
    def use_count(self) -> int:
        """All contact points using this location."""
        return sum(n for _, n in self.in_use)


def _split(text: str) -> tuple[str, ...]:
    return tuple(k for k in text.split(",") if k)


def _join(kinds: Iterable[str]) -> str:
    wanted = set(kinds)
    return ",".join(k for k in ALL_PERMISSIONS if k in wanted)


def _usage(session: Session) -> dict[int, dict[str, int]]:
    usage: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(ContactPoint.location_id, ContactPoint.kind, func.count(ContactPoint.id))
        .where(ContactPoint.location_id.is_not(None))
        .group_by(ContactPoint.location_id, ContactPoint.kind)
    )
    for location_id, kind, count in rows:
        if location_id is not None:
            usage.setdefault(location_id, {})[kind] = int(count)
    return usage


def list_locations(db: Database) -> list[LocationRow]:
    """All locations in display order, active or not, with their use."""
    with db.read() as session:
        usage = _usage(session)
        return [
            LocationRow(
                id=loc.id,
                name=loc.name,
                sort_order=loc.sort_order,
                active=loc.active,
                kinds=_split(loc.kinds),
                default_for=_split(loc.default_for),
                in_use=tuple(sorted(usage.get(loc.id, {}).items())),
            )
            for loc in session.scalars(select(Location).order_by(Location.sort_order, Location.name))
        ]


def _get(session: Session, location_id: int) -> Location:
    loc = session.get(Location, location_id)
    if loc is None:
        raise NotFoundError("That location was deleted on another workstation.")
    return loc


def _check_name(session: Session, name: str, exclude_id: int | None = None) -> str:
    clean = " ".join(name.split())
    if not clean:
        raise ValidationError("A location needs a name.", {"name": "Enter a name."})
    if len(clean) > MAX_NAME:
        raise ValidationError(f"A location name is at most {MAX_NAME} characters.", {"name": "Too long."})
    for other_id, other in session.execute(select(Location.id, Location.name)):
        if other_id != exclude_id and other.casefold() == clean.casefold():
            raise ValidationError(f"There is already a location called {other}.", {"name": "Name in use."})
    return clean


def _check_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(kinds)
    unknown = [k for k in chosen if k not in ALL_PERMISSIONS]
    if unknown:
        raise ValidationError(f"Unknown kind(s): {', '.join(unknown)}.")
    return chosen


def add_location(db: Database, name: str, kinds: Iterable[str] = ALL_PERMISSIONS) -> int:
    """Add an active location at the end of the list; returns its id."""
    chosen = _check_kinds(kinds)
    with db.write() as session:
        clean = _check_name(session, name)
        last = session.scalar(select(func.max(Location.sort_order)))
        loc = Location(name=clean, sort_order=(last or 0) + 1, active=True, kinds=_join(chosen), default_for="")
        session.add(loc)
        session.flush()
        return loc.id


def rename_location(db: Database, location_id: int, name: str) -> None:
    """Rename a location; contact points follow (they refer to it by id)."""
    with db.write() as session:
        loc = _get(session, location_id)
        loc.name = _check_name(session, name, exclude_id=location_id)


def reorder_locations(db: Database, ordered_ids: Sequence[int]) -> None:
    """Put the locations in this order (menus and combo boxes follow it); ids not listed go after, as they were."""
    with db.write() as session:
        locations = list(session.scalars(select(Location).order_by(Location.sort_order, Location.name)))
        by_id = {loc.id: loc for loc in locations}
        missing = [i for i in ordered_ids if i not in by_id]
        if missing:
            raise NotFoundError("A location was deleted on another workstation; reopen the list.")
        listed = set(ordered_ids)
        final = [by_id[i] for i in ordered_ids] + [loc for loc in locations if loc.id not in listed]
        for order, loc in enumerate(final):
            loc.sort_order = order


def move_location(db: Database, location_id: int, offset: int) -> None:
    """Move a location ``offset`` places up (negative) or down in the list."""
    ids = [row.id for row in list_locations(db)]
    if location_id not in ids:
        raise NotFoundError("That location was deleted on another workstation.")
    index = ids.index(location_id)
    target = max(0, min(len(ids) - 1, index + offset))
    ids.insert(target, ids.pop(index))
    reorder_locations(db, ids)


def set_active(db: Database, location_id: int, active: bool) -> None:
    """Deactivate (no longer offered, kept where used; its defaults are cleared) or reactivate a location."""
    with db.write() as session:
        loc = _get(session, location_id)
        loc.active = active
        if not active:
            loc.default_for = ""


def set_kinds(db: Database, location_id: int, kinds: Iterable[str]) -> None:
    """Choose which kinds a location allows.

    Raises:
        ValidationError: a kind still used by contact points at this location would be taken away.
    """
    chosen = _check_kinds(kinds)
    with db.write() as session:
        loc = _get(session, location_id)
        used = _usage(session).get(location_id, {})
        taken = [k for k in used if k not in chosen]
        if taken:
            detail = ", ".join(f"{used[k]} {KIND_LABELS.get(k, k).lower()}(s)" for k in taken)
            raise ValidationError(
                f"{loc.name} is still used by {detail}; change those first, or deactivate the location instead."
            )
        loc.kinds = _join(chosen)
        loc.default_for = _join(k for k in _split(loc.default_for) if k in chosen)


def set_default(db: Database, location_id: int, kind: str, *, default: bool = True) -> None:
    """Make a location the default for ``kind`` (taking it from any other), or stop it being the default."""
    (kind,) = _check_kinds([kind])
    with db.write() as session:
        loc = _get(session, location_id)
        if default:
            if not loc.active:
                raise ValidationError(f"{loc.name} is deactivated; reactivate it before making it a default.")
            if kind not in _split(loc.kinds):
                raise ValidationError(f"{loc.name} does not allow {KIND_LABELS[kind].lower()}; allow it first.")
            for other in session.scalars(select(Location).where(Location.id != location_id)):
                if kind in _split(other.default_for):
                    other.default_for = _join(k for k in _split(other.default_for) if k != kind)
            loc.default_for = _join([*_split(loc.default_for), kind])
        else:
            loc.default_for = _join(k for k in _split(loc.default_for) if k != kind)


def delete_location(db: Database, location_id: int) -> None:
    """Delete a location nobody uses.

    Raises:
        ValidationError: contact points use it; deactivate it instead.
    """
    with db.write() as session:
        loc = _get(session, location_id)
        count = session.scalar(select(func.count(ContactPoint.id)).where(ContactPoint.location_id == location_id))
        if count:
            raise ValidationError(
                f"{loc.name} is used by {count} contact point(s), so it cannot be deleted; deactivate it instead."
            )
        session.delete(loc)
