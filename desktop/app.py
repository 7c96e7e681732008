"""The ``callslip`` command: builds the QApplication and the main window."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QEvent, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from desktop import __version__
from desktop.config import ConfigError, Settings, check_database_argument, default_database_path, load_settings
from desktop.crash_traces import enable_crash_traces
from desktop.ui.qt_platform import check_platform
from desktop.ui.threads import TaskRunner, stop_all_threads

# Everything else (SQLAlchemy, the services, the main window and its modules) is imported where it is used: an
# interactive start paints its "Opening database …" window first, then opens the database on a worker thread, and
# only then builds the main window (docs/PERFORMANCE.md, start-up).
if TYPE_CHECKING:
    from desktop.db.engine import Database
    from desktop.ui.main_window import MainWindow


def startup_problems() -> tuple[type[BaseException], ...]:
    """What can keep the main window from opening, each told as one sentence on the start-up page."""
    from sqlalchemy.exc import SQLAlchemyError

    from desktop.db.migrate import SchemaError
    from desktop.secrets import SecretStoreError
    from desktop.services.errors import ServiceError

    return (ServiceError, SchemaError, SecretStoreError, ConfigError, SQLAlchemyError, OSError)


def _problem_message(exc: BaseException, failing_url: str) -> str:
    """The one sentence the start-up page shows for ``exc``."""
    from desktop.db.migrate import SchemaError
    from desktop.secrets import SecretStoreError
    from desktop.services.admin.database_problems import describe
    from desktop.services.errors import ServiceError

    if isinstance(exc, ServiceError | SchemaError | SecretStoreError | ConfigError):
        return str(exc)
    return describe(exc, failing_url)


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


def close_down(app: QApplication, window: MainWindow | None) -> None:
    """End the process's Qt objects in order while the application still exists: worker threads stopped, the
    database's connections closed, every window deleted (``window``, already closed, may be None).

    Left to the interpreter's exit, PySide6 deletes the Qt objects Python still owns (the main window, its
    context, their threads and workers) one by one in no fixed order, while Python is being torn down: a
    screenshot run once ended in a segfault there under load in CI. Deleted here, the exit is the same every time.
    """
    _stop_threads_on_quit()  # the event loop's aboutToQuit already did this, but a screenshot runs no loop
    if window is not None and shiboken6.isValid(window):
        window.ctx.db.dispose()
    for widget in app.topLevelWidgets():
        if widget.parent() is None:  # a child window (a menu, a dialog) goes with its parent
            widget.deleteLater()
    app.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def demo_database_path() -> Path:
    """Where ``callslip --demo`` keeps its demo data when no ``--database`` is given: never the configured one."""
    return default_database_path().with_name("callslip-demo.sqlite3")


@dataclass(frozen=True)
class OpenedWorkstation:
    """A database opened for this workstation, and the settings to run it with (a demo never has SMTP)."""

    db: Database
    settings: Settings
    demo: bool


def open_workstation(
    database_url: str | None,
    settings: Settings,
    *,
    demo: bool = False,
    screenshot: bool = False,
    create: bool | None = None,
) -> OpenedWorkstation:
    """Open the database (upgrading its schema, seeding a demo) without any Qt: runs on a worker thread at an
    interactive start. Arguments and errors as :func:`create_main_window`."""
    from desktop.secrets import url_with_password
    from desktop.services.admin.database_problems import open_checked
    from desktop.services.admin.demo import check_may_seed, seed_demo
    from desktop.services.requests.queues_count import has_requests

    demo_like = demo or screenshot
    if database_url:
        url = check_database_argument(database_url)
    elif screenshot:
        url = _sqlite_url(Path(tempfile.mkdtemp(prefix="callslip-screenshot-")) / "demo.sqlite3")
    elif demo:
        url = _sqlite_url(demo_database_path())
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
    return OpenedWorkstation(db, settings, demo_like)


def _sqlite_url(path: Path) -> str:
    from desktop.db.url_text import sqlite_url

    return sqlite_url(path)


def _main_window_for(opened: OpenedWorkstation) -> MainWindow:
    """The main window on an opened database (on the GUI thread)."""
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow

    return MainWindow(AppContext(opened.db, opened.settings, demo=opened.demo))


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
    opened = open_workstation(
        database_url, settings or load_settings(), demo=demo, screenshot=screenshot, create=create
    )
    return _main_window_for(opened)


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
    enable_crash_traces(default_database_path().parent)
    if args.self_check:  # first: its platform check looks at the platform this environment would really use
        from desktop.self_check import run_self_check  # the packaging check: schema, templates, icons, window

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
    if interactive:
        start = InteractiveStart(args, settings)
        start.begin()
        code = app.exec()
        close_down(app, start.window)
        return start.exit_code if start.exit_code is not None else code
    opened = _open_window(args, settings, interactive=False)
    if isinstance(opened, int):
        return opened
    window = opened
    window.resize(1280, 780)  # a screenshot: the same picture every time, whatever size was remembered
    window.show()
    wait_until_loaded(window)
    ok = window.grab().save(str(args.screenshot))
    window.close()
    close_down(app, window)
    return 0 if ok else _fail(f"could not write {args.screenshot}", interactive=False)


class InteractiveStart:
    """An interactive start: the "Opening database …" window is painted first, the database is opened on a worker
    thread, then the main window replaces it. A database that cannot be opened shows the start-up page (create
    the missing file, Settings, try again, quit), as :func:`_open_window` does for a synchronous start.

    Owns its worker thread and stops it once the database is open (or on quit, through ``stop_all_threads``).
    """

    def __init__(
        self, args: argparse.Namespace, settings: Settings, *, exit_app: Callable[[int], None] = QApplication.exit
    ) -> None:
        """``exit_app`` ends the event loop with an exit code (tests pass their own: the real one would also end
        the next test's dialogs)."""
        from desktop.ui.admin.opening_window import OpeningWindow

        self._exit_app = exit_app
        self.args = args
        self.settings = settings
        self.database: str | None = args.database
        self.create: bool | None = None
        self.window: MainWindow | None = None
        self.exit_code: int | None = None
        self.opening = OpeningWindow(self._shown_database())
        self._runner: TaskRunner | None = None
        self._kicked = False  # the first attempt has started (after the first paint, or the fallback delay)

    def _shown_database(self) -> str:
        """The database being opened, as staff may see it (a URL here never holds a password: checked before)."""
        return self.database or self.settings.resolved_database_url()

    def begin(self) -> None:
        """Show the opening window; the database is opened once it has been painted."""
        # Started from the event loop, not inside the paint that emits firstPainted (a queued call, made without
        # PySide6's Qt namespace: its first use costs ~40 ms, which the first paint should not wait for).
        self.opening.firstPainted.connect(lambda: QTimer.singleShot(0, self.opening, self._first_attempt))
        # A window that is never painted (minimised at start, some remote desktops) must not keep the database
        # closed: the first attempt starts after a short delay at the latest.
        QTimer.singleShot(500, self.opening, self._first_attempt)
        self.opening.show()

    def _first_attempt(self) -> None:
        if not self._kicked:
            self._kicked = True
            self._attempt()

    def _attempt(self) -> None:
        self.opening.set_status("Opening database …")
        self.opening.database.setText(self._shown_database())
        if self._runner is None:
            self._runner = TaskRunner("callslip-start-up")
        job: Callable[[], OpenedWorkstation] = functools.partial(
            open_workstation,
            self.database,
            self.settings,
            demo=self.args.demo,
            screenshot=self.args.screenshot is not None,
            create=self.create,
        )
        self._runner.run(job, self._opened, self._failed)

    def _opened(self, result: object) -> None:
        assert isinstance(result, OpenedWorkstation)
        self.opening.set_status("Loading the desk …")
        self._stop_runner()
        try:
            self.window = _main_window_for(result)
        except Exception as exc:  # nothing may raise inside the event loop: said, then quit
            result.db.dispose()
            self._quit_with(_fail(f"Callslip cannot start: {exc}", interactive=True))
            return
        self._show_main_window(self.window)

    def _show_main_window(self, window: MainWindow) -> None:
        self.window = window
        window.show()
        self.opening.close()
        self.opening.deleteLater()

    def _failed(self, error: object) -> None:
        from desktop.services.admin.database_problems import DatabaseMissingError
        from desktop.ui.admin.startup_problem import StartupChoice, StartupProblemDialog

        if not isinstance(error, startup_problems()):
            self._quit_with(_fail(f"Callslip cannot start: {error}", interactive=True))
            return
        assert isinstance(error, BaseException)
        self.opening.set_status("The database could not be opened")
        page = StartupProblemDialog(
            _problem_message(error, self._shown_database()), can_create=isinstance(error, DatabaseMissingError)
        )
        page.exec()
        choice = page.choice
        page.deleteLater()
        if choice is StartupChoice.QUIT:
            self._quit_with(1)
            return
        if choice is StartupChoice.CREATE:
            self.create = True
        elif choice is StartupChoice.SETTINGS:
            chosen = _settings_at_start_up(self.settings, self._shown_database())
            if not isinstance(chosen, Settings):
                self._stop_runner()
                self._show_main_window(chosen)
                return
            self.settings = chosen
        self._attempt()

    def _stop_runner(self) -> None:
        if self._runner is not None:
            self._runner.shutdown()
            self._runner = None

    def _quit_with(self, code: int) -> None:
        self.exit_code = code
        self._stop_runner()
        self.opening.close()
        self._exit_app(code)


def _open_window(args: argparse.Namespace, settings: Settings, *, interactive: bool) -> MainWindow | int:
    """The main window, or an exit code. When the database cannot be opened, an interactive start shows the
    start-up page (create the missing file, Settings, try again, quit) instead of exiting."""
    from desktop.services.admin.database_problems import DatabaseMissingError
    from desktop.ui.admin.startup_problem import StartupChoice, StartupProblemDialog

    database, create = args.database, None
    while True:
        try:
            return create_main_window(
                database, settings, demo=args.demo, screenshot=args.screenshot is not None, create=create
            )
        except startup_problems() as exc:
            message = _problem_message(exc, database or settings.resolved_database_url())
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
            if not isinstance(chosen, Settings):
                return chosen
            settings = chosen


def _settings_at_start_up(settings: Settings, failing_url: str) -> MainWindow | Settings:
    """The Settings dialog before any database is open: it shows the failing database; Save opens the chosen one
    (asking before creating a file) and that opens the main window. Closed without saving: the same settings."""
    from desktop.db.engine import Database
    from desktop.ui.admin.settings_dialog import SettingsDialog
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow

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
