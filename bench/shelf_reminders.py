"""Benchmark: one System Manager cycle deciding the hold shelf's reminders for 50,000 shelved requests in a
1,000,000-request database, against the raw SQL that selects the due ones.

Measures, in the same run and on the same SQLite file (read-only, so every run sees the same shelf):

* ``decide_seconds``: :func:`desktop.services.notices.shelf.decide_shelf`, what a cycle does before writing: the
  settings, one pass over the shelved requests, the reminders they have, and the newest Tracking ids (a
  ``GROUP BY``) of the requests with a reminder whose window has started; each hold's end and each step's day by
  the date rules (closed days, weekdays, windows) in Python, once per notification day and desk;
* ``sql_seconds``: one hand-written SQLite statement selecting the requests whose default reminder (two days
  before the hold ends) is due today and not yet made — what the decision would cost if the date rules could
  be written in SQL (they cannot: closed days move dates);

and prints ONE JSON line with both medians and their ratio (target ≤ 3). Both must find the same due requests;
the run fails if they do not.

The database is built once (``seed_demo``, then the shelved requests' notification dates spread over the last
14 days) and cached under ``bench/.cache/``; ``--rebuild`` builds it again. ``--quick`` uses 100,000 requests
with 5,000 shelved.

Run: ``.venv/bin/python -m bench.shelf_reminders [--runs 5] [--rebuild] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path

from sqlalchemy import func, select, text

from bench._common import emit, isolated_environment, scratch_dir
from desktop.db.engine import sqlite_url
from desktop.db.models import Request, SystemSetting
from desktop.domain.statuses import NOTIFIED_STATUSES
from desktop.services.admin.demo import DEFAULT_STATUS_WEIGHTS, seed_demo
from desktop.services.admin.shelf_settings import TIMEZONE_KEY
from desktop.services.database import Database, open_database
from desktop.services.notices.shelf import decide_shelf

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_RATIO = 3.0
SPREAD_DAYS = 14


@dataclass(frozen=True)
class Size:
    """How big the benchmark database is."""

    total: int
    shelved: int
    patrons: int


FULL = Size(1_000_000, 50_000, 50_000)
QUICK = Size(100_000, 5_000, 5_000)

RAW_SQL = """
SELECT r.id FROM requests r
JOIN patrons p ON p.id = r.patron_id
LEFT JOIN pickup_locations l ON l.id = coalesce(r.pickup_location_id, p.pickup_location_id)
WHERE r.status IN ('Customer Notified via E-Mail', 'Customer Notified via Phone', 'Customer Notified via Mail')
  AND date(r.status_changed_at, '+' || (coalesce(l.hold_days, 10) - 2) || ' days') = :today
  AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.request_id = r.id AND n.dedupe_key LIKE 'reminder:%')
"""


def build(path: Path, size: Size) -> float:
    """Create the benchmark database; returns the seconds it took."""
    started = time.perf_counter()
    partial = path.with_suffix(".partial.sqlite3")
    partial.unlink(missing_ok=True)
    db, _ = open_database(sqlite_url(partial))
    weights = dict(DEFAULT_STATUS_WEIGHTS)
    shelf = sum(weights[s] for s in NOTIFIED_STATUSES)
    others = sum(w for s, w in weights.items() if s not in NOTIFIED_STATUSES)
    scale = (others * size.shelved / (size.total - size.shelved)) / shelf
    for status in NOTIFIED_STATUSES:
        weights[status] *= scale
    seed_demo(db, patrons=size.patrons, requests=size.total, status_weights=weights)
    with db.write() as session:
        # Notified over the last two weeks at 08:00, so some reminders are due today and some holds are over.
        session.execute(
            text(
                "UPDATE requests SET status_changed_at = datetime(:base, '-' || (id % :spread) || ' days') "
                "WHERE status IN ('Customer Notified via E-Mail', 'Customer Notified via Phone', "
                "'Customer Notified via Mail')"
            ),
            {"base": _now().replace(hour=8, tzinfo=None).isoformat(sep=" "), "spread": SPREAD_DAYS},
        )
        session.merge(SystemSetting(key=TIMEZONE_KEY, value=json.dumps("UTC"), updated_by="bench"))
        shelved = session.scalar(
            select(func.count(Request.id)).where(Request.status.in_([s.value for s in NOTIFIED_STATUSES]))
        )
    db.dispose()
    partial.replace(path)
    print(f"built: {shelved:,} shelved of {size.total:,}", flush=True)
    return time.perf_counter() - started


def _now() -> datetime:
    """Today at 10:00 UTC: after the default send hour, within the reminders' window."""
    return datetime.combine(datetime.now(UTC).date(), day_time(10), tzinfo=UTC)


def time_decide(db: Database, now: datetime) -> tuple[float, set[int], int]:
    started = time.perf_counter()
    _shelf, decisions = decide_shelf(db, now=now)
    seconds = time.perf_counter() - started
    due = {d.row.request_id for d in decisions if any(v == "due" for _s, v in d.create)}
    return seconds, due, sum(1 for d in decisions if d.expire_end)


def time_sql(db: Database, now: datetime) -> tuple[float, set[int]]:
    started = time.perf_counter()
    with db.read() as session:
        ids = set(session.scalars(text(RAW_SQL), {"today": now.date().isoformat()}))
    return time.perf_counter() - started, ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median reported)")
    parser.add_argument("--rebuild", action="store_true", help="build the cached database again")
    parser.add_argument("--quick", action="store_true", help="100,000 requests, 5,000 shelved")
    args = parser.parse_args(argv)
    with scratch_dir() as scratch:
        os.environ.update(isolated_environment(scratch))
        return _run(args.runs, args.rebuild, QUICK if args.quick else FULL)


def _run(runs: int, rebuild: bool, size: Size) -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="utf-8")
    db_file = CACHE / f"shelf_reminders_{size.total}.sqlite3"
    build_seconds = None
    if rebuild or not db_file.exists():
        build_seconds = build(db_file, size)
    db = Database(sqlite_url(db_file))
    now = _now()
    try:
        with db.read() as session:
            shelved = int(
                session.scalar(
                    select(func.count(Request.id)).where(Request.status.in_([s.value for s in NOTIFIED_STATUSES]))
                )
                or 0
            )
        time_sql(db, now)  # warm the page cache once, for both alike
        time_decide(db, now)
        sql_runs, decide_runs = [], []
        due: set[int] = set()
        expired = 0
        for _ in range(runs):  # interleaved, so drift affects both alike
            seconds, found = time_sql(db, now)
            sql_runs.append(seconds)
            seconds, due, expired = time_decide(db, now)
            decide_runs.append(seconds)
            if due != found:
                raise RuntimeError(f"the cycle found {len(due)} reminders due, the SQL {len(found)}: they differ")
    finally:
        db.dispose()
    sql, decide = statistics.median(sql_runs), statistics.median(decide_runs)
    figures: dict[str, float | int | str] = {
        "decide_seconds": round(decide, 4),
        "sql_seconds": round(sql, 4),
        "shelved": shelved,
        "reminders_due": len(due),
        "holds_over": expired,
        "target_ratio": TARGET_RATIO,
        "within_target": "yes" if decide / sql <= TARGET_RATIO else "NO",
    }
    if build_seconds is not None:
        figures["build_seconds"] = round(build_seconds, 1)
    emit(
        "shelf_reminders",
        figures,
        baseline="one SQLite statement selecting the due reminders (default policy), same database, same run",
        ratio=decide / sql,
        ratio_meaning="cycle's shelf decision time ÷ raw SQL time (target ≤ 3)",
        description=f"Hold-shelf reminder decision for {shelved:,} shelved requests in a {size.total:,}-request "
        "SQLite database (median of runs)",
        units={"decide_seconds": "s", "sql_seconds": "s", "build_seconds": "s"},
        parameters={"requests": size.total, "shelved": size.shelved, "patrons": size.patrons, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
