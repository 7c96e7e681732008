"""``desktop.self_check``: passes on a sound installation, and names the reason when something is broken."""

from __future__ import annotations

import io
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.db.engine import sqlite_url
from desktop.db.models import Notification, Request
from desktop.paths import app_root
from desktop.self_check import collect, format_report, run_self_check
from desktop.services.database import Database, open_database
from desktop.services.notices.templates import default_templates

CHECKS = ("installation", "libraries", "icons", "templates", "settings", "database", "main window")


def _run(url: str | None) -> tuple[int, str]:
    out = io.StringIO()
    code = run_self_check(url, out=out)
    return code, out.getvalue()


def test_passes_on_an_existing_sqlite_file(tmp_path: Path, qtbot: QtBot) -> None:
    path = tmp_path / "new.sqlite3"
    open_database(sqlite_url(path))[0].dispose()  # as init-db makes it
    code, text = _run(str(path))
    assert code == 0, text
    for name in CHECKS:
        assert f"  ok    {name}:" in text
    assert text.rstrip().endswith("self-check passed")
    assert "schema revision" in text
    assert path.exists()


def test_uses_the_configured_database_when_none_is_given(
    tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "configured.sqlite3"
    monkeypatch.setenv("CALLSLIP_DATABASE_URL", sqlite_url(path))
    code, text = _run(None)
    assert code == 0, text
    assert str(path) in text
    assert not path.exists()  # named, checked on a temporary database, not created


def test_changes_no_request_and_queues_no_notice(seeded_db: Database, qtbot: QtBot) -> None:
    """The check creates the main window with the poller off: nothing is routed or sent."""

    def snapshot() -> tuple[list[tuple[int, str, int]], int]:
        with seeded_db.read() as session:
            rows = session.execute(select(Request.id, Request.status, Request.version_id).order_by(Request.id))
            notices = session.scalar(select(func.count()).select_from(Notification)) or 0
            return [tuple(row) for row in rows], int(notices)

    before = snapshot()
    code, text = _run(str(seeded_db.url.render_as_string(hide_password=False)))
    assert code == 0, text
    assert snapshot() == before


def test_a_newer_schema_fails_with_the_reason_and_skips_the_window(sqlite_db: Database, qtbot: QtBot) -> None:
    path = Path(str(sqlite_db.url.database))
    sqlite_db.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    code, text = _run(str(path))
    assert code == 1
    assert "  FAIL  database:" in text
    assert "newer" in text
    assert "  --    main window: skipped: database did not pass" in text
    assert "self-check FAILED: database:" in text


def test_an_unreachable_server_fails_without_a_traceback(qtbot: QtBot) -> None:
    code, text = _run("postgresql://nobody@127.0.0.1:1/callslip")
    assert code == 1
    assert "  FAIL  database: OperationalError" in text
    assert "Traceback" not in text


@pytest.fixture
def fake_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the bundled data where PyInstaller would unpack it (``sys._MEIPASS``)."""
    bundle = tmp_path / "_internal"
    for folder in ("resources", "templates"):
        shutil.copytree(app_root() / folder, bundle / folder)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    default_templates.cache_clear()
    yield bundle
    default_templates.cache_clear()


def test_a_bundle_with_its_data_passes(fake_bundle: Path, tmp_path: Path, qtbot: QtBot) -> None:
    code, text = _run(str(tmp_path / "bundle.sqlite3"))
    assert code == 0, text
    assert str(fake_bundle) in text


def test_a_broken_default_template_is_named(fake_bundle: Path, tmp_path: Path, qtbot: QtBot) -> None:
    loan = fake_bundle / "templates" / "loan_pickup.toml"
    loan.write_text(
        loan.read_text(encoding="utf-8").replace("patron.full_name", "patron.ful_name", 1), encoding="utf-8"
    )
    report = collect(str(tmp_path / "t.sqlite3"))
    failed = dict(report.failed)
    assert set(failed) == {"templates"}, format_report(report)
    assert "Loan Pickup" in failed["templates"]
    assert "ful_name" in failed["templates"]


def test_missing_icons_are_reported(fake_bundle: Path, tmp_path: Path, qtbot: QtBot) -> None:
    shutil.rmtree(fake_bundle / "resources" / "icons")
    report = collect(str(tmp_path / "i.sqlite3"))
    failed = dict(report.failed)
    assert "installation" in failed
    assert "icons" in failed["installation"]
    assert "icons" in failed
    assert not report.ok


def test_a_corrupt_icon_is_named(fake_bundle: Path, tmp_path: Path, qtbot: QtBot) -> None:
    (fake_bundle / "resources" / "icons" / "refresh.svg").write_text("<svg", encoding="utf-8")
    report = collect(str(tmp_path / "c.sqlite3"))
    assert dict(report.failed).get("icons", "").endswith("refresh.svg"), format_report(report)


def test_without_stdout_only_the_exit_code_tells(tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A windowed Windows build has no sys.stdout; the check must still run and return its code."""
    monkeypatch.setattr(sys, "stdout", None)
    assert run_self_check(str(tmp_path / "w.sqlite3")) == 0


def test_a_database_file_that_does_not_exist_is_not_created(tmp_path: Path, qtbot: QtBot) -> None:
    """No command but init-db creates a SQLite file: the self-check checks a temporary database instead and says so."""
    missing = tmp_path / "typo" / "callslip.sqlite3"
    out = io.StringIO()
    assert run_self_check(str(missing), out=out) == 0, out.getvalue()
    assert not missing.exists() and not missing.parent.exists()
    assert f"{missing} does not exist" in out.getvalue() and "temporary database" in out.getvalue()
