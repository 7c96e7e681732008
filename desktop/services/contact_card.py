"""The Contact Card: load and save all of a patron's contact points and postal address together.

Saving is all or nothing, guarded by the patron's ``version_id``: a card opened before another workstation
saved is refused (:class:`ConcurrentEditError`) instead of silently undoing that workstation's change; the card
keeps what was typed. Every field is validated by :mod:`desktop.domain.contacts`; each location must allow the
kind it is used for. Exactly one primary per kind is kept: the code clears the old primary and flushes before
setting the new one, and the partial unique index ``uq_contact_points_one_primary`` is the backstop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.models import ContactPoint, Location, Patron
from desktop.domain.clock import Clock, utcnow
from desktop.domain.contacts import ContactError, ContactKind, email_key, format_phone, normalize
from desktop.services.database import Database
from desktop.services.duplicates import PatronRef, other_household_holders
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.outbox import flag_text

ADDRESS_LIMITS = {"address1": 200, "address2": 200, "city": 100, "state": 100, "zip": 20}
_PHONE_KINDS = {ContactKind.PHONE, ContactKind.FAX}
_KIND_VALUES = {k.value for k in ContactKind}


@dataclass(frozen=True, slots=True)
class LocationChoice:
    """A row of the Locations code table as a Contact Card needs it."""

    id: int
    name: str
    kinds: tuple[str, ...]
    default_for: tuple[str, ...]
    active: bool

    def allows(self, kind: str) -> bool:
        """True when this location may be used for ``kind`` (``email``, ``phone``, …, ``address``)."""
        return kind in self.kinds


@dataclass(frozen=True, slots=True)
class CardPoint:
    """One contact point on the card; ``id`` is None for a point added on the card and not yet saved."""

    kind: str
    value: str
    location_id: int | None = None
    extension: str = ""
    is_primary: bool = False
    id: int | None = None
    #: "bounced on <date>: <reason>" when a bounce flagged this e-mail (shown only; never part of a save or merge).
    bounce_flag: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class PostalAddress:
    """The patron's postal address (printed notices, "Mail to Address" delivery)."""

    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""


@dataclass(frozen=True, slots=True)
class CardData:
    """A patron's card as loaded: what to show, and the version a save must still find."""

    patron_id: int
    patron_name: str
    household_name: str
    version_id: int
    points: tuple[CardPoint, ...]
    address: PostalAddress
    locations: tuple[LocationChoice, ...]


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """Live validation of one field: the message to show, or the normalised value and a readable preview."""

    ok: bool
    message: str = ""
    normalized: str = ""
    preview: str = ""
    extension: str = ""


@dataclass(frozen=True, slots=True)
class SaveResult:
    """A saved card: its new version, and warnings (not errors) to show after saving."""

    version_id: int
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class RemoveResult:
    """A removed contact point and, when it was the primary, the one promoted in its place."""

    patron_id: int
    kind: str
    promoted_id: int | None


def check_value(kind: str, value: str, extension: str = "", region: str = "US") -> FieldCheck:
    """Validate one field as it is typed (no database: cheap enough for every keystroke)."""
    try:
        result = normalize(ContactKind(kind), value, region, extension)
    except ContactError as exc:
        return FieldCheck(ok=False, message=str(exc))
    preview = result.normalized
    if ContactKind(kind) in _PHONE_KINDS:
        preview = f"{format_phone(result.normalized, region, result.extension)}  ·  {result.normalized}"
    return FieldCheck(ok=True, normalized=result.normalized, preview=preview, extension=result.extension)


def location_choices(session: Session) -> tuple[LocationChoice, ...]:
    """The Locations code table in its display order."""
    return tuple(
        LocationChoice(
            id=loc.id,
            name=loc.name,
            kinds=tuple(k for k in loc.kinds.split(",") if k),
            default_for=tuple(k for k in loc.default_for.split(",") if k),
            active=loc.active,
        )
        for loc in session.scalars(select(Location).order_by(Location.sort_order, Location.name))
    )


def default_location(locations: Sequence[LocationChoice], kind: str) -> LocationChoice | None:
    """The location preselected on a new field of ``kind``: its default, else the first active one allowing it."""
    usable = [loc for loc in locations if loc.active and loc.allows(kind)]
    return next((loc for loc in usable if kind in loc.default_for), usable[0] if usable else None)


def load_card(db: Database, patron_id: int) -> CardData:
    """Read a patron's card.

    Raises:
        NotFoundError: the patron no longer exists.
    """
    with db.read() as session:
        patron = session.get(Patron, patron_id)
        if patron is None:
            raise NotFoundError(f"Patron {patron_id} does not exist (any more).")
        order = {k.value: n for n, k in enumerate(ContactKind)}
        points = sorted(patron.contact_points, key=lambda c: (order.get(c.kind, 99), c.position, c.id))
        household = patron.household
        return CardData(
            patron_id=patron.id,
            patron_name=patron.full_name,
            household_name=(household.name or household.code) if household is not None else "",
            version_id=patron.version_id,
            points=tuple(
                CardPoint(
                    id=c.id,
                    kind=c.kind,
                    value=c.value,
                    location_id=c.location_id,
                    extension=c.extension,
                    is_primary=c.is_primary,
                    bounce_flag=flag_text(c.bounced_at, c.bounce_reason) if c.bounced_at is not None else "",
                )
                for c in points
            ),
            address=PostalAddress(patron.address1, patron.address2, patron.city, patron.state, patron.zip),
            locations=location_choices(session),
        )


def email_warnings(db: Database, patron_id: int, emails: Sequence[str]) -> dict[str, tuple[PatronRef, ...]]:
    """E-mail key → patrons of other households who hold it, for the addresses given (the card's warning)."""
    result: dict[str, tuple[PatronRef, ...]] = {}
    with db.read() as session:
        for address in emails:
            key = email_key(address)
            if not key or key in result:
                continue
            others = other_household_holders(session, patron_id, key)
            if others:
                result[key] = tuple(others)
    return result


def warning_text(address: str, others: Sequence[PatronRef]) -> str:
    """The warning shown under an e-mail field held in another household."""
    names = "; ".join(o.label for o in others)
    return f"{address} also belongs to {names} in another household. Password resets to it will be refused."


def validate_card(
    points: Sequence[CardPoint], address: PostalAddress, locations: Sequence[LocationChoice], region: str = "US"
) -> dict[str, str]:
    """Problems by field key (``"<index>"`` for ``points[index]``, ``"address.<field>"``); empty when all is well.

    Locations must exist and allow the kind; a deactivated location is accepted only on a point that already
    had it (staff are not forced to fix old data to save something else).
    """
    problems: dict[str, str] = {}
    by_id = {loc.id: loc for loc in locations}
    seen: dict[tuple[str, str, str], int] = {}
    for index, point in enumerate(points):
        key = str(index)
        try:
            kind = ContactKind(point.kind)
        except ValueError:
            problems[key] = f"Unknown kind of contact point: {point.kind!r}."
            continue
        check = check_value(kind.value, point.value, point.extension, region)
        if not check.ok:
            problems[key] = check.message
            continue
        ident = (kind.value, check.normalized, check.extension)
        if ident in seen:
            problems[key] = f"This {kind.label.lower()} is already on the card (line {seen[ident] + 1})."
            continue
        seen[ident] = index
        if point.location_id is not None:
            loc = by_id.get(point.location_id)
            if loc is None:
                problems[key] = "That location was deleted; choose another."
            elif not loc.allows(kind.value):
                problems[key] = f"Location {loc.name} is not used for {kind.label.lower()}s; choose another."
    for name, limit in ADDRESS_LIMITS.items():
        if len(getattr(address, name).strip()) > limit:
            problems[f"address.{name}"] = f"At most {limit} characters."
    return problems


def save_card(
    db: Database,
    patron_id: int,
    expected_version: int,
    points: Sequence[CardPoint],
    address: PostalAddress,
    *,
    region: str = "US",
    clock: Clock = utcnow,
) -> SaveResult:
    """Replace the patron's contact points and address with the card's, if nobody saved since it was loaded.

    Points with an ``id`` update that row; points without one are added; rows not on the card are removed.
    Per kind, the first point marked primary is the primary (or the first point, when none is marked).

    Raises:
        ValidationError: a field is invalid (``problems`` as from :func:`validate_card`); nothing saved.
        ConcurrentEditError: the patron was saved elsewhere after ``expected_version``; nothing saved.
        NotFoundError: the patron no longer exists.
    """
    try:
        with db.write() as session:
            patron = session.get(Patron, patron_id)
            if patron is None:
                raise NotFoundError(f"Patron {patron_id} does not exist (any more).")
            if patron.version_id != expected_version:
                raise ConcurrentEditError(_conflict_message(patron))
            locations = location_choices(session)
            problems = validate_card(points, address, locations, region)
            existing = {c.id: c for c in patron.contact_points}
            for index, point in enumerate(points):
                old = existing.get(point.id) if point.id is not None else None
                loc = next((x for x in locations if x.id == point.location_id), None)
                if loc is not None and not loc.active and (old is None or old.location_id != loc.id):
                    problems.setdefault(str(index), f"Location {loc.name} is no longer in use; choose another.")
                if point.id is not None and old is None:
                    problems.setdefault(str(index), "This line was removed on another workstation.")
            if problems:
                raise ValidationError(_summary(problems, points), problems)
            warnings = _apply(session, patron, points, address, existing, region)
            patron.updated_at = clock()  # bumps version_id: the next card must load what we saved
            session.flush()
            version = patron.version_id
    except StaleDataError:
        raise ConcurrentEditError(
            "Another workstation saved this patron at the same moment; your changes were not saved."
        ) from None
    except IntegrityError:
        raise ConcurrentEditError(
            "Another workstation changed this patron's primary contacts at the same moment; "
            "your changes were not saved."
        ) from None
    return SaveResult(version_id=version, warnings=tuple(warnings))


def _conflict_message(patron: Patron) -> str:
    return (
        f"{patron.full_name}'s record was changed on another workstation after you opened this card, so it was "
        "not saved (that would undo their change). What you typed is still here: Reload takes in their change "
        "and keeps yours, then you can check and save."
    )


@dataclass(frozen=True, slots=True)
class MergedCard:
    """A card reloaded after another workstation saved: their save with this card's edits put back on top.

    Attributes:
        taken: how many of the other workstation's changes were taken in (lines and address fields).
        conflicts: one sentence per line or field changed in both places; this card's version is kept.
    """

    points: tuple[CardPoint, ...]
    address: PostalAddress
    taken: int
    conflicts: tuple[str, ...]


#: The postal address fields as the card labels them.
_ADDRESS_LABELS = {"address1": "Street", "address2": "Line 2", "city": "City", "state": "State", "zip": "ZIP"}


def _content(point: CardPoint) -> tuple[str, int | None, str]:
    return (point.value.strip(), point.location_id, point.extension.strip())


def _primary_ids(points: Sequence[CardPoint]) -> dict[str, int | None]:
    """Per kind, the id of the primary line (the first marked, else the first); None for a line not yet saved."""
    result: dict[str, int | None] = {}
    for kind in dict.fromkeys(p.kind for p in points):
        of_kind = [p for p in points if p.kind == kind]
        result[kind] = next((p for p in of_kind if p.is_primary), of_kind[0]).id
    return result


def merge_card(base: CardData, points: Sequence[CardPoint], address: PostalAddress, theirs: CardData) -> MergedCard:
    """Three-way merge of a card's edits (``points``, ``address``, made on ``base``) onto ``theirs``.

    A line or field only this card changed keeps this card's value; one only the other workstation changed
    takes theirs; one changed in both places keeps this card's and is reported, with their value, so staff can
    choose before saving. Lines added on either side are kept; a line removed on one side and untouched on the
    other is removed. Nothing typed on this card is dropped: a line edited here but removed there comes back as
    a new line. The primary of a kind follows the other workstation unless this card changed it.
    """
    old = {p.id: p for p in base.points if p.id is not None}
    new = {p.id: p for p in theirs.points if p.id is not None}
    mine_ids = {p.id for p in points if p.id is not None}
    merged: list[CardPoint] = []
    conflicts: list[str] = []
    taken = 0
    for point in points:
        if point.id is None or point.id not in old:  # added on this card
            merged.append(point)
            continue
        before, after = old[point.id], new.get(point.id)
        mine_changed = _content(point) != _content(before)
        if after is None:
            if mine_changed:
                merged.append(replace(point, id=None))
                conflicts.append(f"{point.value}: removed on the other workstation; kept here as a new line")
            else:
                taken += 1
            continue
        theirs_changed = _content(after) != _content(before)
        if mine_changed and theirs_changed and _content(after) != _content(point):
            conflicts.append(f"{point.value}: also changed on the other workstation (to {after.value}); yours is kept")
            merged.append(point)
        elif theirs_changed and not mine_changed:
            taken += 1
            merged.append(replace(after, is_primary=point.is_primary))
        else:
            merged.append(point)
    for point_id, before in old.items():
        after = new.get(point_id)
        if point_id not in mine_ids and after is not None and _content(after) != _content(before):
            conflicts.append(f"{before.value}: removed here but changed on the other workstation (to {after.value})")
    for point in theirs.points:
        if point.id is not None and point.id not in old:
            merged.append(replace(point, is_primary=False))
            taken += 1
    # The primary of each kind: this card's choice if it made one, else the other workstation's.
    base_primary, their_primary = _primary_ids(base.points), _primary_ids(theirs.points)
    present = {p.id for p in merged if p.id is not None}
    for kind, mine in _primary_ids(points).items():
        chosen = their_primary.get(kind)
        if mine is not None and mine == base_primary.get(kind) and chosen in present and chosen != mine:
            taken += 1
            merged = [replace(p, is_primary=p.id == chosen) if p.kind == kind else p for p in merged]
    fields: dict[str, str] = {}
    for name, label in _ADDRESS_LABELS.items():
        was, mine_value, their_value = (getattr(a, name) for a in (base.address, address, theirs.address))
        if mine_value == was:
            fields[name] = their_value
            taken += their_value != was
        else:
            fields[name] = mine_value
            if their_value not in (was, mine_value):
                conflicts.append(f"{label}: also changed on the other workstation (to “{their_value}”); yours is kept")
    return MergedCard(tuple(merged), PostalAddress(**fields), taken, tuple(conflicts))


def _summary(problems: dict[str, str], points: Sequence[CardPoint]) -> str:
    count = len(problems)
    first_key = sorted(problems, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))[0]
    where = first_key
    if first_key.isdigit():
        point = points[int(first_key)]
        label = ContactKind(point.kind).label if point.kind in _KIND_VALUES else point.kind
        where = f"{label} {point.value!r}"
    return f"Nothing was saved: {count} field(s) need fixing; first {where}: {problems[first_key]}"


def _apply(
    session: Session,
    patron: Patron,
    points: Sequence[CardPoint],
    address: PostalAddress,
    existing: dict[int, ContactPoint],
    region: str,
) -> list[str]:
    """Write the card into the session; returns the cross-household warnings for new or changed e-mails."""
    primaries: dict[str, int] = {}
    for index, point in enumerate(points):
        if point.is_primary and point.kind not in primaries:
            primaries[point.kind] = index
    for index, point in enumerate(points):
        primaries.setdefault(point.kind, index)
    keep = {p.id for p in points if p.id is not None}
    for cid, row in existing.items():
        if cid not in keep:
            patron.contact_points.remove(row)
    # Clear every primary first and flush, so the unique index never sees two primaries of a kind mid-update.
    for kept in patron.contact_points:
        kept.is_primary = False
    session.flush()
    warnings: list[str] = []
    for index, point in enumerate(points):
        result = normalize(ContactKind(point.kind), point.value, region, point.extension)
        old = existing[point.id] if point.id is not None else None
        if point.kind == ContactKind.EMAIL.value and (old is None or old.normalized != result.normalized):
            others = other_household_holders(session, patron.id, result.normalized)
            if others:
                warnings.append(warning_text(result.display, others))
        row = old if old is not None else ContactPoint(kind=point.kind)
        row.value = result.display
        row.normalized = result.normalized
        row.extension = result.extension
        row.location_id = point.location_id
        row.position = index
        row.is_primary = primaries[point.kind] == index
        if old is None:
            patron.contact_points.append(row)
    patron.address1 = address.address1.strip()
    patron.address2 = address.address2.strip()
    patron.city = address.city.strip()
    patron.state = address.state.strip()
    patron.zip = address.zip.strip()
    return warnings


def _bump(patron: Patron, clock: Clock) -> None:
    patron.updated_at = clock()


def make_primary(db: Database, contact_id: int, *, clock: Clock = utcnow) -> int:
    """Make one contact point the primary of its kind, in one transaction; returns the patron id.

    The patron's notices go to the primary e-mail, so this also decides where the next notice is sent.

    Raises:
        NotFoundError: the point was removed meanwhile.
    """
    try:
        with db.write() as session:
            point = session.get(ContactPoint, contact_id)
            if point is None:
                raise NotFoundError("That contact point is no longer on the patron's record.")
            patron = point.patron
            if not point.is_primary:
                for other in patron.contact_points:
                    if other.kind == point.kind and other.is_primary:
                        other.is_primary = False
                session.flush()
                point.is_primary = True
                _bump(patron, clock)
            return patron.id
    except (IntegrityError, StaleDataError):
        raise ConcurrentEditError(
            "Another workstation changed this patron's primary contacts at the same moment; try again."
        ) from None


def remove_contact(
    db: Database, contact_id: int, *, promote_id: int | None = None, clock: Clock = utcnow
) -> RemoveResult:
    """Remove a contact point; when it was the primary, promote ``promote_id`` or else the next of that kind.

    A patron with e-mail addresses therefore always has a primary e-mail (notices need one).

    Raises:
        NotFoundError: the point was removed meanwhile.
    """
    try:
        with db.write() as session:
            point = session.get(ContactPoint, contact_id)
            if point is None:
                raise NotFoundError("That contact point is no longer on the patron's record.")
            patron = point.patron
            kind, was_primary = point.kind, point.is_primary
            patron.contact_points.remove(point)
            session.flush()
            promoted: int | None = None
            if was_primary:
                rest = sorted((c for c in patron.contact_points if c.kind == kind), key=lambda c: (c.position, c.id))
                chosen = next((c for c in rest if c.id == promote_id), rest[0] if rest else None)
                if chosen is not None:
                    chosen.is_primary = True
                    promoted = chosen.id
            _bump(patron, clock)
            return RemoveResult(patron_id=patron.id, kind=kind, promoted_id=promoted)
    except StaleDataError:
        raise ConcurrentEditError("Another workstation changed this patron at the same moment; try again.") from None
