"""Benchmark: how fast ``seed-demo`` fills a SQLite database, against a plain ``sqlite3`` executemany.

``callslip-manager seed-demo`` builds the large databases the other benchmarks and load tests need, so its speed
decides how long they take to prepare. The baseline writes exactly the same rows (read back from the seeded
database) into an empty copy of the schema with ``sqlite3.executemany`` in one transaction, with the same
pragmas Callslip uses (WAL, ``synchronous=NORMAL``, foreign keys on) — the fastest a Python program can put those
rows into SQLite. The ratio (seed rate ÷ baseline rate) is the share of that speed seed-demo reaches while also
generating the data, checking nothing is missing and going through SQLAlchemy.

Run: ``python -m bench.seed_rate [--quick] [--requests N] [--patrons N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from bench._common import emit, scratch_dir, timed

#: Tables seed-demo writes, parents first (the order the baseline inserts them in).
TABLES = ("households", "patrons", "contact_points", "requests", "tracking")


def seed(path: Path, patrons: int, requests: int) -> tuple[int, float]:
    """Seed ``path`` with seed-demo; return the rows it wrote and the seconds seeding took."""
    from desktop.db.engine import sqlite_url
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database

    db, _ = open_database(sqlite_url(path))
    try:
        before = _counts(path)
        result = seed_demo(db, patrons, requests)
        written = sum(_counts(path).values()) - sum(before.values())
    finally:
        db.dispose()
    return written, result.seconds


def _counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def baseline(source: Path, target: Path) -> tuple[int, float]:
    """Copy the seeded rows of ``source`` into an empty ``target`` with executemany; rows and seconds."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        for (sql,) in src.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"):
            if not sql.startswith("CREATE TABLE sqlite_"):
                dst.execute(sql)
        dst.execute("PRAGMA journal_mode = WAL")
        dst.execute("PRAGMA synchronous = NORMAL")
        dst.execute("PRAGMA foreign_keys = ON")
        # Everything the baseline writes is read into memory first: only the writing is timed.
        data = {}
        for table in TABLES:
            cursor = src.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            data[table] = (columns, cursor.fetchall())
        # Reference rows seed-demo did not write (Locations, pickup locations) must exist for the foreign keys.
        for (table,) in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall():
            if table not in TABLES:
                rows = src.execute(f"SELECT * FROM {table}").fetchall()
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    dst.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

        def write() -> int:
            total = 0
            dst.execute("BEGIN IMMEDIATE")
            for table, (columns, rows) in data.items():
                if rows:
                    marks = ", ".join("?" * len(columns))
                    dst.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
                    total += len(rows)
            dst.execute("COMMIT")
            return total

        return timed(write)
    finally:
        src.close()
        dst.close()


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description="seed-demo rows/s against plain sqlite3 executemany")
    parser.add_argument("--quick", action="store_true", help="10,000 requests instead of 100,000")
    parser.add_argument("--requests", type=int, help="requests to seed (default 100,000; 10,000 with --quick)")
    parser.add_argument("--patrons", type=int, help="patrons to seed (default requests / 20)")
    args = parser.parse_args(argv)
    requests = args.requests or (10_000 if args.quick else 100_000)
    patrons = args.patrons or max(requests // 20, 10)
    with scratch_dir() as folder:
        seeded, seed_seconds = seed(folder / "seeded.sqlite3", patrons, requests)
        copied, copy_seconds = baseline(folder / "seeded.sqlite3", folder / "baseline.sqlite3")
    if copied != seeded:
        raise SystemExit(f"the baseline wrote {copied} rows but seed-demo wrote {seeded}")
    seed_rate = seeded / seed_seconds
    raw_rate = copied / copy_seconds
    emit(
        "seed_rate",
        {
            "seed_rows_per_s": round(seed_rate),
            "executemany_rows_per_s": round(raw_rate),
            "seed_seconds": round(seed_seconds, 3),
            "executemany_seconds": round(copy_seconds, 3),
            "rows": seeded,
        },
        units={
            "seed_rows_per_s": "rows/s",
            "executemany_rows_per_s": "rows/s",
            "seed_seconds": "s",
            "executemany_seconds": "s",
            "rows": "rows",
        },
        baseline="plain sqlite3 executemany of the same rows in one transaction (same pragmas)",
        ratio=seed_rate / raw_rate,
        ratio_meaning="seed-demo rate ÷ executemany rate (1.0 = as fast as raw inserts)",
        description=f"seed-demo of {requests:,} requests and {patrons:,} patrons into a new SQLite file",
        parameters={"requests": requests, "patrons": patrons},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
