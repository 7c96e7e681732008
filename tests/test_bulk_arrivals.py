"""The first cycle after a big import (issue 22): arrival notices created in one set-based INSERT … SELECT are
exactly the notices the one-by-one path makes, and exactly once. Real SQLite files and real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from desktop.db.engine import Database, sqlite_url
from desktop.db.models import ContactPoint, NoticeTemplate, Patron, Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.database import open_database
from desktop.services.notices.outbox import create_arrival_notice
from desktop.services.notices.routing import bulk_arrival_notices, scan_arrivals
from desktop.services.notices.templates import ARTICLE_PICKUP
from tests.outbox_support import add_patron, add_request, notices

AWAITING = Status.AWAITING_CUSTOMER_CONTACT


def _library(db: Database) -> None:
    """Every kind of arrival the notice depends on: loan and article, primary / second / blank / no e-mail,
    a Phone patron (no notice), a request not waiting (none), and a deleted Article Pickup template."""
    add_request(db, add_patron(db, email="loan@example.org"), status=AWAITING)
    add_request(db, add_patron(db, email="copy@example.org"), status=AWAITING, request_type="Article")
    add_request(db, add_patron(db, email=None), status=AWAITING)
    add_request(db, add_patron(db, email="phone@example.org", method="Phone"), status=AWAITING)
    add_request(db, add_patron(db, email="sent@example.org"), status=Status.REQUEST_SENT)
    blank = add_patron(db, email="   ")
    add_request(db, blank, status=AWAITING)
    second = add_patron(db, email="old@example.org")
    with db.write() as session:  # a second address, marked primary, later in the list
        session.execute(update(ContactPoint).where(ContactPoint.patron_id == second).values(is_primary=False))
        session.add(ContactPoint(patron_id=second, kind="email", value="new@example.org", normalized="new@example.org",
                                 is_primary=True, position=1))  # fmt: skip
    add_request(db, second, status=AWAITING)
    with db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == ARTICLE_PICKUP).values(deleted=True))


def _shape(db: Database) -> list[tuple[object, ...]]:
    return sorted(
        (n.dedupe_key, n.template_name, n.state, n.to_address, n.last_reply, n.attempts, n.channel) for n in notices(db)
    )


def test_bulk_notices_are_the_ones_made_one_by_one(tmp_path: Path) -> None:
    bulk, one_by_one = (open_database(sqlite_url(tmp_path / f"{name}.sqlite3"))[0] for name in ("bulk", "one"))
    try:
        for db in (bulk, one_by_one):
            _library(db)
        now = utcnow()
        assert bulk_arrival_notices(bulk, now=now) == 5
        with one_by_one.write() as session:
            for request in session.scalars(select(Request).where(Request.status == AWAITING.value)):
                tracking = session.scalars(select(Tracking).where(Tracking.request_id == request.id)).one()
                create_arrival_notice(session, request, tracking, now=now)
        assert _shape(bulk) == _shape(one_by_one)
        states = {(n.to_address, n.state) for n in notices(bulk)}
        assert ("new@example.org", "pending") in states and ("", "failed") in states
        assert ("copy@example.org", "no_template") in states
    finally:
        bulk.dispose()
        one_by_one.dispose()


def test_each_arrival_gets_one_notice_however_often_it_is_scanned(any_db: Database) -> None:
    _library(any_db)
    assert scan_arrivals(any_db, now=utcnow()).created == 5
    assert bulk_arrival_notices(any_db, now=utcnow()) == 0
    assert scan_arrivals(any_db, now=utcnow()).created == 0
    assert len(notices(any_db)) == 5
    with any_db.read() as session:
        assert session.scalar(select(Patron.id).where(Patron.notification_method == "Phone")) is not None
