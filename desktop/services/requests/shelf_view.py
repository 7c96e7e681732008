"""What the Hold Shelf view shows: every request on the shelf with its days waiting, reminders sent, the hold's end
and the next step, computed by the same rules the System Manager uses (:mod:`desktop.domain.shelf`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, PickupLocation, Request
from desktop.domain.clock import utcnow
from desktop.domain.methods import request_title
from desktop.domain.shelf import ShelfError, expires_at, plan, reminder_window
from desktop.services.admin.shelf_settings import local_date, read_shelf_settings
from desktop.services.notices import outbox
from desktop.services.notices.shelf import REMINDER_PREFIX, shelved_rows


@dataclass(frozen=True, slots=True)
class ShelfItem:
    """One request on the shelf, as the view lists it.

    Attributes:
        ends_in: days from today to the hold's last day (0: it ends today, 1: tomorrow, negative: over, the
            System Manager expires it at its next cycle).
    """

    request_id: int
    transaction_number: int
    patron: str
    title: str
    status: str
    pickup: str
    notified_on: date
    days_waiting: int
    reminders_sent: int
    hold_end: date
    ends_in: int
    next_step: str


@dataclass(frozen=True)
class ShelfListing:
    """The shelf as read at ``today`` (the library's day)."""

    items: tuple[ShelfItem, ...]
    today: date

    def histogram(self, buckets: int = 15) -> list[int]:
        """Items per days on the shelf: index ``n`` counts ``n`` days, the last bucket that many or more."""
        counts = Counter(min(item.days_waiting, buckets - 1) for item in self.items)
        return [counts.get(n, 0) for n in range(buckets)]


def load_shelf(db: Database, *, now: datetime | None = None) -> ShelfListing:
    """Read the shelf: three queries whatever its size (rows, their names and titles, sent reminders)."""
    now = now or utcnow()
    with db.read() as session:
        shelf = read_shelf_settings(session)
        rows = shelved_rows(session)
        pickup_name = func.coalesce(PickupLocation.name, "")
        own = func.coalesce(Request.pickup_location_id, Patron.pickup_location_id)
        names = {
            rid: (" ".join(p for p in (first, last) if p) or username, request_title(rtype, loan, article, journal), pn)
            for rid, first, last, username, rtype, loan, article, journal, pn in session.execute(
                select(
                    Request.id,
                    Patron.first_name,
                    Patron.last_name,
                    Patron.username,
                    Request.request_type,
                    Request.loan_title,
                    Request.photo_article_title,
                    Request.photo_journal_title,
                    pickup_name,
                )
                .join(Patron, Patron.id == Request.patron_id)
                .outerjoin(PickupLocation, PickupLocation.id == own)
                .where(Request.status.in_({r.status for r in rows} or {""}))
            )
        }
        sent = Counter(
            (int(rid or 0), int(tid or 0))
            for rid, tid in session.execute(  # every sent reminder; only the current stay's are counted
                select(Notification.request_id, Notification.tracking_id).where(
                    Notification.dedupe_key.like(REMINDER_PREFIX + "%"), Notification.state == outbox.SENT
                )
            )
        )
    tz = shelf.tz
    today = now.astimezone(tz).date()
    items: list[ShelfItem] = []
    for row in rows:
        patron, title, pickup = names.get(row.request_id, ("", "", ""))
        notified_on = local_date(row.notified_at, tz)
        policy = shelf.policy(row.pickup_id)
        try:
            end, planned = plan(notified_on, row.hold_days, policy, shelf.closed)
        except ShelfError as exc:
            end, planned, problem = notified_on, [], str(exc)
        else:
            problem = ""
        next_step = problem
        if not next_step:
            for item in planned:
                if item.day is None:
                    continue
                _start, stop = reminder_window(item.day, policy, tz)
                if now < stop:
                    step = policy.steps[item.step]
                    when = "today" if item.day == today else item.day.isoformat()
                    next_step = f"Reminder {item.step + 1} ({step.describe()}) {when}"
                    break
            else:
                ends = expires_at(end, tz)
                next_step = (
                    "Goes back to the lender at the next cycle" if now >= ends else (f"Expires after {end.isoformat()}")
                )
        items.append(
            ShelfItem(
                row.request_id,
                row.transaction_number,
                patron,
                title,
                row.status,
                pickup,
                notified_on,
                max(0, (today - notified_on).days),
                sent.get((row.request_id, row.tracking_id), 0),
                end,
                (end - today).days,
                next_step,
            )
        )
    return ShelfListing(tuple(items), today)
