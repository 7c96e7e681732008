"""The Borrowing tab's request lists: one queue (or all requests), filtered and sorted by the database, read in
windows of rows.

A queue may hold 100,000 requests, so nothing here ever returns a whole queue: the table model asks for the
total and for windows (``LIMIT``/``OFFSET``) as the user scrolls, and Previous/Next in the request form walk the
same order with a keyset query. The default order (transaction number inside a status) is served straight from
the ``ix_requests_status_tn`` index; other orders are sorted by the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, case, false, func, or_, select, tuple_
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute, Session

from desktop.db.engine import Database
from desktop.db.models import Patron, Request
from desktop.db.text_match import contains_folded, search_text
from desktop.services.errors import NotFoundError

#: The most rows one call may return; the model asks for much less (a page).
MAX_WINDOW = 1000
#: A transaction number typed in the filter: ASCII digits that fit the BIGINT column (18 digits always do; a
#: 20-digit number overflowed SQLite's integer and PostgreSQL's bigint and the filter raised).
_TRANSACTION_NUMBER = re.compile(r"[0-9]{1,18}")


class SortKey(StrEnum):
    """Columns the request table can be sorted by (each one is sorted by the database)."""

    TRANSACTION_NUMBER = "transaction_number"
    STATUS = "status"
    REQUEST_TYPE = "request_type"
    TITLE = "title"
    AUTHOR = "author"
    PATRON = "patron"
    NOTIFICATION_METHOD = "notification_method"
    STATUS_CHANGED = "status_changed_at"
    TRANSACTION_DATE = "transaction_date"
    DUE_DATE = "due_date"
    LENDING_LIBRARY = "lending_library"


@dataclass(frozen=True)
class QueueQuery:
    """Which requests a list shows and in which order.

    Attributes:
        status: the queue (a status name); ``None`` lists every request (Search requests).
        text: filter typed by staff: each word must match the transaction number, the patron's name or user
            name, or the title/author/journal (case-insensitive).
        sort: the column sorted by; ties are broken by transaction number so the order is total.
        descending: reverse order.
    """

    status: str | None = None
    text: str = ""
    sort: SortKey = SortKey.TRANSACTION_NUMBER
    descending: bool = False

    def words(self) -> list[str] | None:
        """The filter's words (blank filter: none); ``None`` when the text is too long to match anything."""
        text = search_text(self.text)
        return None if text is None else text.split()


class RequestRow(NamedTuple):
    """One line of a request list, as plain data.

    A named tuple, not a dataclass: a page is 200 of these built on every scroll and refresh, and a tuple is
    built in one C call (a frozen dataclass pays a ``__setattr__`` per field) and is half the size.
    """

    request_id: int
    transaction_number: int
    version: int
    status: str
    request_type: str
    title: str
    author: str
    patron_id: int
    patron_name: str
    notification_method: str
    status_changed_at: datetime | None
    transaction_date: datetime | None
    due_date: date | None
    lending_library: str


@dataclass(frozen=True)
class QueueWindow:
    """Rows ``offset … offset+len(rows)-1`` of a query, with the query's total when it was asked for."""

    query: QueueQuery
    offset: int
    rows: tuple[RequestRow, ...]
    total: int | None = None


@dataclass(frozen=True)
class QueueRefresh:
    """A fresh total plus fresh copies of several windows (the pages a view currently holds)."""

    query: QueueQuery
    total: int
    windows: dict[int, tuple[RequestRow, ...]] = field(default_factory=dict)


def _title_expr() -> ColumnElement[Any]:
    article_title = func.coalesce(func.nullif(Request.photo_article_title, ""), Request.photo_journal_title)
    return case((Request.request_type == "Article", article_title), else_=Request.loan_title)


def _sort_exprs(sort: SortKey) -> list[ColumnElement[Any] | InstrumentedAttribute[Any]]:
    """Columns to order by before the transaction number; NULL-free so keyset comparisons work everywhere."""
    exprs: dict[SortKey, list[ColumnElement[Any] | InstrumentedAttribute[Any]]] = {
        SortKey.TRANSACTION_NUMBER: [],
        SortKey.STATUS: [Request.status],
        SortKey.REQUEST_TYPE: [Request.request_type],
        SortKey.TITLE: [_title_expr()],
        SortKey.AUTHOR: [Request.loan_author],
        SortKey.PATRON: [Patron.last_name, Patron.first_name],
        SortKey.NOTIFICATION_METHOD: [Patron.notification_method],
        SortKey.STATUS_CHANGED: [Request.status_changed_at],
        SortKey.TRANSACTION_DATE: [Request.transaction_date],
        # SQLite sorts NULL first and PostgreSQL last; a far date puts "no due date" last on both.
        SortKey.DUE_DATE: [func.coalesce(Request.due_date, date(9999, 12, 31))],
        SortKey.LENDING_LIBRARY: [Request.lending_library],
    }
    return exprs[sort]


def _filtered(stmt: Select[Any], query: QueueQuery) -> Select[Any]:
    if query.status is not None:
        stmt = stmt.where(Request.status == query.status)
    words = query.words()
    if words is None:
        return stmt.where(false())
    for word in words:
        columns = (Patron.first_name, Patron.last_name, Patron.username, Request.loan_title, Request.loan_author,
                   Request.photo_article_title, Request.photo_journal_title)  # fmt: skip
        matches: list[ColumnElement[bool]] = [contains_folded(column, word) for column in columns]
        if _TRANSACTION_NUMBER.fullmatch(word):  # ASCII digits only: "²" and "٣" are digits to str.isdigit()
            matches.append(Request.transaction_number == int(word))
        stmt = stmt.where(or_(*matches))
    return stmt


def _ordered(stmt: Select[Any], query: QueueQuery) -> Select[Any]:
    keys = [*_sort_exprs(query.sort), Request.transaction_number]
    return stmt.order_by(*(key.desc() if query.descending else key.asc() for key in keys))


#: Bind-parameter names of a window's OFFSET and LIMIT, so one compiled statement serves every window.
_OFFSET, _LIMIT = "window_offset", "window_limit"


def rows_statement(query: QueueQuery, offset: int, limit: int) -> Select[Any]:
    """The SELECT behind one window of a list (public so the benchmark can time the bare SQL)."""
    stmt = select(
        Request.id,
        Request.transaction_number,
        Request.version_id,
        Request.status,
        Request.request_type,
        _title_expr(),
        Request.loan_author,
        Patron.id,
        Patron.first_name,
        Patron.last_name,
        Patron.username,
        Patron.notification_method,
        Request.status_changed_at,
        Request.transaction_date,
        Request.due_date,
        Request.lending_library,
    ).join(Patron, Patron.id == Request.patron_id)
    ordered = _ordered(_filtered(stmt, query), query)
    return ordered.offset(bindparam(_OFFSET, offset, type_=Integer)).limit(bindparam(_LIMIT, limit, type_=Integer))


def total_statement(query: QueueQuery) -> Select[Any]:
    """The COUNT behind a list's length (public so the benchmark can time the bare SQL)."""
    stmt = select(func.count()).select_from(Request)
    if query.words():  # every request has a patron, so the join matters only to the filter
        stmt = stmt.join(Patron, Patron.id == Request.patron_id)
    return _filtered(stmt, query)


class _DriverStatement(NamedTuple):
    """A statement compiled once to the driver's own SQL text, with what is needed to bind its parameters."""

    sql: str
    positional: bool
    names: tuple[str, ...]
    values: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]

    def params(self, **overrides: Any) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters (positional or named, as its paramstyle wants), with ``overrides`` applied."""
        values = {**self.values, **overrides}
        for name, process in self.processors.items():
            values[name] = process(values[name])
        if self.positional:
            return tuple(values[name] for name in self.names)
        return values


def _compile(statement: Select[Any], dialect: Dialect) -> _DriverStatement:
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    processors: dict[str, Callable[[Any], Any]] = {}
    for bind in compiled.binds.values():
        process = bind.type.bind_processor(dialect)
        if process is not None:
            processors[compiled.bind_names[bind]] = process
    values = dict(compiled.construct_params())
    return _DriverStatement(str(compiled), bool(compiled.positional), names, values, processors)


@lru_cache(maxsize=64)
def _driver_statements(query: QueueQuery, dialect: Dialect) -> tuple[_DriverStatement, _DriverStatement]:
    """The COUNT and the window SELECT of ``query`` as driver SQL, compiled once per list.

    Profiling showed most of a window's time outside the database: SQLAlchemy building the statement, looking up
    its compiled form and converting each value through its result processors took 3–4× the driver's own time.
    A list is read again and again (every page, every refresh) with only OFFSET/LIMIT changing, so the text is
    compiled once here and the rows are read through the driver's cursor (see :func:`_rows`).
    """
    return _compile(total_statement(query), dialect), _compile(rows_statement(query, 0, 1), dialect)


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp as the ``UTCDateTime`` column type returns it (SQLite's driver gives its stored text)."""
    if value is None:
        return None
    if isinstance(value, str):
        # SQLite keeps UTC text without an offset; parsing it with the offset appended costs a third of parsing
        # it and then calling ``replace(tzinfo=UTC)`` (a page converts 400 of them). Text that already carries
        # an offset (or is not a timestamp) takes the general path.
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: date | str | None) -> date | None:
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime):  # pragma: no cover - no driver of ours returns one for a DATE column
        return value.date()
    return value


def _row(values: Sequence[Any]) -> RequestRow:
    (rid, tn, version, status, rtype, title, author, pid, first, last, username, method, changed, tdate, due,
     library) = values  # fmt: skip
    name = " ".join(p for p in (first, last) if p) or username
    return RequestRow(rid, tn, version, status, rtype, title or "", author or "", pid, name, method, _utc(changed),
                      _utc(tdate), _day(due), library or "")  # fmt: skip


def _check_window(offset: int, limit: int) -> None:
    if offset < 0 or not 0 < limit <= MAX_WINDOW:
        raise ValueError(f"a window needs offset >= 0 and 1..{MAX_WINDOW} rows, not offset={offset} limit={limit}")


def _driver_cursor(session: Session) -> Any:
    """A cursor of the driver connection under the session's transaction (same snapshot as the session)."""
    return session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]


def _rows(session: Session, query: QueueQuery, offset: int, limit: int) -> tuple[RequestRow, ...]:
    statement = _driver_statements(query, session.get_bind().dialect)[1]
    cursor = _driver_cursor(session)
    try:
        cursor.execute(statement.sql, statement.params(**{_OFFSET: offset, _LIMIT: limit}))
        return tuple(map(_row, cursor.fetchall()))
    finally:
        cursor.close()


def _total(session: Session, query: QueueQuery) -> int:
    statement = _driver_statements(query, session.get_bind().dialect)[0]
    cursor = _driver_cursor(session)
    try:
        cursor.execute(statement.sql, statement.params())
        found = cursor.fetchone()
    finally:
        cursor.close()
    return int(found[0] or 0) if found else 0


def queue_total(db: Database, query: QueueQuery) -> int:
    """How many requests ``query`` lists."""
    with db.read() as session:
        return _total(session, query)


def load_window(db: Database, query: QueueQuery, offset: int, limit: int, *, with_total: bool = True) -> QueueWindow:
    """Rows ``offset … offset+limit-1`` of ``query`` (and its total), read in one transaction."""
    _check_window(offset, limit)
    with db.read() as session:
        total = _total(session, query) if with_total else None
        rows = _rows(session, query, offset, limit) if total is None or offset < total else ()
    return QueueWindow(query, offset, rows, total)


def refresh_windows(db: Database, query: QueueQuery, offsets: Iterable[int], limit: int) -> QueueRefresh:
    """A fresh total and fresh copies of the windows starting at ``offsets`` (what a view holds), in one read."""
    wanted = sorted(set(offsets))
    for offset in wanted:
        _check_window(offset, limit)
    with db.read() as session:
        total = _total(session, query)
        windows = {offset: _rows(session, query, offset, limit) for offset in wanted if offset < total}
    return QueueRefresh(query, total, windows)


def adjacent_request(db: Database, query: QueueQuery, transaction_number: int, *, forward: bool) -> int | None:
    """The transaction number after (or before) ``transaction_number`` in ``query``'s order, or ``None`` at an end.

    Works even when the request itself has left the list meanwhile (it was just routed): its sort values are
    read and the neighbour is found by a keyset comparison, never by counting rows.

    Raises:
        NotFoundError: no request has that transaction number.
    """
    keys = [*_sort_exprs(query.sort), Request.transaction_number]
    with db.read() as session:
        here = session.execute(
            select(*keys)
            .join(Patron, Patron.id == Request.patron_id)
            .where(Request.transaction_number == transaction_number)
        ).first()
        if here is None:
            raise NotFoundError(f"no request with transaction number {transaction_number}")
        later = forward != query.descending
        position = tuple_(*keys) > tuple_(*here) if later else tuple_(*keys) < tuple_(*here)
        stmt = _filtered(select(Request.transaction_number).join(Patron, Patron.id == Request.patron_id), query)
        stmt = stmt.where(and_(position))
        ordered = [key.asc() if later else key.desc() for key in keys]
        found = session.scalar(stmt.order_by(*ordered).limit(1))
    return int(found) if found is not None else None
