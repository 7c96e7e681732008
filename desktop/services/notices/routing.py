"""Routing (In Transit → Awaiting Customer Contact after the pickup location's delay) and finding arrivals
that have no notice yet (requests put at Awaiting Customer Contact by an import or another program).

Both run at the start of every System Manager cycle, in short write transactions of at most ``chunk``
requests, so a large backlog never holds the SQLite write lock for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, String, and_, case, cast, exists, false, func, literal, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, selectinload
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    NoticeTemplate,
    Notification,
    Patron,
    PatronChannelPreference,
    PickupLocation,
    Request,
    Tracking,
)
from desktop.db.types import UTCDateTime
from desktop.domain.channels import Channel, NoticeEvent
from desktop.domain.methods import DeliveryMethod, NotificationMethod, RequestType
from desktop.domain.statuses import Status
from desktop.services.notices.outbox import (
    EMAIL,
    FAILED,
    NO_EMAIL_REASON,
    NO_TEMPLATE,
    PENDING,
    create_arrival_notice,
    no_template_reason,
)
from desktop.services.notices.templates import ARTICLE_PICKUP, LOAN_PICKUP
from desktop.services.requests.status import SYSTEM_USER, change_status

CHUNK = 500
OUTSIDE_NOTE = "status set outside Callslip (no Tracking); recorded by the System Manager"


def _due_condition(session: Session, now: datetime) -> ColumnElement[bool]:
    """SQL for "this In Transit request is due", with each pickup location's delay turned into a cut-off time.

    Mail to Address patrons are due at once (they skip In Transit); a request without a pickup location uses
    its patron's, and with neither the delay is 0.
    """
    pickup_id = func.coalesce(Request.pickup_location_id, Patron.pickup_location_id)
    conditions = [
        Patron.delivery_method == DeliveryMethod.MAIL_TO_ADDRESS.value,
        and_(pickup_id.is_(None), Request.status_changed_at <= now),
    ]
    for location_id, delay in session.execute(select(PickupLocation.id, PickupLocation.routing_delay_minutes)):
        cutoff = now - timedelta(minutes=max(delay or 0, 0))
        conditions.append(and_(pickup_id == location_id, Request.status_changed_at <= cutoff))
    return or_(false(), *conditions)


def route_due_requests(db: Database, *, now: datetime, chunk: int = CHUNK) -> list[int]:
    """Move every due In Transit request to Awaiting Customer Contact (Tracking by "System"); return their ids.

    The arrival e-mail notice is created by :func:`desktop.services.requests.status.change_status` in the same
    transaction as each move.
    """
    routed: list[int] = []
    while True:
        with db.write() as session:
            requests = session.scalars(
                select(Request)
                .join(Patron, Patron.id == Request.patron_id)
                .where(Request.status == Status.IN_TRANSIT_TO_PICKUP.value, _due_condition(session, now))
                .order_by(Request.id)
                .limit(chunk)
                .options(selectinload(Request.patron).selectinload(Patron.contact_points))
            ).all()
            for request in requests:
                mailed = request.patron.delivery_method == DeliveryMethod.MAIL_TO_ADDRESS.value
                note = "Mail to Address: skips In Transit" if mailed else "routed after the pickup location's delay"
                change_status(session, request, Status.AWAITING_CUSTOMER_CONTACT, SYSTEM_USER, now=now, note=note)
                routed.append(request.id)
        if len(requests) < chunk:
            return routed


@dataclass(frozen=True)
class ArrivalScan:
    """What :func:`scan_arrivals` did."""

    created: int
    recorded_outside: int


def scan_arrivals(db: Database, *, now: datetime, chunk: int = CHUNK) -> ArrivalScan:
    """Create the missing notice (e-mail or text) of every request at Awaiting Customer Contact whose patron is
    told automatically.

    A request whose newest Tracking row is not its arrival at Awaiting Customer Contact was put there without
    Tracking (another program wrote the database): the scan records the arrival (by "System", with a note)
    so the notice has a Tracking entry to belong to, and a later return makes a new notice.
    """
    created = bulk_arrival_notices(db, now=now)
    outside = 0
    last_id = 0
    while True:
        try:
            batch = _scan_chunk(db, now, last_id, chunk)
        except StaleDataError:
            # Another System Manager recorded the same outside arrival first; its notice exists now.
            continue
        if batch is None:
            return ArrivalScan(created=created, recorded_outside=outside)
        last_id, made, recorded = batch
        created += made
        outside += recorded


def _ready_preference(*, stored: bool) -> ColumnElement[bool]:
    """SQL: the patron has a stored "Item ready for pickup" preference (``stored``), or has none."""
    found = exists().where(
        PatronChannelPreference.patron_id == Patron.id,
        PatronChannelPreference.event == NoticeEvent.READY_FOR_PICKUP.value,
    )
    return found if stored else ~found


def _automatic_first() -> ColumnElement[bool]:
    """SQL: the patron's stored "Item ready for pickup" preference starts with an automatic channel.

    A pre-filter in the stored form (:func:`desktop.domain.channels.format_preference`); which channel it is
    is decided by :func:`desktop.services.notices.outbox.create_arrival_notice`.
    """
    return exists().where(
        PatronChannelPreference.patron_id == Patron.id,
        PatronChannelPreference.event == NoticeEvent.READY_FOR_PICKUP.value,
        or_(
            PatronChannelPreference.channels.like(f"{Channel.EMAIL.value}%"),
            PatronChannelPreference.channels.like(f"{Channel.SMS.value}%"),
        ),
    )


def bulk_arrival_notices(db: Database, *, now: datetime) -> int:
    """Create, in one set-based ``INSERT … SELECT``, the missing notice of every e-mail patron's request whose
    newest Tracking row is its arrival at Awaiting Customer Contact; return how many were created.

    Only patrons without a stored "Item ready for pickup" preference are made here (the common case after an
    import: they follow their notification method); a patron with one — who may want a text first — is left to
    :func:`_scan_chunk`, which asks :func:`create_arrival_notice` per arrival.

    The first cycle after a big import finds thousands of arrivals: created one by one (a request loaded, its
    patron and contact points, one INSERT each) 20,000 took 37 s; in one statement they take about as long as the
    raw INSERT … SELECT (docs/PERFORMANCE.md, first_cycle). Each notice is what :func:`create_arrival_notice`
    makes for the same arrival: the same dedupe key, template, primary e-mail address (the one marked primary,
    else the first by position), and ``no_template`` / ``failed`` state with the same reason. The dedupe key's
    unique index with ``ON CONFLICT DO NOTHING`` keeps it exactly-once when two System Managers scan at once.
    Arrivals recorded outside Callslip (no Tracking row for them) are left to :func:`_scan_chunk`.
    """
    awaiting = Status.AWAITING_CUSTOMER_CONTACT.value
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Request.id).correlate(Request).scalar_subquery()
    # The primary address is joined (its id chosen once per row), not selected as a scalar subquery: the outer
    # SELECT uses it four times, and SQLite would run a scalar subquery for each use.
    email_point = aliased(ContactPoint)
    primary_email_id = (
        select(ContactPoint.id)
        .where(ContactPoint.patron_id == Request.patron_id, ContactPoint.kind == EMAIL)
        .order_by(case((ContactPoint.is_primary, 0), else_=1), ContactPoint.position, ContactPoint.id)
        .limit(1)
        .correlate(Request)
        .scalar_subquery()
    )
    template = case((Request.request_type == RequestType.ARTICLE.value, ARTICLE_PICKUP), else_=LOAN_PICKUP)
    arrivals = (
        select(
            Request.id.label("request_id"),
            Request.patron_id.label("patron_id"),
            Tracking.id.label("tracking_id"),
            template.label("template_name"),
            email_point.value.label("email"),
        )
        .join(Patron, Patron.id == Request.patron_id)
        .join(Tracking, Tracking.id == latest)
        .outerjoin(email_point, email_point.id == primary_email_id)
        .where(
            Request.status == awaiting,
            Patron.notification_method == NotificationMethod.EMAIL.value,
            _ready_preference(stored=False),
            Tracking.to_status == awaiting,
            ~exists().where(Notification.request_id == Request.id, Notification.tracking_id == Tracking.id),
        )
        .subquery()
    )
    no_email = or_(arrivals.c.email.is_(None), func.trim(arrivals.c.email) == "")
    with db.write() as session:
        unusable = [name for name in (ARTICLE_PICKUP, LOAN_PICKUP) if not _template_usable(session, name)]
        state = case(
            (arrivals.c.template_name.in_(unusable), NO_TEMPLATE) if unusable else (false(), NO_TEMPLATE),
            (no_email, FAILED),
            else_=PENDING,
        )
        reason = case(
            *[(arrivals.c.template_name == name, no_template_reason(name)) for name in unusable],
            (no_email, NO_EMAIL_REASON),
            else_="",
        )
        when = literal(now, UTCDateTime())
        values = {
            "dedupe_key": literal("arrival:")
            + cast(arrivals.c.request_id, String)
            + ":"
            + arrivals.c.template_name
            + ":"
            + cast(arrivals.c.tracking_id, String),
            "channel": literal(EMAIL),
            "template_name": arrivals.c.template_name,
            "request_id": arrivals.c.request_id,
            "patron_id": arrivals.c.patron_id,
            "tracking_id": arrivals.c.tracking_id,
            "state": state,
            "to_address": func.coalesce(arrivals.c.email, ""),
            "cc": literal(""),
            "bcc": literal(""),
            "from_address": literal(""),
            "subject": literal(""),
            "body_text": literal(""),
            "body_html": literal(""),
            "message_id": literal(""),
            "attempts": literal(0),
            "next_attempt_at": when,
            "last_reply": reason,
            "created_at": when,
            "updated_at": when,
        }
        insert_fn = postgresql.insert if db.backend == "postgresql" else sqlite.insert
        statement = (
            insert_fn(Notification)
            .from_select(list(values), select(*values.values()).select_from(arrivals).where(true()))
            .on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        )
        # Executed as Core on the session's connection (no ORM bulk-insert bookkeeping). Counted by SQLite's own
        # changes() count (the driver's rowcount, exact there); PostgreSQL's rowcount of an INSERT … SELECT … ON
        # CONFLICT came back -1 or 0 through psycopg, so there the ids come back to be counted. RETURNING on
        # SQLite buffered and converted 20,000 rows in Python: a quarter of the first cycle after an import.
        connection = session.connection()
        if db.backend == "sqlite":
            return int(connection.execute(statement).rowcount)
        return len(connection.execute(statement.returning(Notification.id)).all())


def _template_usable(session: Session, name: str) -> bool:
    """As the outbox decides it: the template exists and is not deleted."""
    deleted = session.scalar(select(NoticeTemplate.deleted).where(NoticeTemplate.name == name))
    return deleted is not None and not deleted


def _scan_chunk(db: Database, now: datetime, after_id: int, chunk: int) -> tuple[int, int, int] | None:
    """One chunk of :func:`scan_arrivals`: (last request id seen, notices created, outside arrivals recorded)."""
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Request.id).correlate(Request).scalar_subquery()
    created = outside = 0
    with db.write() as session:
        rows = session.execute(
            select(Request.id, Tracking.id, Tracking.to_status)
            .join(Patron, Patron.id == Request.patron_id)
            .outerjoin(Tracking, Tracking.id == latest)
            .where(
                Request.status == Status.AWAITING_CUSTOMER_CONTACT.value,
                # E-Mail patrons, and patrons whose stored preference may start with E-Mail or SMS (a patron
                # whose preference turns out to start with Phone or Mail gets no notice and is looked at again).
                or_(Patron.notification_method == NotificationMethod.EMAIL.value, _automatic_first()),
                ~exists().where(Notification.request_id == Request.id, Notification.tracking_id == Tracking.id),
                Request.id > after_id,
            )
            .order_by(Request.id)
            .limit(chunk)
        ).all()
        if not rows:
            return None
        requests = {
            r.id: r
            for r in session.scalars(
                select(Request)
                .where(Request.id.in_([row[0] for row in rows]))
                .options(selectinload(Request.patron).selectinload(Patron.contact_points))
            )
        }
        for request_id, tracking_id, to_status in rows:
            request = requests[request_id]
            if tracking_id is None or to_status != Status.AWAITING_CUSTOMER_CONTACT.value:
                # change_status creates the notice itself for the arrival it records.
                change_status(
                    session,
                    request,
                    Status.AWAITING_CUSTOMER_CONTACT,
                    SYSTEM_USER,
                    now=now,
                    note=OUTSIDE_NOTE,
                    check=False,
                )
                outside += 1
                created += 1
                continue
            tracking = session.get(Tracking, tracking_id)
            assert tracking is not None
            if create_arrival_notice(session, request, tracking, now=now) is not None:
                created += 1
        return rows[-1][0], created, outside
