"""Say it, don't guess it (issue 13, item 5): a mistyped path, a missing settings file, an unknown setting, a
password on the command line, a database that fails — each is one plain line naming what is wrong, and nothing is
created. ``callslip-manager`` runs as a subprocess, as an administrator runs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from desktop.config import Settings
from desktop.db.engine import sqlite_url
from desktop.db.models import Notification
from desktop.services.admin.database_problems import describe
from desktop.services.database import open_database
from desktop.services.patrons import password_reset as pr
from tests.patron_helpers import make_patron, points_of
from tests.test_setup_identity import ROOT, manager

COMMANDS: list[tuple[str, ...]] = [
    ("seed-demo",),
    ("export-requests",),
    ("route", "100001", "Request Sent"),
    ("run", "--once"),
    ("import-patrons", "PATRONS"),
    ("import-requests", "PATRONS"),
    ("redeem-reset", "sometoken"),
]


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "sqlalche.me" not in lines[0]
    return lines[0]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: a[0])
def test_every_command_but_init_db_refuses_a_missing_sqlite_file(tmp_path: Path, argv: tuple[str, ...]) -> None:
    patrons = tmp_path / "patrons.csv"
    patrons.write_text("UserName\nada\n", encoding="utf-8")
    typo = tmp_path / "typo" / "libary.sqlite3"
    argv = tuple(str(patrons) if a == "PATRONS" else a for a in argv)
    for how in ("option", "environment"):
        if how == "option":
            done = manager("--database", str(typo), *argv, stdin="a-new-password\n")
        else:
            done = manager(*argv, env={"CALLSLIP_DATABASE_URL": str(typo)}, stdin="a-new-password\n")
        line = one_line(done)
        assert str(typo) in line and "does not exist" in line and "init-db" in line, line
        assert not typo.parent.exists()  # nothing created, not even the folder


def test_init_db_creates_and_a_first_command_then_works(tmp_path: Path) -> None:
    path = tmp_path / "new" / "library.sqlite3"
    assert manager("--database", str(path), "init-db").returncode == 0
    assert path.exists()
    done = manager("--database", str(path), "run", "--once")
    assert done.returncode == 0 and "pending 0" in done.stdout


def test_a_password_on_the_command_line_is_refused_and_not_repeated() -> None:
    line = one_line(manager("--database", "postgresql://ill:hunter2@127.0.0.1:1/callslip", "init-db"))
    assert "must not contain a password" in line and "keyring" in line and "hunter2" not in line
    assert "ill@127.0.0.1:1/callslip" in line  # the account to store it under
    assert "give postgresql://ill@127.0.0.1:1/callslip and" in line and "***" not in line


def test_a_missing_settings_file_named_by_callslip_config_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "callslip.toml"
    line = one_line(
        manager("--database", str(tmp_path / "x.sqlite3"), "init-db", env={"CALLSLIP_CONFIG": str(missing)})
    )
    assert str(missing) in line and "CALLSLIP_CONFIG" in line and "does not exist" in line
    assert not (tmp_path / "x.sqlite3").exists()


def test_an_unknown_setting_is_an_error_naming_the_file_the_key_and_the_known_keys(tmp_path: Path) -> None:
    config = tmp_path / "callslip.toml"
    config.write_text('[callslip]\nsmtp_hots = "mail.example.edu"\n', encoding="utf-8")
    line = one_line(manager("--database", str(tmp_path / "x.sqlite3"), "init-db", env={"CALLSLIP_CONFIG": str(config)}))
    assert str(config) in line and "'smtp_hots'" in line and "did you mean smtp_host?" in line
    assert "known settings: database_url, smtp_host" in line
    config.write_text('database_url = "x.sqlite3"\npoll_secs = 30\n', encoding="utf-8")  # no [callslip] table
    line = one_line(manager("init-db", env={"CALLSLIP_CONFIG": str(config)}))
    assert "'poll_secs'" in line and "poll_seconds" in line


@pytest.mark.postgres
def test_postgres_failures_are_one_plain_sentence(pg_url: str) -> None:
    from sqlalchemy.engine import make_url

    line = one_line(manager("--database", "postgresql://nobody@127.0.0.1:1/none", "init-db"))
    assert line == (
        "callslip-manager: The PostgreSQL database none (nobody@127.0.0.1:1) cannot be reached (the server is down, "
        "or the address or port is wrong). Check that the server is running and the address in Settings → Database."
    )
    missing = make_url(pg_url).set(database="no_such_callslip_db").render_as_string(hide_password=False)
    line = one_line(manager("--database", missing, "init-db"))
    assert "PostgreSQL database no_such_callslip_db" in line and "does not exist" in line and "createdb" in line


def test_sqlite_failures_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.sqlite3"
    not_a_db.write_text("these are my notes, not a database\n" * 200, encoding="utf-8")
    line = one_line(manager("--database", str(not_a_db), "export-requests"))
    assert f"The file {not_a_db} is not a Callslip database" in line
    assert not_a_db.read_text(encoding="utf-8").startswith("these are my notes")  # untouched
    a_file = tmp_path / "plain-file"
    a_file.write_text("x", encoding="utf-8")
    line = one_line(manager("--database", str(a_file / "library.sqlite3"), "init-db"))
    assert str(a_file / "library.sqlite3") in line and f"{a_file} is not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root may write anywhere")
def test_a_read_only_folder_is_named(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = one_line(manager("--database", str(folder / "library.sqlite3"), "init-db"))
        assert f"the folder {folder} is read-only" in line
    finally:
        folder.chmod(0o700)


def test_a_read_only_folder_is_described_with_its_path(tmp_path: Path) -> None:
    """The sentence for SQLite's "unable to open database file" (what a read-only folder gives) names the path."""
    error = sqlite3.OperationalError("unable to open database file")
    text = describe(error, sqlite_url(tmp_path / "missing-folder" / "x.sqlite3"))
    assert str(tmp_path / "missing-folder" / "x.sqlite3") in text and "unable to open" not in text


def test_run_waits_while_the_sqlite_file_is_locked_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    assert manager("--database", str(path), "init-db").returncode == 0
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing for a long time
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop.manager", "--database", str(path), "run", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # blocks until it says it waits
        assert "is locked by another program" in line and "waiting" in line and str(path) in line
        assert process.poll() is None  # still there, not exited
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "pending 0" in out


# ------------------------------------------------------------------------------------------------ redeem-reset


def _token(path: Path) -> str:
    db, _ = open_database(sqlite_url(path))
    try:
        pid = make_patron(db, "ada", emails=[("Home", "ada@example.org")])
        settings = Settings(
            staff_name="t", smtp_host="127.0.0.1", smtp_from="ill@x.edu", web_base_url="https://x.edu/r?t="
        )
        result = pr.reset_password(db, points_of(db, pid, "email")[0].id, staff="t", settings=settings)
        with db.read() as session:
            secret = session.scalar(select(Notification.secret).where(Notification.id == result.notification_id))
        return str(json.loads(secret or "{}")["link"]).removeprefix("https://x.edu/r?t=")
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("good-start\x0bcut-here\n", "control character"),
        ("good-start\x0ccut-here\n", "control character"),
        ("good-start\rcut-here\n", "control character"),
        ("good-start\u2028cut-here\n", "control character"),
        ("good-start\u2029cut-here\n", "control character"),
        ("good-start\x85cut-here\n", "control character"),
        ("tab\tin-the-middle\n", "control character"),
        ("        \n", "only spaces"),
        ("\u3000" * 9 + "\n", "only spaces"),
    ],
)
def test_redeem_reset_refuses_a_password_it_would_cut_or_that_is_blank(
    tmp_path: Path, typed: str, message: str
) -> None:
    path = tmp_path / "library.sqlite3"
    token = _token(path)
    line = one_line(manager("--database", str(path), "redeem-reset", token, stdin=typed))
    assert message in line and "nothing was changed" in line
    done = manager("--database", str(path), "redeem-reset", token, stdin="a-good-password\r\n")  # Windows line end
    assert done.returncode == 0, done.stderr  # the token was not used up by the refusal
    db, _ = open_database(sqlite_url(path))
    try:
        assert pr.verify_web_password(db, "ada", "a-good-password")
    finally:
        db.dispose()


def test_redeem_reset_reads_the_password_file_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    token = _token(path)
    secret = tmp_path / "pw.txt"
    secret.write_bytes(b"first-part\x0bsecond-part\n")
    line = one_line(manager("--database", str(path), "redeem-reset", token, "--password-file", str(secret)))
    assert "control character" in line
    secret.write_bytes(b"first-part second-part\r\n")
    assert manager("--database", str(path), "redeem-reset", token, "--password-file", str(secret)).returncode == 0
