"""ILLiad migration on real databases with realistic exports (``tests/illiad_fixtures.py``): encodings named,
Borrowing only, vocabularies matched, statuses kept in history and mapped by an editable table, notice history
that stops a second notice, notes, a dry run that writes nothing, refused rows by file and line, idempotence."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from desktop.db.engine import Database
from desktop.db.models import Notification, Patron, Request, RequestNote, Tracking
from desktop.domain.statuses import Status
from desktop.services.admin import csv_export, illiad_import
from desktop.services.admin.csv_import import CsvFileError, StatusBack
from desktop.services.admin.illiad_import import DEFAULT_STATUS_MAP, detect_encoding, import_illiad, status_key
from desktop.services.notices.routing import scan_arrivals
from tests import illiad_fixtures

EXE = str(Path(sys.executable).with_name("callslip-manager"))


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return illiad_fixtures.generate(tmp_path / "illiad")


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _request(db: Database, number: int) -> tuple[str, list[tuple[str | None, str, str, str]]]:
    with db.read() as session:
        request = session.scalars(select(Request).where(Request.transaction_number == number)).one()
        return request.status, [(t.from_status, t.to_status, t.changed_by, t.note) for t in request.tracking]


def test_dry_run_reports_everything_and_writes_nothing(sqlite_db: Database, export: Path) -> None:
    report = import_illiad(sqlite_db, export, dry_run=True)
    assert _count(sqlite_db, Patron) == _count(sqlite_db, Request) == _count(sqlite_db, Notification) == 0
    text = "\n".join(report.lines())
    for name, encoding in illiad_fixtures.ENCODINGS.items():
        assert f"{name}: {name}.csv ({encoding})" in text
    assert "  Rush Queue - Law → Awaiting Request Processing: 1  (not in the table" in text
    assert "  Renewed by Customer to 7/15/2020 → Checked Out to Customer: 1" in text
    assert "Transactions: ProcessType 'Lending' (only Borrowing becomes a request): 1" in text
    assert "Transactions: ProcessType 'Doc Del' (only Borrowing becomes a request): 1" in text
    assert [str(r) for r in report.refused] == [
        "Users.csv line 7: UserName is empty: every row needs one",
        "Users.csv line 8: EMailAddress 'not an address': An e-mail address cannot contain spaces.",
        "Users.csv line 9: unknown notification method 'Pigeon'; expected E-Mail, Phone or Mail",
        "Transactions.csv line 12: Username 'ghost' is not in the Users export (or was refused there)",
        "Transactions.csv line 13: TransactionDate: 'yesterday' is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)",
        "Transactions.csv line 16: TransactionNumber 'abc' is not a whole number written with the digits 0-9",
        "Tracking.csv line 16: TransactionNumber '9999' is not in Transactions",
        "Tracking.csv line 17: DateTime: 'not a date' is not a date (use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)",
    ]
    assert report.will_notify == 1


def test_import_brings_patrons_requests_history_notes_and_notices(any_db: Database, export: Path) -> None:
    report = import_illiad(any_db, export)
    assert report.tables["Transactions"].imported == 10
    with any_db.read() as session:
        methods = {k: v for k, v in session.execute(select(Patron.username, Patron.notification_method))}
        delivery = {k: v for k, v in session.execute(select(Patron.username, Patron.delivery_method))}
        cy = session.scalars(select(Patron).where(Patron.username == "cy")).one()
        assert (cy.first_name, cy.last_name) == ("José", "Núñez")  # UTF-16 read right
    assert methods == {"ada": "E-Mail", "bob": "E-Mail", "cy": "Phone", "dee": "Mail", "eve": "E-Mail"}
    assert delivery["bob"] == "Mail to Address" and delivery["cy"] == delivery["dee"] == "Hold for Pickup"
    status, history = _request(any_db, 1001)
    assert status == Status.NOTIFIED_VIA_EMAIL.value
    assert [(f, t, by) for f, t, by, _n in history] == [
        (None, "Awaiting Request Processing", "System"),
        ("Awaiting Request Processing", "Request Sent", "jsmith"),
        ("Request Sent", "Awaiting Customer Contact", "mbrown"),
        ("Awaiting Customer Contact", "Customer Notified via E-Mail", "System"),
    ]
    status, history = _request(any_db, 1004)
    assert status == Status.CHECKED_OUT.value
    assert history[-1][1:] == ("Renewed by Customer to 7/15/2020", "System", "ILLiad status; in Callslip: Checked Out "
                               "to Customer")  # fmt: skip
    assert _request(any_db, 1003)[1] == [(None, "Awaiting Customer Contact", "Müller", "")]  # Windows-1252 read right
    assert _request(any_db, 1013)[0] == Status.AWAITING_REQUEST_PROCESSING.value
    assert _request(any_db, 1014)[0] == Status.NOTIFIED_VIA_EMAIL.value
    with any_db.read() as session:
        numbers = set(session.scalars(select(Request.transaction_number)))
        notes = session.execute(select(RequestNote.note, RequestNote.added_by, RequestNote.note_type)).all()
        notices = {k: v for k, v in session.execute(select(Notification.dedupe_key, Notification.state))}
    assert 1006 not in numbers and 1007 not in numbers
    assert ("Needed before the exam — please hurry", "ada", "User") in notes and len(notes) == 3
    assert notices == {"illiad:email:501": "sent", "illiad:email:502": "sent", "illiad:email:503": "cancelled",
                       "illiad:email:504": "cancelled", "illiad:email:505": "sent"}  # fmt: skip


def test_a_request_illiad_notified_is_not_notified_again(sqlite_db: Database, export: Path) -> None:
    import_illiad(sqlite_db, export)
    scan = scan_arrivals(sqlite_db, now=datetime(2026, 1, 1, tzinfo=UTC))
    with sqlite_db.read() as session:
        new = session.execute(
            select(Request.transaction_number, Notification.template_name)
            .join(Request, Request.id == Notification.request_id)
            .where(Notification.dedupe_key.like("arrival:%"))
        ).all()
    # 1002 is at Awaiting Customer Contact and ILLiad e-mailed its patron: only 1003 (never e-mailed) gets a notice.
    assert scan.created == 1 and new == [(1003, "Loan Pickup")]


def test_import_again_adds_nothing(sqlite_db: Database, export: Path) -> None:
    import_illiad(sqlite_db, export)
    counts = [_count(sqlite_db, m) for m in (Patron, Request, Tracking, RequestNote, Notification)]
    again = import_illiad(sqlite_db, export)
    assert [_count(sqlite_db, m) for m in (Patron, Request, Tracking, RequestNote, Notification)] == counts
    assert again.tables["Transactions"].imported == 0
    assert again.skipped["Transactions: already in Callslip (left alone with its history)"] == 10


def test_status_map_file_overrides_and_bad_files_are_named(sqlite_db: Database, export: Path, tmp_path: Path) -> None:
    good = tmp_path / "map.toml"
    good.write_text('[statuses]\n"Rush Queue - Law" = "request sent"\n', encoding="utf-8")
    table = illiad_import.load_status_map(good)
    report = import_illiad(sqlite_db, export, dry_run=True, status_map=table)
    assert report.status_mappings[("Rush Queue - Law", "Request Sent", False)] == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('"Rush Queue - Law" = "Lost in Space"\n', encoding="utf-8")
    with pytest.raises(CsvFileError, match="'Lost in Space' is not a Callslip status"):
        illiad_import.load_status_map(bad)
    bad.write_text("not = toml = at all", encoding="utf-8")
    with pytest.raises(CsvFileError, match="is not TOML"):
        illiad_import.load_status_map(bad)


def test_folders_without_an_export_are_refused(sqlite_db: Database, tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match="holds no ILLiad export"):
        import_illiad(sqlite_db, tmp_path)
    with pytest.raises(CsvFileError, match="is not a folder"):
        import_illiad(sqlite_db, tmp_path / "missing")
    (tmp_path / "Transactions.csv").write_text("TransactionNumber,Username\n1,ada\n", encoding="utf-8")
    with pytest.raises(
        CsvFileError, match=r"Transactions\.csv: the Transactions export lacks column\(s\): ProcessType"
    ):
        import_illiad(sqlite_db, tmp_path)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ("é".encode("utf-16"), "UTF-16 LE with BOM"),
        ("é".encode("utf-8-sig"), "UTF-8 with BOM"),
        ("é".encode(), "UTF-8"),
        ("é".encode("cp1252"), "Windows-1252"),
    ],
)
def test_encodings_are_detected_and_named(data: bytes, name: str) -> None:
    assert detect_encoding(data)[1] == name


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Customer Notified via E-mail", Status.NOTIFIED_VIA_EMAIL),
        ("customer notified VIA email", Status.NOTIFIED_VIA_EMAIL),
        ("Customer  Notified via E-Mail", Status.NOTIFIED_VIA_EMAIL),
        ("Renewed by ILL Staff to 12/1/2020", Status.CHECKED_OUT),
        ("renewed by customer to 2020-07-15", Status.CHECKED_OUT),
        ("AWAITING POST RECEIPT PROCESSING", Status.REQUEST_SENT),
    ],
)
def test_status_variants_match(text: str, status: Status) -> None:
    lookup = {status_key(k): v for k, v in DEFAULT_STATUS_MAP.items()}
    assert lookup[status_key(text)] is status


@given(st.sampled_from(list(DEFAULT_STATUS_MAP)), st.lists(st.booleans(), min_size=1, max_size=40))
def test_status_key_ignores_case_everywhere(name: str, upper: list[bool]) -> None:
    varied = "".join(c.upper() if upper[i % len(upper)] else c.lower() for i, c in enumerate(name))
    assert status_key(varied) == status_key(name)


def test_command_line_dry_run_then_import(tmp_path: Path, export: Path) -> None:
    db = tmp_path / "callslip.sqlite3"
    run = [EXE, "--database", str(db)]
    assert subprocess.run([*run, "init-db"], capture_output=True, timeout=120).returncode == 0
    dry = subprocess.run([*run, "import-illiad", "--dry-run", str(export)], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "ILLiad import (dry run, nothing written)" in dry.stdout
    assert '"Awaiting Post Receipt Processing" = "Request Sent"' in dry.stdout
    assert "Refused rows: 8" in dry.stdout
    done = subprocess.run([*run, "import-illiad", str(export)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "imported 10" in done.stdout
    exported = subprocess.run([*run, "export-requests"], capture_output=True, text=True, timeout=120)
    assert "1004,cy,Checked Out to Customer,Loan,Middlemarch,,,,2020-05-01 08:00:00,2020-07-15," in exported.stdout
    bad = subprocess.run([*run, "import-illiad", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and bad.stderr.strip() == f"callslip-manager: {tmp_path / 'nowhere'} is not a folder"
    both = subprocess.run([*run, "import-illiad", "--allow-status-back", "--keep-newer-status", str(export)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert both.returncode != 0 and "contradict each other" in both.stderr
    kept = subprocess.run([*run, "import-illiad", "--keep-newer-status", str(export)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert kept.returncode == 0 and "Transactions: already in Callslip (left alone with its history): 10" in kept.stdout


def _read_export(path: Path) -> list[dict[str, str]]:
    """An ILLiad export read back with the standard library alone (the test's own view of the fixture)."""
    codec = illiad_import.detect_encoding(path.read_bytes())[0]
    with path.open(encoding=codec, newline="") as handle:
        return [{k: ("" if v == "NULL" else v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_round_trip_exports_show_the_same_facts(sqlite_db: Database, export: Path) -> None:
    report = import_illiad(sqlite_db, export)
    refused_users = {r.line for r in report.refused if r.file == "Users.csv"}
    patrons_out, requests_out = io.StringIO(), io.StringIO()
    csv_export.export_patrons(sqlite_db, patrons_out)
    csv_export.export_requests(sqlite_db, requests_out)
    patrons = {row["UserName"]: row for row in csv.DictReader(io.StringIO(patrons_out.getvalue()))}
    users = [u for line, u in enumerate(_read_export(export / "Users.csv"), start=2) if line not in refused_users]
    assert sorted(patrons) == sorted(u["UserName"] for u in users)
    for user in users:
        row = patrons[user["UserName"]]
        for column in ("FirstName", "LastName", "EMailAddress", "Status", "City", "Address", "Zip", "Department"):
            assert row[column] == user[column], (user["UserName"], column)
        assert row["Phone"].lstrip("'").replace("+1 ", "").replace("-", "") == user["Phone"].replace("-", "")
    requests = {row["TransactionNumber"]: row for row in csv.DictReader(io.StringIO(requests_out.getvalue()))}
    lookup = {status_key(k): v.value for k, v in DEFAULT_STATUS_MAP.items()}
    imported = [t for t in _read_export(export / "Transactions.csv") if t["TransactionNumber"] in requests]
    assert len(imported) == 10
    for txn in imported:
        row = requests[txn["TransactionNumber"]]
        assert row["UserName"] == txn["Username"]
        assert row["TransactionStatus"] == lookup.get(
            status_key(txn["TransactionStatus"]), "Awaiting Request Processing"
        )
        assert row["LoanTitle"] == txn["LoanTitle"] and row["PhotoArticleTitle"] == txn["PhotoArticleTitle"]
        assert row["TransactionDate"] == txn["TransactionDate"].replace("T", " ")[:19]
        assert row["DueDate"] == txn["DueDate"][:10]


def test_a_bad_later_file_stops_the_import_before_anything_is_written(sqlite_db: Database, export: Path) -> None:
    (export / "EMailCopies.csv").write_text("ID,Subject\n1,x\n", encoding="utf-16")
    with pytest.raises(
        CsvFileError, match=r"EMailCopies\.csv: the EMailCopies export lacks column\(s\): TransactionNumber"
    ):
        import_illiad(sqlite_db, export)
    assert _count(sqlite_db, Patron) == _count(sqlite_db, Request) == 0


def test_tab_separated_exports_are_read(sqlite_db: Database, export: Path) -> None:
    tracking = export / "Tracking.csv"
    rows = list(csv.reader(tracking.read_text(encoding="cp1252").splitlines()))
    tracking.unlink()
    (export / "Tracking.txt").write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-16")
    report = import_illiad(sqlite_db, export, dry_run=True)
    assert report.tables["Tracking"].file == "Tracking.txt" and report.tables["Tracking"].imported == 13
    assert report.tables["Tracking"].encoding == "UTF-16 LE with BOM"


def _set_statuses(path: Path, statuses: dict[str, str]) -> None:
    """Rewrite a Transactions export (UTF-8 with BOM) with some TransactionStatus values changed."""
    rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    column = rows[0].index("TransactionStatus")
    for row in rows[1:]:
        row[column] = statuses.get(row[0], row[column])
    path.write_text(illiad_fixtures.as_text(rows), encoding="utf-8-sig")


def test_reimport_moves_a_status_forward_with_tracking_and_never_back(sqlite_db: Database, export: Path) -> None:
    import_illiad(sqlite_db, export)
    # Since the first import ILLiad checked 1002 out (with a Tracking row) and 1005 was received; 1001 went back.
    _set_statuses(export / "Transactions.csv", {"1002": "Checked Out to Customer", "1005": "Customer Notified via "
                                                "Phone", "1001": "Request Sent"})  # fmt: skip
    with (export / "Tracking.csv").open("a", encoding="cp1252", newline="") as handle:
        handle.write("1002,2020-06-25 10:00:00.000,Checked Out to Customer,kdesk\r\n")
    report = import_illiad(sqlite_db, export)
    assert report.tables["Transactions"].moved == 2
    status, history = _request(sqlite_db, 1002)
    assert status == Status.CHECKED_OUT.value
    assert history[-1][:3] == ("Awaiting Customer Contact", "Checked Out to Customer", "kdesk")
    status, history = _request(sqlite_db, 1005)
    assert status == Status.NOTIFIED_VIA_PHONE.value
    assert history[-1][:3] == ("Request Sent", "Customer Notified via Phone", "ILLiad import")
    assert _request(sqlite_db, 1001)[0] == Status.NOTIFIED_VIA_EMAIL.value  # never back
    [back] = [str(r) for r in report.refused if "1001" in r.reason]
    assert back.startswith("Transactions.csv line 2: TransactionStatus 'Request Sent' (Request Sent) would move back")
    kept = import_illiad(sqlite_db, export, status_back=StatusBack.KEEP)
    assert kept.tables["Transactions"].moved == 0 and not [r for r in kept.refused if "1001" in r.reason]
    assert kept.skipped["Transactions: already in Callslip at a status ahead of ILLiad's (kept)"] == 1
    allowed = import_illiad(sqlite_db, export, status_back=StatusBack.ALLOW)
    assert allowed.tables["Transactions"].moved == 1
    status, history = _request(sqlite_db, 1001)
    assert status == Status.REQUEST_SENT.value and history[-1][:2] == ("Customer Notified via E-Mail", "Request Sent")


def test_a_repeated_note_or_email_id_is_refused_not_fatal(sqlite_db: Database, export: Path) -> None:
    with (export / "Notes.csv").open("a", encoding="utf-8", newline="") as handle:
        handle.write("1,1002,2020-06-19 09:00:00.000,Same Id again,jsmith,Staff\r\n")
    report = import_illiad(sqlite_db, export)
    assert "Notes.csv line 7: Id 1 already on line 2"  # note 4 spans two lines in [str(r) for r in report.refused]
    assert report.tables["Notes"].imported == 3 and _count(sqlite_db, RequestNote) == 3
