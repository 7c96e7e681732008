"""The Contact Card: load and save all of a patron's contact points and postal address together.

Saving is all or nothing, guarded by the patron's ``version_id``: a card opened before another workstation
saved is refused (:class:`ConcurrentEditError`) instead of silently undoing that workstation's change; the card
keeps what was typed. Every field is validated by :mod:`desktop.domain.contacts`; each location must allow the
kind it is used for. Exactly one primary per kind is kept: the code clears the old primary and flushes before
setting the new one, and the partial unique index ``uq_contact_points_one_primary`` is the backstop.

The card also holds the patron's notification and delivery methods. Changing them is recorded in
``patron_history`` (from, to, who, when) and regroups the patron's requests waiting for contact in the same
transaction: moving away from E-Mail cancels their waiting e-mail notices (with the reason), moving to E-Mail
queues their arrival notices. E-Mail without an e-mail address (and Phone without a phone number, Mail to
Address without a postal address) is refused with a message naming what is missing.

It holds the patron's per-event channel preferences and SMS carrier too (issue 18): they are read with the card
and saved in the card's transaction, after a method change (so an event that follows the method compares against
the new one), under the same version guard; each change is a history line
(:mod:`desktop.services.patrons.channel_preferences`). The carrier table and the SMS transport come along from the
shared SMS settings, for the card's carrier list and its warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.models import ContactPoint, Location, Notification, Patron, PatronHistory, Request
from desktop.domain.channels import NoticeEvent, Preference
from desktop.domain.clock import Clock, utcnow
from desktop.domain.contacts import ContactError, ContactKind, email_key, format_phone, normalize
from desktop.domain.methods import DeliveryMethod, NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.admin.sms_settings import load_sms_settings
from desktop.services.database import Database
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.notices.outbox import (
    CANCELLED,
    EMAIL,
    FAILED,
    NO_TEMPLATE,
    PENDING,
    RETRYING,
    create_arrival_notice,
    flag_text,
)
from desktop.services.patrons.channel_preferences import (
    CARRIER_FIELD,
    HISTORY_PREFIX,
    PatronPreferences,
    apply_carrier,
    apply_preferences,
    carrier_problem,
    preference_problems,
    read_preferences,
)
from desktop.services.patrons.duplicates import PatronRef, other_household_holders

ADDRESS_LIMITS = {"address1": 200, "address2": 200, "city": 100, "state": 100, "zip": 20, "country": 100}
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
    country: str = ""


@dataclass(frozen=True, slots=True)
class Methods:
    """How the patron is told (notification method) and how the item reaches them (delivery method)."""

    notification: str = NotificationMethod.EMAIL.value
    delivery: str = DeliveryMethod.HOLD_FOR_PICKUP.value


@dataclass(frozen=True, slots=True)
class MethodChange:
    """One recorded change of a patron's method, for the card's history line."""

    field: str
    old_value: str
    new_value: str
    changed_by: str
    changed_at: datetime
    note: str = ""

    def line(self) -> str:
        """``Notify by: E-Mail → Phone · tester · Nov 30 14:05`` (a preference: ``Pickup reminder: …``)."""
        label = _HISTORY_LABELS.get(self.field, self.field.removeprefix(HISTORY_PREFIX))
        when = self.changed_at.astimezone().strftime("%b %d %H:%M")
        old, new = self.old_value or "(none)", self.new_value or "(none)"
        return f"{label}: {old} → {new} · {self.changed_by} · {when}"


_HISTORY_LABELS = {"notification_method": "Notify by", "delivery_method": "Delivery", CARRIER_FIELD: "SMS carrier"}


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
    methods: Methods = field(default_factory=Methods)
    #: Changes of the methods, newest first.
    history: tuple[MethodChange, ...] = ()
    #: The per-event channels (None only for cards built by hand in tests of older code).
    preferences: PatronPreferences | None = None
    #: The carrier whose e-mail-to-SMS gateway reaches the patron ('' = unknown).
    sms_carrier: str = ""
    #: The shared carrier table's names, for the card's carrier list.
    carriers: tuple[str, ...] = ()
    #: The shared SMS transport (``off``, ``gateway``, ``twilio``): the gateway needs a carrier.
    sms_transport: str = "off"


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
    #: What a method change did to requests waiting for contact (one sentence each), for the message bar.
    regrouped: tuple[str, ...] = field(default_factory=tuple)


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
    sms = load_sms_settings(db)
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
            address=PostalAddress(
                patron.address1, patron.address2, patron.city, patron.state, patron.zip, patron.country
            ),
            locations=location_choices(session),
            methods=Methods(patron.notification_method, patron.delivery_method),
            history=tuple(
                MethodChange(h.field, h.old_value, h.new_value, h.changed_by, h.changed_at, h.note)
                for h in session.scalars(
                    select(PatronHistory)
                    .where(PatronHistory.patron_id == patron.id)
                    .order_by(PatronHistory.changed_at.desc(), PatronHistory.id.desc())
                    .limit(20)
                )
            ),
            preferences=read_preferences(session, patron),
            sms_carrier=patron.sms_carrier,
            carriers=tuple(sorted(sms.gateways, key=str.casefold)),
            sms_transport=sms.transport,
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


def check_methods(methods: Methods, points: Sequence[CardPoint], address: PostalAddress) -> dict[str, str]:
    """Problems with the chosen methods given the card's contact points and address (keys ``methods.*``).

    A patron notified by E-Mail needs an e-mail address (else every notice fails), by Phone a phone number;
    Mail to Address needs a postal address.
    """
    problems: dict[str, str] = {}
    try:
        notification = NotificationMethod(methods.notification)
    except ValueError:
        problems["methods.notification"] = (
            f"Unknown notification method {methods.notification!r}: choose E-Mail, Phone or Mail."
        )
    else:
        kinds = {p.kind for p in points if p.value.strip()}
        if notification is NotificationMethod.EMAIL and ContactKind.EMAIL.value not in kinds:
            problems["methods.notification"] = (
                "E-Mail needs an e-mail address: add one to this card first, or choose Phone or Mail."
            )
        elif notification is NotificationMethod.PHONE and ContactKind.PHONE.value not in kinds:
            problems["methods.notification"] = (
                "Phone needs a phone number: add one to this card first, or choose E-Mail or Mail."
            )
    try:
        delivery = DeliveryMethod(methods.delivery)
    except ValueError:
        problems["methods.delivery"] = (
            f"Unknown delivery method {methods.delivery!r}: choose Hold for Pickup or Mail to Address."
        )
    else:
        has_address = bool(address.address1.strip() and (address.city.strip() or address.zip.strip()))
        if delivery is DeliveryMethod.MAIL_TO_ADDRESS and not has_address:
            problems["methods.delivery"] = (
                "Mail to Address needs a postal address: fill in Street and City or ZIP, or choose Hold for Pickup."
            )
    return problems


def save_card(
    db: Database,
    patron_id: int,
    expected_version: int,
    points: Sequence[CardPoint],
    address: PostalAddress,
    *,
    methods: Methods | None = None,
    channels: Mapping[NoticeEvent, Preference] | None = None,
    sms_carrier: str | None = None,
    staff: str = "",
    region: str = "US",
    clock: Clock = utcnow,
) -> SaveResult:
    """Replace the patron's contact points and address with the card's, if nobody saved since it was loaded.

    Points with an ``id`` update that row; points without one are added; rows not on the card are removed.
    Per kind, the first point marked primary is the primary (or the first point, when none is marked).
    ``methods`` (when given and different) changes the notification and delivery methods, recorded as
    ``staff`` in ``patron_history``, and regroups the requests waiting for contact (see the module's doc).
    ``channels`` (per event; an event left out keeps what it has) and ``sms_carrier`` (None: unchanged) are saved
    after the methods, with history lines; problems are keyed ``channels.<event>`` and ``sms_carrier``.

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
            current = Methods(patron.notification_method, patron.delivery_method)
            changing = methods is not None and methods != current
            if methods is not None and changing:
                if not staff.strip():
                    raise ValidationError("A staff name is needed to change a patron's methods.", {"staff": "required"})
                problems.update(check_methods(methods, points, address))
            if channels:
                problems.update({f"channels.{k}": v for k, v in preference_problems(channels).items()})
            if sms_carrier is not None and (too_long := carrier_problem(sms_carrier)):
                problems["sms_carrier"] = too_long
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
            regrouped: list[str] = []
            if methods is not None and changing:
                session.flush()
                session.refresh(patron, ["contact_points"])
                regrouped = _change_methods(session, patron, current, methods, staff.strip(), clock())
            now = clock()
            who = staff.strip()
            written = bool(channels) and apply_preferences(session, patron, channels or {}, staff=who, now=now)
            if sms_carrier is not None:
                written = apply_carrier(session, patron, sms_carrier, staff=who, now=now) or written
            if written and not who:
                raise ValidationError("A staff name is needed to change a patron's channels.", {"staff": "required"})
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
    return SaveResult(version_id=version, warnings=tuple(warnings), regrouped=tuple(regrouped))


def _change_methods(
    session: Session, patron: Patron, old: Methods, new: Methods, staff: str, now: datetime
) -> list[str]:
    """Record the change and regroup the patron's requests waiting for contact; say what moved."""
    said: list[str] = []
    for name, before, after in (
        ("notification_method", old.notification, new.notification),
        ("delivery_method", old.delivery, new.delivery),
    ):
        if before != after:
            session.add(PatronHistory(patron_id=patron.id, field=name, old_value=before, new_value=after,
                                      changed_by=staff, changed_at=now))  # fmt: skip
    patron.notification_method = new.notification
    patron.delivery_method = new.delivery
    if old.notification == new.notification:
        return said
    waiting = list(
        session.scalars(
            select(Request)
            .where(Request.patron_id == patron.id, Request.status == Status.AWAITING_CUSTOMER_CONTACT.value)
            .order_by(Request.transaction_number)
        )
    )
    if not waiting:
        return said
    email = NotificationMethod.EMAIL.value
    if old.notification == email:
        reason = f"cancelled: the patron is now notified by {new.notification} (changed by {staff})"
        cancelled = 0
        for request in waiting:
            for notice in session.scalars(
                select(Notification).where(
                    Notification.request_id == request.id,
                    Notification.channel == EMAIL,
                    Notification.state.in_((PENDING, RETRYING, FAILED, NO_TEMPLATE)),
                )
            ):
                notice.state, notice.last_reply, notice.updated_at = CANCELLED, reason, now
                cancelled += 1
        said.append(
            f"{len(waiting)} request(s) waiting for contact moved to the {new.notification} group"
            + (f"; {cancelled} e-mail notice(s) cancelled." if cancelled else ".")
        )
    elif new.notification == email:
        queued = 0
        for request in waiting:
            if request.tracking and _queue_arrival(session, request, now):
                queued += 1
        said.append(
            f"{len(waiting)} request(s) waiting for contact moved to the E-Mail group; "
            f"{queued} arrival notice(s) queued for the System Manager."
        )
    else:
        said.append(f"{len(waiting)} request(s) waiting for contact moved to the {new.notification} group.")
    return said


def _queue_arrival(session: Session, request: Request, now: datetime) -> bool:
    """Queue the arrival notice of a request already waiting (an earlier one cancelled by a method change is
    revived: one notice per arrival, as the outbox's dedupe key says)."""
    notice_id = create_arrival_notice(session, request, request.tracking[-1], now=now)
    if notice_id is None:
        return False
    notice = session.get(Notification, notice_id)
    if notice is not None and notice.state == CANCELLED:
        email = next((c for c in request.patron.contact_points if c.kind == EMAIL and c.is_primary), None)
        notice.state, notice.last_reply, notice.next_attempt_at, notice.updated_at = PENDING, "", now, now
        notice.lease_owner, notice.lease_until = None, None
        if email is not None:
            notice.to_address = email.value
    return notice is not None and notice.state in (PENDING, RETRYING)


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
_ADDRESS_LABELS = {
    "address1": "Street",
    "address2": "Line 2",
    "city": "City",
    "state": "State",
    "zip": "ZIP",
    "country": "Country",
}


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
    where = first_key.removeprefix("channels.").replace("sms_carrier", "SMS carrier")
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
    patron.country = address.country.strip()
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
