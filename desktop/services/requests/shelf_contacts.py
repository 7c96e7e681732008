"""Hold-shelf reminders that staff make by hand: calls for Phone patrons, letters for Mail patrons.

The System Manager creates them as ``phone``/``print`` notices (:mod:`desktop.services.notices.shelf`);
Contact Customers lists each pending one as a row, and "Notified via Phone" / "Print Notifications" complete it:
the notice is marked sent (with a history line naming who), the request stays on the shelf. Calls are counted
per step: the calls logged since that step's reminder was created.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from desktop.db.models import CallLogEntry, Notification, NotificationAttempt, Request
from desktop.domain.statuses import NOTIFIED_STATUSES
from desktop.services.notices import outbox
from desktop.services.notices.shelf import PHONE, PRINT, REMINDER_PREFIX

_NOTIFIED = tuple(s.value for s in NOTIFIED_STATUSES)


def _open(channel: str | None = None) -> list[object]:
    conditions: list[object] = [
        Notification.dedupe_key.like(REMINDER_PREFIX + "%"),
        Notification.state == outbox.PENDING,
        Notification.channel.in_((channel,) if channel else (PHONE, PRINT)),
        Request.status.in_(_NOTIFIED),
    ]
    return conditions


def step_number(dedupe_key: str) -> int:
    """The 1-based step of a reminder notice (``reminder:<request>:<tracking>:<step>``)."""
    return int(dedupe_key.rsplit(":", 1)[1]) + 1


@dataclass(frozen=True, slots=True)
class OpenReminder:
    """A pending call or letter: which request, which step, since when, how many calls since then."""

    request_id: int
    notice_id: int
    step: int  # 1-based
    channel: str
    created_at: datetime
    calls: int
    last_call_at: datetime | None


def open_reminders(session: Session, request_ids: Sequence[int] | None = None) -> dict[int, OpenReminder]:
    """The oldest pending hand-made reminder of each request on the shelf (of ``request_ids`` if given)."""
    since = and_(CallLogEntry.request_id == Notification.request_id, CallLogEntry.called_at >= Notification.created_at)
    calls = select(func.count(CallLogEntry.id)).where(since).correlate(Notification).scalar_subquery()
    last = select(func.max(CallLogEntry.called_at)).where(since).correlate(Notification).scalar_subquery()
    query = (
        select(Notification.request_id, Notification.id, Notification.dedupe_key, Notification.channel,
               Notification.created_at, calls, last)
        .join(Request, Request.id == Notification.request_id)
        .where(*_open())  # type: ignore[arg-type]
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
