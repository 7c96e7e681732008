"""Recording the outcome of each notice on one database connection held for a System Manager cycle.

Every outcome is its own transaction: that is what limits a crash to at most one accepted, unrecorded message
(docs/DELIVERY.md). So the cost of one transaction decides how fast the outbox drains. Through an ORM session
it was about 1 ms of SQLAlchemy work per notice, plus a pool checkout (with a ping round trip on PostgreSQL).
Here the SQL for each shape of outcome is written once and run on the driver's own connection:

* SQLite: ``BEGIN IMMEDIATE``, two to four statements, ``COMMIT`` — about 0.1 ms of Python per notice;
* PostgreSQL: one prepared statement whose data-modifying ``WITH`` parts do everything, in autocommit — one
  round trip and one commit per notice. It is sent with libpq's asynchronous calls, so the caller talks to the
  SMTP server while the database works, and collects the answer afterwards; waiting for a thread to do the
  same cost more on two cores (docs/DELIVERY.md). Whether the overlap earns its code was measured against
  psycopg's plain ``execute`` of the same statement, waited for at once (``bench.notify_throughput --quick``,
  500 notices, × the plain smtplib loop + one driver INSERT + COMMIT per message, November 2026, a heavily
  loaded shared 2-core machine): plain execute 1.45 (1.38–1.62) and 1.98 (1.61–2.06); this path 1.11
  (0.88–1.47), 1.34 (1.31–2.37) and 1.77 (1.30–5.18). Its median was lower in every run, but the ranges
  overlap: the gain (≈10–25 %) is likely, not proven; re-measure on a quiet machine before removing or keeping
  it for good.

A message that carries several notices (a digest, :mod:`desktop.services.notices.digest`) is recorded with
:meth:`ResultWriter.record_group`: every notice it carried in ONE transaction (statement by statement, no
overlap with SMTP), all or nothing, so the one message in flight is still the most a crash can duplicate.

The statements are the rules of :mod:`desktop.services.notices.outbox` (a result counts only while its claim still
holds the lease) and of :mod:`desktop.services.requests.status` (a request moves on only from the status it was
expected at, with a Tracking line and ``version_id`` bumped like an ORM save).
"""

from __future__ import annotations

import re
import select
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

import psycopg
from psycopg.pq import ExecStatus
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
    names: tuple[str, ...] = ()  # PostgreSQL: the parameter behind each ``$n``, in order


#: :func:`_statements`' backend name for PostgreSQL's statements one by one (a group record), not as one ``WITH``.
_PG_STEPS = "postgresql-steps"


def _placeholder(backend: str) -> Callable[[str], str]:
    return (lambda name: f"%({name})s") if backend.startswith("postgresql") else (lambda name: f":{name}")


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``%(name)s`` placeholders as libpq's ``$n``, numbered in order of first use; and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), tuple(names)


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
    if backend == "postgresql":
        # One statement, one round trip: every part sees the lease check's result through ``n``.
        parts = [
            f"n AS ({notice} RETURNING id, request_id)",
            f"a AS (INSERT INTO {_ATTEMPTS.name} ({attempt_columns}) SELECT n.id, {attempt_values} FROM n)",
        ]
        counts = "(SELECT count(*) FROM n)"
        if advance:
            parts += [
                f"r AS ({move} WHERE id = (SELECT request_id FROM n) AND status = {p('t_from')} RETURNING id)",
                f"t AS (INSERT INTO {_TRACKING.name} ({track_columns}) SELECT r.id, {track_values} FROM r)",
            ]
            counts += ", (SELECT count(*) FROM r)"
        statement, names = _numbered("WITH " + ", ".join(parts) + f" SELECT {counts}")
        return _Sql(notice=statement, names=names)
    return _Sql(
        notice=notice,
        attempt=f"INSERT INTO {_ATTEMPTS.name} ({attempt_columns}) VALUES ({p('b_id')}, {attempt_values})",
        advance=f"{move} WHERE id = {p('r_id')} AND status = {p('t_from')}" if advance else "",
        track=(
            f"INSERT INTO {_TRACKING.name} ({track_columns}) VALUES ({p('r_id')}, {track_values})" if advance else ""
        ),
    )


#: PostgreSQL parameter types (OIDs) sent with the prepared statement: int8 and timestamptz by name, text for the
#: other named values; the notice's own columns (``v_…``) are left to the server, which takes the type of the
#: column each is assigned to.
_PG_TYPES = {"b_id": 20, "r_id": 20, "a_at": 1184, "t_at": 1184}
_PG_TEXT = 25


def _pg_type(name: str) -> int:
    return 0 if name.startswith("v_") else _PG_TYPES.get(name, _PG_TEXT)


def _pg_text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text form (timestamps carry their UTC offset)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


def _wait_for(socket: int, timeout: float, *, writing: bool = False) -> None:
    """Wait (GIL released) until ``socket`` has something to read, or room to write, or ``timeout`` passed.

    ``poll()`` where the system has it: ``select()`` refuses descriptors above 1023, which a long-running
    workstation may reach.
    """
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(socket, select.POLLIN | (select.POLLOUT if writing else 0))
        poller.poll(timeout * 1000)
    else:  # Windows
        select.select([socket], [socket] if writing else [], [], timeout)


class ResultWriter:
    """Records notice outcomes, each in its own transaction, on one connection until :meth:`close`.

    A record is started (:meth:`start`) and then finished (:meth:`finish`), so the caller can do other work in
    between: on PostgreSQL the statement is sent without waiting, and the database server works on it (commit
    included) while the caller talks to the SMTP server; on SQLite the work is done in :meth:`start`.
    :meth:`record` does both. One record at a time.

    One thread uses a writer and also opens and closes it (the System Manager's sending thread). Close it in
    ``finally``: the connection goes back to the pool as it came, or is discarded if a failure left it unusable.

    Args:
        timeout: seconds to wait for PostgreSQL's answer to one record before giving up on the connection.
    """

    def __init__(self, db: Database, *, timeout: float = 120.0) -> None:
        self._backend = db.backend
        self._timeout = timeout
        self._raw = db.engine.raw_connection()
        self._driver: Any = self._raw.driver_connection
        assert self._driver is not None, "a pool connection always has its driver connection"
        processor = UTCDateTime().bind_processor(db.engine.dialect)
        self._datetime: Callable[[Any], Any] = processor or (lambda value: value)
        self._broken = False
        self._finish: Callable[[], bool] | None = None
        self._prepared: dict[_Sql, bytes] = {}  # PostgreSQL: this writer's prepared statement per shape
        if self._backend == "postgresql":
            self._driver.autocommit = True  # each record is one statement, hence its own transaction
        self._autocheckpoint: int | None = None
        if self._backend == "sqlite":
            # Without this, every ~100th commit would also copy the WAL into the database file (several ms) in
            # the middle of a send, where a commit must be short. Other connections' commits do that work
            # instead: the System Manager's claim of each batch, between sends.
            self._autocheckpoint = int(self._driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            self._driver.execute("PRAGMA wal_autocheckpoint = 0")

    def _params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self._datetime(v) if isinstance(v, datetime) else v for k, v in values.items()}

    def record(self, notice_id: int, token: str, **outcome: Any) -> bool:
        """:meth:`start` (same arguments) then :meth:`finish`; False means the lease was lost (nothing written)."""
        self.start(notice_id, token, **outcome)
        return self.finish()

    def start(
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
    ) -> None:
        """Start recording one attempt's outcome, which counts only while ``token`` still holds the lease.

        Args:
            state: the notice's new state.
            outcome: the history line's outcome (``sent``, ``retrying``, ``failed``, ``no_template``, …).
            values: other notice columns to set (rendered copy, ``sent_at``, ``attempts``, …).
            advance: the request's status change that goes with this outcome (sent → Customer Notified).

        Raises:
            RuntimeError: the previous record was not finished.
            Exception: the database's own error; nothing of this outcome is then recorded.
        """
        if self._finish is not None:
            raise RuntimeError("finish() the record in progress first")
        if advance is not None:
            check_transition(advance.expected, advance.target)
        sql, params = self._prepare(notice_id, token, state, outcome, reply, worker, now, values, advance,
                                    backend=self._backend)  # fmt: skip
        try:
            if self._backend == "postgresql":
                self._finish = self._send_postgresql(sql, params)
            else:
                recorded = self._record_sqlite(sql, params)
                self._finish = lambda: recorded
        except BaseException:
            self._broken = True
            raise

    def record_group(self, token: str, members: Sequence[GroupMember], *, worker: str, now: datetime) -> bool:
        """Record the outcome of one message for every notice it carried, all in ONE transaction.

        Either every member is recorded (each with its history line, and its request moved on with its own
        Tracking line) or none is: False when any member's lease was lost, and then nothing is written — the
        members were claimed together under ``token``, so they share one fate. Plain synchronous statements on
        both backends (a digest is rare enough that overlapping its commit with SMTP would not pay).

        Raises:
            RuntimeError: a record is in progress.
            Exception: the database's own error; nothing is then recorded.
        """
        if self._finish is not None:
            raise RuntimeError("finish() the record in progress first")
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

    def finish(self) -> bool:
        """Wait for the record :meth:`start` began; False means the lease was lost (nothing was written).

        Raises:
            RuntimeError: no record was started.
            Exception: the database's own error; nothing of this outcome was recorded.
        """
        finish, self._finish = self._finish, None
        if finish is None:
            raise RuntimeError("no record was started")
        try:
            recorded = finish()
        except BaseException:
            self._broken = True
            raise
        self._broken = False
        return recorded

    # -- PostgreSQL: libpq's asynchronous calls on the driver's connection (psycopg's ``pgconn``)

    def _send_postgresql(self, sql: _Sql, params: dict[str, Any]) -> Callable[[], bool]:
        pgconn = self._driver.pgconn
        name = self._prepared.get(sql)
        if name is None:  # once per shape: the server plans the statement once
            name = f"callslip_record_{uuid.uuid4().hex[:16]}".encode()
            pgconn.send_prepare(name, sql.notice.encode(), [_pg_type(n) for n in sql.names])
            self._send_all()
            self._results()
            self._prepared[sql] = name
        pgconn.send_query_prepared(name, [_pg_text(params[n]) for n in sql.names])
        self._send_all()

        def finish() -> bool:
            [result] = self._results()
            return bool(result.get_value(0, 0) == b"1")

        return finish

    def _send_all(self) -> None:
        pgconn = self._driver.pgconn
        deadline = time.monotonic() + self._timeout
        while pgconn.flush():  # the connection does not block: 1 means more to send
            _wait_for(pgconn.socket, self._remaining(deadline), writing=True)
            pgconn.consume_input()  # what the server says meanwhile must be read for it to go on reading

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise psycopg.OperationalError(f"the database did not answer within {self._timeout:g} s")
        return remaining

    def _results(self) -> list[Any]:
        """Every result of the statement sent last (waiting without holding the GIL); raise on an error."""
        pgconn = self._driver.pgconn
        deadline = time.monotonic() + self._timeout
        results: list[Any] = []
        while True:
            pgconn.consume_input()
            if pgconn.is_busy():
                _wait_for(pgconn.socket, self._remaining(deadline))
                continue
            result = pgconn.get_result()
            if result is None:
                break
            results.append(result)
        for result in results:
            if result.status not in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
                message = result.error_message.decode("utf-8", "replace").strip()
                raise psycopg.DatabaseError(message or f"the database answered {result.status.name}")
        return results

    def _record_sqlite(self, sql: _Sql, params: dict[str, Any]) -> bool:
        cursor = self._driver.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
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
        self._broken = False
        return True

    def close(self) -> None:
        """Give the connection back (or discard it if the last record failed); safe to call twice."""
        raw, self._raw = self._raw, None  # type: ignore[assignment]
        if raw is None:
            return
        try:
            if self._backend == "postgresql" and not self._broken:
                for name in self._prepared.values():  # the connection goes back to the pool: leave it as it came
                    self._driver.execute(f"DEALLOCATE {name.decode()}")
                self._driver.autocommit = False
            if self._autocheckpoint is not None and not self._broken:
                self._driver.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint}")
        except Exception:
            self._broken = True
        if self._broken:
            raw.invalidate()
        else:
            raw.close()
