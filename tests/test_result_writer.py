"""Recording notice outcomes on a held connection: the lease rule, the request's move, history, failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Notification, NotificationAttempt, Request, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status, TransitionError
from desktop.services.notices import outbox
from desktop.services.notices.result_writer import Advance, ResultWriter, _statements
from tests.outbox_support import add_patron, add_request, bulk_arrivals, move, notices, plan_nodes, request_status


def notified(request_id: int) -> Advance:
    return Advance(request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL, "System", "accepted: 250")


def arrival(db: Database) -> tuple[int, int, outbox.Claim]:
    """A request at Awaiting Customer Contact and its notice, claimed: (request id, notice id, claim)."""
    request_id = add_request(db, add_patron(db))
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    claim = outbox.claim_due(db, "A", limit=1, lease_seconds=60, now=utcnow() + timedelta(seconds=1))
    [notice_id] = claim.ids
    return request_id, notice_id, claim


def version(db: Database, request_id: int) -> int:
    with db.read() as session:
        return int(session.scalar(select(Request.version_id).where(Request.id == request_id)) or 0)


def history(db: Database, notice_id: int) -> list[tuple[str, str, str]]:
    with db.read() as session:
        rows = session.execute(
            select(NotificationAttempt.outcome, NotificationAttempt.worker, NotificationAttempt.reply)
            .where(NotificationAttempt.notification_id == notice_id)
            .order_by(NotificationAttempt.id)
        ).all()
    return [(outcome, worker, reply) for outcome, worker, reply in rows]


def tracking_count(db: Database, request_id: int) -> int:
    with db.read() as session:
        return len(session.scalars(select(Tracking.id).where(Tracking.request_id == request_id)).all())


def test_sent_moves_the_request_with_tracking_in_one_transaction(any_db: Database) -> None:
    request_id, notice_id, claim = arrival(any_db)
    before = version(any_db, request_id)
    now = utcnow()
    writer = ResultWriter(any_db)
    try:
        assert writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 2.0.0 OK", worker="A",
                             now=now, values={"attempts": 1, "sent_at": now, "subject": "Arrived", "secret": None},
                             advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
    [notice] = notices(any_db)
    assert (notice.state, notice.attempts, notice.subject, notice.lease_owner) == ("sent", 1, "Arrived", None)
    assert notice.sent_at is not None and abs(notice.sent_at - now) < timedelta(seconds=1)
    assert history(any_db, notice_id) == [("sent", "A", "250 2.0.0 OK")]
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value
    assert version(any_db, request_id) == before + 1  # a form holding the old version sees the change
    with any_db.read() as session:
        line = session.scalars(
            select(Tracking).where(Tracking.request_id == request_id).order_by(Tracking.id.desc())
        ).first()
        assert line is not None
        assert (line.from_status, line.to_status, line.changed_by, line.note) == (
            Status.AWAITING_CUSTOMER_CONTACT.value,
            Status.NOTIFIED_VIA_EMAIL.value,
            "System",
            "accepted: 250",
        )


def test_a_request_that_moved_on_is_left_where_staff_put_it(any_db: Database) -> None:
    request_id, notice_id, claim = arrival(any_db)
    move(any_db, request_id, Status.NOTIFIED_VIA_PHONE)
    lines, before = tracking_count(any_db, request_id), version(any_db, request_id)
    writer = ResultWriter(any_db)
    try:
        assert writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                             now=utcnow(), advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
    assert notices(any_db)[0].state == "sent"  # the e-mail did go out: that is recorded
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_PHONE.value
    assert (tracking_count(any_db, request_id), version(any_db, request_id)) == (lines, before)


def test_a_lost_lease_records_nothing(any_db: Database) -> None:
    request_id, notice_id, claim = arrival(any_db)
    later = utcnow() + timedelta(seconds=120)
    taken = outbox.claim_due(any_db, "B", limit=1, lease_seconds=60, now=later)
    assert taken.ids == (notice_id,)
    writer = ResultWriter(any_db)
    try:
        assert not writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                                 now=later, advance=notified(request_id))  # fmt: skip
        # The new owner still can.
        assert writer.record(notice_id, taken.token, state="retrying", outcome="retrying", reply="451 later",
                             worker="B", now=later, values={"attempts": 1})  # fmt: skip
    finally:
        writer.close()
    assert history(any_db, notice_id) == [("retrying", "B", "451 later")]
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value


def test_a_refused_write_loses_nothing_and_the_writer_goes_on(any_db: Database) -> None:
    request_id, notice_id, claim = arrival(any_db)
    writer = ResultWriter(any_db)
    try:
        with pytest.raises(Exception, match=r"(?i)null"):
            writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                          now=utcnow(), values={"template_name": None}, advance=notified(request_id))  # fmt: skip
        assert notices(any_db)[0].state == "pending" and history(any_db, notice_id) == []
        assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
        assert writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                             now=utcnow(), advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
    assert request_status(any_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


def test_unknown_columns_and_impossible_moves_are_refused(any_db: Database) -> None:
    _, notice_id, claim = arrival(any_db)
    writer = ResultWriter(any_db)
    try:
        with pytest.raises(ValueError, match="not columns of notifications: colour"):
            writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="", worker="A", now=utcnow(),
                          values={"colour": "red"})  # fmt: skip
        backwards = Advance(1, Status.NOTIFIED_VIA_EMAIL, Status.REQUEST_SENT, "System")
        with pytest.raises(TransitionError, match="cannot move to"):
            writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="", worker="A", now=utcnow(),
                          advance=backwards)  # fmt: skip
    finally:
        writer.close()
    assert notices(any_db)[0].state == "pending"


def test_the_connection_goes_back_to_the_pool_as_it_came(any_db: Database) -> None:
    writer = ResultWriter(any_db)
    writer.close()
    writer.close()  # twice is harmless
    raw = any_db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        if any_db.backend == "postgresql":
            assert driver.autocommit is False
            assert driver.execute("SHOW statement_timeout").fetchone()[0] == "0"
        else:
            assert driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        raw.close()


def test_a_writer_records_many_outcomes_in_a_row(any_db: Database) -> None:
    """One writer records outcome after outcome of changing shapes and values (on PostgreSQL psycopg prepares the
    statement on the server after a few uses: the prepared form records the same as the first ones)."""
    arrivals = [arrival(any_db) for _ in range(8)]
    writer = ResultWriter(any_db)
    try:
        for n, (request_id, notice_id, claim) in enumerate(arrivals):
            now = utcnow()
            if n % 3 == 2:  # a temporary failure now and then: other columns, no request move
                assert writer.record(notice_id, claim.token, state="retrying", outcome="retrying", reply="451 later",
                                     worker="A", now=now, values={"attempts": 1, "next_attempt_at": now,
                                                                  "message_id": f"<m{n}@example.org>"})  # fmt: skip
            else:
                assert writer.record(notice_id, claim.token, state="sent", outcome="sent", reply=f"250 OK {n}",
                                     worker="A", now=now, values={"attempts": 1, "sent_at": now, "secret": None,
                                                                  "subject": f"Arrived {n}"},
                                     advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
    for n, (request_id, notice_id, _claim) in enumerate(arrivals):
        expected = Status.AWAITING_CUSTOMER_CONTACT if n % 3 == 2 else Status.NOTIFIED_VIA_EMAIL
        assert request_status(any_db, request_id) == expected.value
        reply = "451 later" if n % 3 == 2 else f"250 OK {n}"
        assert history(any_db, notice_id) == [("retrying" if n % 3 == 2 else "sent", "A", reply)]


@pytest.mark.postgres
def test_a_record_held_up_by_a_lock_gives_up_after_the_timeout(pg_db: Database) -> None:
    """Another program holding the notice's row: the record is given up after ``timeout`` as a database error
    (which the outbox retries on a fresh connection while the lease lasts), not waited for forever."""
    request_id, notice_id, claim = arrival(pg_db)
    blocker = pg_db.engine.raw_connection()
    driver = blocker.driver_connection
    assert driver is not None
    writer = ResultWriter(pg_db, timeout=0.5)
    try:
        driver.execute("SELECT id FROM notifications WHERE id = %s FOR UPDATE", (notice_id,))
        with pytest.raises(Exception, match="statement timeout"):
            writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                          now=utcnow(), advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
        driver.rollback()
        blocker.close()
    assert notices(pg_db)[0].state == "pending" and history(pg_db, notice_id) == []
    writer = ResultWriter(pg_db)
    try:
        assert writer.record(notice_id, claim.token, state="sent", outcome="sent", reply="250 OK", worker="A",
                             now=utcnow(), advance=notified(request_id))  # fmt: skip
    finally:
        writer.close()
    assert request_status(pg_db, request_id) == Status.NOTIFIED_VIA_EMAIL.value


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql", "postgresql-steps"])
def test_the_request_is_found_by_its_key_however_long_the_queue(pg_db: Database, backend: str) -> None:
    """On a database without fresh statistics (new, or just filled by an import) PostgreSQL rated the status
    index as cheap as the primary key and walked it on every record: each record read every request at Awaiting
    Customer Contact. The plan of both forms of the record (one statement; step by step for a digest) must read
    the one request by its key, with a long queue waiting and no ANALYZE run."""
    ids = bulk_arrivals(pg_db, 400)
    claim = outbox.claim_due(pg_db, "A", limit=1, lease_seconds=60, now=utcnow() + timedelta(seconds=1))
    [notice_id] = claim.ids
    assert notice_id in ids
    with pg_db.read() as session:
        request_id = session.scalar(select(Notification.request_id).where(Notification.id == notice_id))
    now = utcnow()
    changes = {"state": "sent", "lease_owner": None, "lease_until": None, "last_reply": "250", "updated_at": now}
    sql = _statements(backend, frozenset(changes), True)
    params: dict[str, object] = {f"v_{k}": v for k, v in changes.items()} | {
        "b_id": notice_id, "b_token": claim.token, "a_at": now, "a_worker": "A", "a_outcome": "sent", "a_reply": "250",
        "r_id": request_id, "t_from": Status.AWAITING_CUSTOMER_CONTACT.value, "t_to": Status.NOTIFIED_VIA_EMAIL.value,
        "t_by": "System", "t_at": now, "t_note": "",
    }  # fmt: skip
    raw = pg_db.engine.raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor:
            statement = sql.notice if backend == "postgresql" else sql.advance
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
            [[[plan]]] = cursor.fetchall()
        driver.rollback()
    finally:
        raw.close()
    scans = [n for n in plan_nodes(plan["Plan"]) if n.get("Relation Name") == "requests" and "Scan" in n["Node Type"]]
    assert [(s["Node Type"], s.get("Index Name"), s.get("Rows Removed by Filter", 0)) for s in scans] == [
        ("Index Scan", "pk_requests", 0)
    ]
    assert scans[0]["Actual Rows"] == 1  # the request did move (in the transaction rolled back above)
