"""Queue counts and request windows read by the database (services only; the GUI tests are beside this file).

Expected values are computed independently: by plain SQL for counts, by sorting every row in Python for orders.
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select, text

from desktop.db.models import Patron, Request
from desktop.domain.statuses import QUEUE_ORDER, Status
from desktop.services.admin.demo import seed_demo
from desktop.services.database import Database
from desktop.services.errors import NotFoundError
from desktop.services.requests.queues import (
    MAX_WINDOW,
    QueueQuery,
    SortKey,
    adjacent_request,
    load_window,
    queue_total,
    refresh_windows,
)
from desktop.services.requests.queues_count import has_requests, queue_counts, queue_snapshot
from desktop.services.requests.status import route_request
from tests.outbox_support import add_request
from tests.patron_helpers import make_patron


@pytest.fixture
def demo_db(any_db: Database) -> Database:
    seed_demo(any_db, patrons=30, requests=250)
    return any_db


def all_rows(db: Database, status: str | None = None) -> list[dict[str, object]]:
    """Every request as a dict, read with the ORM (independent of the window queries)."""
    with db.read() as session:
        stmt = select(Request, Patron).join(Patron, Patron.id == Request.patron_id)
        if status is not None:
            stmt = stmt.where(Request.status == status)
        return [
            {
                "tn": r.transaction_number,
                "title": r.title,
                "last": p.last_name,
                "first": p.first_name,
                "due": r.due_date,
                "method": p.notification_method,
                "hay": " ".join(
                    (
                        p.first_name,
                        p.last_name,
                        p.username,
                        r.loan_title,
                        r.loan_author,
                        r.photo_article_title,
                        r.photo_journal_title,
                    )
                ).lower(),
            }
            for r, p in session.execute(stmt)
        ]


def test_counts_match_plain_sql(demo_db: Database) -> None:
    with demo_db.read() as session:
        expected = dict(session.execute(text("SELECT status, COUNT(*) FROM requests GROUP BY status")).all())
    snapshot = queue_snapshot(demo_db)
    assert [q.status for q in snapshot.counts] == [s.value for s in QUEUE_ORDER]
    assert {q.status: q.count for q in snapshot.counts if q.count} == expected
    assert snapshot.total == 250
    assert queue_counts(demo_db) == list(snapshot.counts)


def test_empty_database_has_every_queue_at_zero(any_db: Database) -> None:
    assert not has_requests(any_db)
    snapshot = queue_snapshot(any_db)
    assert snapshot.total == 0 and len(snapshot.counts) == len(QUEUE_ORDER)
    assert snapshot.marker == (0, 0, None)


def test_snapshot_marker_moves_on_a_route(demo_db: Database) -> None:
    before = queue_snapshot(demo_db)
    tn = load_window(demo_db, QueueQuery(Status.REQUEST_SENT.value), 0, 1).rows[0].transaction_number
    route_request(demo_db, tn, Status.IN_TRANSIT_TO_PICKUP, "tester")
    after = queue_snapshot(demo_db)
    assert after.marker != before.marker
    assert after.count(Status.REQUEST_SENT.value) == before.count(Status.REQUEST_SENT.value) - 1
    assert after.count(Status.IN_TRANSIT_TO_PICKUP.value) == before.count(Status.IN_TRANSIT_TO_PICKUP.value) + 1


def test_snapshot_marker_moves_on_an_edit_made_elsewhere(demo_db: Database) -> None:
    """Another workstation changing a title (no status change, no new row) still tells every window to refresh."""
    from sqlalchemy import select

    from desktop.db.models import Request

    before = queue_snapshot(demo_db)
    with demo_db.write() as session:
        request = session.scalars(select(Request).order_by(Request.id).limit(1)).one()
        request.loan_title = request.loan_title + " (2nd edition)"
    after = queue_snapshot(demo_db)
    assert after.marker != before.marker
    assert (after.last_tracking_id, after.last_request_id) == (before.last_tracking_id, before.last_request_id)


def test_windows_cover_the_queue_once_in_order(demo_db: Database) -> None:
    status = Status.REQUEST_FINISHED.value
    expected = sorted(r["tn"] for r in all_rows(demo_db, status))  # type: ignore[type-var]
    first = load_window(demo_db, QueueQuery(status), 0, 20)
    assert first.total == len(expected) > 40
    seen: list[int] = []
    for offset in range(0, len(expected), 20):
        window = load_window(demo_db, QueueQuery(status), offset, 20, with_total=False)
        assert window.total is None
        seen.extend(row.transaction_number for row in window.rows)
    assert seen == expected
    assert load_window(demo_db, QueueQuery(status), len(expected) + 5, 20).rows == ()


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        (SortKey.PATRON, lambda r: (r["last"], r["first"], r["tn"])),
        (SortKey.TITLE, lambda r: (r["title"], r["tn"])),
        (SortKey.DUE_DATE, lambda r: (r["due"] is None, r["due"] or 0, r["tn"])),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
def test_sorting_is_done_by_the_database(demo_db: Database, sort: SortKey, key: object, descending: bool) -> None:
    rows = all_rows(demo_db)
    expected = [r["tn"] for r in sorted(rows, key=key, reverse=descending)]  # type: ignore[arg-type]
    query = QueueQuery(None, sort=sort, descending=descending)
    got = [r.transaction_number for r in load_window(demo_db, query, 0, MAX_WINDOW).rows]
    if sort in (SortKey.PATRON, SortKey.TITLE):  # collation differs from Python's for non-ASCII; compare groups
        assert sorted(got) == sorted(expected)  # type: ignore[type-var]
        values = {r["tn"]: key(r) for r in rows}  # type: ignore[operator]
        ascii_order = [values[tn] for tn in got if str(values[tn][0]).isascii()]
        assert ascii_order == sorted(ascii_order, reverse=descending)
    else:
        assert got == expected


def test_filter_matches_patron_title_and_transaction_number(demo_db: Database) -> None:
    rows = all_rows(demo_db)
    some = rows[17]
    by_tn = load_window(demo_db, QueueQuery(None, str(some["tn"])), 0, 50)
    assert some["tn"] in [r.transaction_number for r in by_tn.rows]
    name = next(str(r["last"]) for r in rows if str(r["last"]).isascii() and len(str(r["last"])) > 4)
    for words in (name.upper(), "history", f"{name.lower()} history"):
        expected = {r["tn"] for r in rows if all(w.lower() in str(r["hay"]) for w in words.split())}
        found = load_window(demo_db, QueueQuery(None, words), 0, MAX_WINDOW)
        assert found.total == len(expected), words
        assert {r.transaction_number for r in found.rows} == expected, words
    none = load_window(demo_db, QueueQuery(None, f"{name} zzzz-nothing"), 0, 10)
    assert none.total == 0 and none.rows == ()


def test_filter_ignores_case_for_every_letter(any_db: Database) -> None:
    """ "müller" finds MÜLLER and "ästhetik" finds Ästhetik on SQLite too (its own folding is ASCII only)."""
    wanted = add_request(any_db, make_patron(any_db, "p-one", "Jürgen", "MÜLLER"), title="Ästhetik der Großstadt")
    add_request(any_db, make_patron(any_db, "p-two", "Juergen", "Mueller"), title="Aesthetik")
    for words in ("müller", "MÜLLER", "ästhetik", "GROSSSTADT großstadt", "jürgen ästhetik"):
        found = load_window(any_db, QueueQuery(None, words), 0, 10)
        expected = [] if words.startswith("GROSS") else [wanted]  # ß is not "ss": LIKE compares letters
        assert [r.request_id for r in found.rows] == expected, words


def test_filter_treats_like_wildcards_as_text(demo_db: Database) -> None:
    assert queue_total(demo_db, QueueQuery(None, "%")) == 0
    assert queue_total(demo_db, QueueQuery(None, "_")) == 0


def test_refresh_windows_reads_total_and_pages_together(demo_db: Database) -> None:
    query = QueueQuery(None)
    result = refresh_windows(demo_db, query, [0, 100, 9999], 50)
    assert result.total == 250
    assert sorted(result.windows) == [0, 100]
    assert result.windows[100][0].transaction_number == load_window(demo_db, query, 100, 1).rows[0].transaction_number


def test_window_size_is_bounded(demo_db: Database) -> None:
    with pytest.raises(ValueError, match="window"):
        load_window(demo_db, QueueQuery(), 0, MAX_WINDOW + 1)
    with pytest.raises(ValueError, match="window"):
        load_window(demo_db, QueueQuery(), -1, 10)


@pytest.mark.parametrize("sort", [SortKey.TRANSACTION_NUMBER, SortKey.PATRON, SortKey.STATUS_CHANGED])
@pytest.mark.parametrize("descending", [False, True])
def test_adjacent_request_walks_the_list_order(demo_db: Database, sort: SortKey, descending: bool) -> None:
    query = QueueQuery(Status.CHECKED_OUT.value, sort=sort, descending=descending)
    order = [r.transaction_number for r in load_window(demo_db, query, 0, MAX_WINDOW).rows]
    assert len(order) > 5
    for here, after in itertools.pairwise(order):
        assert adjacent_request(demo_db, query, here, forward=True) == after
        assert adjacent_request(demo_db, query, after, forward=False) == here
    assert adjacent_request(demo_db, query, order[-1], forward=True) is None
    assert adjacent_request(demo_db, query, order[0], forward=False) is None


def test_adjacent_request_works_after_the_request_left_the_queue(demo_db: Database) -> None:
    query = QueueQuery(Status.REQUEST_SENT.value)
    order = [r.transaction_number for r in load_window(demo_db, query, 0, 5).rows]
    route_request(demo_db, order[1], Status.IN_TRANSIT_TO_PICKUP, "tester")
    assert adjacent_request(demo_db, query, order[1], forward=True) == order[2]
    assert adjacent_request(demo_db, query, order[1], forward=False) == order[0]
    with pytest.raises(NotFoundError):
        adjacent_request(demo_db, query, 1, forward=True)


def test_unknown_stored_status_still_gets_a_queue(demo_db: Database) -> None:
    with demo_db.write() as session:
        first = session.scalar(select(func.min(Request.id)))
        session.execute(text("UPDATE requests SET status = 'On Hold Elsewhere' WHERE id = :id"), {"id": first})
    snapshot = queue_snapshot(demo_db)
    assert snapshot.counts[-1].status == "On Hold Elsewhere" and snapshot.counts[-1].count == 1
    assert queue_total(demo_db, QueueQuery("On Hold Elsewhere")) == 1


def test_driver_rows_carry_the_same_values_as_the_orm(demo_db: Database) -> None:
    """The window is read through the driver's cursor (for speed); its values must be what the ORM gives: UTC-aware
    timestamps, dates, the patron's name, on SQLite and PostgreSQL alike."""
    with demo_db.read() as session:
        pairs = session.execute(select(Request, Patron).join(Patron, Patron.id == Request.patron_id)).all()
        expected = {
            r.transaction_number: (
                r.status,
                r.version_id,
                r.status_changed_at,
                r.transaction_date,
                r.due_date,
                " ".join(x for x in (p.first_name, p.last_name) if x) or p.username,
            )
            for r, p in pairs
        }
    window = load_window(demo_db, QueueQuery(sort=SortKey.DUE_DATE), 0, MAX_WINDOW)
    assert window.total == len(expected) == len(window.rows)
    for row in window.rows:
        wanted = expected[row.transaction_number]
        got = (row.status, row.version, row.status_changed_at, row.transaction_date, row.due_date, row.patron_name)
        assert got == wanted
        for stamp in (row.status_changed_at, row.transaction_date):
            offset = None if stamp is None else stamp.utcoffset()
            assert stamp is None or (offset is not None and offset.total_seconds() == 0)
    assert any(row.due_date is not None for row in window.rows)
    assert any(row.status_changed_at is not None for row in window.rows)


def test_row_texts_agree_with_the_column_definitions(demo_db: Database) -> None:
    """The table formats a row in one spelled-out function; it must say what each column's definition says."""
    from desktop.ui.requests.request_table_model import COLUMNS, row_texts

    rows = load_window(demo_db, QueueQuery(), 0, MAX_WINDOW).rows
    assert row_texts(rows) == tuple(tuple(column[2](row) for column in COLUMNS) for row in rows)
