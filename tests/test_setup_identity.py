"""Set-up never invents an identity, and demo data stays demo (issue 13, items 3 and 4).

``callslip-manager`` runs as a subprocess, the way an administrator runs it; real SQLite files, real PostgreSQL
and the real aiosmtpd sink.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from desktop.config import Settings
from desktop.db.engine import Database, sqlite_url
from desktop.db.models import NoticeTemplate, Patron, PickupLocation, Request, SystemSetting
from desktop.services.admin import demo
from desktop.services.admin.shared_settings import load_shared_settings, set_library_identity
from desktop.services.database import open_database
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.notice_context import system_settings
from desktop.services.notices.sender_identity import resolve_from
from desktop.services.notices.templates import default_templates, render, sample_context
from tests.outbox_support import add_patron, add_request, notices
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_dispatch import arrived

__all__ = ["smtp_sink"]  # the fixture, imported for the tests below

ROOT = Path(__file__).resolve().parents[1]
IDENTITY_KEYS = ("library_name", "library_address", "library_email", "library_phone", "reset_link_base")


def manager(
    *argv: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``callslip-manager ARGV`` in its own process, with this test's private environment."""
    return subprocess.run(
        [sys.executable, "-m", "desktop.manager", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"} | (env or {}),
        cwd=ROOT,
        input=stdin,
    )


def stored(db: Database) -> dict[str, object]:
    with db.read() as session:
        return {row.key: json.loads(row.value) for row in session.scalars(select(SystemSetting))}


# ------------------------------------------------------------------------------------------ no invented identity


def test_init_db_invents_no_identity_and_takes_it_as_options(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    done = manager("--database", str(path), "init-db")
    assert done.returncode == 0, done.stderr
    assert "no name or e-mail yet" in done.stderr  # says what is missing and how to give it
    db, _ = open_database(sqlite_url(path))
    try:
        values = stored(db)
        assert not any(values.get(key) for key in IDENTITY_KEYS), values
        with db.read() as session:
            assert all(not p.address for p in session.scalars(select(PickupLocation)))
            context = system_settings(session)
        assert "Demo" not in json.dumps(context) and "example.org" not in json.dumps(context)
    finally:
        db.dispose()
    done = manager(
        "--database", str(path), "init-db",
        "--library-name", "Riverside University Library",
        "--library-email", "ill@riverside.example.edu",
        "--library-phone", "+1 555 010 2030",
        "--library-address", "Interlibrary Loan\\n1 River Road\\nRiverside",
        "--reset-link-base", "https://my.riverside.example.edu/reset?token=",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "library name: 'Riverside University Library'" in done.stdout and "no name" not in done.stderr
    db, _ = open_database(sqlite_url(path))
    try:
        library = load_shared_settings(db).library
        assert library.name == "Riverside University Library" and library.email == "ill@riverside.example.edu"
        assert library.address == "Interlibrary Loan\n1 River Road\nRiverside"
        assert stored(db)["reset_link_base"] == "https://my.riverside.example.edu/reset?token="
    finally:
        db.dispose()
    # Running it again with one option changes that value only.
    done = manager("--database", str(path), "init-db", "--library-phone", "+1 555 010 9999")
    assert done.returncode == 0, done.stderr
    db, _ = open_database(sqlite_url(path))
    try:
        library = load_shared_settings(db).library
        assert (library.name, library.phone) == ("Riverside University Library", "+1 555 010 9999")
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--library-email", "ill at riverside", "library e-mail"),
        ("--reset-link-base", "ftp://riverside.example.edu/reset", "must be a web address starting with https://"),
        ("--reset-link-base", "reset?token=", "must be a web address"),
        ("--library-name", "Riverside\x07Library", "control character"),
        ("--library-name", "R" * 501, "longer than 500"),
    ],
)
def test_init_db_refuses_a_bad_identity_value_in_one_line(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    path = tmp_path / "library.sqlite3"
    done = manager("--database", str(path), "init-db", option, value)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    db, _ = open_database(sqlite_url(path))
    try:
        assert not any(stored(db).get(key) for key in IDENTITY_KEYS)  # nothing half-saved
    finally:
        db.dispose()


def test_without_any_from_address_nothing_is_sent_and_the_notices_wait(
    sqlite_db: Database, smtp_sink: SmtpSink
) -> None:
    arrived(sqlite_db)
    settings = Settings(staff_name="tester", smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_timeout=5.0)
    summary = run_cycle(sqlite_db, settings, worker="test")
    assert summary.problem is DeliveryProblem.NO_FROM_ADDRESS and summary.sent == 0 and summary.failed == 0
    assert summary.pending == 1 and not smtp_sink.messages
    assert len(summary.errors) == 1 and "init-db --library-email" in summary.errors[0]
    assert "CALLSLIP_SMTP_FROM" in summary.errors[0] and "1 notice(s) waiting" in summary.errors[0]
    [notice] = notices(sqlite_db)
    assert notice.state == "pending" and notice.attempts == 0  # left waiting, not failed

    # CALLSLIP_SMTP_FROM is the last resort, and is used.
    summary = run_cycle(sqlite_db, settings.with_changes(smtp_from="desk@relay.example.edu"), worker="test")
    assert summary.sent == 1 and summary.problem is None
    assert smtp_sink.messages[0].message["From"].endswith("<desk@relay.example.edu>")


def test_the_from_address_is_the_templates_else_the_librarys_else_smtp_from(
    any_db: Database, smtp_sink: SmtpSink
) -> None:
    assert resolve_from(" ", "", "relay@x.edu") == "relay@x.edu"
    settings = Settings(staff_name="t", smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_from="relay@x.edu")
    set_library_identity(any_db, changed_by="t", name="Riverside Library", email="ill@riverside.example.edu")
    arrived(any_db, email="one@example.org")
    assert run_cycle(any_db, settings, worker="t").sent == 1
    with any_db.write() as session:  # a template with no From of its own: the library's e-mail, not SMTP From
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(from_address=""))
    arrived(any_db, email="two@example.org")
    assert run_cycle(any_db, settings, worker="t").sent == 1
    with any_db.write() as session:
        session.execute(
            update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup").values(from_address="loans@x.edu")
        )
    arrived(any_db, email="three@example.org")
    assert run_cycle(any_db, settings, worker="t").sent == 1
    froms = [m.message["From"] for m in smtp_sink.messages]
    assert froms[0] == "Riverside Library Interlibrary Loan <ill@riverside.example.edu>"
    assert froms[1].endswith("<ill@riverside.example.edu>") and froms[2].endswith("<loans@x.edu>")
    text = smtp_sink.messages[0].text
    assert "Riverside Library Interlibrary Loan" in text and "Demo" not in text


def test_shipped_templates_read_well_without_the_optional_library_fields() -> None:
    context = sample_context() | {"library": {"name": "", "address_lines": [], "email": "", "phone": ""}}
    for name, template in default_templates().items():
        rendered = render(template, context)
        for part in (rendered.subject, rendered.from_name, rendered.body_text, rendered.body_html):
            for bad in ("  account", "at .", "at  ", "us at\n", "· \n", " ,", "<p> ", "<br/><br/>", "<p></p>",
                        "None", "Demo", "example.org\n", "Questions? ."):  # fmt: skip
                assert bad not in part, (name, bad, part)
            assert not part.startswith(" ")
        assert rendered.body_text.rstrip().splitlines()[-1].strip() if rendered.body_text else True
    loan = render(default_templates()["Loan Pickup"], context)
    assert "Questions? Reply to this e-mail." in loan.body_text and loan.body_text.rstrip().endswith(
        "Interlibrary Loan"
    )
    reset = render(default_templates()["Password Reset"], context)
    assert reset.subject == "Set a new password for your library account"
    printed = render(default_templates()["Print Notice"], context)
    assert "Questions?" not in printed.body_html and '<div class="return"></div>' in printed.body_html


# ------------------------------------------------------------------------------------------------ demo is demo


def test_demo_identity_comes_only_with_seed_demo_and_never_over_a_real_one(sqlite_db: Database, tmp_path: Path) -> None:
    assert not load_shared_settings(sqlite_db).library.name
    demo.seed_demo(sqlite_db, patrons=5, requests=10)
    assert load_shared_settings(sqlite_db).library.name == demo.DEMO_LIBRARY["name"]
    other, _ = open_database(sqlite_url(tmp_path / "real.sqlite3"))
    try:
        set_library_identity(other, changed_by="admin", name="Riverside Library", email="ill@riverside.example.edu")
        demo.seed_demo(other, patrons=5, requests=10)
        library = load_shared_settings(other).library
        assert (library.name, library.email) == ("Riverside Library", "ill@riverside.example.edu")
        assert library.phone == demo.DEMO_LIBRARY["phone"]  # only the empty fields are filled for the demo
    finally:
        other.dispose()


def test_seed_demo_refuses_a_database_with_real_records(tmp_path: Path) -> None:
    path = tmp_path / "library.sqlite3"
    assert manager("--database", str(path), "init-db").returncode == 0
    done = manager("--database", str(path), "seed-demo", "--patrons", "5", "--requests", "20")
    assert done.returncode == 0, done.stderr
    again = manager("--database", str(path), "seed-demo", "--patrons", "3", "--requests", "5")
    assert again.returncode == 0, again.stderr  # only demo data so far: seeding more is fine
    patrons_csv = tmp_path / "patrons.csv"
    patrons_csv.write_text("UserName,FirstName,LastName,EMailAddress\nreal1,Rita,Real,rita@example.edu\n")
    assert manager("--database", str(path), "import-patrons", str(patrons_csv)).returncode == 0
    refused = manager("--database", str(path), "seed-demo", "--patrons", "5", "--requests", "20")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert "holds 1 patron(s) and 0 request(s) that seed-demo did not create" in line and "--force" in line
    db, _ = open_database(sqlite_url(path))
    try:
        with db.read() as session:
            assert len(session.scalars(select(Patron.id)).all()) == 9  # nothing added
        forced = manager("--database", str(path), "seed-demo", "--patrons", "0", "--requests", "30", "--force")
        assert forced.returncode == 0, forced.stderr
        with db.read() as session:  # demo requests went to demo patrons only, never to the real one
            real = session.scalar(select(Patron.id).where(Patron.username == "real1"))
            assert session.scalars(select(Request.id).where(Request.patron_id == real)).all() == []
    finally:
        db.dispose()


def test_seed_demo_never_attaches_requests_to_real_patrons(sqlite_db: Database) -> None:
    real = add_patron(sqlite_db)
    add_request(sqlite_db, real)
    assert demo.foreign_records(sqlite_db) == demo.ForeignRecords(1, 1)
    with pytest.raises(demo.DemoRefusedError, match="did not create"):
        demo.check_may_seed(sqlite_db)
    with pytest.raises(demo.DemoRefusedError, match="never go to real patrons"):
        demo.seed_demo(sqlite_db, patrons=0, requests=5)
    demo.seed_demo(sqlite_db, patrons=3, requests=12)
    assert demo.foreign_records(sqlite_db) == demo.ForeignRecords(1, 1)  # the demo rows are known as demo
    with sqlite_db.read() as session:
        assert len(session.scalars(select(Request.id).where(Request.patron_id == real)).all()) == 1


@pytest.mark.postgres
def test_the_networked_install_steps_send_the_first_notice_with_the_librarys_own_identity(
    pg_url: str, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """The User Guide's steps, literally, on a fresh PostgreSQL database: init-db with the identity options, the
    CSV imports, then one headless System Manager cycle with the SMTP settings in the environment."""
    url = pg_url  # the test server trusts local connections: no password on the command line
    done = manager(
        "--database", url, "init-db",
        "--library-name", "Riverside University Library",
        "--library-email", "ill@library.example.org",
        "--library-phone", "+1 555 010 2030",
        "--library-address", "Interlibrary Loan Office\\n1 River Road\\nRiverside, IL 62701",
        "--reset-link-base", "https://my.library.example.org/reset?token=",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    patrons_csv, requests_csv = tmp_path / "patrons.csv", tmp_path / "requests.csv"
    patrons_csv.write_text(
        "UserName,FirstName,LastName,EMailAddress,NotificationMethod\nrriver,Rosa,River,rosa@example.edu,E-Mail\n"
    )
    requests_csv.write_text(
        "TransactionNumber,UserName,RequestType,LoanTitle,TransactionStatus\n"
        "700001,rriver,Loan,The Riverside Atlas,Awaiting Customer Contact\n"
    )
    assert manager("--database", url, "import-patrons", str(patrons_csv)).returncode == 0
    assert manager("--database", url, "import-requests", str(requests_csv)).returncode == 0
    smtp = {
        "CALLSLIP_SMTP_HOST": smtp_sink.host,
        "CALLSLIP_SMTP_PORT": str(smtp_sink.port),
        "CALLSLIP_SMTP_SECURITY": "none",
    }
    done = manager("--database", url, "run", "--once", env=smtp)
    assert done.returncode == 0 and "sent 1" in done.stdout, done.stdout + done.stderr
    [first] = smtp_sink.messages
    assert first.mail_from == "ill@library.example.org"
    assert first.message["From"] == "Riverside University Library Interlibrary Loan <ill@library.example.org>"
    assert first.text.rstrip().endswith("Riverside University Library Interlibrary Loan")
    assert "call us at +1 555 010 2030" in first.text and "Demo" not in first.text
