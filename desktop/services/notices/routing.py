"""Routing (In Transit → Awaiting Customer Contact after the pickup location's delay) and finding arrivals
that have no notice yet (requests put at Awaiting Customer Contact by an import or another program).

Both run at the start of every System Manager cycle, in short write transactions of at most ``chunk``
requests, so a large backlog never holds the SQLite write lock for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, PickupLocation, Request, Tracking
from desktop.domain.methods import DeliveryMethod, NotificationMethod
from desktop.domain.statuses import Status
from desktop.services.notices.outbox import create_arrival_notice
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
    """Create the missing notice of every e-mail patron's request at Awaiting Customer Contact.

    A request whose newest Tracking row is not its arrival at Awaiting Customer Contact was put there without
    Tracking (another program wrote the database): the scan records the arrival (by "System", with a note)
    so the notice has a Tracking entry to belong to, and a later return makes a new notice.
    """
    created = outside = 0
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
                Patron.notification_method == NotificationMethod.EMAIL.value,
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
