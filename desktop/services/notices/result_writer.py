"""Recording the outcome of each notice on one database connection held for a System Manager cycle.

Every outcome is its own transaction: that is what limits a crash to at most one accepted, unrecorded message
(docs/DELIVERY.md). So the cost of one transaction decides how fast the outbox drains. Through an ORM session
it was about 1 ms of SQLAlchemy work per notice, plus a pool checkout (with a ping round trip on PostgreSQL).
Here the SQL for each shape
of outcome is written once and run on the driver's own connection:

* SQLite: ``BEGIN IMMEDIATE``, two to four statements, ``COMMIT`` — about 0.1 ms of Python per notice;
* PostgreSQL: one statement whose data-modifying ``WITH`` parts do everything, in autocommit — one round trip
  and one commit per notice (psycopg prepares it on the server after a few uses).

The record is synchronous. The outbox calls it while the SMTP server checks the next message's ``MAIL FROM``, so
the database's work (PostgreSQL's round trip and commit included) overlaps the SMTP server's. Sending the
statement with libpq's asynchronous calls and collecting the answer later, so that the commit also overlapped
``RCPT TO`` and ``DATA``, was measured against this in alternated rounds of ``bench.notify_throughput`` and did
not show a gain that paid for its code (docs/DELIVERY.md), so it was removed.

A message that carries several notices (a digest, :mod:`desktop.services.notices.digest`) is recorded with
:meth:`ResultWriter.record_group`: every notice it carried in ONE transaction (statement by statement, no
overlap with SMTP), all or nothing, so the one message in flight is still the most a crash can duplicate.

The statements are the rules of :mod:`desktop.services.notices.outbox` (a result counts only while its claim still
holds the lease) and of :mod:`desktop.services.requests.status` (a request moves on only from the status it was
expected at, with a Tracking line and ``version_id`` bumped like an ORM save).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import psycopg
from sqlalchemy import Table

from desktop.db.engine import Database
from desktop.db.models import Notification, NotificationAttempt, Request, Tracking
from desktop.db.types import UTCDateTime
from desktop.domain.statuses import Status, check_transition
from desktop.services.notices.outbox import WAITING_STATES

_NOTICES = cast(Table, Notification.__table__)
_ATTEMPTS = cast(Table, NotificationAttempt.__table__)
_REQUESTS = cast(Table, Request.__table__)
_TRACKING = cast(Table, Tracking.__table__)
#: Longest reply kept in one history line (a server may send pages of text).
MAX_REPLY = 4000


@dataclass(frozen=True)
class Advance:
    """Move the notice's request on in the same transaction, if it is still where it was expected."""

    request_id: int
    expected: Status
    target: Status
    changed_by: str
    note: str = ""


@dataclass(frozen=True)
class GroupMember:
    """One notice's outcome in a group record (one message carrying several notices: a digest)."""

    notice_id: int
    state: str
    outcome: str
    reply: str
    values: Mapping[str, Any]
    advance: Advance | None = None


@dataclass(frozen=True)
class _Sql:
    """The statements of one outcome shape for one backend (run in order; the first is the lease check)."""

    notice: str
    attempt: str = ""
    advance: str = ""
    track: str = ""


#: :func:`_statements`' backend name for PostgreSQL's statements one by one (a group record), not as one ``WITH``.
_PG_STEPS = "postgresql-steps"


def _placeholder(backend: str) -> Callable[[str], str]:
    return (lambda name: f"%({name})s") if backend.startswith("postgresql") else (lambda name: f":{name}")


@lru_cache(maxsize=64)
def _statements(backend: str, columns: frozenset[str], advance: bool) -> _Sql:
    """The SQL for one backend, one set of notice columns and whether a request moves on; built once."""
    unknown = columns - set(_NOTICES.c.keys())
    if unknown:
        raise ValueError(f"not columns of {_NOTICES.name}: {', '.join(sorted(unknown))}")
    p = _placeholder(backend)
    waiting = ", ".join(f"'{state}'" for state in WAITING_STATES)
    sets = ", ".join(f"{name} = {p('v_' + name)}" for name in sorted(columns))
    notice = (
        f"UPDATE {_NOTICES.name} SET {sets} "
        f"WHERE id = {p('b_id')} AND lease_owner = {p('b_token')} AND state IN ({waiting})"
    )
    attempt_columns = "notification_id, attempted_at, worker, outcome, reply"
    attempt_values = f"{p('a_at')}, {p('a_worker')}, {p('a_outcome')}, {p('a_reply')}"
    track_columns = "request_id, from_status, to_status, changed_by, changed_at, note"
    track_values = f"{p('t_from')}, {p('t_to')}, {p('t_by')}, {p('t_at')}, {p('t_note')}"
    move = (
        f"UPDATE {_REQUESTS.name} SET status = {p('t_to')}, status_changed_at = {p('t_at')}, "
        f"updated_at = {p('t_at')}, version_id = version_id + 1"
    )
    # The request is found by its primary key alone. PostgreSQL, without fresh statistics (a new database, a big
    # import not yet analysed), rated the status index as cheap as the key and walked it: every request at
    # Awaiting Customer Contact read on each record (0.54 ms more at 3,000 waiting, growing with the queue).
    # ``IS NOT DISTINCT FROM`` gives the same answer here (status is never NULL) and no index serves it.
    # SQLite always finds a row by its key first.
    expected = "IS NOT DISTINCT FROM" if backend.startswith("postgresql") else "="
    where_request = f"WHERE id = {p('r_id')} AND status {expected} {p('t_from')}"
    if backend == "postgresql":
        # One statement, one round trip: every part sees the lease check's result through ``n``.
        parts = [
            f"n AS ({notice} RETURNING id, request_id)",
            f"a AS (INSERT INTO {_ATTEMPTS.name} ({attempt_columns}) SELECT n.id, {attempt_values} FROM n)",
        ]
        counts = "(SELECT count(*) FROM n)"
        if advance:
            parts += [
                # The request by its own id (a primary-key look-up), moved only if the lease check passed. With
                # ``id = (SELECT request_id FROM n)`` the planner, not knowing the id, walked the status index:
                # every request at Awaiting Customer Contact, per record.
                f"r AS ({move} {where_request} AND EXISTS (SELECT 1 FROM n) RETURNING id)",
                f"t AS (INSERT INTO {_TRACKING.name} ({track_columns}) SELECT r.id, {track_values} FROM r)",
            ]
            counts += ", (SELECT count(*) FROM r)"
        return _Sql(notice="WITH " + ", ".join(parts) + f" SELECT {counts}")
    return _Sql(
        notice=notice,
        attempt=f"INSERT INTO {_ATTEMPTS.name} ({attempt_columns}) VALUES ({p('b_id')}, {attempt_values})",
        advance=f"{move} {where_request}" if advance else "",
        track=(
            f"INSERT INTO {_TRACKING.name} ({track_columns}) VALUES ({p('r_id')}, {track_values})" if advance else ""
        ),
    )


class ResultWriter:
    """Records notice outcomes, each in its own transaction, on one connection until :meth:`close`.

    One thread uses a writer and also opens and closes it (the System Manager's sending thread). Close it in
    ``finally``: the connection goes back to the pool as it came, or is discarded if a failure left it unusable.

    Args:
        timeout: seconds PostgreSQL may spend on one record (a lock held by another program, a server that
            stopped answering queries) before it is given up as a database error, which the outbox retries.
    """

    def __init__(self, db: Database, *, timeout: float = 120.0) -> None:
        self._backend = db.backend
        self._raw = db.engine.raw_connection()
        self._driver: Any = self._raw.driver_connection
        assert self._driver is not None, "a pool connection always has its driver connection"
        processor = UTCDateTime().bind_processor(db.engine.dialect)
        self._datetime: Callable[[Any], Any] = processor or (lambda value: value)
        self._broken = False
        if self._backend == "postgresql":
            self._driver.autocommit = True  # each record is one statement, hence its own transaction
            self._driver.execute(f"SET statement_timeout = {max(1, round(timeout * 1000))}")
        self._autocheckpoint: int | None = None
        if self._backend == "sqlite":
            # Without this, every ~100th commit would also copy the WAL into the database file (several ms) in
            # the middle of a send, where a commit must be short. Other connections' commits do that work
            # instead: the System Manager's claim of each batch, between sends.
            self._autocheckpoint = int(self._driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            self._driver.execute("PRAGMA wal_autocheckpoint = 0")

    def _params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._datetime(v) if isinstance(v, datetime) else v for k, v in values.items()}

    def record(
        self,
        notice_id: int,
        token: str,
        *,
        state: str,
        outcome: str,
        reply: str,
        worker: str,
        now: datetime,
        values: Mapping[str, Any] | None = None,
        advance: Advance | None = None,
    ) -> bool:
        """Record one attempt's outcome, which counts only while ``token`` still holds the lease; False means the
        lease was lost (nothing was written).

        Args:
            state: the notice's new state.
            outcome: the history line's outcome (``sent``, ``retrying``, ``failed``, ``no_template``, …).
            values: other notice columns to set (rendered copy, ``sent_at``, ``attempts``, …).
            advance: the request's status change that goes with this outcome (sent → Customer Notified).

        Raises:
            Exception: the database's own error; nothing of this outcome is then recorded.
        """
        if advance is not None:
            check_transition(advance.expected, advance.target)
        sql, params = self._prepare(notice_id, token, state, outcome, reply, worker, now, values, advance,
                                    backend=self._backend)  # fmt: skip
        try:
            if self._backend == "postgresql":
                with self._driver.cursor() as cursor:
                    cursor.execute(sql.notice, params)  # psycopg prepares it on the server after a few uses
                    row = cursor.fetchone()
                recorded = row is not None and row[0] == 1
            else:
                recorded = self._group_sqlite([(sql, params)])
        except BaseException:
            self._broken = True
            raise
        self._broken = False
        return recorded

    def record_group(self, token: str, members: Sequence[GroupMember], *, worker: str, now: datetime) -> bool:
        """Record the outcome of one message for every notice it carried, all in ONE transaction.

        Either every member is recorded (each with its history line, and its request moved on with its own
        Tracking line) or none is: False when any member's lease was lost, and then nothing is written — the
        members were claimed together under ``token``, so they share one fate.

        Raises:
            Exception: the database's own error; nothing is then recorded.
        """
        steps: list[tuple[_Sql, dict[str, Any]]] = []
        for member in members:
            if member.advance is not None:
                check_transition(member.advance.expected, member.advance.target)
            sql, params = self._prepare(member.notice_id, token, member.state, member.outcome, member.reply, worker,
                                        now, member.values, member.advance, backend=self._steps_backend)  # fmt: skip
            steps.append((sql, params))
        try:
            group = self._group_postgresql if self._backend == "postgresql" else self._group_sqlite
            recorded = group(steps)
        except BaseException:
            self._broken = True
            raise
        self._broken = False
        return recorded

    @property
    def _steps_backend(self) -> str:
        return _PG_STEPS if self._backend == "postgresql" else self._backend

    def _prepare(self, notice_id: int, token: str, state: str, outcome: str, reply: str, worker: str,
                 now: datetime, values: Mapping[str, Any] | None, advance: Advance | None, *,
                 backend: str) -> tuple[_Sql, dict[str, Any]]:  # fmt: skip
        changes: dict[str, Any] = {
            "state": state,
            "lease_owner": None,
            "lease_until": None,
            "last_reply": reply,
            "updated_at": now,
            **(values or {}),
        }
        sql = _statements(backend, frozenset(changes), advance is not None)
        params = {f"v_{name}": value for name, value in changes.items()}
        params |= {"b_id": notice_id, "b_token": token, "a_at": now, "a_worker": worker, "a_outcome": outcome,
                   "a_reply": reply[:MAX_REPLY]}  # fmt: skip
        if advance is not None:
            params |= {"r_id": advance.request_id, "t_from": advance.expected.value, "t_to": advance.target.value,
                       "t_by": advance.changed_by, "t_at": now, "t_note": advance.note[:500]}  # fmt: skip
        return sql, self._params(params)

    def _group_sqlite(self, steps: Sequence[tuple[_Sql, dict[str, Any]]]) -> bool:
        cursor = self._driver.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in steps:
                if not self._steps(cursor, sql, params):
                    cursor.execute("ROLLBACK")
                    return False
            cursor.execute("COMMIT")
        except BaseException:
            if self._driver.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
        return True

    def _group_postgresql(self, steps: Sequence[tuple[_Sql, dict[str, Any]]]) -> bool:
        recorded = True
        with self._driver.transaction(), self._driver.cursor() as cursor:
            for sql, params in steps:
                if not self._steps(cursor, sql, params):
                    recorded = False
                    raise psycopg.Rollback()
        return recorded

    @staticmethod
    def _steps(cursor: Any, sql: _Sql, params: dict[str, Any]) -> bool:
        """One outcome's statements one by one in the caller's transaction; False: the lease was lost."""
        cursor.execute(sql.notice, params)
        if cursor.rowcount != 1:
            return False
        cursor.execute(sql.attempt, params)
        if sql.advance:
            cursor.execute(sql.advance, params)
            if cursor.rowcount == 1:
                cursor.execute(sql.track, params)
        return True

    def close(self) -> None:
        """Give the connection back (or discard it if the last record failed); safe to call twice."""
        raw, self._raw = self._raw, None  # type: ignore[assignment]
        if raw is None:
            return
        try:
            if self._backend == "postgresql" and not self._broken:
                self._driver.execute("RESET statement_timeout")  # back to the pool as it came
                self._driver.autocommit = False
            if self._autocheckpoint is not None and not self._broken:
                self._driver.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
        except Exception:
            self._broken = True
        if self._broken:
            raw.invalidate()
        else:
            raw.close()
