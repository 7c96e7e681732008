"""Changing a request's status: the one place that checks the transition and writes Tracking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from desktop.db.engine import Database
from desktop.db.models import Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.methods import DeliveryMethod
from desktop.domain.statuses import Status, check_transition
from desktop.services.errors import ConcurrentEditError, NotFoundError
from desktop.services.notices.outbox import create_arrival_notice

SYSTEM_USER = "System"


@dataclass(frozen=True)
class StatusChange:
    """A status change that was made, as plain data for the GUI and the command line."""

    request_id: int
    transaction_number: int
    from_status: str | None
    to_status: str
    tracking_id: int
    changed_by: str
    changed_at: datetime


def change_status(
    session: Session,
    request: Request,
    target: Status,
    changed_by: str,
    *,
    now: datetime | None = None,
    note: str = "",
    check: bool = True,
) -> Tracking:
    """Move ``request`` to ``target`` inside the caller's transaction and write its Tracking row.

    Two rules of the pickup path live here so every caller gets them: a Mail to Address patron's request sent
    to In Transit goes straight to Awaiting Customer Contact, and arriving at Awaiting Customer Contact creates
    the e-mail notice (:func:`desktop.services.notices.outbox.create_arrival_notice`) in the same transaction.

    Args:
        check: refuse transitions the workflow does not allow; only imports of another system's data pass
            False (they record a status, they do not perform a step).

    Raises:
        desktop.domain.statuses.TransitionError: the transition is not allowed.
    """
    now = now or utcnow()
    current = Status(request.status) if request.status else None
    if check and target is Status.IN_TRANSIT_TO_PICKUP and _mailed(request):
        # Mail to Address patrons skip In Transit to Pickup Location: there is no desk to wait at.
        target = Status.AWAITING_CUSTOMER_CONTACT
        note = note or "Mail to Address: skips In Transit"
    if check and current is not None:
        check_transition(current, target)
    request.status = target.value
    request.status_changed_at = now
    tracking = Tracking(
        request=request,
        from_status=current.value if current else None,
        to_status=target.value,
        changed_by=changed_by,
        changed_at=now,
        note=note,
    )
    session.add(tracking)
    session.flush()
    if target is Status.AWAITING_CUSTOMER_CONTACT:
        # The arrival e-mail notice is created in this same transaction: it exists exactly when the status does.
        create_arrival_notice(session, request, tracking, now=now)
    return tracking


def _mailed(request: Request) -> bool:
    return request.patron is not None and request.patron.delivery_method == DeliveryMethod.MAIL_TO_ADDRESS.value


def route_request(
    db: Database,
    transaction_number: int,
    target: Status,
    changed_by: str,
    *,
    expected_version: int | None = None,
    note: str = "",
) -> StatusChange:
    """Route one request as staff would (request form, ``callslip-manager route``), in one transaction.

    Args:
        expected_version: the version the caller showed; a newer one in the database means another
            workstation changed the request meanwhile, and the route is refused.

    Raises:
        NotFoundError: no such transaction number.
        ConcurrentEditError: the request changed since the caller read it.
        desktop.domain.statuses.TransitionError: the workflow does not allow the move.
    """
    try:
        with db.write() as session:
            request = session.scalar(select(Request).where(Request.transaction_number == transaction_number))
            if request is None:
                raise NotFoundError(f"no request with transaction number {transaction_number}")
            if expected_version is not None and request.version_id != expected_version:
                raise ConcurrentEditError(
                    f"request {transaction_number} was changed on another workstation "
                    f"(now at {request.status!r}); reopen it to see the change"
                )
            previous = request.status
            tracking = change_status(session, request, target, changed_by, note=note)
            return StatusChange(
                request_id=request.id,
                transaction_number=request.transaction_number,
                from_status=previous,
                to_status=tracking.to_status,
                tracking_id=tracking.id,
                changed_by=changed_by,
                changed_at=tracking.changed_at,
            )
    except StaleDataError:
        raise ConcurrentEditError(
            f"request {transaction_number} was changed on another workstation while saving; reopen it"
        ) from None
