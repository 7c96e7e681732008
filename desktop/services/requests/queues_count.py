"""Cheap counting queries: is there any request at all, and how many wait in each queue.

The main window polls :func:`queue_snapshot` every few seconds so that changes made on other workstations show
up; it must stay one indexed aggregate (``ix_requests_status_tn`` covers ``GROUP BY status``) plus two primary
key look-ups and an index look-up of the newest ``updated_at``, never a read of the rows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import Request, Tracking
from desktop.domain.statuses import QUEUE_ORDER


@dataclass(frozen=True)
class QueueCount:
    """One queue (a status) and how many requests are in it."""

    status: str
    count: int


@dataclass(frozen=True)
class QueueSnapshot:
    """The counts of every queue plus a marker that moves whenever any request is added or changes status.

    Attributes:
        counts: every borrowing status in queue order (zero when empty), then any unknown stored status.
        last_tracking_id: highest Tracking id: a status change anywhere raises it.
        last_request_id: highest request id: an import or a new request raises it.
        last_updated_at: newest change to any request (an edit of a title on another workstation moves it).
    """

    counts: tuple[QueueCount, ...]
    last_tracking_id: int
    last_request_id: int
    last_updated_at: datetime | None = None

    @property
    def total(self) -> int:
        """Requests in all queues."""
        return sum(q.count for q in self.counts)

    def count(self, status: str) -> int:
        """Requests at ``status`` (0 for an unknown status)."""
        return next((q.count for q in self.counts if q.status == status), 0)

    @property
    def marker(self) -> tuple[int, int, datetime | None]:
        """What to compare between two polls to know whether rows may have changed."""
        return (self.last_tracking_id, self.last_request_id, self.last_updated_at)


def has_requests(db: Database) -> bool:
    """True when the database holds at least one request."""
    with db.read() as session:
        return session.scalar(select(Request.id).limit(1)) is not None


def queue_counts(db: Database) -> list[QueueCount]:
    """Requests per status, every borrowing status listed even when empty."""
    return list(queue_snapshot(db).counts)


def queue_snapshot(db: Database) -> QueueSnapshot:
    """Counts of every queue and the change marker, read in one transaction so they agree with each other."""
    with db.read() as session:
        found = dict(session.execute(select(Request.status, func.count()).group_by(Request.status)).all())
        last_tracking = session.scalar(select(func.coalesce(func.max(Tracking.id), 0))) or 0
        last_request = session.scalar(select(func.coalesce(func.max(Request.id), 0))) or 0
        last_updated = session.scalar(select(func.max(Request.updated_at)))
    known = [QueueCount(status.value, int(found.pop(status.value, 0))) for status in QUEUE_ORDER]
    # A status written by another system (an import with check=False) still gets a queue, after ours.
    extra = [QueueCount(status, int(n)) for status, n in sorted(found.items())]
    return QueueSnapshot(tuple(known + extra), int(last_tracking), int(last_request), last_updated)
