"""The import benchmark at a tiny size: it imports every row and its baseline writes the same rows (no timing)."""

from __future__ import annotations

import json

import pytest

from bench import import_patrons


def test_import_benchmark_reports_lock_time_and_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    assert import_patrons.main(["--patrons", "40"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    figures = result["figures"]
    assert result["benchmark"] == "import_patrons"
    assert figures["sqlite_patrons"] == 40 and figures["sqlite_rows_written"] == 120  # patron, e-mail, phone
    assert 0 < figures["sqlite_lock_seconds"] <= figures["sqlite_import_seconds"]
    assert result["ratio"] == figures["sqlite_lock_ratio"] > 0
