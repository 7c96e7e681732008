"""The ILLiad import benchmark at a tiny size: it imports every good row and its baseline writes the same rows."""

from __future__ import annotations

import json

import pytest

from bench import import_illiad


def test_illiad_benchmark_reports_ratio_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert import_illiad.main(["--users", "20"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    figures = result["figures"]
    assert result["benchmark"] == "import_illiad"
    assert figures["transactions_read"] == 15 + 200 and figures["requests_imported"] == 10 + 180  # 1 in 10 Lending
    assert figures["rows_written"] > figures["requests_imported"] and figures["peak_mb"] > 0
    assert result["ratio"] == figures["ratio"] > 0
    # The import ran in a process of its own: its peak is reported, apart from this process's (the baseline's).
    assert figures["peak_mb"] == figures["import_peak_mb"] > 0 and figures["baseline_process_peak_mb"] > 0
