"""No duplicate without a crash: a result the database refuses for a while (a long SQLite write lock, PostgreSQL
connections terminated again and again) is recorded on a fresh connection while the notice's lease has time
left, so the notice is not sent a second time. Only a lease that truly runs out may lead to a second send.

Real SQLite files, real PostgreSQL, the real aiosmtpd sink."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from desktop.db.engine import Database, make_engine, sqlite_url
from desktop.domain.clock import utcnow
from desktop.services.notices import outbox
from desktop.services.notices.dispatch import run_cycle
from tests.outbox_support import bulk_arrivals, notices, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

#: How long a writer waits for SQLite's write lock in these tests (Callslip's default is 15 s; the behaviour is
#: the same, the tests just do not sit through it).
BUSY_MS = 300


@pytest.fixture
def impatient_db(sqlite_db: Database, db_path: Path) -> Iterator[Database]:
    """The migrated SQLite file, opened with a short busy timeout."""
    engine = make_engine(sqlite_url(db_path))

    @event.listens_for(engine, "connect")
    def short_busy_timeout(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_MS}")

    db = Database(sqlite_url(db_path), engine=engine)
    yield db
    db.dispose()


class WriteLock:
    """Another program holding SQLite's write lock (a long transaction) from its own connection."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.held = False
        self.released = threading.Event()

    def hold(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def hold_for(self, seconds: float) -> None:
        self.hold()
        threading.Timer(seconds, self.release).start()

    def release(self) -> None:
        self._conn.execute("COMMIT")
        self._conn.close()
        self.released.set()


def sent_once_each(db: Database, sink: SmtpSink) -> Counter[str]:
    """Message-ID → how many times the sink received it."""
    return Counter(str(m.message["Message-ID"]) for m in sink.messages)


def test_a_long_sqlite_lock_delays_the_record_but_sends_nothing_twice(
    impatient_db: Database, db_path: Path, smtp_sink: SmtpSink
) -> None:
    """The lock is taken while the second message waits for acceptance and held for many busy timeouts: its
    record waits (retried on fresh connections) instead of being given up, so nothing is sent twice."""
    bulk_arrivals(impatient_db, 6)
    lock = WriteLock(db_path)

    def lock_while_accepting(_sender: str) -> None:
        if len(smtp_sink.messages) == 1:
            lock.hold_for(8 * BUSY_MS / 1000)

    smtp_sink.behaviour.before_accepting = lock_while_accepting
    first = run_cycle(impatient_db, sink_settings(smtp_sink), lease_seconds=120)
    assert lock.released.is_set()
    assert first.sent == 2, first  # the second one too, once the lock was gone
    assert any("waited" in e and "recorded on a fresh connection" in e for e in first.errors), first.errors
    assert all(n.lease_owner is None for n in notices(impatient_db))  # the rest was given back, not left leased
    smtp_sink.behaviour.before_accepting = None
    rest = run_cycle(impatient_db, sink_settings(smtp_sink))
    assert (rest.sent, rest.pending, rest.errors) == (4, 0, [])
    counts = sent_once_each(impatient_db, smtp_sink)
    assert len(counts) == 6 and set(counts.values()) == {1}  # every notice once: no duplicate without a crash
    assert all(
        [a.outcome for a in outbox.notice_history(impatient_db, n.id)] == ["sent"] for n in notices(impatient_db)
    )


def test_only_a_lease_that_runs_out_may_send_twice(impatient_db: Database, db_path: Path, smtp_sink: SmtpSink) -> None:
    """A lock held past the lease: the record is given up when the lease ends (and says so), and the notice is
    sent again by the next System Manager: one duplicate with the same Message-ID, as documented."""
    bulk_arrivals(impatient_db, 3)
    lock = WriteLock(db_path)

    def lock_while_accepting(_sender: str) -> None:
        if len(smtp_sink.messages) == 1:
            lock.hold_for(10.0)  # well past the lease (and every retry within it)

    smtp_sink.behaviour.before_accepting = lock_while_accepting
    # A 4 s lease: the sender starts no message once less than half of it is left, and gives the rest back without
    # an error. With a 2 s lease a loaded machine sometimes took that second before the second message, and the
    # lock this test is about was never met (the cycle ended with no error at all).
    first = run_cycle(impatient_db, sink_settings(smtp_sink, smtp_timeout=0.5), lease_seconds=4)
    assert len(smtp_sink.messages) >= 2, (first.describe(), first.errors)  # the lock was taken
    assert any("until its lease ran out" in e for e in first.errors), first.errors
    lock.released.wait()
    smtp_sink.behaviour.before_accepting = None
    later = run_cycle(impatient_db, sink_settings(smtp_sink), now=utcnow() + timedelta(minutes=5))
    assert later.pending == 0 and all(n.state == "sent" for n in notices(impatient_db))
    counts = sent_once_each(impatient_db, smtp_sink)
    assert len(counts) == 3 and sorted(counts.values()) == [1, 1, 2]  # that one, twice, same Message-ID


def test_stopping_while_the_record_is_retried_ends_the_wait(
    impatient_db: Database, db_path: Path, smtp_sink: SmtpSink
) -> None:
    """The desk closing (should_stop) while the database refuses a record: the System Manager stops retrying at
    once rather than holding the shutdown for the rest of the lease, and says so."""
    bulk_arrivals(impatient_db, 3)
    lock = WriteLock(db_path)

    def lock_while_accepting(_sender: str) -> None:
        if len(smtp_sink.messages) == 1:
            lock.hold()  # until the test releases it

    smtp_sink.behaviour.before_accepting = lock_while_accepting
    try:
        summary = run_cycle(impatient_db, sink_settings(smtp_sink), lease_seconds=120, should_stop=lambda: lock.held)
        assert not lock.released.is_set()  # it did not wait for the lock
        assert any("until the System Manager was stopped" in e for e in summary.errors), summary.errors
    finally:
        lock.release()


@pytest.mark.postgres
def test_postgresql_connections_terminated_repeatedly_send_nothing_twice(pg_db: Database, smtp_sink: SmtpSink) -> None:
    """While messages are being accepted, every other connection to the database is terminated every 50 ms for
    a second and a half: results are recorded on fresh connections, and no notice is sent twice."""
    bulk_arrivals(pg_db, 12)
    stop = threading.Event()

    terminate = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip

    def terminate_repeatedly() -> None:
        with pg_db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not stop.wait(0.05):
                conn.execute(terminate)

    killer = threading.Thread(target=terminate_repeatedly)

    def kill_while_accepting(_sender: str) -> None:
        if len(smtp_sink.messages) == 2 and not killer.is_alive() and not stop.is_set():
            with pg_db.engine.connect() as conn:  # at once, so the message now accepted cannot be recorded as is
                conn.execute(terminate)
            killer.start()
            threading.Timer(1.5, stop.set).start()
        if killer.is_alive():
            stop.wait(0.15)  # the server takes its time while the killing goes on: records fall in between

    smtp_sink.behaviour.before_accepting = kill_while_accepting
    try:
        for _ in range(20):  # cycles until everything is out; those that hit a dropped read just end early
            summary = run_cycle(pg_db, sink_settings(smtp_sink), lease_seconds=60)
            if stop.is_set() and summary.pending == 0:
                break
    finally:
        stop.set()
        if killer.is_alive():
            killer.join()
    smtp_sink.behaviour.before_accepting = None
    # Claims a dropped connection could not give back wait for their lease: they were never sent, so no risk.
    final = run_cycle(pg_db, sink_settings(smtp_sink), now=utcnow() + timedelta(minutes=5))
    assert final.pending == 0 and all(n.state == "sent" for n in notices(pg_db))
    counts = sent_once_each(pg_db, smtp_sink)
    assert len(counts) == 12 and set(counts.values()) == {1}, counts
    assert all([a.outcome for a in outbox.notice_history(pg_db, n.id)] == ["sent"] for n in notices(pg_db))
