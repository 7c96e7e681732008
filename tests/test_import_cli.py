"""``callslip-manager`` imports and exports run as an administrator runs them: the installed command, a subprocess,
a real SQLite file. Dry runs write nothing; bad rows stop the import with their line; export-patrons imports back
with no change; formula cells are neutralised."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("callslip-manager"))
PATRONS = (
    "UserName,FirstName,LastName,EMailAddress,Phone,NotificationMethod,City,Site\n"
    "ada,Ada,Lovelace,ada@example.org,217-555-0143,E-Mail,Springfield,MAIN\n"
    'bob,=HYPERLINK("http://evil"),Builder,,217-555-0199,Phone,Urbana,\n'
)
REQUESTS = (
    "TransactionNumber,UserName,LoanTitle,TransactionStatus\n"
    "500001,ada,Notes on the Engine,Awaiting Customer Contact\n"
    "500002,bob,@SUM(1+1),Request Sent\n"
)


def manager(db: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "--database", str(db), *argv], capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "callslip.sqlite3"
    assert manager(path, "init-db").returncode == 0
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_dry_run_then_import_then_export_round_trip(db: Path, tmp_path: Path) -> None:
    patrons = write(tmp_path, "patrons.csv", PATRONS)
    dry = manager(db, "import-patrons", "--dry-run", str(patrons))
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "line 2: ada: new (FirstName 'Ada', LastName 'Lovelace', NotificationMethod 'E-Mail', City 'Springfield', "
        "EMailAddress 'ada@example.org', Phone '(217) 555-0143', Site 'MAIN')",
        "line 3: bob: new (FirstName '=HYPERLINK(\"http://evil\")', LastName 'Builder', NotificationMethod 'Phone', "
        "City 'Urbana', Phone '(217) 555-0199')",
        "patrons (dry run, nothing written): 2 row(s): would create 2, change 0, leave 0 alone",
    ]
    assert manager(db, "export-patrons").stdout.count("\n") == 1  # the header only: nothing was written
    done = manager(db, "import-patrons", str(patrons))
    assert done.returncode == 0 and done.stdout == "patrons: 2 row(s): 2 created, 0 updated, 0 unchanged\n"
    export = manager(db, "export-patrons")
    assert export.returncode == 0 and export.stderr == "exported 2 patron(s)\n"
    assert 'bob,"\'=HYPERLINK(""http://evil"")",Builder,,\'+1 217-555-0199,' in export.stdout
    backup = write(tmp_path, "backup.csv", export.stdout)
    again = manager(db, "import-patrons", str(backup))
    assert again.returncode == 0 and again.stdout == "patrons: 2 row(s): 0 created, 0 updated, 2 unchanged\n"
    partial = write(tmp_path, "partial.csv", "UserName,City\nada,Ockham\n")
    dry = manager(db, "import-patrons", "--dry-run", str(partial))
    assert dry.stdout.splitlines()[0] == "line 2: ada: City: 'Springfield' → 'Ockham'"


def test_requests_file_given_to_import_patrons_is_refused(db: Path, tmp_path: Path) -> None:
    wrong = manager(db, "import-patrons", str(write(tmp_path, "requests.csv", REQUESTS)))
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1
    assert "none of the patron columns besides UserName" in wrong.stderr
    assert "FirstName, LastName, EMailAddress" in wrong.stderr and "use import-requests" in wrong.stderr


def test_status_back_needs_an_explicit_option(db: Path, tmp_path: Path) -> None:
    assert manager(db, "import-patrons", str(write(tmp_path, "p.csv", PATRONS))).returncode == 0
    requests = write(tmp_path, "r.csv", REQUESTS)
    assert manager(db, "import-requests", str(requests)).returncode == 0
    routed = manager(db, "route", "500001", "Customer Notified via E-Mail")
    assert routed.returncode == 0, routed.stderr
    refused = manager(db, "import-requests", str(requests))
    assert refused.returncode == 1
    assert f"{requests}: line 2: TransactionStatus 'Awaiting Customer Contact' would move back" in refused.stderr
    assert refused.stderr.splitlines()[-1] == "requests: 1 bad row(s) of 2; nothing was imported"
    kept = manager(db, "import-requests", "--keep-newer-status", str(requests))
    assert kept.returncode == 0 and kept.stdout.splitlines() == [
        "note: line 2: TransactionStatus: kept 'Customer Notified via E-Mail', which is ahead of the file's "
        "'Awaiting Customer Contact'",
        "requests: 2 row(s): 0 created, 0 updated, 2 unchanged",
    ]
    both = manager(db, "import-requests", "--keep-newer-status", "--allow-status-back", str(requests))
    assert both.returncode == 1 and "contradict each other" in both.stderr
    back = manager(db, "import-requests", "--allow-status-back", str(requests))
    assert back.returncode == 0 and "1 updated" in back.stdout
    export = manager(db, "export-requests")
    assert "500001,ada,Awaiting Customer Contact," in export.stdout
    assert ",'@SUM(1+1)," in export.stdout


def test_unknown_site_and_bad_cells_name_row_and_column(db: Path, tmp_path: Path) -> None:
    annex = write(tmp_path, "annex.csv", "UserName,EMailAddress,Site\nzoe,zoe@example.org,ANNEX\n")
    refused = manager(db, "import-patrons", str(annex))
    assert refused.returncode == 1
    assert "line 2: Site 'ANNEX' is not a pickup location (known: MAIN)" in refused.stderr
    created = manager(db, "import-patrons", "--create-sites", str(annex))
    assert created.returncode == 0 and "1 created" in created.stdout
    nul = write(tmp_path, "nul.csv", "UserName,LastName\nzoe,Z\x00e\n")
    bad = manager(db, "import-patrons", str(nul))
    assert bad.returncode == 1 and "line 2: LastName contains the control character U+0000" in bad.stderr
    digits = write(tmp_path, "digits.csv", "TransactionNumber,UserName\n١٢٣,zoe\n")
    bad = manager(db, "import-requests", str(digits))
    assert bad.returncode == 1 and "written with the digits 0-9" in bad.stderr
    missing = manager(db, "import-requests", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1 and missing.stderr.startswith("callslip-manager: cannot read")
