"""Start-up: process start → the main window painted, against a bare PySide6 window (the true limit: Python, Qt
and one painted window, nothing of Callslip's), and where the import time goes.

Each round starts two fresh processes one after the other — the bare window, then Callslip's main window on the
same seeded SQLite database — so both see the same load on a shared machine; the figures are the median and the
min–max of the rounds, and ``ratio`` is the median of the rounds' ratios (goal ≤ 2). "Shown" is the first paint
of the window (a Paint event reaching it), measured from just before the process was started; "ready" (Callslip
only) is when the window also shows its queue counts and first rows. One more run under ``python -X importtime``
lists the modules that take the most import time.

The database is the one ``bench.queue_first_rows`` seeds and keeps (1,000,000 requests; ``--quick``: 100,000).

Run: ``python -m bench.startup`` (``--quick``: the smaller database and fewer rounds).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, emit, isolated_environment, scratch_dir, spread_text
from bench.queue_first_rows import ensure_database

#: The bare window: the least any PySide6 program pays to put a window on the screen.
BARE = """
import sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print("shown", time.time(), flush=True)
            app.quit()
        return False

app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setCentralWidget(QLabel("Callslip"))
window.resize(1280, 780)
spy = FirstPaint()
window.installEventFilter(spy)
window.show()
app.exec()
"""

#: Callslip's own interactive start, ``callslip --database PATH`` (desktop.app.main), watched from the outside:
#: "shown" at the first paint of any top-level window (the "Opening database …" window), "ready" when the main
#: window shows its counts and first rows.
OURS = """
import sys, time
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from desktop.app import ensure_application, main

class FirstPaint(QObject):
    shown = False
    def eventFilter(self, watched, event):
        if not self.shown and event.type() == QEvent.Type.Paint and watched.isWidgetType() and watched.isWindow():
            self.shown = True
            print("shown", time.time(), flush=True)
        return False

def check_ready():
    for widget in QApplication.topLevelWidgets():
        if type(widget).__name__ == "MainWindow" and widget.isVisible():
            w = widget.workspace
            if not widget.ctx.runner.busy and w.snapshot is not None and not w.table_model.loading:
                print("ready", time.time(), flush=True)
                QApplication.exit(0)
                return
    QTimer.singleShot(20, check_ready)

app = ensure_application()
spy = FirstPaint()
app.installEventFilter(spy)
QTimer.singleShot(0, check_ready)
main(["--database", sys.argv[1]])
"""


def run_child(script: str, args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Start ``script`` in a fresh Python and return the seconds from just before the start to each mark it
    prints (wall-clock ``time.time`` on both sides: the marks come from another process)."""
    started = time.time()
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=True)  # fmt: skip
    marks: dict[str, float] = {}
    for line in done.stdout.splitlines():
        name, _, stamp = line.partition(" ")
        if name in {"shown", "ready", "not-ready"}:
            marks[name] = float(stamp) - started
    if "shown" not in marks:
        raise RuntimeError(f"the window was never painted: {done.stderr.strip()[-300:]}")
    return marks


def import_profile(database: Path, env: dict[str, str], top: int = 12) -> tuple[str, float]:
    """The ``top`` packages by import time under ``python -X importtime`` (each module's own time added up by its
    top-level package, so "sqlalchemy" counts every sqlalchemy module wherever it was imported from), and the
    total import seconds."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", OURS, str(database)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    by_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        by_package[package] = by_package.get(package, 0) + int(parts[0])
    total = sum(by_package.values()) / 1e6
    best = sorted(by_package.items(), key=lambda item: item[1], reverse=True)[:top]
    return ", ".join(f"{name} {us / 1e6:.2f} s ({us / 1e4 / total:.0f} %)" for name, us in best), total


def main(argv: list[str] | None = None) -> int:
    """Seed (or reuse) the database, alternate bare and Callslip starts, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000-request database, 3 rounds")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 7, 3 with --quick)")
    parser.add_argument("--database", type=Path, help="an existing Callslip SQLite file instead of the seeded one")
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    total, queue = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
    database = args.database or ensure_database(total, queue)[0]
    bare: list[float] = []
    shown: list[float] = []
    ready: list[float] = []
    ratios: list[float] = []
    with scratch_dir() as folder:
        env = isolated_environment(folder) | {"CALLSLIP_RUN_POLLER": "0", "CALLSLIP_STAFF_NAME": "bench"}
        run_child(OURS, [str(database)], env)  # warm-up: the file and the modules in the page cache
        run_child(BARE, [], env)
        for _ in range(rounds):
            bare.append(run_child(BARE, [], env)["shown"])
            marks = run_child(OURS, [str(database)], env)
            shown.append(marks["shown"])
            ready.append(marks.get("ready", float("nan")))
            ratios.append(shown[-1] / bare[-1])
        imports, import_seconds = import_profile(database, env)
    emit(
        "startup",
        {
            "shown_s": round(statistics.median(shown), 3),
            "bare_window_s": round(statistics.median(bare), 3),
            "ready_s": round(statistics.median(ready), 3),
            "shown_rounds_s": spread_text(shown),
            "bare_rounds_s": spread_text(bare),
            "round_ratios": spread_text(ratios),
            "import_s": round(import_seconds, 3),
            "top_imports": imports,
        },
        baseline="a bare PySide6 window (QApplication + QMainWindow + one label) started the same way, alternated",
        ratio=statistics.median(ratios),
        ratio_meaning="median of the rounds' Callslip first paint ÷ bare window first paint; goal ≤ 2",
        description=f"process start → main window painted, on a {total:,}-request SQLite database "
        "(offscreen), and the import time by top-level module (python -X importtime)",
        units={"shown_s": "s", "bare_window_s": "s", "ready_s": "s", "import_s": "s"},
        parameters={"rounds": rounds, "requests": total, "database": str(database)},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
