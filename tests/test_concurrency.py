"""Several System Managers on one database, as separate processes: every notice delivered exactly once (checked
at the SMTP server), and nothing lost when a worker is killed with SIGKILL in the middle of a batch."""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import Notification, NotificationAttempt, Request
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.notices import outbox
from desktop.services.notices.dispatch import default_lease_seconds, run_cycle
from tests.outbox_support import add_patron, add_request, bulk_arrivals, move, sink_settings, start_manager
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]


def database_url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


def message_ids(sink: SmtpSink) -> list[str]:
    with sink.lock:
        return [str(m.message["Message-ID"]) for m in sink.messages]


def assert_all_sent_once(db: Database, sink: SmtpSink, expected: int) -> None:
    received = message_ids(sink)
    assert len(received) == expected, f"{len(received)} messages at the sink for {expected} notices"
    with db.read() as session:
        states = dict(session.execute(select(Notification.state, func.count()).group_by(Notification.state)).all())
        stored = set(session.scalars(select(Notification.message_id)))
        attempts = session.scalar(select(func.count()).select_from(NotificationAttempt))
        notified = session.scalar(select(func.count()).where(Request.status == Status.NOTIFIED_VIA_EMAIL.value))
    assert states == {"sent": expected}
    assert len(set(received)) == expected and set(received) == stored
    assert attempts == expected and notified == expected


def drain_with_workers(db: Database, sink: SmtpSink, workers: int, count: int) -> None:
    bulk_arrivals(db, count)
    # A server that takes 2 ms per message (a real one takes more): on a loaded machine the first process to start
    # must not drain the whole queue before the others have finished starting, or nothing shows the work is shared.
    sink.behaviour.before_accepting = lambda _sender: time.sleep(0.002)
    processes = [start_manager(database_url(db), sink, "run", "--once") for _ in range(workers)]
    outputs = [p.communicate(timeout=240) for p in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    sent_by_worker = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(sent_by_worker) == count
    assert sum(1 for n in sent_by_worker if n) >= 2, f"the work was not shared: {sent_by_worker}"
    assert_all_sent_once(db, sink, count)


@pytest.mark.postgres
def test_four_processes_drain_2000_notices_on_postgresql(pg_db: Database, smtp_sink: SmtpSink) -> None:
    drain_with_workers(pg_db, smtp_sink, workers=4, count=2000)


def test_three_processes_drain_2000_notices_on_sqlite(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    drain_with_workers(sqlite_db, smtp_sink, workers=3, count=2000)


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_sigkill_in_the_middle_loses_nothing(any_db: Database, smtp_sink: SmtpSink) -> None:
    count = 400
    bulk_arrivals(any_db, count)
    worker = start_manager(database_url(any_db), smtp_sink, "run", "--once")
    try:
        wait_for(lambda: len(smtp_sink.messages) >= 60, timeout=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    before = len(smtp_sink.messages)
    assert before < count, "the worker finished before it could be killed"
    with any_db.read() as session:
        leased = session.scalar(select(func.count()).where(Notification.lease_owner.is_not(None)))
    assert leased, "the killed worker held no claim: the test did not kill it mid-batch"
    # Another System Manager, once the dead worker's lease has run out, finishes the job.
    summary = run_cycle(any_db, sink_settings(smtp_sink), now=utcnow() + timedelta(minutes=30))
    assert summary.errors == [] and summary.pending == 0
    received = collections.Counter(message_ids(smtp_sink))
    with any_db.read() as session:
        stored = set(session.scalars(select(Notification.message_id)))
        states = set(session.scalars(select(Notification.state)))
    assert states == {"sent"}
    assert set(received) == stored and len(stored) == count  # nothing lost
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    assert sum(n - 1 for n in duplicates.values()) <= 1, duplicates  # at most the one message in flight


@pytest.mark.postgres
def test_run_loop_wakes_on_notify_and_stops_on_sigterm(pg_db: Database, smtp_sink: SmtpSink) -> None:
    manager = start_manager(database_url(pg_db), smtp_sink, "run", CALLSLIP_POLL_SECONDS="300")
    try:
        assert manager.stdout is not None
        banner = manager.stdout.readline()
        assert "LISTEN/NOTIFY" in banner, banner
        request_id = add_request(pg_db, add_patron(pg_db))
        move(pg_db, request_id, Status.AWAITING_CUSTOMER_CONTACT)  # commit → NOTIFY → the manager wakes
        wait_for(lambda: len(smtp_sink.messages) == 1, timeout=20)  # far below the 300 s poll: it was woken
    finally:
        manager.send_signal(signal.SIGTERM)
        try:
            out, err = manager.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            manager.kill()
            raise
    assert manager.returncode == 0, err
    assert "System Manager stopped" in out


def leased_until(db: Database) -> list[datetime]:
    """The lease ends of the notices some System Manager still holds."""
    with db.read() as session:
        ends = session.scalars(select(Notification.lease_until).where(Notification.lease_owner.is_not(None)))
        return [t for t in ends if t is not None]


def test_a_killed_managers_claims_come_back_after_one_lease(any_db: Database, smtp_sink: SmtpSink) -> None:
    """SIGKILL while the server holds a message: the dead manager's notices are held at most one (short) lease
    from the kill (90 s with the default 30 s timeout, was 600 s), then another manager sends them, with at most
    the one message in flight twice."""
    count = 30
    bulk_arrivals(any_db, count)
    holding, release = threading.Event(), threading.Event()

    def hold_the_sixth(_sender: str) -> None:
        if len(smtp_sink.messages) == 5:
            holding.set()
            release.wait(60)

    smtp_sink.behaviour.before_accepting = hold_the_sixth
    worker = start_manager(database_url(any_db), smtp_sink, "run", "--once")
    try:
        assert holding.wait(60), "the manager never sent its sixth message"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
        release.set()
    killed_at = utcnow()
    assert worker.returncode == -signal.SIGKILL
    lease = default_lease_seconds(Settings())
    assert lease == 90  # 3 × the default SMTP timeout
    held = leased_until(any_db)
    assert len(held) == count - 5  # the killed manager's claim: the held message and the ones after it
    # The lease logic: no claim outlives the kill by more than one lease (a heartbeat renews it by one lease).
    assert max(held) <= killed_at + timedelta(seconds=lease)
    smtp_sink.behaviour.before_accepting = None
    # Before the lease ends another manager takes nothing over; right after it ends, it sends everything left.
    early = run_cycle(any_db, sink_settings(smtp_sink), now=min(held) - timedelta(seconds=1))
    assert early.sent == 0 and early.pending == count - 5
    after = run_cycle(any_db, sink_settings(smtp_sink), now=max(held) + timedelta(seconds=1))
    assert (after.sent, after.pending, after.errors) == (count - 5, 0, [])
    received = collections.Counter(message_ids(smtp_sink))
    assert len(received) == count  # nothing lost
    assert sum(n - 1 for n in received.values()) <= 1  # at most the message in flight twice


def test_the_heartbeat_keeps_a_short_lease_through_a_long_batch(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    """A 1.5 s lease and a server that takes 0.2 s per message: 20 messages outlast the lease many times, yet
    the sender keeps its claim (renewed every 0.5 s) and sends them all in one cycle, while another System
    Manager running in the middle of it finds nothing to take over."""
    count = 20
    bulk_arrivals(sqlite_db, count)
    claimed_at = utcnow()
    others: list[int] = []

    def slow_server(_sender: str) -> None:
        time.sleep(0.2)
        if len(smtp_sink.messages) == 12:  # 2.4 s after the claim: its first lease has run out
            other = outbox.claim_due(sqlite_db, "other", limit=100, lease_seconds=1.5, now=utcnow())
            assert other.ids == ()  # what another System Manager would take over: nothing
            others.extend(leased_until_after(sqlite_db, claimed_at + timedelta(seconds=1.5)))

    smtp_sink.behaviour.before_accepting = slow_server
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink, smtp_timeout=0.4), lease_seconds=1.5)
    assert (summary.sent, summary.pending, summary.errors) == (count, 0, [])
    assert others, "the leases seen in the middle were not renewed past the first lease"
    assert len(set(message_ids(smtp_sink))) == count == len(smtp_sink.messages)


def leased_until_after(db: Database, moment: datetime) -> list[int]:
    """Notices held with a lease that ends after ``moment`` (renewed by a heartbeat)."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Notification.id).where(Notification.lease_owner.is_not(None), Notification.lease_until > moment)
            )
        )
