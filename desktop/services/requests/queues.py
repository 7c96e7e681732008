"""The Borrowing tab's request lists: one queue (or all requests), filtered and sorted by the database, read in
windows of rows.

A queue may hold 100,000 requests, so nothing here ever returns a whole queue: the table model asks for the
total and for windows (``LIMIT``/``OFFSET``) as the user scrolls, and Previous/Next in the request form walk the
same order with a keyset query. The default order (transaction number inside a status) is served straight from
the ``ix_requests_status_tn`` index; other orders are sorted by the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select, tuple_
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


@dataclass(frozen=True)
class RequestRow:
    """One line of a request list, as plain data."""

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
    return _ordered(_filtered(stmt, query), query).offset(offset).limit(limit)


def total_statement(query: QueueQuery) -> Select[Any]:
    """The COUNT behind a list's length (public so the benchmark can time the bare SQL)."""
    stmt = select(func.count()).select_from(Request)
    if query.words():  # every request has a patron, so the join matters only to the filter
        stmt = stmt.join(Patron, Patron.id == Request.patron_id)
    return _filtered(stmt, query)


def _row(values: Sequence[Any]) -> RequestRow:
    (rid, tn, version, status, rtype, title, author, pid, first, last, username, method, changed, tdate, due,
     library) = values  # fmt: skip
    name = " ".join(p for p in (first, last) if p) or username
    return RequestRow(
        request_id=rid,
        transaction_number=tn,
        version=version,
        status=status,
        request_type=rtype,
        title=title or "",
        author=author or "",
        patron_id=pid,
        patron_name=name,
        notification_method=method,
        status_changed_at=changed,
        transaction_date=tdate,
        due_date=due,
        lending_library=library or "",
    )


def _check_window(offset: int, limit: int) -> None:
    if offset < 0 or not 0 < limit <= MAX_WINDOW:
        raise ValueError(f"a window needs offset >= 0 and 1..{MAX_WINDOW} rows, not offset={offset} limit={limit}")


def _rows(session: Session, query: QueueQuery, offset: int, limit: int) -> tuple[RequestRow, ...]:
    # Core execution on the session's connection: plain rows, none of the ORM's per-row bookkeeping.
    return tuple(_row(values) for values in session.connection().execute(rows_statement(query, offset, limit)))


def _total(session: Session, query: QueueQuery) -> int:
    return int(session.connection().execute(total_statement(query)).scalar() or 0)


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
