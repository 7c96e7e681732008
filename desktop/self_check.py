"""``callslip --self-check``: is this installation (source checkout or PyInstaller build) able to run?

Run after installing or updating a workstation, and by the packaging test on the freshly built executable. It
exercises what a frozen build most often gets wrong — files that were not bundled (icons, default templates,
migration scripts), modules loaded at run time (the PostgreSQL driver, phone-number metadata, the password
hasher, Qt's SVG and platform plugins) — and then does what start-up does: opens the database, checks the
schema, and creates the main window offscreen. It prints one line per check and returns 0, or 1 with the reasons.

The first check is the platform plugin the app will really use (``QT_QPA_PLATFORM`` as set when the check was
started, else the system's default — not the offscreen one the other checks use): a display must be there, and
every library the plugin needs; a missing one is named with its Debian/Ubuntu package. From a source install the
plugin is also loaded for real, in a child process (a failed load aborts the process that tries it).

The check never sends mail: the main window is created with this workstation's System Manager poller turned off.
Opening the database upgrades an older schema, exactly as starting Callslip would.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from PySide6.QtWidgets import QApplication

from desktop import __version__
from desktop.paths import app_root, resource_path, template_path
from desktop.ui.qt_platform import check_platform, probe_platform

#: Icons the application icon set must contain (the rest are checked for validity, not presence).
REQUIRED_ICONS = ("app",)


class CheckError(RuntimeError):
    """One check did not pass; the message says why."""


@dataclass
class SelfCheckReport:
    """What ran, what passed and what failed, in order."""

    passed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check that ran passed and none was skipped for a failure."""
        return not self.failed and not self.skipped


def run_self_check(
    database_url: str | None, out: TextIO | None = None, *, environment: Mapping[str, str] | None = None
) -> int:
    """Check the installation against ``database_url`` (default: the configured database); return 0 or 1.

    Creates the QApplication (offscreen, after checking the platform the app would really use) if none exists
    yet, so it can be called before any window is made.

    Args:
        database_url: a database URL or SQLite file path; ``None`` means the configured one, as at start-up.
        out: where to print the report (default ``sys.stdout``; nothing is printed when there is none, as in a
            windowed Windows build — the exit code still tells).
        environment: the environment the app would start with (default: this process's), for the platform check.
    """
    report = collect(database_url, environment=environment)
    stream = out if out is not None else sys.stdout
    if stream is not None:
        print(format_report(report), file=stream, flush=True)
    return 0 if report.ok else 1


def collect(database_url: str | None, *, environment: Mapping[str, str] | None = None) -> SelfCheckReport:
    """Run every check and return the report (no printing)."""
    real = dict(os.environ if environment is None else environment)  # before the offscreen platform below
    if QApplication.instance() is None:  # the checks below run offscreen; the real platform is checked first
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    report = SelfCheckReport()
    state: dict[str, object] = {}

    def check(name: str, fn: Callable[[], str], *, needs: str | None = None) -> None:
        if needs is not None and needs not in state:
            report.skipped.append((name, f"skipped: {needs} did not pass"))
            return
        started = time.perf_counter()
        try:
            detail = fn()
        except Exception as exc:  # every failure becomes a line of the report, never a traceback
            report.failed.append((name, _reason(exc)))
            return
        report.passed.append((name, f"{detail} ({(time.perf_counter() - started) * 1000:.0f} ms)"))
        state[name] = True

    check("platform", lambda: _check_platform(real))
    check("installation", _check_installation)
    check("libraries", _check_libraries)
    check("icons", _check_icons)
    check("templates", _check_templates)
    url_holder: list[str] = []
    with tempfile.TemporaryDirectory(prefix="callslip-self-check-") as scratch:
        check("settings", lambda: _check_settings(database_url, url_holder, Path(scratch)))
        check("database", lambda: _check_database(url_holder[0]), needs="settings")
        check("main window", lambda: _check_main_window(url_holder[0]), needs="database")
    return report


def format_report(report: SelfCheckReport) -> str:
    """The report as staff (or a CI log) read it: one line per check, then the verdict."""
    lines = [f"Callslip {__version__} self-check ({_where()})"]
    lines += [f"  ok    {name}: {detail}" for name, detail in report.passed]
    lines += [f"  FAIL  {name}: {detail}" for name, detail in report.failed]
    lines += [f"  --    {name}: {detail}" for name, detail in report.skipped]
    if report.ok:
        lines.append("self-check passed")
    else:
        reasons = "; ".join(f"{name}: {detail}" for name, detail in report.failed)
        lines.append(f"self-check FAILED: {reasons}")
    return "\n".join(lines)


def _where() -> str:
    if getattr(sys, "frozen", False):
        return f"built application at {app_root()}"
    return f"source at {app_root()}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CheckError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _application() -> QApplication:
    """The process's QApplication (the app's, when it made one; else one for the checks)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        return app
    app = QApplication(sys.argv[:1])
    app.setApplicationName("Callslip")
    app.setOrganizationName("Callslip")
    return app


# ------------------------------------------------------------------------------------------------ checks


def _check_platform(env: Mapping[str, str]) -> str:
    """The platform plugin the app will use can be loaded: a display, and every library it needs."""
    report = check_platform(env)
    if report.problem:
        raise CheckError(report.problem)
    if report.plugin is None:
        return f"{report.platform}: Qt loads its plugin itself here (no separate file to check)"
    where = report.plugin.name
    if report.platform in {"offscreen", "minimal"}:
        return f"{report.platform} ({where}): no display needed"
    failed = probe_platform(report.platform)
    if failed:
        raise CheckError(failed)
    loaded = "loaded" if not getattr(sys, "frozen", False) else "libraries present"
    return f"{report.platform} ({where}) {loaded}, every library it needs is installed"


def _check_installation() -> str:
    """The bundled data folders and the migration scripts are where the code looks for them."""
    from desktop.db.migrate import MIGRATIONS_DIR, head_revision

    missing = [str(path) for path in (resource_path("icons"), template_path()) if not path.is_dir()]
    if not (MIGRATIONS_DIR / "env.py").is_file():
        missing.append(str(MIGRATIONS_DIR / "env.py"))
    if missing:
        raise CheckError("missing from the installation: " + ", ".join(missing))
    versions = sorted(p.stem.split("_")[0] for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    return f"Python {sys.version.split()[0]}, {len(versions)} migrations (head {head_revision()})"


def _check_libraries() -> str:
    """Modules that are loaded at run time, which a frozen build can silently lose."""
    import argon2
    import keyring
    import psycopg
    from sqlalchemy.dialects import postgresql, sqlite  # noqa: F401 - importing is the check

    from desktop.domain.contacts import format_phone, normalize_phone

    e164 = normalize_phone("(217) 555-0143", "US").normalized
    if format_phone("+442079460000", "US") == "+442079460000":
        raise CheckError("phone-number metadata is missing (numbers are not being formatted)")
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    if not hasher.verify(hasher.hash("self-check"), "self-check"):
        raise CheckError("the password hasher does not verify its own hash")
    backend = type(keyring.get_keyring()).__module__.removeprefix("keyring.backends.")
    return (
        f"SQLite {sqlite3.sqlite_version}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__} libpq), "
        f"phone numbers ({e164}), argon2, keyring backend {backend}"
    )


def _check_icons() -> str:
    """Every SVG icon is valid and renders through Qt's SVG icon engine at 1x and 2x."""
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    _application()
    folder = resource_path("icons")
    svgs = sorted(folder.glob("*.svg"))
    missing = [name for name in REQUIRED_ICONS if not (folder / f"{name}.svg").is_file()]
    if missing:
        raise CheckError(f"icons missing: {', '.join(missing)}")
    broken = []
    for path in svgs:
        icon = QIcon(str(path))
        for size in (16, 32):
            if icon.pixmap(QSize(size, size)).isNull():
                broken.append(path.name)
                break
    if broken:
        raise CheckError(f"icons that do not render (is Qt's SVG plugin bundled?): {', '.join(broken)}")
    return f"{len(svgs)} SVG icons render at 16 and 32 px"


def _check_templates() -> str:
    """Each default notification template is valid and renders on sample data."""
    from desktop.services.notices.templates import default_templates, render, sample_context, validate

    defaults = default_templates()
    if not defaults:
        raise CheckError(f"no default templates found in {template_path()}")
    context = sample_context()
    for name, fields in defaults.items():
        problems = validate(fields)
        if problems:
            raise CheckError(f"default template {name!r}: {problems[0]}")
        notice = render(fields, context)
        if not (notice.body_text.strip() or notice.body_html.strip()):
            raise CheckError(f"default template {name!r} renders an empty notice")
    return f"{len(defaults)} default templates render ({', '.join(sorted(defaults))})"


def _check_settings(database_url: str | None, holder: list[str], scratch: Path) -> str:
    """The configuration loads and names a database; the password (if any) comes from the keyring.

    A SQLite file that does not exist is not created (no command but ``init-db`` creates one): the database and
    window checks then run on a temporary database in ``scratch``, and the report says so.
    """
    from desktop.config import load_settings
    from desktop.db.url_text import sqlite_url
    from desktop.secrets import url_with_password
    from desktop.services.admin.database_problems import missing_sqlite_file

    settings = load_settings()
    url = url_with_password(database_url or settings.resolved_database_url())
    missing = missing_sqlite_file(url)
    if missing is not None:
        holder.append(sqlite_url(scratch / "self-check.sqlite3"))
        return (
            f"database {missing} does not exist (nothing was created there; create it with callslip-manager "
            "init-db): the checks below use a temporary database"
        )
    holder.append(url.render_as_string(hide_password=False))
    return f"database {url.render_as_string(hide_password=True)}"


def _check_database(url: str) -> str:
    """Open the database as start-up does (upgrading an older schema) and confirm the schema is current."""
    from desktop.db.migrate import check_schema
    from desktop.services.database import open_database

    db, result = open_database(url)
    try:
        info = check_schema(db.engine)
        upgraded = f", upgraded from {result.upgraded_from}" if result.upgraded_from else ""
        return f"{db.backend} {db.display_name}: schema revision {info.head_revision}{upgraded}"
    finally:
        db.dispose()


def _check_main_window(url: str) -> str:
    """Create the main window offscreen, paint it, close it, and make sure no thread is left running."""
    from PySide6.QtCore import QCoreApplication, QEventLoop

    from desktop.config import load_settings
    from desktop.services.database import open_database
    from desktop.ui.context import AppContext
    from desktop.ui.main_window import MainWindow
    from desktop.ui.threads import running_threads

    app = _application()
    settings = load_settings().with_changes(run_poller=False)  # a check must never send a notice
    db, _ = open_database(url)  # as desktop.app.create_main_window does (the URL already has its password)
    window = MainWindow(AppContext(db, settings))
    try:
        name = window.objectName()
        window.show()
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 200)
        if window.grab().isNull():
            raise CheckError("the main window does not paint")
        title = window.windowTitle()
    finally:
        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, 0)
        app.processEvents()
        db.dispose()
    if name != "mainWindow":
        raise CheckError(f"the main window's objectName is {name!r}, not 'mainWindow'")
    left = running_threads()
    if left:
        raise CheckError(f"threads still running after the main window closed: {', '.join(left)}")
    return f"{title!r} created offscreen ({app.platformName()}), painted and closed cleanly"
