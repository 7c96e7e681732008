"""Event-loop stall probe: the longest the GUI thread stops answering while the desk does its big-list work.

A ``QTimer`` ticking every 10 ms on the GUI thread notes the time of each tick; the longest gap between two ticks,
less the 10 ms interval, is how long the window was frozen (nothing repaints, no key is read). It is measured
while the app does, on one SQLite database seeded for it (in a scratch folder):

* ``preview``: opening the print preview of 281 notices (Contact Customers → Print Notifications), until the
  preview has shown its first pages and gone quiet;
* ``contact_refresh``: one Contact Customers 10-second refresh (the form's timer slot) with ~12,400 waiting rows;
* ``contact_changed``: the same refresh after another workstation changed the list (100 phone calls logged with
  no answer, 100 mail notices printed: rows changed and rows gone), so the form has something to apply;
* ``select_all``: Ctrl+A on a ~3,200-row queue in the Borrowing table;
* ``print_run``: printing those 281 pages from the preview (to a PDF file), when the preview can print in steps;
* ``open_window``: opening the main window (and its all-requests list) on the whole database;
* ``open_queue``: then choosing the ~3,200-row queue.

Baseline (the true limit): the same probe on an idle event loop for the same time, i.e. timer jitter alone. The
ratio is the worst action's stall over that. Goal: no stall over 100 ms. Each action is measured ``--runs`` times
(median of the per-run maxima, and the worst).

Run: ``.venv/bin/python -m bench.ui_stalls [--runs 3] [--quick] [--waiting 50000]`` (``--quick``: 2,000 waiting,
800 in the queue, 60 pages; ``--waiting``: another number of requests awaiting contact).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench._common import emit, isolated_environment, scratch_dir, spread_text

if TYPE_CHECKING:
    from desktop.services.database import Database
    from desktop.ui.main_window import MainWindow

TICK_MS = 10
GOAL_MS = 100
QUEUE = "Request Sent"


@dataclass(frozen=True)
class Size:
    """How much the desk has to show."""

    waiting: int
    queue: int
    pages: int
    other: int


FULL = Size(waiting=12_400, queue=3_200, pages=281, other=4_000)
QUICK = Size(waiting=2_000, queue=800, pages=60, other=1_000)


def seed(path: Path, size: Size) -> None:
    """A database with ``size.waiting`` requests at Awaiting Customer Contact and ``size.queue`` at Request Sent."""
    from desktop.db.engine import sqlite_url
    from desktop.domain.statuses import Status
    from desktop.services.admin.demo import DEFAULT_STATUS_WEIGHTS, seed_demo
    from desktop.services.database import open_database

    db, _ = open_database(sqlite_url(path))
    others: dict[Status, float] = {
        s: w
        for s, w in DEFAULT_STATUS_WEIGHTS.items()
        if s not in (Status.REQUEST_SENT, Status.AWAITING_CUSTOMER_CONTACT)
    }
    seed_demo(db, patrons=max(500, size.waiting // 4), requests=size.other, status_weights=others)
    seed_demo(db, patrons=0, requests=size.waiting, status_weights={Status.AWAITING_CUSTOMER_CONTACT: 1})
    seed_demo(db, patrons=0, requests=size.queue, status_weights={Status.REQUEST_SENT: 1})
    db.dispose()


class StallProbe:
    """A 10 ms timer on the GUI thread; :attr:`worst` is the longest gap between its ticks (ms, less the tick)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self._last = 0.0
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, (now - self._last) * 1000 - TICK_MS)
        self._last = now

    def start(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        self._tick()  # a stall that lasts until the end counts too
        self.timer.stop()
        return max(self.worst, 0.0)


def spin(until: Callable[[], bool], timeout: float = 120.0, settle: float = 0.5) -> None:
    """Run the event loop until ``until()`` holds, then ``settle`` seconds more (deferred work shows up there)."""
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert app is not None
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise RuntimeError("the action did not finish within its timeout")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


def probed(action: Callable[[], None], until: Callable[[], bool], *, settle: float = 0.5) -> float:
    """The longest stall (ms) while ``action`` runs from inside the event loop and until ``until()`` holds."""
    from PySide6.QtCore import QTimer

    probe = StallProbe()
    probe.start()
    started: list[bool] = []

    def go() -> None:
        started.append(True)
        action()

    QTimer.singleShot(0, go)
    spin(lambda: bool(started) and until(), settle=settle)
    return probe.stop()


def idle(window: MainWindow) -> bool:
    """The main window shows its counts and first rows, and no background work is left."""
    return (
        not window.ctx.runner.busy
        and window.workspace.snapshot is not None
        and not window.workspace.table_model.loading
    )


def main_window_stalls(db: Database, size: Size) -> tuple[float, float, float]:
    """(d) open the main window (all requests), then its big queue, then (c) Ctrl+A on that queue; the stalls of
    each (ms)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from desktop.app import ensure_application
    from desktop.config import Settings
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow

    app = ensure_application()
    windows: list[MainWindow] = []
    ctx = AppContext(db, Settings(run_poller=False, staff_name="bench"))

    def open_window() -> None:
        window = MainWindow(ctx)
        window.resize(1280, 780)
        window.show()
        windows.append(window)

    window_stall = probed(open_window, lambda: bool(windows) and idle(windows[-1]))
    window = windows[-1]
    workspace = window.workspace
    workspace.stop()  # no count poll in the middle of the next measurements
    model = workspace.table_model
    loaded: list[int] = []
    model.loaded.connect(loaded.append)
    stall = probed(lambda: workspace.select_queue(QUEUE), lambda: bool(loaded) and model.row_data(0) is not None)
    model.loaded.disconnect(loaded.append)
    if model.total != size.queue:
        raise RuntimeError(f"the queue shows {model.total} rows, expected {size.queue}")

    # --- (c) Ctrl+A on that queue
    table = workspace.table
    table.setFocus()
    table.clearSelection()
    app.processEvents()

    def select_all() -> None:
        QTest.keyClick(table, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)

    def selected_rows() -> int:
        # Counted from the selection's ranges: selectedRows() asks the model about every cell, which would
        # itself be a stall inside the probe.
        selection = table.selectionModel().selection()
        return sum(selection.at(i).height() for i in range(selection.size()))

    select_stall = probed(select_all, lambda: selected_rows() > 0)
    selected = selected_rows()
    if selected != size.queue:
        raise RuntimeError(f"Ctrl+A selected {selected} rows, expected {size.queue}")
    window.close()
    ctx.shutdown()
    window.deleteLater()
    app.processEvents()
    return window_stall, stall, select_stall


def change_list(db: Database, number: int) -> None:
    """What another workstation does between two refreshes: 100 calls with no answer, 100 letters printed."""
    from desktop.domain.methods import NotificationMethod
    from desktop.services.requests.contact_customers import CallOutcome, load_contact_customers, log_calls, mark_printed

    groups = load_contact_customers(db)
    phones = [r.request_id for r in groups.group(NotificationMethod.PHONE)]
    letters = [r.request_id for r in groups.group(NotificationMethod.MAIL) if r.has_address]
    log_calls(db, phones[number * 100 : (number + 1) * 100], CallOutcome.NO_ANSWER, f"bench {number}")
    mark_printed(db, letters[-100:], f"bench {number}")


def measure(path: Path, size: Size, runs: int) -> dict[str, list[float]]:
    """Every action ``runs`` times, and the idle baseline; stalls in ms."""
    from desktop.app import ensure_application
    from desktop.config import Settings
    from desktop.db.engine import sqlite_url
    from desktop.domain.methods import NotificationMethod
    from desktop.services.database import open_database
    from desktop.services.requests.contact_customers import load_contact_customers
    from desktop.services.requests.printing import build_notices
    from desktop.ui.context import AppContext
    from desktop.ui.requests.contact_customers import open_contact_customers
    from desktop.ui.requests.print_notices import NoticePrinter

    app = ensure_application()
    db, _ = open_database(sqlite_url(path))
    stalls: dict[str, list[float]] = {"idle": [], "preview": [], "contact_refresh": [], "select_all": []}
    stalls["contact_changed"] = []
    stalls["open_window"] = []
    stalls["open_queue"] = []
    stalls["print_run"] = []

    # --- (d) the main window on the whole database, then the big queue
    for _ in range(runs):
        window_stall, open_stall, select_stall = main_window_stalls(db, size)
        stalls["open_window"].append(window_stall)
        stalls["open_queue"].append(open_stall)
        stalls["select_all"].append(select_stall)

    # --- (b) the Contact Customers refresh
    ctx = AppContext(db, Settings(run_poller=False, staff_name="bench"))
    dialog = open_contact_customers(ctx)
    loads: list[bool] = []
    dialog.loaded.connect(lambda: loads.append(True))
    spin(lambda: bool(loads), settle=1.0)
    shown = sum(dialog.group_counts().values())
    if shown != size.waiting:
        raise RuntimeError(f"Contact Customers shows {shown} rows, expected {size.waiting}")
    for _ in range(runs):
        before = len(loads)

        def refreshed(before: int = before) -> bool:
            return len(loads) > before

        stalls["contact_refresh"].append(probed(dialog.on_timer, refreshed))

    for number in range(runs):  # another workstation works the list between two refreshes
        change_list(db, number)
        before = len(loads)

        def refreshed_again(before: int = before) -> bool:
            return len(loads) > before

        stalls["contact_changed"].append(probed(dialog.on_timer, refreshed_again))

    dialog.close()  # its 10-second refresh must not land inside the next measurements
    ctx.shutdown()
    app.processEvents()

    # --- (a) the print preview of many notices (no other window open)
    groups = load_contact_customers(db)
    printable = [r.request_id for r in groups.group(NotificationMethod.MAIL) if r.has_address]
    printable += [r.request_id for r in groups.group(NotificationMethod.PHONE) if r.has_address]
    if len(printable) < size.pages:
        raise RuntimeError(f"only {len(printable)} printable requests, {size.pages} wanted")
    batch = build_notices(db, printable[: size.pages])
    if len(batch.pages) != size.pages:
        raise RuntimeError(f"{len(batch.pages)} pages built, {size.pages} wanted")
    for _ in range(runs):
        printer = NoticePrinter()

        def open_preview(printer: NoticePrinter = printer) -> None:
            printer.preview(batch.pages)

        def preview_shown(printer: NoticePrinter = printer) -> bool:
            return printer.preview_dialog is not None and printer.preview_dialog.isVisible()

        stalls["preview"].append(probed(open_preview, preview_shown, settle=1.5))
        preview = printer.preview_dialog
        if preview is not None and hasattr(preview, "start_printing"):  # (a') printing from the preview, to a PDF
            printer.printer.setOutputFileName(str(path.with_name("printed.pdf")))
            done: list[bool] = []
            printer.finished.connect(done.append)

            def printed(done: list[bool] = done) -> bool:
                return bool(done)

            stalls["print_run"].append(probed(preview.start_printing, printed))
        elif preview is not None:
            preview.reject()
        app.processEvents()
        printer.deleteLater()

    # --- the baseline: the idle loop, for as long as a settle period
    for _ in range(runs):
        stalls["idle"].append(probed(lambda: None, lambda: True, settle=1.5))
    db.dispose()
    return stalls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each action (median and worst reported)")
    parser.add_argument("--quick", action="store_true", help="2,000 waiting, 800 in the queue, 60 pages")
    parser.add_argument("--waiting", type=int, default=0, help="requests awaiting contact (e.g. 50000; default 12,400)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.waiting:
        size = Size(waiting=args.waiting, queue=size.queue, pages=size.pages, other=size.other)
    with scratch_dir() as scratch:
        os.environ.update(isolated_environment(scratch))
        path = scratch / "stalls.sqlite3"
        started = time.perf_counter()
        seed(path, size)
        seed_seconds = time.perf_counter() - started
        stalls = measure(path, size, args.runs)
    figures: dict[str, float | int | str] = {}
    stalls = {name: values for name, values in stalls.items() if values}  # print_run: only a stepwise preview
    for name, values in stalls.items():
        figures[f"{name}_max_stall_ms"] = round(statistics.median(values), 1)
        figures[f"{name}_worst_stall_ms"] = round(max(values), 1)
        figures[f"{name}_rounds_ms"] = spread_text(values)
    actions = [name for name in stalls if name != "idle"]
    worst = max(max(stalls[name]) for name in actions)
    idle = max(statistics.median(stalls["idle"]), 1.0)
    figures["worst_action_stall_ms"] = round(worst, 1)
    figures["goal_ms"] = GOAL_MS
    figures["within_goal"] = "yes" if worst <= GOAL_MS else "NO"
    figures["seed_seconds"] = round(seed_seconds, 1)
    emit(
        "ui_stalls",
        figures,
        baseline="the same 10 ms probe on an idle event loop (timer jitter alone), same process",
        ratio=worst / idle,
        ratio_meaning="the worst action's longest stall ÷ the idle loop's longest gap (goal: every stall ≤ 100 ms)",
        description=f"longest GUI-thread stall (10 ms probe timer) while: a {size.pages}-page notice print preview "
        f"opens; Contact Customers refreshes {size.waiting:,} waiting rows (as they were, and after 200 changes); "
        f"Ctrl+A selects a {size.queue:,}-row queue; the main window opens and shows that queue (offscreen, SQLite)",
        units={key: "ms" for key in figures if key.endswith("_ms")} | {"seed_seconds": "s"},
        parameters={"waiting": size.waiting, "queue": size.queue, "pages": size.pages, "runs": args.runs},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
