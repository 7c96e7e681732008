"""One request as the request form shows it (with its Tracking and Notifications), and saving staff's edits.

Saving is optimistic: the form sends the version it showed, and a newer version in the database (another
workstation saved or routed meanwhile) refuses the save with :class:`ConcurrentEditError`, so nobody silently
overwrites somebody else's change. Status changes do not go through here: they are routes
(:func:`desktop.services.requests.status.route_request`), which write Tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.engine import Database
from desktop.db.models import CallLogEntry, Notification, Patron, PickupLocation, Request, RequestNote
from desktop.domain.clock import utcnow
from desktop.domain.methods import RequestType
from desktop.domain.statuses import Status, allowed_transitions
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.notices.fallback import fallback_steps
from desktop.services.notices.notice_context import primary_contact
from desktop.services.notices.outbox import EMAIL, FAILED, PENDING, RETRYING
from desktop.services.requests.contact_customers import CallNote, notice_state_text


@dataclass(frozen=True)
class TrackingEntry:
    """One status change: from, to, who, when."""

    id: int
    from_status: str | None
    to_status: str
    changed_by: str
    changed_at: datetime
    note: str


@dataclass(frozen=True)
class NotificationEntry:
    """One notice sent (or being sent, or failed) about the request, with its full text."""

    id: int
    channel: str
    template_name: str
    to_address: str
    subject: str
    state: str
    attempts: int
    last_reply: str
    created_at: datetime
    sent_at: datetime | None
    body_text: str
    next_attempt_at: datetime | None = None

    @property
    def state_text(self) -> str:
        """The state in words: ``pending``, ``retrying at 14:05 (attempt 2): reason``, ``failed: reason``."""
        return notice_state_text(self.state, self.last_reply, self.attempts, self.next_attempt_at)

    @property
    def waiting_or_failed(self) -> bool:
        """An e-mail the desk should know about: still to be sent, or given up."""
        return self.channel == EMAIL and self.state in (PENDING, RETRYING, FAILED)


@dataclass(frozen=True)
class NoteEntry:
    """A note on the request (typed in Callslip or imported from ILLiad's Notes): who, when, what."""

    id: int
    noted_at: datetime
    added_by: str
    note_type: str
    note: str


#: The longest note staff may add (ILLiad's Notes field is about this size; longer text belongs elsewhere).
MAX_NOTE = 4000


@dataclass(frozen=True)
class PickupChoice:
    """A pickup location offered in the form."""

    id: int
    code: str
    name: str


@dataclass(frozen=True)
class RequestEdit:
    """The fields staff may edit in the request form (status changes are routes, not edits)."""

    loan_title: str
    loan_author: str
    photo_journal_title: str
    photo_article_title: str
    due_date: date | None
    call_number: str
    lending_library: str
    pickup_location_id: int | None


@dataclass(frozen=True)
class RequestDetails:
    """Everything the request form shows, as plain data read in one transaction.

    Attributes:
        version: the optimistic-lock version; pass it back to :func:`save_request` / ``route_request``.
        allowed_routes: statuses the request may be routed to from here, in queue order.
        pickup_location_name: the request's own pickup location, else the patron's, else blank.
    """

    request_id: int
    transaction_number: int
    version: int
    status: str
    status_changed_at: datetime | None
    allowed_routes: tuple[str, ...]
    request_type: str
    loan_title: str
    loan_author: str
    photo_journal_title: str
    photo_article_title: str
    title: str
    due_date: date | None
    call_number: str
    lending_library: str
    transaction_date: datetime | None
    pickup_location_id: int | None
    pickup_location_name: str
    patron_id: int
    patron_name: str
    patron_username: str
    notification_method: str
    delivery_method: str
    primary_email: str
    primary_phone: str
    tracking: tuple[TrackingEntry, ...]
    notifications: tuple[NotificationEntry, ...]
    #: Phone calls logged for this request (all waits), with the notes typed with them, oldest first.
    calls: tuple[CallNote, ...] = ()
    #: Notes on the request (staff's and ILLiad-imported), oldest first.
    notes: tuple[NoteEntry, ...] = ()
    #: Each move of a notice to the patron's next channel, oldest first (issue 18): ``(when, by, what)``, e.g.
    #: ``e-mail failed: 550 5.1.1 user unknown (notice 12) → phone call (notice 13)``.
    fallbacks: tuple[tuple[datetime, str, str], ...] = ()

    @property
    def is_article(self) -> bool:
        """Articles show journal/article title instead of title/author."""
        return self.request_type == RequestType.ARTICLE.value

    def edit(self) -> RequestEdit:
        """The editable fields as they are now (the form compares against this to mark unsaved fields)."""
        return RequestEdit(**{f.name: getattr(self, f.name) for f in fields(RequestEdit)})


def _allowed(status: str) -> tuple[str, ...]:
    try:
        current = Status(status)
    except ValueError:  # a status imported from another system: staff may only reopen it
        return (Status.AWAITING_REQUEST_PROCESSING.value,)
    allowed = allowed_transitions(current)
    return tuple(s.value for s in Status if s in allowed)


def _load(session: Session, transaction_number: int) -> Request:
    request = session.scalar(
        select(Request)
        .where(Request.transaction_number == transaction_number)
        .options(
            selectinload(Request.tracking),
            selectinload(Request.patron).selectinload(Patron.contact_points),
            selectinload(Request.patron).selectinload(Patron.pickup_location),
            selectinload(Request.pickup_location),
        )
    )
    if request is None:
        raise NotFoundError(f"no request with transaction number {transaction_number}")
    return request


def _details(session: Session, request: Request) -> RequestDetails:
    patron = request.patron
    email = primary_contact(patron, "email")
    phone = primary_contact(patron, "phone")
    pickup = request.pickup_location or patron.pickup_location
    notices = session.scalars(
        select(Notification).where(Notification.request_id == request.id).order_by(Notification.id)
    )
    return RequestDetails(
        request_id=request.id,
        transaction_number=request.transaction_number,
        version=request.version_id,
        status=request.status,
        status_changed_at=request.status_changed_at,
        allowed_routes=_allowed(request.status),
        request_type=request.request_type,
        loan_title=request.loan_title,
        loan_author=request.loan_author,
        photo_journal_title=request.photo_journal_title,
        photo_article_title=request.photo_article_title,
        title=request.title,
        due_date=request.due_date,
        call_number=request.call_number,
        lending_library=request.lending_library,
        transaction_date=request.transaction_date,
        pickup_location_id=request.pickup_location_id,
        pickup_location_name=pickup.name if pickup else "",
        patron_id=patron.id,
        patron_name=patron.full_name,
        patron_username=patron.username,
        notification_method=patron.notification_method,
        delivery_method=patron.delivery_method,
        primary_email=email.value if email else "",
        primary_phone=phone.value if phone else "",
        tracking=tuple(
            TrackingEntry(t.id, t.from_status, t.to_status, t.changed_by, t.changed_at, t.note)
            for t in request.tracking
        ),
        notifications=tuple(
            NotificationEntry(
                id=n.id,
                channel=n.channel,
                template_name=n.template_name,
                to_address=n.to_address,
                subject=n.subject,
                state=n.state,
                attempts=n.attempts,
                last_reply=n.last_reply,
                created_at=n.created_at,
                sent_at=n.sent_at,
                body_text=n.body_text,
                next_attempt_at=n.next_attempt_at if n.state == RETRYING else None,
            )
            for n in notices
        ),
        calls=tuple(
            CallNote(c.called_at, c.staff, c.outcome, c.note)
            for c in session.scalars(
                select(CallLogEntry)
                .where(CallLogEntry.request_id == request.id)
                .order_by(CallLogEntry.called_at, CallLogEntry.id)
            )
        ),
        notes=tuple(
            NoteEntry(n.id, n.noted_at, n.added_by, n.note_type, n.note)
            for n in session.scalars(
                select(RequestNote)
                .where(RequestNote.request_id == request.id)
                .order_by(RequestNote.noted_at, RequestNote.id)
            )
        ),
        fallbacks=tuple(fallback_steps(session, request.id)),
    )


def get_request(db: Database, transaction_number: int) -> RequestDetails:
    """The request with its patron's contact summary, Tracking and Notifications.

    Raises:
        NotFoundError: no such transaction number.
    """
    with db.read() as session:
        return _details(session, _load(session, transaction_number))


def add_note(db: Database, transaction_number: int, text: str, added_by: str) -> NoteEntry:
    """Add a staff note to the request, recording who wrote it and when.

    A note does not change the request's version: it is added beside the request, so it never conflicts with
    somebody else's edit of the request's fields.

    Raises:
        NotFoundError: no such request.
        ValidationError: the note is empty or longer than :data:`MAX_NOTE` characters.
    """
    text = text.strip()
    if not text:
        raise ValidationError("the note is empty", {"note": "empty"})
    if len(text) > MAX_NOTE:
        raise ValidationError(f"a note has at most {MAX_NOTE} characters ({len(text)} typed)", {"note": "too long"})
    with db.write() as session:
        request_id = session.scalar(select(Request.id).where(Request.transaction_number == transaction_number))
        if request_id is None:
            raise NotFoundError(f"no request with transaction number {transaction_number}")
        note = RequestNote(request_id=request_id, noted_at=utcnow(), note=text, added_by=added_by, note_type="Staff")
        session.add(note)
        session.flush()
        return NoteEntry(note.id, note.noted_at, note.added_by, note.note_type, note.note)


def pickup_choices(db: Database) -> list[PickupChoice]:
    """Active pickup locations, for the form's combo box."""
    with db.read() as session:
        rows = session.scalars(
            select(PickupLocation).where(PickupLocation.active.is_(True)).order_by(PickupLocation.name)
        )
        return [PickupChoice(p.id, p.code, p.name) for p in rows]


_LIMITS = {
    "loan_title": 500,
    "loan_author": 300,
    "photo_journal_title": 500,
    "photo_article_title": 500,
    "call_number": 100,
    "lending_library": 200,
}


def validate_edit(edit: RequestEdit, request_type: str) -> dict[str, str]:
    """Problems with ``edit``, by field name (empty when it can be saved)."""
    problems: dict[str, str] = {}
    for name, limit in _LIMITS.items():
        value: str = getattr(edit, name)
        if len(value) > limit:
            problems[name] = f"at most {limit} characters ({len(value)} typed)"
    if request_type == RequestType.ARTICLE.value:
        if not (edit.photo_journal_title.strip() or edit.photo_article_title.strip()):
            problems["photo_journal_title"] = "an article needs a journal title or an article title"
    elif not edit.loan_title.strip():
        problems["loan_title"] = "a loan needs a title"
    return problems


def save_request(db: Database, transaction_number: int, edit: RequestEdit, *, expected_version: int) -> RequestDetails:
    """Save staff's edits if nobody else changed the request since ``expected_version`` was read.

    Returns:
        The request as saved (with its new version).

    Raises:
        NotFoundError: the request is gone.
        ValidationError: a field cannot be saved (``problems`` by field name); nothing was written.
        ConcurrentEditError: another workstation saved or routed it first; nothing was written.
    """
    try:
        with db.write() as session:
            request = _load(session, transaction_number)
            if request.version_id != expected_version:
                raise ConcurrentEditError(
                    f"request {transaction_number} was changed on another workstation "
                    f"(now at {request.status!r}, last changed {request.updated_at:%Y-%m-%d %H:%M} UTC); "
                    "your edits were not saved and are still in the form"
                )
            problems = validate_edit(edit, request.request_type)
            if problems:
                raise ValidationError("the request cannot be saved: " + "; ".join(problems.values()), problems)
            if edit.pickup_location_id is not None and session.get(PickupLocation, edit.pickup_location_id) is None:
                raise ValidationError("that pickup location no longer exists", {"pickup_location_id": "unknown"})
            changed = False
            for f in fields(RequestEdit):
                new = getattr(edit, f.name)
                if isinstance(new, str):
                    new = new.strip()
                if getattr(request, f.name) != new:
                    setattr(request, f.name, new)
                    changed = True
            if changed:
                session.flush()
            return _details(session, request)
    except StaleDataError:
        raise ConcurrentEditError(
            f"request {transaction_number} was changed on another workstation while saving; "
            "your edits were not saved and are still in the form"
        ) from None
