"""Hold-shelf reminders that staff make by hand: calls for Phone patrons, letters for Mail patrons.

The System Manager creates them as ``phone``/``print`` notices (:mod:`desktop.services.notices.shelf`);
Contact Customers lists each pending one as a row, and "Notified via Phone" / "Print Notifications" complete it:
the notice is marked sent (with a history line naming who), the request stays on the shelf. Calls are counted
per step: the calls logged since that step's reminder was created.

An e-mailed or texted reminder that failed for good may be followed by a call or letter on the patron's next
channel (:mod:`desktop.services.notices.fallback`): its key is the reminder's plus ``:fb<failed notice id>``, so it
is listed and counted as that reminder's step, and its reason (``text failed: …``) is its last reply.

A hold that ended unclaimed makes one more of these when the policy wants expiry notices: the "hold ended" call or
letter (an ``expired:`` notice, step 0) of a request at Awaiting Return to Lender since that expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from desktop.db.models import CallLogEntry, Notification, NotificationAttempt, Request, Tracking
from desktop.domain.statuses import NOTIFIED_STATUSES, Status
from desktop.services.notices import outbox
from desktop.services.notices.shelf import EXPIRED_PREFIX, PHONE, PRINT, REMINDER_PREFIX, reminder_step

_NOTIFIED = tuple(s.value for s in NOTIFIED_STATUSES)


def open_hand_notice(notice: type[Notification] | Any = Notification) -> ColumnElement[bool]:
    """SQL: ``notice`` (a Notification alias, joined to its Request) is a call or letter still to make.

    A reminder while its request is on the shelf; a "hold ended" notice while its request waits at Awaiting Return
    to Lender since that expiry (the notice names the Tracking row of the move there).
    """
    latest = select(func.max(Tracking.id)).where(Tracking.request_id == Request.id).correlate(Request).scalar_subquery()
    return and_(
        notice.state == outbox.PENDING,
        notice.channel.in_((PHONE, PRINT)),
        or_(
            and_(notice.dedupe_key.like(REMINDER_PREFIX + "%"), Request.status.in_(_NOTIFIED)),
            and_(
                notice.dedupe_key.like(EXPIRED_PREFIX + "%"),
                Request.status == Status.AWAITING_RETURN_TO_LENDER.value,
                notice.tracking_id == latest,
            ),
        ),
    )


def step_number(dedupe_key: str) -> int:
    """The 1-based step of a reminder notice (``reminder:<request>:<tracking>:<step>``, or a fallback's call or
    letter taking over from it, ``…:<step>:fb<failed notice id>``); 0 for a "hold ended" notice
    (``expired:<request>:<tracking>``, with or without the ``:fb`` part)."""
    if dedupe_key.startswith(EXPIRED_PREFIX):
        return 0
    return reminder_step(dedupe_key) + 1


@dataclass(frozen=True, slots=True)
class OpenReminder:
    """A pending call or letter: which request, which step, since when, how many calls since then."""

    request_id: int
    notice_id: int
    step: int  # 1-based; 0: the "hold ended" call or letter
    channel: str
    created_at: datetime
    calls: int
    last_call_at: datetime | None

    @property
    def expired(self) -> bool:
        """Whether this is the "hold ended" call or letter rather than a pickup reminder."""
        return self.step == 0

    @property
    def label(self) -> str:
        """``Reminder 2`` / ``Hold ended``: how the call log and the notice's history name it."""
        return "Hold ended" if self.expired else f"Reminder {self.step}"


def open_reminders(session: Session, request_ids: Sequence[int] | None = None) -> dict[int, OpenReminder]:
    """The oldest pending call or letter of each request on the shelf or just off it (of ``request_ids`` if
    given)."""
    since = and_(CallLogEntry.request_id == Notification.request_id, CallLogEntry.called_at >= Notification.created_at)
    calls = select(func.count(CallLogEntry.id)).where(since).correlate(Notification).scalar_subquery()
    last = select(func.max(CallLogEntry.called_at)).where(since).correlate(Notification).scalar_subquery()
    query = (
        select(Notification.request_id, Notification.id, Notification.dedupe_key, Notification.channel,
               Notification.created_at, calls, last)
        .join(Request, Request.id == Notification.request_id)
        .where(open_hand_notice())
        .order_by(Notification.id.desc())
    )  # fmt: skip
    if request_ids is not None:
        query = query.where(Notification.request_id.in_(list(request_ids)))
    found: dict[int, OpenReminder] = {}
    for rid, nid, key, channel, created, count, last_call in session.execute(query):
        found[int(rid)] = OpenReminder(int(rid), int(nid), step_number(key), channel, created, int(count or 0),
                                       last_call)  # fmt: skip
    return found


def complete_reminder(session: Session, reminder: OpenReminder, how: str, staff: str, now: datetime) -> None:
    """Mark a call or letter done: the notice is sent (by ``staff``); the request stays on the shelf."""
    notice = session.get(Notification, reminder.notice_id)
    if notice is None or notice.state != outbox.PENDING:
        return
    reply = f"{how} by {staff}"
    notice.state, notice.sent_at, notice.updated_at, notice.last_reply = outbox.SENT, now, now, reply
    notice.attempts = (notice.attempts or 0) + 1
    session.add(NotificationAttempt(notification_id=notice.id, attempted_at=now, worker=staff, outcome=outbox.SENT,
                                    reply=reply))  # fmt: skip
