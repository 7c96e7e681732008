"""The one status-change service: transitions checked, Tracking written, stale versions refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Request, Tracking
from desktop.domain.statuses import Status, TransitionError
from desktop.services.errors import ConcurrentEditError, NotFoundError
from desktop.services.requests.status import route_request


def _request_at(db: Database, status: Status) -> tuple[int, int]:
    with db.read() as session:
        row = session.execute(
            select(Request.transaction_number, Request.version_id).where(Request.status == status.value).limit(1)
        ).one()
        return int(row[0]), int(row[1])


def test_route_writes_tracking(seeded_db: Database) -> None:
    number, _ = _request_at(seeded_db, Status.REQUEST_SENT)
    change = route_request(seeded_db, number, Status.IN_TRANSIT_TO_PICKUP, "alice", note="received")
    assert (change.from_status, change.to_status, change.changed_by) == (
        "Request Sent",
        "In Transit to Pickup Location",
        "alice",
    )
    with seeded_db.read() as session:
        last = session.scalar(select(Tracking).where(Tracking.id == change.tracking_id))
        assert last is not None
        assert (last.from_status, last.to_status, last.changed_by, last.note) == (
            "Request Sent",
            "In Transit to Pickup Location",
            "alice",
            "received",
        )
        request = session.scalar(select(Request).where(Request.transaction_number == number))
        assert request is not None and request.status == "In Transit to Pickup Location"
        assert request.status_changed_at == last.changed_at


def test_disallowed_route_changes_nothing(seeded_db: Database) -> None:
    number, version = _request_at(seeded_db, Status.REQUEST_FINISHED)
    with pytest.raises(TransitionError):
        route_request(seeded_db, number, Status.AWAITING_CUSTOMER_CONTACT, "alice")
    assert _request_at(seeded_db, Status.REQUEST_FINISHED)[1] == version
    with seeded_db.read() as session:
        count = len(session.scalars(select(Tracking).join(Request).where(Request.transaction_number == number)).all())
    assert count == 1


def test_stale_version_is_refused(seeded_db: Database) -> None:
    number, version = _request_at(seeded_db, Status.AWAITING_REQUEST_PROCESSING)
    route_request(seeded_db, number, Status.REQUEST_SENT, "bob", expected_version=version)
    with pytest.raises(ConcurrentEditError, match="another workstation"):
        route_request(seeded_db, number, Status.CANCELLED_BY_STAFF, "carol", expected_version=version)


def test_unknown_request(seeded_db: Database) -> None:
    with pytest.raises(NotFoundError):
        route_request(seeded_db, 1, Status.REQUEST_SENT, "alice")
