"""Waking the System Manager at once instead of at the next poll: PostgreSQL LISTEN/NOTIFY.

Migration 0003 makes PostgreSQL itself send ``NOTIFY callslip_outbox`` whenever a request reaches In Transit or
Awaiting Customer Contact, or a notice becomes pending, whoever wrote the row. A listener only shortens the
wait: if its connection drops, notifications are missed, and the poll interval still finds the work (a
missed notification delays a notice, never loses it). SQLite has no such channel; there the GUI wakes its
poller in-process and ``run`` relies on the interval.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import psycopg

from desktop.db.engine import Database

log = logging.getLogger(__name__)

CHANNEL = "callslip_outbox"
#: How often a blocked wait looks at its stop flag (bounds how long Ctrl-C takes).
STOP_CHECK_SECONDS = 0.25


class PgListener:
    """A dedicated autocommit connection that LISTENs on :data:`CHANNEL` (not from the pool: it stays open)."""

    def __init__(self, db: Database) -> None:
        self._conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is open."""
        return self._conn is not None and not self._conn.closed

    def open(self) -> bool:
        """Connect and LISTEN; False (logged, not raised) when the server cannot be reached."""
        self.close()
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10,
                                   application_name="callslip-listener")  # fmt: skip
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot LISTEN for outbox wake-ups (polling only): %s", exc)
            return False
        self._conn = conn
        return True

    def fileno(self) -> int:
        """The socket to watch (the GUI poller's QSocketNotifier)."""
        assert self._conn is not None
        return self._conn.fileno()

    def drain(self) -> int:
        """Consume the notifications already received, without blocking; how many there were."""
        return self.wait(0)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for a notification; return how many arrived (0 on timeout).

        A broken connection closes the listener (reopen it later) and counts as one wake-up, so the caller
        runs a cycle instead of trusting a silence it can no longer hear.
        """
        if not self.connected:
            if timeout:
                time.sleep(timeout)
            return 0
        assert self._conn is not None
        try:
            count = 0
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                count += 1
            if count:
                count += sum(1 for _ in self._conn.notifies(timeout=0))
            return count
        except psycopg.Error as exc:
            log.warning("outbox wake-up connection lost (polling only until it is back): %s", exc)
            self.close()
            return 1

    def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()


class Waiter:
    """Waits for the next cycle: the poll interval, a NOTIFY (PostgreSQL), or a stop request."""

    #: Seconds between attempts to reopen a lost LISTEN connection.
    REOPEN_SECONDS = 30.0

    def __init__(self, db: Database, stop: threading.Event) -> None:
        self._stop = stop
        self._listener = PgListener(db) if db.backend == "postgresql" else None
        self._next_reopen = 0.0
        if self._listener is not None:
            self._listener.open()

    @property
    def listening(self) -> bool:
        """True when NOTIFY wake-ups are active."""
        return self._listener is not None and self._listener.connected

    def wait(self, seconds: float) -> bool:
        """Block up to ``seconds``; True when woken by a notification, False on timeout or stop."""
        deadline = time.monotonic() + max(seconds, 0.0)
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            step = min(left, STOP_CHECK_SECONDS)
            if self._listener is None:
                self._stop.wait(step)
                continue
            if not self._listener.connected and (time.monotonic() < self._next_reopen or not self._listener.open()):
                self._next_reopen = max(self._next_reopen, time.monotonic() + self.REOPEN_SECONDS)
                self._stop.wait(step)
                continue
            if self._listener.wait(step):
                return True
        return False

    def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.close()
