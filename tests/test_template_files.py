"""``callslip-manager templates export/import`` and ``import-illiad-templates``, run as an administrator runs
them (the installed command, a real SQLite file)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

EXE = str(Path(sys.executable).with_name("callslip-manager"))


def manager(db: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "--database", str(db), *argv], capture_output=True, text=True, timeout=120)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "callslip.sqlite3"
    assert manager(path, "init-db").returncode == 0
    return path


def test_export_edit_import_round_trip(db: Path, tmp_path: Path) -> None:
    exported = manager(db, "templates", "export", "Article Pickup")
    assert exported.returncode == 0, exported.stderr
    data = tomllib.loads(exported.stdout)
    assert data["name"] == "Article Pickup" and "{{ request.article_title }}" in data["body_text"]
    data["subject"] = "Kept in git: {{ request.title }}"
    edited = tmp_path / "article.toml"
    edited.write_text(tomli_w.dumps(data, multiline_strings=True), encoding="utf-8")
    done = manager(db, "templates", "import", str(edited))
    assert done.returncode == 0 and done.stdout == "template 'Article Pickup' saved (version 2)\n"
    assert tomllib.loads(manager(db, "templates", "export", "Article Pickup").stdout) == data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("x = 1\n", "unknown key(s) x"),
        ("name = [1]\n", "the template needs a name"),
        ('name = "Loan Pickup"\nsubject = "{{ request.nope }}"\n', "was not saved"),
        ('name = "Loan Pickup"\nsubject = """', "is not a TOML template"),
        ('name = "Overdue"\n', "there is no template named “Overdue”"),
    ],
)
def test_bad_template_files_get_one_clear_line(db: Path, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(content, encoding="utf-8")
    result = manager(db, "templates", "import", str(path))
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_illiad_templates_are_converted_and_problems_listed(db: Path, tmp_path: Path) -> None:
    export = tmp_path / "NotificationTemplates.csv"
    export.write_text(
        "Name,Subject,Email Text\r\n"
        'ILL Borrowing Loan Pickup,Ready: <#Transaction.LoanTitle MaxSize="30">,'
        '"Dear <#User.FirstName>,\r\nyour book is here. <#PARAM name=""x"">"\r\n'
        "Borrowing Overdue Reminder,Overdue,Please return <#LoanTitle>\r\n",
        encoding="utf-16",
    )
    result = manager(db, "import-illiad-templates", str(export))
    assert result.returncode == 1  # problems to fix
    assert result.stdout.splitlines() == [
        "ILL Borrowing Loan Pickup → Loan Pickup: imported",
        '  problem: body_text line 2: <#PARAM name="x"> is a web-page tag, not a notification field: kept as text',
        "Borrowing Overdue Reminder → (no Callslip notice): not imported",
        "  problem: Callslip sends no notice called 'Borrowing Overdue Reminder': not imported (copy what you need)",
    ]
    stored = tomllib.loads(manager(db, "templates", "export", "Loan Pickup").stdout)
    assert '<#PARAM name="x">' in stored["body_text"] and "MaxSize" not in stored["subject"]
