"""``callslip-manager``: exit codes, one-line reasons, and the commands end to end on real files."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.manager import build_parser, main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_every_command_has_help() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("init-db", "seed-demo", "import-patrons", "import-requests", "export-requests", "route"):
        assert name in commands
        assert commands[name].format_help().startswith("usage: callslip-manager")


def test_init_seed_export_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "m.sqlite3")
    assert run("--database", db, "init-db")[0] == 0
    code, out = run("--database", db, "seed-demo", "--patrons", "10", "--requests", "50")
    assert code == 0 and "seeded 10 patrons and 50 requests" in out
    code, out = run("--database", db, "export-requests", "--status", "Request Sent")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("TransactionNumber,UserName,TransactionStatus")
    assert len(lines) > 1 and all(",Request Sent," in line for line in lines[1:])
    number = lines[1].split(",")[0]
    code, out = run("--database", db, "route", number, "in transit to pickup location", "--as", "dora")
    assert code == 0 and "Request Sent -> In Transit to Pickup Location (by dora)" in out
    code, _ = run("--database", db, "route", number, "Request Finished")
    assert code == 1
    assert "cannot move to 'Request Finished'" in capsys.readouterr().err


def test_import_with_a_bad_row_exits_nonzero_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "m.sqlite3")
    csv_file = tmp_path / "patrons.csv"
    csv_file.write_text("UserName,EMailAddress,Phone\nada,ada@example.org,\nbob,bob@example.org,12\n", encoding="utf-8")
    assert run("--database", db, "init-db")[0] == 0  # every command but init-db refuses a file that does not exist
    code, _ = run("--database", db, "import-patrons", str(csv_file))
    err = capsys.readouterr().err
    assert code == 1
    assert "line 3: Phone '12'" in err and "nothing was imported" in err
    code, _out = run("--database", db, "export-requests")
    assert code == 0


def test_reasons_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "m.sqlite3")
    cases = [
        ("import-patrons", str(tmp_path / "missing.csv")),
        ("route", "123", "Nowhere"),
        ("route", "123", "Request Sent"),
        ("seed-demo", "--requests", "-1"),
    ]
    for argv in cases:
        code, _ = run("--database", db, *argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1, argv
        assert err and err[-1].startswith("callslip-manager: "), (argv, err)
    code, _ = run("--database", "postgresql://nobody@127.0.0.1:1/none", "init-db")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "cannot be reached" in err[0]  # one plain sentence, no driver text
    assert "OperationalError" not in err[0] and "sqlalche.me" not in err[0]


def test_installed_entry_point_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("callslip-manager")
    result = subprocess.run(
        [str(exe), "--database", str(tmp_path / "e.sqlite3"), "init-db"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "database ready" in result.stdout
