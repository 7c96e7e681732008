"""The ``callslip`` command: builds the QApplication and the main window."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication, QMessageBox
from sqlalchemy.exc import SQLAlchemyError

from desktop import __version__
from desktop.config import ConfigError, Settings, check_database_argument, default_database_path, load_settings
from desktop.db.engine import Database, sqlite_url
from desktop.db.migrate import SchemaError
from desktop.secrets import SecretStoreError, url_with_password
from desktop.self_check import run_self_check
from desktop.services.admin.database_problems import DatabaseMissingError, describe, open_checked
from desktop.services.admin.demo import check_may_seed, seed_demo
from desktop.services.errors import ServiceError
from desktop.services.requests.queues_count import has_requests
from desktop.ui.admin.settings_dialog import SettingsDialog
from desktop.ui.admin.startup_problem import StartupChoice, StartupProblemDialog
from desktop.ui.context import AppContext
from desktop.ui.main_window import MainWindow
from desktop.ui.qt_platform import check_platform
from desktop.ui.threads import stop_all_threads

#: What can keep the main window from opening, each told as one sentence on the start-up page.
STARTUP_PROBLEMS = (ServiceError, SchemaError, SecretStoreError, ConfigError, SQLAlchemyError, OSError)


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


def demo_database_path() -> Path:
    """Where ``callslip --demo`` keeps its demo data when no ``--database`` is given: never the configured one."""
    return default_database_path().with_name("callslip-demo.sqlite3")


def create_main_window(
    database_url: str | None = None,
    settings: Settings | None = None,
    *,
    demo: bool = False,
    screenshot: bool = False,
    create: bool | None = None,
) -> MainWindow:
    """Open the database (upgrading its schema) and return the main window, without entering the event loop.

    Args:
        database_url: a database URL or SQLite file; default: the configured one, else the local SQLite file.
        demo: a demo workstation: the database is ``database_url`` or the demo file (never the configured one),
            filled with demo data when it has no requests, and nothing is sent through the configured SMTP server.
        screenshot: like ``demo``, on a new temporary demo database unless ``database_url`` is given.
        create: whether a SQLite file that does not exist may be created; default: only the local file of a
            workstation with no configuration at all (the first start), and demo files.

    Raises:
        DatabaseMissingError: the SQLite file does not exist (and may not be created).
        DatabaseOpenError, SchemaError, SecretStoreError: the database cannot be used (one sentence each).
        DemoRefusedError: ``demo`` on a database holding real patrons or requests.
    """
    ensure_application()
    settings = settings or load_settings()
    demo_like = demo or screenshot
    if database_url:
        url = check_database_argument(database_url)
    elif screenshot:
        url = sqlite_url(Path(tempfile.mkdtemp(prefix="callslip-screenshot-")) / "demo.sqlite3")
    elif demo:
        url = sqlite_url(demo_database_path())
    else:
        url = settings.resolved_database_url()
    if create is None:
        create = demo_like or (not database_url and not settings.database_url)
    if demo_like:  # never the configured server: a demo must not e-mail anyone
        settings = settings.with_changes(smtp_host="", smtp_username="")
    db, _result = open_checked(url_with_password(url), create=create)
    try:
        if demo_like and not has_requests(db):
            check_may_seed(db)
            seed_demo(db)
        elif demo:
            check_may_seed(db)  # an existing demo database: fine; a real one: refused, never shown as a demo
    except BaseException:
        db.dispose()
        raise
    ctx = AppContext(db, settings, demo=demo_like)
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
    interactive = not (args.screenshot or args.self_check)
    try:
        settings = load_settings()
        if args.database:
            check_database_argument(args.database)
    except ConfigError as exc:
        return _fail(f"Callslip cannot start: {exc}", interactive=interactive)
    opened = _open_window(args, settings, interactive=interactive)
    if isinstance(opened, int):
        return opened
    window = opened
    if args.screenshot:
        window.resize(1280, 780)  # the same picture every time, whatever size was remembered
        window.show()
        wait_until_loaded(window)
        ok = window.grab().save(str(args.screenshot))
        window.close()
        return 0 if ok else _fail(f"could not write {args.screenshot}", interactive=False)
    window.show()
    return app.exec()


def _open_window(args: argparse.Namespace, settings: Settings, *, interactive: bool) -> MainWindow | int:
    """The main window, or an exit code. When the database cannot be opened, an interactive start shows the
    start-up page (create the missing file, Settings, try again, quit) instead of exiting."""
    database, create = args.database, None
    while True:
        try:
            return create_main_window(
                database, settings, demo=args.demo, screenshot=args.screenshot is not None, create=create
            )
        except STARTUP_PROBLEMS as exc:
            message = str(exc)
            if not isinstance(exc, ServiceError | SchemaError | SecretStoreError | ConfigError):
                message = describe(exc, database or settings.resolved_database_url())
            if not interactive:
                return _fail(f"Callslip cannot start: {message}", interactive=False)
            page = StartupProblemDialog(message, can_create=isinstance(exc, DatabaseMissingError))
            page.exec()
            choice = page.choice
            page.deleteLater()
        if choice is StartupChoice.QUIT:
            return 1
        if choice is StartupChoice.CREATE:
            create = True
        elif choice is StartupChoice.SETTINGS:
            chosen = _settings_at_start_up(settings, database or settings.resolved_database_url())
            if isinstance(chosen, MainWindow):
                return chosen
            settings = chosen


def _settings_at_start_up(settings: Settings, failing_url: str) -> MainWindow | Settings:
    """The Settings dialog before any database is open: it shows the failing database; Save opens the chosen one
    (asking before creating a file) and that opens the main window. Closed without saving: the same settings."""
    placeholder = Database("sqlite://")  # nothing is stored in it; the dialog switches away from it on Save
    ctx = AppContext(placeholder, settings)
    dialog = SettingsDialog(ctx, shown_database_url=failing_url)
    dialog.exec()
    saved = dialog.saved_settings
    dialog.deleteLater()
    if saved is not None and ctx.db is not placeholder:
        return MainWindow(ctx)
    ctx.shutdown()
    placeholder.dispose()
    return saved or settings


def _fail(message: str, *, interactive: bool) -> int:
    print(message, file=sys.stderr)
    if interactive:
        QMessageBox.critical(None, "Callslip", message)
    return 1
