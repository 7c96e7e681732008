"""Benchmark: patron search (phone in any format, name, e-mail) on a large SQLite database.

Staff type into the search box and expect the hit before they look up; the phone path must stay an indexed
equality on the stored E.164 value whatever the typed format. The baseline is the fastest possible form of that
lookup: plain ``sqlite3`` running ``SELECT patron_id FROM contact_points WHERE kind IN ('phone','fax') AND
normalized = ?`` on the same file. The ratio (search_patrons for a typed phone ÷ baseline) is what parsing the
typed number, SQLAlchemy, the EXISTS query and reading the hit's primary contacts cost on top.

Run: ``python -m bench.patron_search [--quick] [--patrons N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from collections.abc import Callable

from bench._common import emit, scratch_dir


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="5,000 patrons instead of 50,000")
    parser.add_argument("--patrons", type=int)
    args = parser.parse_args()
    patrons = args.patrons or (5_000 if args.quick else 50_000)
    repeat = 15 if args.quick else 30

    from sqlalchemy import select

    from desktop.db.engine import sqlite_url
    from desktop.db.models import ContactPoint, Patron
    from desktop.domain.contacts import format_phone, normalize_phone
    from desktop.services.admin.demo import seed_demo
    from desktop.services.database import open_database
    from desktop.services.patrons.lookup import search_patrons

    with scratch_dir() as folder:
        path = folder / "search.sqlite3"
        db, _ = open_database(sqlite_url(path))
        try:
            seed_demo(db, patrons, 0)
            phone = normalize_phone("(646) 555-0999").normalized  # one patron's own number, as in real data
            with db.write() as session:
                target = session.scalars(select(Patron).order_by(Patron.id.desc()).limit(1)).one()
                target.contact_points.append(ContactPoint(kind="phone", value=phone, normalized=phone, position=9))
            with db.read() as session:
                target = session.scalars(select(Patron).order_by(Patron.id.desc()).limit(1)).one()
                email = next(c.normalized for c in target.contact_points if c.kind == "email")
                last_name, target_id = target.last_name, target.id
                points = session.query(ContactPoint).count()
            typed = format_phone(phone).replace("(", "").replace(")", "").replace(" ", ".")  # 217.555-0123
            assert any(h.id == target_id for h in search_patrons(db, typed))

            conn = sqlite3.connect(path)
            sql = "SELECT patron_id FROM contact_points WHERE kind IN ('phone','fax') AND normalized = ?"
            baseline = median_ms(lambda: conn.execute(sql, (phone,)).fetchall(), repeat)
            conn.close()
            figures = {
                "patrons": patrons,
                "contact_points": points,
                "baseline_ms": round(baseline, 3),
                "phone_any_format_ms": round(median_ms(lambda: search_patrons(db, typed), repeat), 2),
                "phone_fragment_ms": round(median_ms(lambda: search_patrons(db, phone[-6:]), repeat), 2),
                "email_exact_ms": round(median_ms(lambda: search_patrons(db, email), repeat), 2),
                "last_name_ms": round(median_ms(lambda: search_patrons(db, last_name), repeat), 2),
            }
        finally:
            db.dispose()
    emit(
        "patron_search",
        figures,
        baseline="plain sqlite3 indexed lookup of the E.164 value",
        ratio=figures["phone_any_format_ms"] / max(figures["baseline_ms"], 1e-6),
        ratio_meaning="search_patrons for a typed phone ÷ the bare indexed lookup (lower is better)",
        description="patron search box: phone typed in any format, phone fragment, e-mail, last name",
        units={k: "ms" for k in figures if k.endswith("_ms")},
        parameters={"patrons": patrons, "repeat": repeat},
    )


if __name__ == "__main__":
    main()
