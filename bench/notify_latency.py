"""Benchmark: how long from a request reaching Awaiting Customer Contact to its e-mail arriving at the SMTP server.

Two set-ups, measured in the same run (``--runs`` arrivals each, one at a time):

* ``postgres_*``: the status change is made in this process; ``callslip-manager run`` (poll interval 300 s, like
  ILLiad) runs in another process on the same PostgreSQL database and is woken by LISTEN/NOTIFY
  (target: median ≤ 1 s). Needs ``--postgres URL`` (a server to create a scratch database on).
* ``gui_sqlite_*``: one GUI process on SQLite: the change is made, the window emits ``ctx.changed("requests")``
  and the QThread poller sends (target: median ≤ 0.5 s).
* ``postgres_sms_*``: as ``postgres_*``, for a patron whose "Item ready for pickup" preference starts with SMS:
  the text goes through the HTTP provider (the local Twilio Messages API server of the tests); measured until the
  provider has accepted it (target: median ≤ 1 s). Also needs ``--postgres``.

Baseline: one plain smtplib send of a message to the same server (the floor any notifier pays); ``ratio`` is the
SQLite GUI median over that floor. ILLiad's System Manager would take up to 300 s (its poll interval).

Run: ``.venv/bin/python -m bench.notify_latency [--runs 20] [--postgres postgresql://…] [--quick]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import smtplib
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")

from sqlalchemy import create_engine, make_url, text

from bench._common import emit, isolated_environment, scratch_dir
from desktop.db.engine import sqlite_url
from desktop.domain.statuses import Status
from desktop.services.admin.sms_settings import SMS_AUTH_TOKEN_ENV, SmsSettings, load_sms_settings, save_sms_settings
from desktop.services.database import Database, open_database
from tests.outbox_support import FROM, add_patron, add_request, add_sms_patron, move, sink_settings
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, twilio_server
from tests.smtp_sink import SmtpSink


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the e-mail did not arrive")
        time.sleep(0.001)


def _figures(prefix: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        f"{prefix}_median_seconds": round(statistics.median(ordered), 4),
        f"{prefix}_p90_seconds": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        f"{prefix}_max_seconds": round(ordered[-1], 4),
    }


def floor_seconds(sink: SmtpSink, runs: int) -> float:
    """Median of one plain smtplib connection + send (the baseline)."""
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.sendmail(FROM, [f"floor{i}@example.org"], b"Subject: floor\r\n\r\nfloor\r\n")
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def postgres_latency(admin_url: str, runs: int, folder: Path, *, sms: bool = False) -> list[float]:
    """Arrival → message at the SMTP sink (or, with ``sms``, text accepted by the HTTP provider), one at a time,
    with ``callslip-manager run`` in another process woken by LISTEN/NOTIFY."""
    base = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"callslip_latency_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    sink = SmtpSink().start()
    db, _ = open_database(url)
    env = isolated_environment(folder) | {"CALLSLIP_SMTP_HOST": sink.host, "CALLSLIP_SMTP_PORT": str(sink.port),
                                          "CALLSLIP_SMTP_FROM": FROM, "CALLSLIP_POLL_SECONDS": "300"}  # fmt: skip
    provider = contextlib.ExitStack()
    api, log = provider.enter_context(twilio_server())
    if sms:
        texts = SmsSettings(transport="twilio", account_sid=ACCOUNT_SID, sender="+15005550006", api_base=api,
                            quiet_start="00:00", quiet_end="00:00")  # fmt: skip
        save_sms_settings(db, load_sms_settings(db), texts, changed_by="bench")
        env[SMS_AUTH_TOKEN_ENV] = AUTH_TOKEN
    manager = subprocess.Popen([sys.executable, "-m", "desktop.manager", "--database", url, "run"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert manager.stdout is not None
        banner = manager.stdout.readline()
        assert "LISTEN/NOTIFY" in banner, banner
        time.sleep(0.5)  # its first cycle
        samples = []
        for n in range(runs):
            patron_id = add_sms_patron(db, f"+1617555{n:04d}") if sms else add_patron(db)
            request_id = add_request(db, patron_id)
            received: list[Any] = log.accepted if sms else sink.messages
            before = len(received)
            started = time.perf_counter()
            move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
            _wait(lambda: len(received) > before)  # noqa: B023 - evaluated inside this iteration
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        manager.terminate()
        manager.communicate(timeout=30)
        provider.close()
        db.dispose()
        sink.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _quit_when_more(loop: Any, sink: SmtpSink, before: int) -> None:
    """Timer slot: end the wait once the sink holds more than ``before`` messages."""
    if len(sink.messages) > before:
        loop.quit()


def gui_latency(db: Database, sink: SmtpSink, runs: int) -> list[float]:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.ui.context import AppContext
    from desktop.ui.notices.poller import PollerController

    app = QApplication.instance() or QApplication([])
    ctx = AppContext(db, sink_settings(sink, poll_seconds=300))
    controller = PollerController(ctx)
    loop = QEventLoop()
    controller.cycleFinished.connect(loop.quit)
    controller.start()
    loop.exec()  # the first cycle
    samples = []
    try:
        for _ in range(runs):
            request_id = add_request(db, add_patron(db))
            before = len(sink.messages)
            timer = QTimer()
            timer.setInterval(1)
            timer.timeout.connect(partial(_quit_when_more, loop, sink, before))
            started = time.perf_counter()
            move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)  # as the request form does, then:
            ctx.changed.emit("requests")
            timer.start()
            loop.exec()
            samples.append(time.perf_counter() - started)
            timer.stop()
    finally:
        controller.shutdown()
        ctx.shutdown()
        del app
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL", help="measure the cross-process PostgreSQL case on this server")
    parser.add_argument("--quick", action="store_true", help="5 arrivals each")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    figures: dict[str, float | str] = {}
    with scratch_dir() as folder:
        os.environ["XDG_CONFIG_HOME"] = str(folder / "config")  # a private settings file, absent at first
        sink = SmtpSink().start()
        db, _ = open_database(sqlite_url(folder / "gui.sqlite3"))
        try:
            floor = floor_seconds(sink, runs)
            figures["floor_plain_send_seconds"] = round(floor, 4)
            figures |= _figures("gui_sqlite", gui_latency(db, sink, runs))
        finally:
            db.dispose()
            sink.stop()
        if args.postgres:
            figures |= _figures("postgres", postgres_latency(args.postgres, runs, folder))
            figures |= _figures("postgres_sms", postgres_latency(args.postgres, runs, folder, sms=True))
    figures["illiad_poll_seconds"] = 300
    emit(
        "notify_latency",
        figures,
        baseline="one plain smtplib connect + send to the same server",
        ratio=float(figures["gui_sqlite_median_seconds"]) / floor,
        ratio_meaning="SQLite GUI median latency / plain send; targets: GUI median ≤ 0.5 s, PostgreSQL median ≤ 1 s, "
        "PostgreSQL text median ≤ 1 s",
        description="status change to Awaiting Customer Contact → message at the SMTP sink (text: accepted by the "
        "HTTP SMS provider)",
        units={k: "s" for k in figures if k.endswith("seconds")},
        parameters={"runs": runs, "postgres": bool(args.postgres)},
    )


if __name__ == "__main__":
    main()
