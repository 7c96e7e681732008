"""Benchmark: ``import-patrons`` of a large file, and how long it holds the write lock, against a raw bulk insert.

A 100,000-patron import used to hold SQLite's write lock for about 300 s (every other workstation's writes failed
with "database is locked" meanwhile). The importer now reads, checks and plans everything first and takes the
lock only to write, in bulk. This benchmark imports a generated ILLiad-style file (UserName, names, e-mail, phone,
address, Site) into a new database, then measures the baseline: the same rows the import wrote (patrons and
contact points, read back from the database and deleted) inserted again with the driver's own ``executemany``
(``sqlite3`` / psycopg) in one transaction, with the same indexes in place — the fastest a Python program can
put those rows in. The ratio is the import's lock-held seconds ÷ the baseline's seconds (target ≤ 3); the whole
import's time (reading, checking every e-mail and phone number, planning) is reported beside it.

Run: ``python -m bench.import_patrons [--quick] [--patrons N] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import uuid
from typing import Any

from sqlalchemy import Table, create_engine, make_url, select, text

from bench._common import emit, scratch_dir, timed
from desktop.db.engine import Database, sqlite_url
from desktop.db.models import ContactPoint, Patron
from desktop.services.admin.csv_import import import_patrons
from desktop.services.database import open_database

COLUMNS = ("UserName", "FirstName", "LastName", "EMailAddress", "Phone", "NotificationMethod", "Address", "City",
           "State", "Zip", "Department", "Status", "Site")  # fmt: skip


def make_file(patrons: int) -> bytes:
    """An ILLiad-style patron file with ``patrons`` rows (every row valid, every patron new)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in range(patrons):
        writer.writerow(
            (f"user{i:07d}", "Ada", f"Lovelace {i}", f"user{i}@example.org", f"(217) 555-{i % 10000:04d}", "E-Mail",
             f"{i} Oak Street", "Springfield", "IL", "62701", "Mathematics", "Faculty", "MAIN")
        )  # fmt: skip
    return out.getvalue().encode()


def measure(url: str, patrons: int) -> dict[str, Any]:
    """Import into the (empty) database at ``url``, then time the raw bulk insert of the same rows there."""
    db, _ = open_database(url)
    try:
        data = make_file(patrons)
        result, import_seconds = timed(lambda: import_patrons(db, data))
        if not result.ok or result.created != patrons:
            raise SystemExit(f"the import failed: {result.summary()} {result.errors[:3]}")
        raw_seconds, rows = raw_insert(db)
    finally:
        db.dispose()
    return {
        "patrons": patrons,
        "rows_written": rows,
        "import_seconds": round(import_seconds, 3),
        "lock_seconds": round(result.lock_seconds, 3),
        "raw_executemany_seconds": round(raw_seconds, 3),
        "lock_ratio": round(result.lock_seconds / raw_seconds, 3),
        "total_ratio": round(import_seconds / raw_seconds, 3),
    }


def raw_insert(db: Database) -> tuple[float, int]:
    """Read back what the import wrote, delete it, and insert it again with the driver's executemany."""
    tables: list[Table] = [Patron.__table__, ContactPoint.__table__]  # type: ignore[list-item]
    data = []
    with db.read() as session:
        for table in tables:
            result = session.execute(select(table))
            data.append((table.name, list(result.keys()), [tuple(r) for r in result]))
    with db.write() as session:
        session.execute(text("DELETE FROM contact_points"))
        session.execute(text("DELETE FROM patrons"))
    sqlite = db.backend == "sqlite"
    mark = "?" if sqlite else "%s"
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()

        def write() -> int:
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")  # Callslip's connections run in autocommit: BEGIN is explicit
            total = 0
            for name, columns, rows in data:
                sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
                cursor.executemany(sql, rows)
                total += len(rows)
            if sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
            return total

        rows, seconds = timed(write)
    finally:
        raw.close()
    return seconds, rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 patrons instead of 100,000")
    parser.add_argument("--patrons", type=int, help="rows in the file (default 100,000; 10,000 with --quick)")
    parser.add_argument("--postgres", metavar="URL", help="also measure on a scratch database of this server")
    args = parser.parse_args(argv)
    patrons = args.patrons or (10_000 if args.quick else 100_000)
    figures: dict[str, Any] = {}
    with scratch_dir() as folder:
        sqlite = measure(sqlite_url(folder / "import.sqlite3"), patrons)
    figures.update({f"sqlite_{k}": v for k, v in sqlite.items()})
    if args.postgres:
        base = make_url(args.postgres).set(drivername="postgresql+psycopg")
        name = f"callslip_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            pg = measure(base.set(database=name).render_as_string(hide_password=False), patrons)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        figures.update({f"postgres_{k}": v for k, v in pg.items()})
    emit(
        "import_patrons",
        figures,
        baseline="the same patron and contact-point rows inserted with the driver's executemany in one transaction",
        ratio=float(sqlite["lock_ratio"]),
        ratio_meaning="SQLite import's write-lock seconds ÷ raw executemany seconds; target ≤ 3",
        description=f"import-patrons of a new {patrons:,}-row ILLiad-style file (e-mail and phone on every row)",
        units={k: "s" for k in figures if k.endswith("seconds")} | {k: "rows" for k in figures if "rows" in k},
        parameters={"patrons": patrons, "postgres": bool(args.postgres)},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
