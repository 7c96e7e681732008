"""The first cycle after a big import: 20,000 requests waiting at Awaiting Customer Contact, none with its notice
yet; how long the System Manager's arrival scan (``scan_arrivals``) takes to queue their notices, against the raw
``INSERT … SELECT`` of the same rows through the ``sqlite3`` driver (hand-written SQL: the latest Tracking row,
the primary e-mail address, the dedupe key).

Rounds alternate (ours, then raw, each on the same database after the notices are deleted again), so both see the
same machine load; the figures are medians with min–max, ``ratio`` the median of the rounds' ratios (goal ≤ 3).
``cycle_seconds`` is the whole first cycle without sending (``run_cycle(send=False)``: routing, the scan, upkeep,
the digest's gathering pass, the hold shelf, the counts), alternated with the same raw statement too.

Run: ``python -m bench.first_cycle`` (``--quick``: the same 20,000 arrivals, which take seconds, in 3 rounds
instead of 7).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench._common import emit, scratch_dir, spread_text
from desktop.config import Settings
from desktop.db.engine import sqlite_url
from desktop.domain.clock import utcnow
from desktop.services.database import open_database
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.routing import scan_arrivals
from tests.outbox_support import bulk_arrivals

RAW = """
INSERT INTO notifications (dedupe_key, channel, template_name, request_id, patron_id, tracking_id, state,
    to_address, cc, bcc, from_address, subject, body_text, body_html, message_id, attempts, next_attempt_at,
    last_reply, created_at, updated_at)
SELECT 'arrival:' || r.id || ':' || 'Loan Pickup' || ':' || t.id, 'email', 'Loan Pickup', r.id, r.patron_id, t.id,
    'pending', c.value, '', '', '', '', '', '', '', 0, ?, '', ?, ?
FROM requests r
JOIN patrons p ON p.id = r.patron_id
JOIN tracking t ON t.id = (SELECT max(id) FROM tracking WHERE request_id = r.id)
JOIN contact_points c ON c.patron_id = r.patron_id AND c.kind = 'email' AND c.is_primary
WHERE r.status = 'Awaiting Customer Contact' AND p.notification_method = 'E-Mail'
  AND t.to_status = 'Awaiting Customer Contact'
ON CONFLICT (dedupe_key) DO NOTHING
"""


def main(argv: list[str] | None = None) -> int:
    """Seed the arrivals, alternate ours and raw, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 7, 3 with --quick)")
    args = parser.parse_args(argv)
    count = args.count
    args.rounds = args.rounds or (3 if args.quick else 7)
    ours: list[float] = []
    raw: list[float] = []
    cycles: list[float] = []
    cycle_raw: list[float] = []
    with scratch_dir() as folder:
        path = folder / "first_cycle.sqlite3"
        db, _ = open_database(sqlite_url(path))
        bulk_arrivals(db, count)

        def clear() -> None:
            with db.write() as session:
                session.execute(text("DELETE FROM notifications"))

        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")

        def raw_insert() -> float:
            clear()
            stamp = utcnow().isoformat()
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            inserted = conn.execute(RAW, (stamp, stamp, stamp)).rowcount
            conn.execute("COMMIT")
            assert inserted == count, inserted
            return time.perf_counter() - started

        try:
            for _ in range(args.rounds):
                clear()
                started = time.perf_counter()
                created = scan_arrivals(db, now=utcnow()).created
                ours.append(time.perf_counter() - started)
                assert created == count, created
                raw.append(raw_insert())
            for _ in range(args.rounds):
                clear()
                started = time.perf_counter()
                summary = run_cycle(db, Settings(), send=False)
                cycles.append(time.perf_counter() - started)
                assert summary.created == count, summary.describe()
                cycle_raw.append(raw_insert())
        finally:
            conn.close()
            db.dispose()
    ratios = [o / r for o, r in zip(ours, raw, strict=True)]
    cycle_ratios = [c / r for c, r in zip(cycles, cycle_raw, strict=True)]
    emit(
        "first_cycle",
        {
            "scan_seconds": round(statistics.median(ours), 4),
            "raw_insert_select_seconds": round(statistics.median(raw), 4),
            "scan_rounds_s": spread_text(ours),
            "raw_rounds_s": spread_text(raw),
            "round_ratios": spread_text(ratios),
            "cycle_seconds": round(statistics.median(cycles), 4),
            "cycle_rounds_s": spread_text(cycles),
            "cycle_ratio": round(statistics.median(cycle_ratios), 3),
            "cycle_round_ratios": spread_text(cycle_ratios),
            "notices": count,
        },
        baseline="the raw INSERT … SELECT of the same notices through the sqlite3 driver, alternated",
        ratio=statistics.median(ratios),
        ratio_meaning="median of the rounds' scan_arrivals ÷ raw INSERT … SELECT; goal ≤ 3 (cycle_ratio: the whole "
        "first cycle without sending ÷ the same raw statement)",
        description=f"first System Manager cycle after importing {count:,} requests at Awaiting Customer Contact "
        "with no notice: the arrival scan queuing them (SQLite)",
        units={"scan_seconds": "s", "raw_insert_select_seconds": "s", "cycle_seconds": "s"},
        parameters={"arrivals": count, "rounds": args.rounds},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
