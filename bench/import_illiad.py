"""Benchmark: ``import-illiad`` of a generated ILLiad export folder, against a raw bulk insert of the same rows.

The folder is written by ``tests/illiad_fixtures.py`` (the realistic exports the tests use: every column, ``NULL``
as text, UTF-16/UTF-8/Windows-1252, vocabulary variants, a few dirty rows) with N random users, 10·N transactions
and 30·N tracking rows (the issue's full size: 100,000 users, 1,000,000 transactions, 3,000,000
tracking rows). The baseline is the same rows the import wrote (patrons, contact points, requests, tracking,
notes, notices), read back and inserted with the driver's own ``executemany`` in one transaction into a new
database of the same schema, as the import started from: the fastest a Python program can put them in. Each
round imports into a new database and then times the baseline (alternated). The ratio is the import's whole
time (reading every file, checking, planning, writing) ÷ that baseline (target ≤ 3). Peak memory (``peak_mb``)
is the import's own: it runs in a process of its own, as ``callslip-manager import-illiad`` does, and reports its
peak resident size (target ≤ 500 MB). Until November 2026 the figure was this process's peak, which the baseline
set: it holds every row in memory to insert it (2.2 GB at the full size, against 315 MB for the import); that
figure is now ``baseline_process_peak_mb``, and ``generator_peak_mb`` the folder generator's.

The import streams (tables read and written in batches, small per-request maps), so its peak memory should stay
flat as the size grows.

Run: ``python -m bench.import_illiad --full`` (the issue's size: 100,000 users, 1,000,000 transactions, 3,000,000
tracking rows; the default), ``--quick`` (2,000 users) or ``--users N``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from bench._common import emit, scratch_dir, spread_text, timed
from desktop.db.engine import Database, sqlite_url
from desktop.db.models import Base, ContactPoint, Notification, Patron, Request, RequestNote, Tracking
from desktop.services.admin.illiad_import import import_illiad
from desktop.services.database import open_database
from tests import illiad_fixtures

#: The issue's size: 100,000 users, 1,000,000 transactions, 3,000,000 tracking rows.
FULL_USERS = 100_000

#: Child tables first (deleted first, inserted last).
TABLES: list[Table] = [
    model.__table__  # type: ignore[misc]
    for model in (Notification, RequestNote, Tracking, Request, ContactPoint, Patron)
]


def peak_mb() -> float:
    """This process's peak resident memory in MB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def measure(users: int, rounds: int) -> dict[str, Any]:
    """Generate the folder once; each round imports it into a new SQLite database, then times the raw insert of
    the same rows (alternated, so both see the same machine load); the median round by ratio, with the spread."""
    results: list[dict[str, Any]] = []
    with scratch_dir() as folder:
        illiad_fixtures.generate(folder / "export", extra=users)
        before = peak_mb()
        spawn = multiprocessing.get_context("spawn")
        for n in range(rounds):
            path = folder / f"illiad{n}.sqlite3"
            imported = run_import(spawn, path, folder / "export")
            db, _ = open_database(sqlite_url(path))
            empty, _ = open_database(sqlite_url(folder / f"raw{n}.sqlite3"))
            try:
                raw_seconds, rows = raw_insert(db, empty)
            finally:
                db.dispose()
                empty.dispose()
            results.append({
                "users": users,
                **{k: v for k, v in imported.items() if k != "import_peak_mb"},
                "rows_written": rows,
                "raw_executemany_seconds": round(raw_seconds, 3),
                "ratio": round(float(imported["import_seconds"]) / raw_seconds, 3),
                "import_peak_mb": imported["import_peak_mb"],
            })  # fmt: skip
    ratios = [float(r["ratio"]) for r in results]
    median = dict(sorted(results, key=lambda r: float(r["ratio"]))[len(results) // 2])
    median["ratio"] = round(statistics.median(ratios), 3)
    median["round_ratios"] = spread_text(ratios)
    median["import_rounds_s"] = spread_text([float(r["import_seconds"]) for r in results])
    median["raw_rounds_s"] = spread_text([float(r["raw_executemany_seconds"]) for r in results])
    # The import's own process: its peak is what an administrator's machine needs (the baseline, which holds every
    # row in memory to insert it, is this process's and is reported apart).
    median["peak_mb"] = max(float(r["import_peak_mb"]) for r in results)
    median["generator_peak_mb"] = before
    median["baseline_process_peak_mb"] = peak_mb()
    return median


def run_import(spawn: Any, database: Path, export: Path) -> dict[str, float | int]:
    """``import_illiad`` into a new SQLite file in a process of its own (started afresh, as ``callslip-manager
    import-illiad`` would be), so its peak memory is the import's alone; its figures come back over a pipe."""
    receiving, sending = spawn.Pipe(duplex=False)
    child = spawn.Process(target=_import_child, args=(str(database), str(export), sending))
    child.start()
    sending.close()
    try:
        figures: dict[str, float | int] = receiving.recv()
    except EOFError:
        child.join()
        raise RuntimeError(f"the import process ended without figures (exit code {child.exitcode})") from None
    child.join()
    return figures


def _import_child(database: str, export: str, sending: Any) -> None:
    db, _ = open_database(sqlite_url(Path(database)))
    try:
        report, seconds = timed(partial(import_illiad, db, Path(export)))
    finally:
        db.dispose()
    sending.send({
        "transactions_read": report.tables["Transactions"].read,
        "tracking_read": report.tables["Tracking"].read,
        "requests_imported": report.tables["Transactions"].imported,
        "import_seconds": round(seconds, 3),
        "lock_seconds": round(report.lock_seconds, 3),
        "import_peak_mb": peak_mb(),
    })  # fmt: skip
    sending.close()


def raw_insert(db: Database, empty: Database) -> tuple[float, int]:
    """Read back what the import wrote and insert it with the driver's executemany into ``empty``: a new database
    with the same schema, as the import started from (re-inserting into the imported file after a DELETE reused
    its free pages and never grew the file, a cheaper job than the import's)."""
    data = []
    parents = []  # what the rows refer to (pickup desks, households, …): copied first, untimed
    with db.read() as session:
        for table in reversed(TABLES):
            result = session.execute(select(table))
            data.append((table.name, list(result.keys()), [tuple(r) for r in result]))
        for table in Base.metadata.sorted_tables:
            if table not in TABLES:
                result = session.execute(select(table))
                parents.append((table.name, list(result.keys()), [tuple(r) for r in result]))
    raw = empty.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        for name, _columns, _rows in reversed(parents):
            cursor.execute(f"DELETE FROM {name}")
        for name, columns, parent_rows in parents:
            sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})"
            cursor.executemany(sql, parent_rows)
        cursor.execute("COMMIT")

        def write() -> int:
            cursor.execute("BEGIN IMMEDIATE")
            total = 0
            for name, columns, rows in data:
                sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join(['?'] * len(columns))})"
                cursor.executemany(sql, rows)
                total += len(rows)
            cursor.execute("COMMIT")
            return total

        rows, seconds = timed(write)
    finally:
        raw.close()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="2,000 users instead of 100,000")
    size.add_argument("--full", action="store_true", help="the issue's size: 100,000 users (the default)")
    size.add_argument("--users", type=int, help="random users (10× transactions); default 100,000")
    parser.add_argument("--rounds", type=int, default=0, help="alternated rounds (default 3 with --quick, else 1)")
    args = parser.parse_args(argv)
    users = args.users or (2_000 if args.quick else FULL_USERS)
    figures = measure(users, args.rounds or (3 if args.quick else 1))
    emit(
        "import_illiad",
        figures,
        baseline="the same rows inserted with sqlite3's executemany in one transaction",
        ratio=float(figures["ratio"]),
        ratio_meaning="import-illiad's whole time ÷ raw executemany seconds, median (min–max) of alternated rounds; "
        "target ≤ 3 (peak memory ≤ 500 MB)",
        description=f"import-illiad of a generated export: {users:,} users, {10 * users:,} transactions",
        units={k: "s" for k in figures if k.endswith("seconds")} | {k: "MB" for k in figures if "mb" in k},
        parameters={"users": users, "rounds": args.rounds or (3 if args.quick else 1)},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
