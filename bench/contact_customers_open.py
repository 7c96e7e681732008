"""Benchmark: open the Contact Customers form on 50,000 waiting requests within a 1,000,000-request database.

Measures, in the same run and on the same SQLite file:

* ``sql_seconds``: the form's one statement alone (``contact_customers_query()`` executed and fetched);
* ``form_seconds``: ``open_contact_customers`` until all three groups are filled and painted (offscreen).

and prints ONE JSON line with both medians and their ratio (target ≤ 3), plus

* ``peak_rss_mib``: the peak resident memory (``VmHWM``) of a fresh process that only opens the form
  (``--rss-probe``: no raw-SQL fetch and no tracemalloc in that process to inflate it, and not ``ru_maxrss``,
  which a child inherits from its parent on Linux); the goal is ≤ 300 MB at 50,000 waiting;
* ``refresh_stall_ms``: the longest the GUI thread's event loop went without turning (a 5 ms timer's largest
  gap) while the open form refreshes on a changed list (one request moved per refresh), and ``idle_stall_ms``,
  the same probe with the form refreshing on an unchanged list.

The database is built once (``seed_demo`` with status weights, then exactly 50,000 requests set waiting) and
cached under ``bench/.cache/`` (ignored by git: about a minute to build); pass ``--rebuild`` to build it again.
``--quick`` uses 100,000 requests with 2,000 waiting. Qt settings (the form's geometry) go to a scratch folder,
never to the settings of the person running it.

Run: ``.venv/bin/python -m bench.contact_customers_open [--runs 5] [--rebuild] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from sqlalchemy import func, select, update

from bench._common import emit, isolated_environment, scratch_dir, spread_text
from desktop.config import Settings
from desktop.db.engine import sqlite_url
from desktop.db.models import Request
from desktop.domain.statuses import Status
from desktop.services.admin.demo import DEFAULT_STATUS_WEIGHTS, seed_demo
from desktop.services.database import Database, open_database
from desktop.services.requests.contact_customers import contact_customers_query

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_RATIO = 3.0
MEMORY_TARGET_MB = 300


@dataclass(frozen=True)
class Size:
    """How big the benchmark database is."""

    total: int
    waiting: int
    patrons: int


FULL = Size(1_000_000, 50_000, 50_000)  # the memory goal (≤ 300 MB peak RSS) is at 50,000 waiting
QUICK = Size(100_000, 2_000, 5_000)


def build(path: Path, size: Size) -> float:
    """Create the benchmark database; returns the seconds it took."""
    started = time.perf_counter()
    partial = path.with_suffix(".partial.sqlite3")
    partial.unlink(missing_ok=True)
    db, _ = open_database(sqlite_url(partial))
    weights = dict(DEFAULT_STATUS_WEIGHTS)
    others = sum(w for s, w in weights.items() if s is not Status.AWAITING_CUSTOMER_CONTACT)
    weights[Status.AWAITING_CUSTOMER_CONTACT] = others * size.waiting / (size.total - size.waiting)
    seed_demo(db, patrons=size.patrons, requests=size.total, status_weights=weights)
    _exactly_waiting(db, size)
    db.dispose()
    partial.replace(path)
    return time.perf_counter() - started


def _exactly_waiting(db: Database, size: Size) -> None:
    """Random weights give about 2 %; make it exactly ``wanted`` (surplus → notified, shortfall ← in transit)."""
    waiting = Status.AWAITING_CUSTOMER_CONTACT.value
    wanted = size.waiting
    with db.write() as session:
        have = int(session.scalar(select(func.count(Request.id)).where(Request.status == waiting)) or 0)
        if have > wanted:
            ids = select(Request.id).where(Request.status == waiting).order_by(Request.id.desc()).limit(have - wanted)
            target = Status.NOTIFIED_VIA_EMAIL.value
        else:
            source = Status.IN_TRANSIT_TO_PICKUP.value
            ids = select(Request.id).where(Request.status == source).order_by(Request.id).limit(wanted - have)
            target = waiting
        if have != wanted:
            session.execute(
                update(Request).where(Request.id.in_(ids.scalar_subquery())).values(status=target),
                execution_options={"synchronize_session": False},
            )
        final = session.scalar(select(func.count(Request.id)).where(Request.status == waiting))
        total = session.scalar(select(func.count(Request.id)))
    if final != wanted or total != size.total:
        raise RuntimeError(f"benchmark database has {final} waiting of {total}, wanted {wanted} of {size.total}")


def time_sql(db: Database) -> tuple[float, int]:
    """The statement alone through the raw driver (``sqlite3``, no SQLAlchemy): execute and fetch every row."""
    # ``render_postcompile``: the statement's IN lists are "expanding" parameters, rendered only at execution.
    compiled = contact_customers_query().compile(dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    sql, values = str(compiled), [params[name] for name in compiled.positiontup or ()]
    path = db.engine.url.database
    assert path
    conn = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        rows = conn.execute(sql, values).fetchall()
        return time.perf_counter() - started, len(rows)
    finally:
        conn.close()


def form_memory(db: Database, expected_rows: int) -> float:
    """Peak Python memory (tracemalloc, MiB) while the form opens and shows every row: what Python keeps per row."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        time_form(db, expected_rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak / 2**20


def rss_probe(db_file: Path, expected_rows: int) -> float:
    """In a fresh process: open the form once; its peak RSS (MiB), Qt's allocations included."""
    command = [sys.executable, "-m", "bench.contact_customers_open", "--rss-probe", str(db_file),
               "--waiting", str(expected_rows)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    return float(done.stdout.strip().splitlines()[-1])


def _probe_main(db_file: Path, expected_rows: int) -> int:
    db = Database(sqlite_url(db_file))
    try:
        time_form(db, expected_rows)
    finally:
        db.dispose()
    print(peak_rss_mib())
    return 0


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB). On Linux ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss``
    would report the parent's peak (Linux carries it over fork and exec into the child's rusage)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def refresh_stalls(db: Database, expected_rows: int, refreshes: int = 5) -> tuple[float, float]:
    """The event loop's longest stall (ms) while the open form refreshes: on a changed list (one waiting request
    moved away and back between refreshes), and on an unchanged one. A 5 ms timer records the gaps between its
    ticks; a gap far over 5 ms is a time the window could not repaint or take a key."""
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.ui.context import AppContext
    from desktop.ui.requests.contact_customers import open_contact_customers

    app = QApplication.instance() or QApplication(sys.argv[:1])
    ctx = AppContext(db, Settings(staff_name="bench"))
    dialog = open_contact_customers(ctx)
    loop = QEventLoop()
    dialog.loaded.connect(loop.quit)
    loop.exec()
    with db.read() as session:
        moving = session.scalar(select(Request.id).where(Request.status == Status.AWAITING_CUSTOMER_CONTACT.value))
    clock, ticker = QElapsedTimer(), QTimer()
    gaps: list[float] = []

    def tick() -> None:
        gaps.append(clock.nsecsElapsed() / 1e6)
        clock.restart()

    ticker.timeout.connect(tick)
    ticker.setInterval(5)
    results = []
    for changed in (True, False):
        worst = 0.0
        for number in range(refreshes + refreshes % 2):  # even: the moved request ends up waiting again
            if changed:  # another workstation moved a request (away, then back): the list differs each time
                status = Status.NOTIFIED_VIA_PHONE if number % 2 == 0 else Status.AWAITING_CUSTOMER_CONTACT
                with db.write() as session:
                    session.execute(update(Request).where(Request.id == moving).values(status=status.value))
            gaps.clear()
            clock.start()
            ticker.start()
            dialog.reload()
            loop.exec()  # until ``loaded``: the worker's read and the GUI thread's update
            app.processEvents()
            ticker.stop()
            worst = max([worst, *gaps])
        results.append(worst)
    dialog.close()
    ctx.shutdown()
    dialog.deleteLater()
    app.processEvents()
    return results[0], results[1]


def time_form(db: Database, expected_rows: int) -> tuple[float, dict[str, int]]:
    """Open the form in a fresh workstation context and wait until the groups are filled and painted."""
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.ui.context import AppContext
    from desktop.ui.requests.contact_customers import open_contact_customers

    app = QApplication.instance() or QApplication(sys.argv[:1])
    ctx = AppContext(db, Settings(staff_name="bench"))
    loop = QEventLoop()
    timeout = QTimer()
    timeout.setSingleShot(True)
    timeout.timeout.connect(loop.quit)
    started = time.perf_counter()
    dialog = open_contact_customers(ctx)
    dialog.loaded.connect(loop.quit)
    timeout.start(120_000)
    loop.exec()
    app.processEvents()  # lay out and paint the filled tables
    dialog.repaint()
    seconds = time.perf_counter() - started
    counts = {method.value: n for method, n in dialog.group_counts().items()}
    if sum(counts.values()) != expected_rows:
        raise RuntimeError(f"the form shows {counts}, expected {expected_rows} rows in all")
    dialog.close()
    ctx.shutdown()
    dialog.deleteLater()
    app.processEvents()
    return seconds, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median reported)")
    parser.add_argument("--rebuild", action="store_true", help="build the cached database again")
    parser.add_argument("--quick", action="store_true", help="100,000 requests, 2,000 waiting")
    parser.add_argument("--waiting", type=int, default=0, help="waiting requests (the memory goal is at 50,000)")
    parser.add_argument("--rss-probe", type=Path, help=argparse.SUPPRESS)  # the child that measures peak RSS
    args = parser.parse_args(argv)
    if args.rss_probe:
        return _probe_main(args.rss_probe, args.waiting)
    size = QUICK if args.quick else FULL
    if args.waiting:
        size = Size(size.total, args.waiting, size.patrons)
    with scratch_dir() as scratch:
        os.environ.update(isolated_environment(scratch))
        return _run(args.runs, args.rebuild, size)


def _run(runs: int, rebuild: bool, size: Size) -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n", encoding="utf-8")  # the database and its -wal/-shm files
    db_file = CACHE / f"contact_customers_{size.total}_{size.waiting}.sqlite3"
    build_seconds = None
    if rebuild or not db_file.exists():
        build_seconds = build(db_file, size)
    db = Database(sqlite_url(db_file))
    try:
        time_sql(db)  # warm the page cache once, for both measurements alike
        time_form(db, size.waiting)
        sql_runs, form_runs = [], []
        rows = 0
        counts: dict[str, int] = {}
        for _ in range(runs):  # interleaved, so drift affects both alike
            seconds, rows = time_sql(db)
            sql_runs.append(seconds)
            seconds, counts = time_form(db, size.waiting)
            form_runs.append(seconds)
        peak_python_mib = form_memory(db, size.waiting)
        refresh_stall_ms, idle_stall_ms = refresh_stalls(db, size.waiting)
    finally:
        db.dispose()
    peak_rss_mib = rss_probe(db_file, size.waiting)
    sql = statistics.median(sql_runs)
    form = statistics.median(form_runs)
    figures: dict[str, float | int | str] = {
        "form_seconds": round(form, 4),
        "sql_seconds": round(sql, 4),
        "waiting_rows": rows,
        **{f"{method}_rows": n for method, n in counts.items()},
        "sql_rounds_s": spread_text(sql_runs),
        "form_rounds_s": spread_text(form_runs),
        "round_ratios": spread_text([f / q for f, q in zip(form_runs, sql_runs, strict=True)]),
        "peak_python_mib": round(peak_python_mib, 1),
        "python_mib_per_1000_waiting": round(peak_python_mib * 1000 / size.waiting, 2),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "refresh_stall_ms": round(refresh_stall_ms, 1),
        "idle_stall_ms": round(idle_stall_ms, 1),
        "memory_within_target": "yes" if peak_rss_mib <= MEMORY_TARGET_MB else "NO",
        "target_ratio": TARGET_RATIO,
        "within_target": "yes" if form / sql <= TARGET_RATIO else "NO",
    }
    if build_seconds is not None:
        figures["build_seconds"] = round(build_seconds, 1)
    emit(
        "contact_customers_open",
        figures,
        baseline="the form's SQL statement alone through the raw sqlite3 driver (executed and fetched), same "
        "database, alternated with the form's runs",
        ratio=statistics.median([f / q for f, q in zip(form_runs, sql_runs, strict=True)]),
        ratio_meaning="median of the rounds' form open time ÷ raw SQL time (target ≤ 3); peak RSS target ≤ 300 MB "
        "at 50,000 waiting",
        description=f"Contact Customers form opening on {size.waiting:,} waiting requests in a {size.total:,}-request "
        "SQLite database, offscreen, until all three groups are filled and painted (median of runs)",
        units={
            "form_seconds": "s",
            "sql_seconds": "s",
            "build_seconds": "s",
            "peak_python_mib": "MiB",
            "peak_rss_mib": "MiB",
            "python_mib_per_1000_waiting": "MiB",
            "refresh_stall_ms": "ms",
            "idle_stall_ms": "ms",
        },
        parameters={"requests": size.total, "waiting": size.waiting, "patrons": size.patrons, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
