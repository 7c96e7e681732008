"""Benchmark: 2,000 queued e-mail notices through ``callslip-manager run --once`` into a local SMTP server,
against a plain smtplib loop sending the same, already rendered messages on one connection.

Both clients are separate processes talking to the same aiosmtpd sink (which runs in this process), so they
pay the same server. Measured in the same run:

* ``ours_cycle_seconds``: the cycle as ``run --once`` reports it (claim, render, send, record every notice with
  its own commit, move every request to Customer Notified via E-Mail);
* ``ours_process_seconds``: the whole ``run --once`` process, Python start-up and schema check included;
* ``plain_seconds``: connect, ``sendmail`` the 2,000 messages ``run --once`` produced, quit (no database).

Where the time goes, per message, in the same rounds (CPU seconds from the operating system, Linux):

* ``*_client_cpu_ms``: the sending process's own CPU (for ours, the cycle's: the process's CPU less that of a
  ``run --once`` with nothing to send, run right after on the same database);
* ``*_server_cpu_ms``: the aiosmtpd sink's CPU (this process, whose main thread only waits meanwhile);
* ``*_database_cpu_ms`` (PostgreSQL): every PostgreSQL server process's CPU, the exited backends included;
* ``ours_client_busy`` = ours_client_cpu / ours wall time: near 1, the cycle is bound by its own CPU (rendering,
  recording, SMTP client), so no overlap with the server can make it faster; only less work per message can.

``ratio`` = ours_cycle_seconds / plain_seconds (target ≤ 1.5); ``commit_ratio`` the same against the plain loop with
one driver INSERT + COMMIT per message (target ≤ 1.2); ``record_ratio`` against the plain loop with, in place of
that INSERT, the System Manager's own record of each message (``ResultWriter``'s statements: the notice, its
history line, its request moved on and its Tracking line) run by the driver alone, on fresh arrivals queued for it:
the limit of any design that records what the desk needs of each message before the next.

Each round queues fresh notices and runs ours, then the plain loops with the messages ours produced, so they
compare on the same machine state; the figures are the median round (by ratio), and every round's ratio is
listed: on a shared two-core machine one round's ratio moves by ±25 %. SQLite by default; ``--postgres URL``
(an existing database to create a scratch database in) measures PostgreSQL too.

Run: ``.venv/bin/python -m bench.notify_throughput [--count 2000] [--rounds 3] [--postgres postgresql://…] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, make_url, select, text, update

from bench._common import emit, isolated_environment, scratch_dir, spread_text
from desktop.db.engine import sqlite_url
from desktop.db.models import Notification, Request
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status
from desktop.services.database import open_database
from desktop.services.notices.result_writer import Advance, ResultWriter
from tests.outbox_support import FROM, bulk_arrivals
from tests.smtp_sink import Received, SmtpSink

PLAIN_LOOP = """
import json, smtplib, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
database = sys.argv[4] if len(sys.argv) > 4 else ""
records = json.load(open(sys.argv[5])) if len(sys.argv) > 5 else None
messages = json.load(open(path))
conn = None
if database.startswith("postgresql"):
    import psycopg
    # Autocommit: each INSERT is its own transaction, committed in its one round trip (a transaction opened by
    # the driver took three: BEGIN, the INSERT, COMMIT), as the System Manager's record is.
    conn = psycopg.connect(database.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)
    mark = "%s"
elif database:
    import sqlite3
    conn = sqlite3.connect(database.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # as desktop.db.engine sets it: the same durability as the app's
    conn.execute("PRAGMA foreign_keys=ON")  # as the app's: the record's inserts check their references
    mark = "?"
if conn is not None and records is None:  # a scratch table: one plain driver write + commit per message
    conn.execute("CREATE TABLE IF NOT EXISTS bench_sent (n INTEGER, message_id TEXT)")
started = time.perf_counter()
smtp = smtplib.SMTP(host, port, timeout=30)
for n, (sender, recipients, data) in enumerate(messages):
    smtp.sendmail(sender, recipients, data.encode("latin-1"))
    if conn is None:
        continue
    if records is not None:  # the record's own statements, as the System Manager runs them, by the driver alone
        statements, params = records[n]
        if database.startswith("postgresql"):
            for statement in statements:
                conn.execute(statement, params)
        else:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement, params)
            conn.execute("COMMIT")
    elif database.startswith("postgresql"):
        conn.execute(f"INSERT INTO bench_sent VALUES ({mark}, {mark})", (n, data[:60]))
    else:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO bench_sent VALUES ({mark}, {mark})", (n, data[:60]))
        conn.execute("COMMIT")
smtp.quit()
print(time.perf_counter() - started)
if conn is not None and records is None:
    conn.execute("DROP TABLE bench_sent")
    if not database.startswith("postgresql"):
        conn.commit()
if conn is not None:
    conn.close()
"""
#: The columns a sent notice's record writes besides its state (``dispatch._outcome``: the stored copy and more).
_SENT_COLUMNS = ("attempts", "from_address", "to_address", "cc", "bcc", "subject", "body_text", "body_html",
                 "message_id", "sent_at", "secret")  # fmt: skip
_RECORD_TOKEN = "bench-record"


class CpuMeter:
    """CPU seconds used meanwhile by finished child processes, by this process (the sink's thread) and by the
    PostgreSQL server's processes (read from ``/proc``; the postmaster's children's totals include backends that
    exited)."""

    def __init__(self) -> None:
        self._start = self._now()

    @staticmethod
    def _postgres() -> float | None:
        if not Path("/proc/self/stat").exists():  # not Linux: no figure rather than a failed benchmark
            return None
        total, found, tick = 0.0, False, os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                text = (entry / "stat").read_text()
            except OSError:  # exited meanwhile, or not ours to read
                continue
            name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
            if name.startswith("postgres"):
                found = True
                # utime + stime, plus cutime + cstime of waited-for children (the postmaster's exited backends).
                total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
        return total if found else None

    def _now(self) -> tuple[float, float, float | None]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return (children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime, self._postgres())

    def used(self) -> tuple[float, float, float | None]:
        """(children's CPU, this process's CPU, PostgreSQL's CPU or None) since the meter was made."""
        now = self._now()
        database = None if now[2] is None or self._start[2] is None else now[2] - self._start[2]
        return now[0] - self._start[0], now[1] - self._start[1], database


def run_ours(url: str, sink: SmtpSink, env: dict[str, str]) -> tuple[float, float, str]:
    env = env | {"CALLSLIP_SMTP_HOST": sink.host, "CALLSLIP_SMTP_PORT": str(sink.port), "CALLSLIP_SMTP_FROM": FROM}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "desktop.manager", "--database", url, "run", "--once"], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    process_seconds = time.perf_counter() - started
    summary = done.stdout.strip().splitlines()[-1]
    cycle_seconds = float(summary.rsplit("(", 1)[1].split(" s)")[0])
    return cycle_seconds, process_seconds, summary


def record_statements(url: str, count: int, folder: Path) -> tuple[Path, list[int]]:
    """The System Manager's own record of each sent notice (the notice, its history line, its request moved on
    with a Tracking line: ``ResultWriter``'s SQL and parameters), ready for the plain loop to run by the driver.

    ``count`` fresh arrivals are queued and leased to the benchmark; each gets the stored copy that a notice sent
    by ``run --once`` in this round got (read back from the database), so the rows written are the same size.
    Returns the file in ``folder`` of (statements, parameters) per message and the notices' ids.
    """
    db, _ = open_database(url)
    try:
        with db.read() as session:
            sent = session.execute(
                select(*(getattr(Notification, c) for c in _SENT_COLUMNS))
                .where(Notification.state == "sent")
                .order_by(Notification.id.desc())
                .limit(count)
            ).all()
        ids = bulk_arrivals(db, count)
        now = utcnow()
        with db.write() as session:
            session.execute(
                update(Notification)
                .where(Notification.id.in_(ids))
                .values(lease_owner=_RECORD_TOKEN, lease_until=now + timedelta(hours=1))
            )
            requests = dict(session.execute(select(Notification.id, Notification.request_id)
                                            .where(Notification.id.in_(ids))).all())  # fmt: skip
        writer = ResultWriter(db)
        try:
            records = []
            for n, notice_id in enumerate(ids):
                values = dict(zip(_SENT_COLUMNS, sent[n % len(sent)], strict=True))
                values["message_id"] = f"{values['message_id']}.{n}"  # unique, as ours are
                request_id = requests[notice_id]
                assert request_id is not None, "every queued arrival names its request"
                move = Advance(request_id, Status.AWAITING_CUSTOMER_CONTACT, Status.NOTIFIED_VIA_EMAIL,
                               "System", "e-mail to bench@example.org accepted: 250 2.0.0 Ok: queued")  # fmt: skip
                sql, params = writer._prepare(notice_id, _RECORD_TOKEN, "sent", "sent", "250 2.0.0 Ok: queued",
                                              "bench", now, values, move, backend=db.backend)  # fmt: skip
                statements = [sql.notice, sql.attempt, sql.advance, sql.track]
                records.append(([s for s in statements if s], params))
        finally:
            writer.close()
    finally:
        db.dispose()
    path = folder / "records.json"
    path.write_text(json.dumps(records, default=str))
    return path, ids


def check_recorded(url: str, ids: list[int]) -> None:
    """Every notice of the plain loop's records is sent and its request moved on (else the figure is wrong)."""
    db, _ = open_database(url)
    try:
        with db.read() as session:
            sent = session.scalar(select(func.count()).where(Notification.id.in_(ids), Notification.state == "sent"))
            moved = session.scalar(
                select(func.count())
                .select_from(Notification)
                .join(Request, Request.id == Notification.request_id)
                .where(Notification.id.in_(ids), Request.status == Status.NOTIFIED_VIA_EMAIL.value)
            )
    finally:
        db.dispose()
    assert sent == moved == len(ids), f"the plain loop recorded {sent} and moved {moved} of {len(ids)}"


def run_plain(sink: SmtpSink, folder: Path, env: dict[str, str], database: str = "",
              records: Path | None = None) -> float:  # fmt: skip
    """The plain smtplib loop over the messages the sink holds (taken from it); with ``database``, each message is
    followed by one plain driver INSERT + COMMIT on that database (the limit for a design that records each
    message before sending the next); with ``records`` too, by the System Manager's own record of it instead
    (:func:`record_statements`: the limit for recording what the desk needs of each message, by the driver)."""
    path = folder / "messages.json"
    with sink.lock:
        messages = [(m.mail_from, m.rcpt_tos, m.data.decode("latin-1")) for m in sink.messages]
        sink.messages.clear()
    path.write_text(json.dumps(messages))
    command = [sys.executable, "-c", PLAIN_LOOP, sink.host, str(sink.port), str(path)]
    if database:
        command.append(database)
    if records is not None:
        command.append(str(records))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    # The messages go back into the sink so the next baseline sends exactly the same ones.
    with sink.lock:
        sink.messages.clear()
        sink.messages.extend(
            Received(sender, recipients, data.encode("latin-1")) for sender, recipients, data in messages
        )
    return float(done.stdout.strip())


def measure_round(url: str, count: int, folder: Path, sink: SmtpSink) -> dict[str, float | str]:
    db, _ = open_database(url)
    try:
        bulk_arrivals(db, count)
    finally:
        db.dispose()
    env = isolated_environment(folder)
    meter = CpuMeter()
    cycle, process, summary = run_ours(url, sink, env)
    ours_cpu = meter.used()
    assert len(sink.messages) == count, summary
    meter = CpuMeter()
    run_ours(url, sink, env)  # nothing left to send: the process's start-up and an empty cycle, to subtract
    idle_cpu = meter.used()
    meter = CpuMeter()
    plain = run_plain(sink, folder, env)
    plain_cpu = meter.used()
    meter = CpuMeter()
    plain_commit = run_plain(sink, folder, env, database=url)
    commit_cpu = meter.used()
    records, record_ids = record_statements(url, count, folder)
    meter = CpuMeter()
    plain_record = run_plain(sink, folder, env, database=url, records=records)
    record_cpu = meter.used()
    check_recorded(url, record_ids)
    with sink.lock:
        sink.messages.clear()
    ms = 1000 / count
    cpu: dict[str, float | str] = {
        "ours_client_cpu_ms": round((ours_cpu[0] - idle_cpu[0]) * ms, 3),
        "ours_server_cpu_ms": round(ours_cpu[1] * ms, 3),
        "ours_wall_ms": round(cycle * ms, 3),
        "ours_client_busy": round((ours_cpu[0] - idle_cpu[0]) / cycle, 2),
        "plain_client_cpu_ms": round(plain_cpu[0] * ms, 3),
        "plain_server_cpu_ms": round(plain_cpu[1] * ms, 3),
        "plain_wall_ms": round(plain * ms, 3),
        "plain_commit_client_cpu_ms": round(commit_cpu[0] * ms, 3),
        "plain_commit_wall_ms": round(plain_commit * ms, 3),
        "plain_record_client_cpu_ms": round(record_cpu[0] * ms, 3),
        "plain_record_wall_ms": round(plain_record * ms, 3),
    }
    if ours_cpu[2] is not None and commit_cpu[2] is not None and url.startswith("postgresql"):
        cpu["ours_database_cpu_ms"] = round(ours_cpu[2] * ms, 3)
        cpu["plain_commit_database_cpu_ms"] = round(commit_cpu[2] * ms, 3)
        if record_cpu[2] is not None:
            cpu["plain_record_database_cpu_ms"] = round(record_cpu[2] * ms, 3)
    return {"ours_cycle_seconds": round(cycle, 3), "ours_process_seconds": round(process, 3),
            "plain_seconds": round(plain, 3), "plain_commit_seconds": round(plain_commit, 3),
            "plain_record_seconds": round(plain_record, 3),
            "ratio": round(cycle / plain, 3), "commit_ratio": round(cycle / plain_commit, 3),
            "record_ratio": round(cycle / plain_record, 3),
            "summary": summary, **cpu}  # fmt: skip


def measure(url: str, count: int, folder: Path, rounds: int) -> dict[str, float | str]:
    """The median round of ``rounds`` (by ratio), with every round's ratio."""
    sink = SmtpSink().start()
    try:
        results = [measure_round(url, count, folder, sink) for _ in range(rounds)]
    finally:
        sink.stop()
    ratios = [float(r["ratio"]) for r in results]
    commit_ratios = [float(r["commit_ratio"]) for r in results]
    record_ratios = [float(r["record_ratio"]) for r in results]
    results.sort(key=lambda r: float(r["ratio"]))
    median = dict(results[len(results) // 2])
    median["ratio"] = round(statistics.median(ratios), 3)
    median["commit_ratio"] = round(statistics.median(commit_ratios), 3)
    median["round_ratios"] = spread_text(ratios)
    median["round_commit_ratios"] = spread_text(commit_ratios)
    median["record_ratio"] = round(statistics.median(record_ratios), 3)
    median["round_record_ratios"] = spread_text(record_ratios)
    median["process_ratio"] = round(float(median["ours_process_seconds"]) / float(median["plain_seconds"]), 3)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--postgres", metavar="URL", help="also measure on a scratch database of this server")
    parser.add_argument("--quick", action="store_true", help="500 notices")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per database; the median is reported")
    args = parser.parse_args()
    count = 500 if args.quick else args.count
    figures: dict[str, float | str] = {}
    with scratch_dir() as folder:
        sqlite = measure(sqlite_url(folder / "bench.sqlite3"), count, folder, args.rounds)
        figures.update({f"sqlite_{k}": v for k, v in sqlite.items()})
        ratio = float(sqlite["ratio"])
        if args.postgres:
            base = make_url(args.postgres).set(drivername="postgresql+psycopg")
            name = f"callslip_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = base.set(database=name).render_as_string(hide_password=False)
                pg = measure(url, count, folder, args.rounds)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
            figures.update({f"postgres_{k}": v for k, v in pg.items()})
    emit(
        "notify_throughput",
        figures,
        baseline="plain smtplib loop sending the same rendered messages on one connection (no database); "
        "commit_ratio: the same loop plus one plain driver INSERT + COMMIT per message on the same database "
        "(sqlite3 / psycopg, no SQLAlchemy), the limit for a design that records each message before the next; "
        "record_ratio: the same loop with, instead of that INSERT, the System Manager's own record of each message "
        "(the notice, its history line, its request moved on with a Tracking line) run by the driver alone",
        ratio=ratio,
        ratio_meaning="SQLite run --once cycle seconds / plain loop seconds, median (min–max) of alternated rounds; "
        "goal ≤ 1.5 (and ≤ 1.2 × the plain loop + commit)",
        description=f"{count} queued notices through callslip-manager run --once into a local aiosmtpd sink",
        units={k: "s" if k.endswith("seconds") else "ms" for k in figures if k.endswith(("seconds", "_ms"))},
        parameters={"count": count, "rounds": args.rounds, "postgres": bool(args.postgres)},
    )


if __name__ == "__main__":
    main()
