"""E-mail sent by hand from the request form (ILLiad's "Send E-mail" menu and E-mail History "Resend").

Staff pick a notification template, read it rendered for this request, and send it; the request then moves to
the status the template routes to (a pickup notice: Customer Notified via E-Mail), with Tracking. Nothing is
sent from the GUI: the notice goes into the outbox in the same transaction as the route, and a System Manager
sends it exactly once like every other notice (``staff:`` notices, :data:`outbox.STAFF_PREFIX`, are sent
whatever the request's status and move nothing themselves). Each hand-sent notice gets a history line naming
who asked for it, so the audit trail says why a patron got a second e-mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, NotificationAttempt, Patron, Request
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status, allowed_transitions
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.notices import outbox, templates
from desktop.services.notices.notice_context import primary_contact
from desktop.services.notices.template_admin import Preview, load_template_by_name, preview_template
from desktop.services.requests.status import change_status

#: The status each template routes a request to once it is sent by hand (absent: the request stays where it is,
#: as for a reminder). The pickup notices say "your item is here", which is what Notified via E-Mail records; the
#: expiry notice says the hold is over, which is Awaiting Return to Lender.
TEMPLATE_ROUTES: dict[str, Status] = {
    templates.LOAN_PICKUP: Status.NOTIFIED_VIA_EMAIL,
    templates.ARTICLE_PICKUP: Status.NOTIFIED_VIA_EMAIL,
    templates.PICKUP_EXPIRED: Status.AWAITING_RETURN_TO_LENDER,
}

#: Templates that cannot be sent by hand: a reset e-mail needs a fresh link (Reset E-mail Password does that).
NOT_BY_HAND = frozenset({templates.PASSWORD_RESET})


@dataclass(frozen=True)
class EmailPlan:
    """What sending ``template_name`` would do, for the form's preview before staff confirm.

    Attributes:
        route_to: the status the request moves to when sent, or ``None`` (it stays).
        route_note: why it does not move, in words ("" when it moves or the template routes nowhere).
        version: the request's version shown; :func:`send_email` refuses if it changed.
    """

    transaction_number: int
    template_name: str
    preview: Preview
    status: str
    route_to: str | None
    route_note: str
    version: int


def email_templates(db: Database) -> list[str]:
    """Names of the e-mail templates staff may send by hand (not deleted), in name order."""
    with db.read() as session:
        names = session.scalars(
            select(NoticeTemplate.name)
            .where(NoticeTemplate.channel == outbox.EMAIL, NoticeTemplate.deleted.is_(False))
            .order_by(NoticeTemplate.name)
        )
        return [name for name in names if name not in NOT_BY_HAND]


def _target(template_name: str, status: str) -> tuple[Status | None, str]:
    """Where sending moves a request at ``status``: ``(target, "")``, or ``(None, why it stays)``."""
    target = TEMPLATE_ROUTES.get(template_name)
    if target is None or target.value == status:
        return None, ""
    try:
        current = Status(status)
    except ValueError:
        return None, f"a request at {status!r} is not moved by an e-mail"
    if target not in allowed_transitions(current):
        return None, f"a request at {status!r} cannot move to {target.value!r}, so it stays where it is"
    return target, ""


def plan_email(db: Database, settings: Settings, transaction_number: int, template_name: str) -> EmailPlan:
    """Render ``template_name`` for the request and say where sending it would move the request.

    Raises:
        NotFoundError: no such request or template.
        ValidationError: the template may not be sent by hand.
    """
    if template_name in NOT_BY_HAND:
        raise ValidationError(f"the {template_name!r} e-mail is sent by Reset E-mail Password, not by hand")
    record = load_template_by_name(db, template_name)
    with db.read() as session:
        request = session.scalar(select(Request).where(Request.transaction_number == transaction_number))
        if request is None:
            raise NotFoundError(f"no request with transaction number {transaction_number}")
        status, version = request.status, request.version_id
    preview = preview_template(db, record.fields, settings, transaction_number=transaction_number)
    target, note = _target(template_name, status)
    return EmailPlan(
        transaction_number, template_name, preview, status, target.value if target else None, note, version
    )


def _staff_notice(
    session: Session, request: Request, template_name: str, staff: str, token: str, reply: str, now: datetime
) -> int:
    """Queue one hand-sent notice about ``request`` with its audit line; the same ``token`` queues it once."""
    key = f"{outbox.STAFF_PREFIX}{request.id}:{token}"
    existing = session.scalar(select(Notification.id).where(Notification.dedupe_key == key))
    if existing is not None:  # the same confirmation arrived twice: it was queued already
        return int(existing)
    email = primary_contact(request.patron, outbox.EMAIL)
    deleted = session.scalar(select(NoticeTemplate.deleted).where(NoticeTemplate.name == template_name))
    state, reason = outbox.PENDING, ""
    if deleted is None or deleted:
        state, reason = outbox.NO_TEMPLATE, outbox.no_template_reason(template_name)
    elif email is None or not email.value.strip():
        state, reason = outbox.FAILED, outbox.NO_EMAIL_REASON
    notice = Notification(
        dedupe_key=key,
        channel=outbox.EMAIL,
        template_name=template_name,
        request_id=request.id,
        patron_id=request.patron_id,
        tracking_id=None,
        state=state,
        to_address=email.value if email else "",
        last_reply=reason,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        attempts=0,
    )
    session.add(notice)
    session.flush()
    session.add(NotificationAttempt(notification_id=notice.id, attempted_at=now, worker=staff, outcome="queued",
                                    reply=reply))  # fmt: skip
    return notice.id


def _request(session: Session, transaction_number: int) -> Request:
    request = session.scalar(
        select(Request)
        .where(Request.transaction_number == transaction_number)
        .options(selectinload(Request.patron).selectinload(Patron.contact_points))
    )
    if request is None:
        raise NotFoundError(f"no request with transaction number {transaction_number}")
    return request


def send_email(
    db: Database, transaction_number: int, template_name: str, staff: str, *, expected_version: int, token: str
) -> int:
    """Queue ``template_name`` for the request and route it as the template says, in one transaction.

    Args:
        expected_version: the version the preview showed; a newer one refuses (the preview may be out of date).
        token: unique per confirmation (the form makes one per preview), so a repeated call queues nothing more.

    Returns:
        The new notice's id.

    Raises:
        NotFoundError, ValidationError, ConcurrentEditError.
    """
    if template_name in NOT_BY_HAND:
        raise ValidationError(f"the {template_name!r} e-mail is sent by Reset E-mail Password, not by hand")
    now = utcnow()
    try:
        with db.write() as session:
            request = _request(session, transaction_number)
            if request.version_id != expected_version:
                raise ConcurrentEditError(
                    f"request {transaction_number} was changed on another workstation (now at {request.status!r}); "
                    "nothing was sent: look at it again and send once more"
                )
            target, _why = _target(template_name, request.status)
            notice_id = _staff_notice(
                session, request, template_name, staff, token, f"sent by hand by {staff} from the request form", now
            )
            if target is not None:
                change_status(session, request, target, staff, now=now, note=f"E-mail {template_name!r} sent by hand")
            return notice_id
    except StaleDataError:
        raise ConcurrentEditError(
            f"request {transaction_number} was changed on another workstation while sending; nothing was sent"
        ) from None


def resend_notice(db: Database, notice_id: int, staff: str, *, token: str) -> int:
    """Send a past notice of a request again, as a new outbox notice rendered from its template now.

    The old notice keeps its history; both get a line saying who asked for the resend. The request does not
    move (the patron was told already).

    Returns:
        The new notice's id.

    Raises:
        NotFoundError: the notice is gone.
        ValidationError: it is not an e-mail about a request, or it is a password reset (reset again instead).
    """
    now = utcnow()
    with db.write() as session:
        old = session.get(Notification, notice_id)
        if old is None:
            raise NotFoundError(f"there is no notice {notice_id}")
        if old.channel != outbox.EMAIL or old.request_id is None:
            raise ValidationError("only e-mails about a request can be sent again from the request form")
        if old.template_name in NOT_BY_HAND:
            raise ValidationError("a password reset e-mail cannot be resent: reset the password again")
        request = session.get(Request, old.request_id)
        if request is None:
            raise NotFoundError("the notice's request is gone")
        request = _request(session, request.transaction_number)
        new_id = _staff_notice(
            session, request, old.template_name, staff, token, f"resend of notice {old.id} requested by {staff}", now
        )
        session.add(NotificationAttempt(notification_id=old.id, attempted_at=now, worker=staff, outcome="resent",
                                        reply=f"sent again as notice {new_id} on request of {staff}"))  # fmt: skip
        return new_id
