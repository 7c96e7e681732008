"""The benchmark runner (``python -m bench``) and the seed-rate benchmark, at tiny sizes (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import seed_rate
from bench.__main__ import (
    Outcome,
    accepts_quick,
    discover,
    figures_of,
    last_json_line,
    main,
    ratios_of,
    render_report,
)
from bench._common import emit, machine

ROOT = Path(__file__).resolve().parent.parent


def test_discover_finds_every_benchmark_script_and_skips_helpers(tmp_path: Path) -> None:
    for name in ("alpha.py", "beta.py", "_common.py", "__main__.py", "__init__.py", "notes.txt"):
        (tmp_path / name).write_text("# --quick\n" if name == "alpha.py" else "\n", encoding="utf-8")
    assert discover(tmp_path) == ["alpha", "beta"]
    assert accepts_quick("alpha", tmp_path)
    assert not accepts_quick("beta", tmp_path)
    assert "seed_rate" in discover()


def test_last_json_line_ignores_progress_and_broken_lines() -> None:
    text = 'seeding…\n{"a": 1}\nnot json\n{"broken": \n[1, 2]\n'
    assert last_json_line(text) == {"a": 1}
    assert last_json_line("nothing here") is None


def test_figures_and_ratios_from_either_shape() -> None:
    structured = {"figures": {"rows_per_s": 10.0, "speedup_ratio": 3.0, "target_ratio": 3}, "ratio": 0.5}
    assert figures_of(structured) == {"rows_per_s": 10.0, "speedup_ratio": 3.0, "target_ratio": 3}
    assert ratios_of(structured) == {"ratio": 0.5, "speedup_ratio": 3.0}
    flat = {"benchmark": "x", "p95_ms": 12.5, "baseline_p95_ms": 10.0, "ratio_vs_baseline": 1.25, "ok": True}
    assert figures_of(flat) == {"p95_ms": 12.5, "baseline_p95_ms": 10.0}
    assert ratios_of(flat) == {"ratio_vs_baseline": 1.25}


def test_report_has_machine_every_figure_ratio_and_failures() -> None:
    good = Outcome(
        "seed_rate",
        [sys.executable, "-m", "bench.seed_rate", "--quick"],
        1.5,
        {
            "benchmark": "seed_rate",
            "description": "seeding",
            "figures": {"seed_rows_per_s": 12345, "executemany_rows_per_s": 67890},
            "units": {"seed_rows_per_s": "rows/s", "executemany_rows_per_s": "rows/s"},
            "baseline": "plain executemany",
            "ratio": 0.1818,
        },
    )
    bad = Outcome(
        "queue_first_rows",
        [sys.executable, "-m", "bench.queue_first_rows"],
        0.2,
        None,
        "exit code 1: boom",
        ["Traceback", "boom"],
    )
    info = machine()
    report = render_report([good, bad], info, quick=True, total_seconds=2)
    for key in ("CPU", "Cores", "RAM", "OS", "Python", "Qt"):
        assert f"| {key} | {info[key]} |" in report
    assert "12,345 rows/s" in report
    assert "67,890 rows/s" in report
    assert "| **ratio** | **0.182** |" in report
    assert "Baseline: plain executemany." in report
    assert "| `queue_first_rows` | **failed**: exit code 1: boom |" in report
    assert "python -m bench.seed_rate --quick" in report


def test_seed_rate_writes_the_same_rows_as_its_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    assert seed_rate.main(["--requests", "300", "--patrons", "20"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["benchmark"] == "seed_rate"
    figures = result["figures"]
    assert figures["rows"] > 600  # 300 requests + 300 tracking rows + patrons, contact points, households
    assert result["ratio"] == pytest.approx(figures["seed_rows_per_s"] / figures["executemany_rows_per_s"], rel=0.01)


def test_runner_writes_the_report_for_one_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real runner, real subprocess, on a tiny benchmark written for this test."""
    bench_dir = ROOT / "bench"
    script = bench_dir / "zz_test_tiny.py"
    script.write_text(
        "import sys\nfrom bench._common import emit\n"
        "emit('zz_test_tiny', {'n': 3 if '--quick' in sys.argv else 30}, baseline='nothing', ratio=2.0)\n",
        encoding="utf-8",
    )
    try:
        output = tmp_path / "PERFORMANCE.md"
        assert main(["--quick", "--only", "zz_test_tiny", "--output", str(output)]) == 0
        text = output.read_text(encoding="utf-8")
    finally:
        script.unlink()
    assert "| n | 3 |" in text  # --quick was passed because the script mentions it
    assert "| **ratio** | **2.00** |" in text


def test_emit_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    record = emit("x", {"a": 1}, baseline="b", ratio=1.23456)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == record
    assert record["ratio"] == 1.2346


@pytest.mark.slow
def test_startup_benchmark_measures_both_windows_and_the_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The start-up benchmark at one round on a small real database: both windows painted, imports profiled."""
    from bench import startup
    from desktop.db.engine import sqlite_url
    from desktop.services.database import open_database

    path = tmp_path / "small.sqlite3"
    db, _ = open_database(sqlite_url(path))
    db.dispose()
    assert startup.main(["--rounds", "1", "--database", str(path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["figures"]
    assert figures["shown_s"] > figures["bare_window_s"] > 0
    assert "sqlalchemy" in figures["top_imports"] or "desktop" in figures["top_imports"]


def test_report_says_which_goals_are_missed() -> None:
    startup_result = {"benchmark": "startup", "figures": {"shown_s": 1.0}, "ratio": 2.5}
    first = {"benchmark": "first_cycle", "figures": {"scan_seconds": 1.0}, "ratio": 2.0}
    outcomes = [Outcome("startup", ["x"], 1, startup_result), Outcome("first_cycle", ["x"], 1, first)]
    report = render_report(outcomes, machine(), quick=True, total_seconds=1)
    assert "| process start → window painted ≤ 2 × a bare PySide6 window | `startup` | 2.50 | **MISSED**" in report
    assert "| `first_cycle` | 2.00 | met |" in report
    assert "queue_first_rows" not in report.split("## Goals")[1].split("## startup")[0]  # not run: not listed


def test_cpu_meter_counts_a_finished_child_and_this_process() -> None:
    """The throughput benchmark's CPU figures: a child that burns CPU is counted once it has exited, this
    process's own work is counted apart, and the PostgreSQL figure is a number or None (no server here)."""
    from bench.notify_throughput import CpuMeter

    meter = CpuMeter()
    subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"],
                   check=True)  # fmt: skip
    started = time.process_time()
    while time.process_time() - started < 0.2:
        pass
    children, own, database = meter.used()
    assert 0.25 <= children < 5  # the child's 0.3 s (its interpreter's start-up on top)
    assert 0.15 <= own < 5
    assert database is None or database >= 0


def test_throughput_benchmark_runs_the_record_by_the_driver_as_a_baseline(tmp_path: Path) -> None:
    """One small round of the throughput benchmark on SQLite: ours sends every notice, and the third baseline runs
    the System Manager's own record statements by the driver on fresh arrivals, which all end up sent with their
    requests moved on (``check_recorded`` inside the round refuses a baseline that recorded less)."""
    from bench.notify_throughput import measure
    from desktop.db.engine import sqlite_url

    result = measure(sqlite_url(tmp_path / "bench.sqlite3"), 12, tmp_path, rounds=1)
    assert "sent 12" in str(result["summary"])
    for key in ("plain_seconds", "plain_commit_seconds", "plain_record_seconds", "record_ratio"):
        assert float(result[key]) > 0, key
    assert result["round_record_ratios"]
