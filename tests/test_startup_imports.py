"""Start-up imports: reading the configuration must not pull in SQLAlchemy, nor the schema check Alembic; and the
light URL reader agrees with SQLAlchemy's on every URL (it decides whether a URL holds a password)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from desktop.db.url_text import UrlTextError, parse_url

ROOT = Path(__file__).resolve().parent.parent


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    """Top-level packages loaded by a fresh Python after running ``code`` (a real process: this one has them all)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "CALLSLIP_CONFIG": str(tmp_path / "callslip.toml"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
    }
    script = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          check=True)  # fmt: skip
    return set(done.stdout.split())


def test_reading_the_configuration_does_not_import_sqlalchemy(tmp_path: Path) -> None:
    (tmp_path / "callslip.toml").write_text(
        'database_url = "postgresql://staff@db.example.org:5433/ill"\nsmtp_host = "mail.example.org"\n',
        encoding="utf-8",
    )
    loaded = _modules_after(
        "from desktop.config import check_database_argument, load_settings\n"
        "s = load_settings()\n"
        "assert s.database_url.startswith('postgresql://'), s\n"
        "check_database_argument('postgresql://staff@db/ill')\n"
        "s.resolved_database_url()",
        tmp_path,
    )
    assert "sqlalchemy" not in loaded
    assert "desktop" in loaded


_text = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "sqlite", "mysql+pymysql"]),
    user=_text,
    password=st.none() | _text,
    host=_text,
    port=st.none() | st.integers(min_value=0, max_value=70000).map(str) | _text,
    database=_text,
)
def test_the_light_url_reader_agrees_with_sqlalchemy(
    scheme: str, user: str, password: str | None, host: str, port: str | None, database: str
) -> None:
    """Whatever the text, both readers accept or refuse it alike, and agree on the password, user, host, port
    and database (what the configuration's checks and messages use)."""
    auth = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
    text = f"{scheme}://{auth}{host}{f':{port}' if port is not None else ''}/{database}"
    try:
        theirs = make_url(text)
    except Exception:
        with pytest.raises(UrlTextError):
            parse_url(text)
        return
    ours = parse_url(text)
    assert (ours.password, ours.username, ours.host, ours.port, ours.database) == (
        theirs.password,
        theirs.username,
        theirs.host,
        theirs.port,
        theirs.database,
    )
    assert ours.backend == ("postgresql" if scheme == "postgres" else theirs.get_backend_name())


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    parts = parse_url(str(tmp_path / "x.sqlite3"))
    assert (parts.backend, parts.password, parts.database) == ("sqlite", None, str(tmp_path / "x.sqlite3"))


def test_opening_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    """Alembic, Mako and Pygments are loaded only when a migration has to run, not on every start-up."""
    from desktop.db.engine import sqlite_url
    from desktop.services.database import open_database

    url = sqlite_url(tmp_path / "current.sqlite3")
    db, _ = open_database(url)  # created and migrated here, in this process
    db.dispose()
    loaded = _modules_after(
        f"from desktop.services.database import open_database\ndb, result = open_database({url!r})\n"
        "assert result.upgraded_from is None, result\ndb.dispose()",
        tmp_path,
    )
    assert "sqlalchemy" in loaded
    assert not loaded & {"alembic", "mako", "pygments"}


def test_the_schema_head_read_as_text_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from desktop.db import migrate

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == script.get_current_head()
    assert migrate._known_revisions() == {rev.revision for rev in script.walk_revisions()}


def test_the_start_up_window_needs_neither_sqlalchemy_nor_the_main_window(tmp_path: Path) -> None:
    """What runs before the first paint: the app module, the configuration and the opening window."""
    loaded = _modules_after(
        "import desktop.app, desktop.ui.admin.opening_window\nimport sys\n"
        "assert 'desktop.ui.main_window' not in sys.modules and 'desktop.services.database' not in sys.modules",
        tmp_path,
    )
    assert not loaded & {"sqlalchemy", "alembic", "jinja2"}


def test_the_opening_window_is_painted_before_pyside6_builds_the_qt_namespace(tmp_path: Path) -> None:
    """The first use of PySide6's ``Qt`` namespace builds all its enums (~40 ms, a quarter of a bare window's
    start): the opening window, centred and selectable as before, is painted without it."""
    code = (
        "import os\nos.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6 import QtCore\nfrom PySide6.QtWidgets import QApplication\n"
        "import desktop.app\nfrom desktop.ui.admin.opening_window import OpeningWindow\n"
        "app = QApplication([])\nwindow = OpeningWindow('/srv/ill/callslip.sqlite3')\n"
        "painted = []\nwindow.firstPainted.connect(lambda: painted.append(True))\nwindow.show()\n"
        "while not painted:\n    app.processEvents()\n"
        "assert 'Qt' not in QtCore.__dict__, 'the Qt namespace was built before the first paint'\n"
        "from PySide6.QtCore import Qt\n"
        "assert window.status.alignment() == Qt.AlignmentFlag.AlignCenter, window.status.alignment()\n"
        "assert window.database.alignment() == Qt.AlignmentFlag.AlignCenter\n"
        "assert window.database.textInteractionFlags() == Qt.TextInteractionFlag.TextSelectableByMouse\n"
    )
    assert "PySide6" in _modules_after(code, tmp_path)
