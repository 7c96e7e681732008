"""The ``callslip`` command: builds the QApplication and the main window."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop import __version__
from desktop.config import ConfigError, Settings, load_settings
from desktop.db.migrate import SchemaError
from desktop.secrets import SecretStoreError, url_with_password
from desktop.self_check import run_self_check
from desktop.services.database import Database, open_database
from desktop.services.demo import seed_demo
from desktop.services.queues_count import has_requests
from desktop.ui.context import AppContext
from desktop.ui.main_window import MainWindow
from desktop.ui.qt_platform import check_platform
from desktop.ui.threads import stop_all_threads


def ensure_application() -> QApplication:
    """The process's QApplication, created on first use with Callslip's names."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Callslip")
    app.setOrganizationName("Callslip")
    app.setApplicationVersion(__version__)
    app.aboutToQuit.connect(_stop_threads_on_quit)
    return app


def _stop_threads_on_quit() -> None:
    """Whatever window is still open, no worker thread outlives the event loop."""
    stuck = stop_all_threads()
    if stuck:
        print(f"Callslip: threads still running at exit: {', '.join(stuck)}", file=sys.stderr)


def create_main_window(
    database_url: str | None = None, settings: Settings | None = None, *, demo: bool = False
) -> MainWindow:
    """Open the database (upgrading its schema) and return the main window, without entering the event loop.

    Args:
        database_url: a database URL or SQLite file; default: the configured one, else the local SQLite file.
        demo: add demo data when the database has no requests (first run, README command).
    """
    ensure_application()
    settings = settings or load_settings()
    url = database_url or settings.resolved_database_url()
    db, _result = open_database(url_with_password(url))
    if demo:
        _seed_if_empty(db)
    ctx = AppContext(db, settings)
    return MainWindow(ctx)


def wait_until_loaded(window: MainWindow, timeout: float = 20.0) -> bool:
    """Run the event loop until the window shows its counts and first rows and no background work is left.

    Used by ``--screenshot`` (and tests/benchmarks) instead of a fixed delay, so a slow disk still gets a full
    picture. Returns False when ``timeout`` seconds passed first.
    """
    app = ensure_application()
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        idle = (
            not window.ctx.runner.busy
            and window.workspace.snapshot is not None
            and not window.workspace.table_model.loading
        )
        if not idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.2:  # rows painted, pages they asked for arrived
            return True
        time.sleep(0.005)
    return False


def _seed_if_empty(db: Database) -> None:
    if not has_requests(db):
        seed_demo(db)


def build_parser() -> argparse.ArgumentParser:
    """The ``callslip`` command line."""
    parser = argparse.ArgumentParser(prog="callslip", description="Callslip interlibrary-loan staff client.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--database", metavar="URL", help="database URL or SQLite file (default: configured one)")
    parser.add_argument("--demo", action="store_true", help="fill an empty database with demo data first")
    parser.add_argument("--screenshot", metavar="PATH", type=Path, help="render the main window to a PNG and exit")
    parser.add_argument("--self-check", action="store_true", help="check the installation and exit 0 or 1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GUI (or a screenshot / self-check) and return the exit code."""
    args = build_parser().parse_args(argv)
    if args.self_check:  # first: its platform check looks at the platform this environment would really use
        return int(run_self_check(args.database))
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    platform = check_platform()  # before Qt starts: a platform plugin that cannot load aborts the process
    if platform.problem:
        return _fail(f"Callslip cannot open its window: {platform.problem}", interactive=False)
    app = ensure_application()
    try:
        window = create_main_window(args.database, demo=args.demo)
    except (ConfigError, SchemaError, SecretStoreError) as exc:
        return _fail(f"Callslip cannot start: {exc}", interactive=not (args.screenshot or args.self_check))
    except Exception as exc:  # unreachable server, unreadable file: say so instead of a traceback
        return _fail(f"Callslip cannot open the database: {type(exc).__name__}: {exc}",
                     interactive=not (args.screenshot or args.self_check))  # fmt: skip
    if args.screenshot:
        window.resize(1280, 780)  # the same picture every time, whatever size was remembered
        window.show()
        wait_until_loaded(window)
        ok = window.grab().save(str(args.screenshot))
        window.close()
        return 0 if ok else _fail(f"could not write {args.screenshot}", interactive=False)
    window.show()
    return app.exec()


def _fail(message: str, *, interactive: bool) -> int:
    print(message, file=sys.stderr)
    if interactive:
        QMessageBox.critical(None, "Callslip", message)
    return 1
