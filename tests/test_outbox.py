"""The outbox on real SQLite files and real PostgreSQL: notices created with the status change, dedupe keys,
states for missing templates and addresses, retries, claims and leases."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, NotificationAttempt, Tracking
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.notices import outbox
from desktop.services.notices.result_writer import ResultWriter
from desktop.services.requests.status import route_request
from tests.outbox_support import add_patron, add_request, bulk_arrivals, move, notices, plan_nodes, request_status


def test_arrival_creates_one_notice_in_the_same_transaction(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db))
    move(any_db, request_id, Status.IN_TRANSIT_TO_PICKUP)
    assert notices(any_db) == []
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    [notice] = notices(any_db)
    with any_db.read() as session:
        arrival = session.execute(
            select(Tracking.id, Tracking.to_status)
            .where(Tracking.request_id == request_id)
            .order_by(Tracking.id.desc())
        ).first()
    assert arrival is not None and arrival.to_status == Status.AWAITING_CUSTOMER_CONTACT.value
    assert notice.state == "pending"
    assert notice.template_name == "Loan Pickup"
    assert notice.dedupe_key == f"arrival:{request_id}:Loan Pickup:{arrival.id}"
    assert notice.tracking_id == arrival.id
    assert notice.to_address == "patron@example.org"


def test_a_failed_status_change_leaves_no_notice(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db))
    with pytest.raises(RuntimeError), any_db.write() as session:
        from desktop.db.models import Request
        from desktop.services.requests.status import change_status

        request = session.get(Request, request_id)
        assert request is not None
        change_status(session, request, Status.AWAITING_CUSTOMER_CONTACT, "tester")
        raise RuntimeError("the rest of the unit of work failed")
    assert notices(any_db) == []
    assert request_status(any_db, request_id) == Status.REQUEST_SENT.value


def test_article_uses_article_pickup_and_phone_patrons_get_no_email(any_db: Database) -> None:
    article = add_request(any_db, add_patron(any_db), request_type="Article")
    phoned = add_request(any_db, add_patron(any_db, method="Phone"))
    move(any_db, article, Status.AWAITING_CUSTOMER_CONTACT)
    move(any_db, phoned, Status.AWAITING_CUSTOMER_CONTACT)
    [notice] = notices(any_db)
    assert notice.request_id == article and notice.template_name == "Article Pickup"


def test_mail_to_address_patrons_skip_in_transit(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db, delivery="Mail to Address"))
    with any_db.read() as session:
        from desktop.db.models import Request

        tn = session.get(Request, request_id).transaction_number  # type: ignore[union-attr]
    change = route_request(any_db, tn, Status.IN_TRANSIT_TO_PICKUP, "tester")
    assert change.to_status == Status.AWAITING_CUSTOMER_CONTACT.value
    assert request_status(any_db, request_id) == Status.AWAITING_CUSTOMER_CONTACT.value
    assert len(notices(any_db, request_id=request_id)) == 1


def test_no_email_address_fails_with_a_reason(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db, email=None))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    [notice] = notices(any_db)
    assert notice.state == "failed"
    assert "no e-mail address" in notice.last_reply


def test_deleted_template_gives_no_template(any_db: Database) -> None:
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(deleted=True))
    request_id = add_request(any_db, add_patron(any_db))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    [notice] = notices(any_db)
    assert notice.state == "no_template"
    assert "no template: not sent" in notice.last_reply
    info = outbox.arrival_notices(any_db, [request_id])[request_id]
    assert info.explanation == "no template: not sent"
    # Restored while the request still waits: tidy makes it pending again.
    with any_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(deleted=False))
    assert outbox.tidy(any_db, now=utcnow()).revived == 1
    assert notices(any_db)[0].state == "pending"


def test_a_return_to_the_status_makes_a_new_notice(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    move(any_db, request_id, Status.NOTIFIED_VIA_PHONE)
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    first, second = notices(any_db)
    assert first.dedupe_key != second.dedupe_key
    assert outbox.tidy(any_db, now=utcnow()).cancelled == 1
    first, second = notices(any_db)
    assert first.state == "cancelled" and second.state == "pending"


def test_dedupe_key_makes_a_second_insert_a_no_op(any_db: Database) -> None:
    patron_id = add_patron(any_db)
    with any_db.write() as session:
        a = outbox.queue_patron_notice(session, patron_id=patron_id, template_name="Password Reset",
                                       to_address="p@example.org", dedupe_key="reset:1", secret='{"link": "x"}')  # fmt: skip
    with any_db.write() as session:
        b = outbox.queue_patron_notice(session, patron_id=patron_id, template_name="Password Reset",
                                       to_address="p@example.org", dedupe_key="reset:1")  # fmt: skip
    assert a == b and len(notices(any_db)) == 1


def test_queue_patron_notice_refuses_broken_secret(any_db: Database) -> None:
    patron_id = add_patron(any_db)
    with pytest.raises(json.JSONDecodeError), any_db.write() as session:
        outbox.queue_patron_notice(session, patron_id=patron_id, template_name="Password Reset",
                                   to_address="p@example.org", dedupe_key="reset:2", secret="{not json")  # fmt: skip


def test_retry_notices_puts_failed_ones_back_with_history(any_db: Database) -> None:
    waiting = add_request(any_db, add_patron(any_db, email=None))
    move(any_db, waiting, Status.AWAITING_CUSTOMER_CONTACT)
    assert notices(any_db)[0].state == "failed"
    assert outbox.retry_notices(any_db, [waiting], "tester") == 1
    [notice] = notices(any_db)
    assert notice.state == "pending" and notice.attempts == 0
    with any_db.read() as session:
        [line] = session.execute(
            select(NotificationAttempt.outcome, NotificationAttempt.worker).where(
                NotificationAttempt.notification_id == notice.id
            )
        ).all()
    assert tuple(line) == ("retry", "tester")
    assert outbox.retry_notices(any_db, [waiting], "tester") == 0  # pending is not retryable again
    assert outbox.retry_notices(any_db, [], "tester") == 0


def test_claims_do_not_overlap_and_a_lost_lease_cannot_record(any_db: Database) -> None:
    patron_id = add_patron(any_db)
    for _ in range(5):
        move(any_db, add_request(any_db, patron_id), Status.AWAITING_CUSTOMER_CONTACT)
    now = utcnow() + timedelta(seconds=1)
    first = outbox.claim_due(any_db, "A", limit=3, lease_seconds=60, now=now)
    second = outbox.claim_due(any_db, "B", limit=10, lease_seconds=60, now=now)
    assert len(first.ids) == 3 and len(second.ids) == 2
    assert not set(first.ids) & set(second.ids)
    assert outbox.claim_due(any_db, "C", limit=10, lease_seconds=60, now=now).ids == ()
    # A stalls past its lease; C takes over the first notice.
    later = now + timedelta(seconds=61)
    taken = outbox.claim_due(any_db, "C", limit=1, lease_seconds=60, now=later)
    assert taken.ids == (first.ids[0],)
    writer = ResultWriter(any_db)
    try:
        assert not writer.record(first.ids[0], first.token, state="sent", outcome="sent", reply="250 ok", worker="A",
                                 now=later)  # fmt: skip
        assert writer.record(first.ids[1], first.token, state="sent", outcome="sent", reply="250 ok", worker="A",
                             now=later)  # fmt: skip
    finally:
        writer.close()
    states = {n.id: n.state for n in notices(any_db)}
    assert states[first.ids[0]] == "pending" and states[first.ids[1]] == "sent"
    # Released notices are due again at once.
    assert outbox.release(any_db, second.token, second.ids, "not sent yet: test") == 2
    assert set(outbox.claim_due(any_db, "D", limit=10, lease_seconds=60, now=now).ids) == set(second.ids)


def test_backoff_grows_and_is_capped() -> None:
    assert outbox.backoff(1) == timedelta(minutes=1)
    assert outbox.backoff(3) == timedelta(minutes=4)
    assert outbox.backoff(30) == timedelta(hours=1)


def test_notice_history_and_next_due(any_db: Database) -> None:
    request_id = add_request(any_db, add_patron(any_db))
    move(any_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    [notice] = notices(any_db)
    assert outbox.next_due_at(any_db) == notice.next_attempt_at
    assert outbox.count_waiting(any_db) == 1
    with any_db.write() as session:
        session.execute(update(Notification).values(state="failed"))
    assert outbox.next_due_at(any_db) is None and outbox.count_waiting(any_db) == 0
    assert outbox.notice_history(any_db, notice.id) == []


class _Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a statement, its parameters bound as SQLAlchemy binds them when it runs the statement."""

    inherit_cache = False

    def __init__(self, statement: Executable, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return element.prefix + compiler.process(element.statement, **kw)


def test_a_claim_reads_the_claimable_notices_in_order(any_db: Database) -> None:
    """Without an index in the claim's order, each claim read and sorted every due notice (PostgreSQL walked
    ``ix_notifications_digest_leader`` to do it): a queue of n notices cost O(n²) to send. With a queue waiting
    and no statistics (a new database, or one just filled by an import), the claim must read the partial index
    ``ix_notifications_claimable`` in order and sort nothing."""
    bulk_arrivals(any_db, 400)
    due = outbox._due_statement(outbox.EMAIL, utcnow() + timedelta(seconds=1), 100)
    with any_db.read() as session:
        if any_db.backend == "postgresql":
            # The claim locks what it reads, skipping rows another claim holds (claim_due adds the same).
            [explained] = session.execute(_Explain(due.with_for_update(skip_locked=True), "EXPLAIN (FORMAT JSON) "))
            nodes = plan_nodes(explained[0][0]["Plan"])
            scans = [(n["Node Type"], n.get("Index Name")) for n in nodes if n.get("Relation Name") == "notifications"]
            assert scans == [("Index Scan", "ix_notifications_claimable")]
            assert "Sort" not in {n["Node Type"] for n in nodes}
        else:
            details = [row[-1] for row in session.execute(_Explain(due, "EXPLAIN QUERY PLAN "))]
            assert any("USING INDEX ix_notifications_claimable" in d for d in details), details
            assert not any("TEMP B-TREE" in d for d in details), details


def test_a_claim_finds_riders_by_their_leader_however_long_the_queue(any_db: Database) -> None:
    """Leasing the riders of the claimed leaders looked them up by state, walking every waiting notice on each
    claim (O(waiting) per claim, O(n²) for a big queue): SQLite always, PostgreSQL once the queue was long. With a
    queue waiting and no statistics, the riders must be found by their leader in ``ix_notifications_digest_leader``.
    PostgreSQL reads a short table whole (its choice, and cheap), so it gets a long queue here."""
    postgresql = any_db.backend == "postgresql"
    leaders = bulk_arrivals(any_db, 20_000 if postgresql else 400)[:100]
    riders = outbox._riders_statement(leaders, utcnow())
    with any_db.read() as session:
        if postgresql:
            [explained] = session.execute(_Explain(riders, "EXPLAIN (FORMAT JSON) "))
            nodes = plan_nodes(explained[0][0]["Plan"])
            indexes = {n["Index Name"] for n in nodes if "Index Name" in n}
            assert indexes == {"ix_notifications_digest_leader"}, nodes
            assert "Seq Scan" not in {n["Node Type"] for n in nodes}
        else:
            details = [row[-1] for row in session.execute(_Explain(riders, "EXPLAIN QUERY PLAN "))]
            assert any("USING INDEX ix_notifications_digest_leader" in d for d in details), details
            assert not any("ix_notifications_due" in d for d in details), details
