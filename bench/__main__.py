"""``python -m bench``: run every benchmark in ``bench/`` and write ``docs/PERFORMANCE.md``.

Each ``bench/<name>.py`` (not starting with ``_``) runs as its own process — ``python -m bench.<name>`` — one after
another so they do not compete for the processor, each with a private configuration and data folder and Qt
offscreen. The last JSON line a benchmark prints is its result (see ``bench/_common.py`` for the shape). The
report lists every figure, its ratio against the baseline measured in the same run, and the machine.

Options: ``--quick`` (benchmarks that accept it use smaller sizes), ``--full NAME`` (repeatable: this one at its
full size even with ``--quick``: the sizes the goals are set for, where a quick run takes too long for the rest),
``--only NAME`` (repeatable),
``--postgres URL`` (benchmarks that accept it measure PostgreSQL too; default ``$CALLSLIP_BENCH_POSTGRES_URL``),
``--output PATH`` (default ``docs/PERFORMANCE.md``), ``--timeout SECONDS`` per benchmark. Exits 1 if any
benchmark failed (the report is still written, with the reason).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import ROOT, isolated_environment, machine, scratch_dir

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "docs" / "PERFORMANCE.md"


@dataclass
class Outcome:
    """One benchmark's run: its JSON result, or why there is none."""

    name: str
    command: list[str]
    seconds: float
    result: dict[str, Any] | None = None
    error: str = ""
    stderr_tail: list[str] = field(default_factory=list)


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """Names of the benchmark scripts in ``bench_dir``, sorted."""
    return sorted(p.stem for p in bench_dir.glob("*.py") if not p.stem.startswith("_"))


def accepts_quick(name: str, bench_dir: Path = BENCH_DIR) -> bool:
    """Whether ``bench/<name>.py`` has a ``--quick`` option (it says so in its source)."""
    return "--quick" in (bench_dir / f"{name}.py").read_text(encoding="utf-8")


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that is a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def accepts_postgres(name: str, bench_dir: Path = BENCH_DIR) -> bool:
    """Whether ``bench/<name>.py`` can also measure PostgreSQL (it has a ``--postgres URL`` option)."""
    return "--postgres" in (bench_dir / f"{name}.py").read_text(encoding="utf-8")


def run_one(
    name: str, *, quick: bool, timeout: float, postgres: str | None = None, python: str = sys.executable
) -> Outcome:
    """Run ``bench.<name>`` in its own process with a private environment."""
    command = [python, "-m", f"bench.{name}"]
    if quick and accepts_quick(name):
        command.append("--quick")
    if postgres and accepts_postgres(name):
        command += ["--postgres", postgres]
    started = time.perf_counter()
    with scratch_dir("callslip-bench-env-") as folder:
        try:
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=isolated_environment(folder),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Outcome(name, command, time.perf_counter() - started, error=f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - started
    tail = done.stderr.strip().splitlines()[-15:]
    result = last_json_line(done.stdout)
    if done.returncode != 0:
        reason = tail[-1] if tail else "no message"
        return Outcome(name, command, seconds, result, f"exit code {done.returncode}: {reason}", tail)
    if result is None:
        return Outcome(name, command, seconds, None, "printed no JSON line", tail)
    return Outcome(name, command, seconds, result, "", tail)


# ------------------------------------------------------------------------------------------------ report

#: The goals the report checks (issue 22): benchmark, figure (``ratio`` or a key of ``figures``), the most it may
#: be, and what it means. A figure missing from a result is shown as not measured, never as met.
GOALS: tuple[tuple[str, str, float, str], ...] = (
    ("startup", "ratio", 2.0, "process start → window painted ≤ 2 × a bare PySide6 window"),
    ("queue_first_rows", "ratio", 3.0, "first rows of the queue ≤ 3 × the raw sqlite3 query"),
    ("queue_first_rows", "peak_rss_mb", 300.0, "app process peak RSS ≤ 300 MB (MiB here)"),
    ("contact_customers_open", "ratio", 3.0, "Contact Customers open ≤ 3 × the raw sqlite3 statement"),
    ("contact_customers_open", "peak_rss_mib", 300.0, "Contact Customers peak RSS ≤ 300 MB (MiB here)"),
    ("first_cycle", "ratio", 3.0, "arrival scan after an import ≤ 3 × the raw INSERT … SELECT"),
    ("notify_latency", "postgres_sms_median_seconds", 1.0, "text message: arrival → accepted by the provider ≤ 1 s"),
    ("notify_throughput", "sqlite_ratio", 1.5, "SQLite send cycle ≤ 1.5 × the plain smtplib loop"),
    ("notify_throughput", "sqlite_commit_ratio", 1.2, "SQLite send cycle ≤ 1.2 × plain loop + one commit per message"),
    ("notify_throughput", "postgres_ratio", 1.5, "PostgreSQL send cycle ≤ 1.5 × the plain smtplib loop"),
    ("notify_throughput", "postgres_commit_ratio", 1.2, "PostgreSQL cycle ≤ 1.2 × plain loop + one commit per message"),
    ("import_patrons", "ratio", 3.0, "patron import ≤ 3 × the driver's executemany"),
    ("shelf_reminders", "ratio", 3.0, "hold-shelf reminder decision ≤ 3 × the raw SQL selecting the due ones"),
    ("import_illiad", "ratio", 3.0, "ILLiad import ≤ 3 × a raw executemany of the same rows"),
    ("import_illiad", "peak_mb", 500.0, "ILLiad import peak RSS ≤ 500 MB"),
    ("ui_stalls", "worst_action_stall_ms", 100.0, "no event-loop stall over 100 ms in the measured desk actions"),
)


def goal_rows(outcomes: list[Outcome]) -> list[tuple[str, str, str, str]]:
    """(goal, benchmark, measured, verdict) for every goal whose benchmark ran in this report."""
    results = {outcome.name: outcome.result for outcome in outcomes}
    rows = []
    for name, key, limit, label in GOALS:
        if name not in results:
            continue
        result = results[name] or {}
        figures = figures_of(result)
        value = result.get(key) if key == "ratio" else figures.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            rows.append((label, name, "not measured", "—"))
            continue
        rows.append((label, name, _fmt(value), "met" if value <= limit else f"**MISSED** (goal ≤ {_fmt(limit)})"))
    return rows


def figures_of(result: dict[str, Any]) -> dict[str, Any]:
    """The figures of a result: its ``figures`` mapping, else every top-level number that is not a ratio."""
    figures = result.get("figures")
    if isinstance(figures, dict):
        return figures
    return {
        key: value
        for key, value in result.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and "ratio" not in key
    }


def ratios_of(result: dict[str, Any]) -> dict[str, float]:
    """Every measured ratio of a result: ``ratio`` first, then other keys containing "ratio" (also inside
    figures), except targets such as ``target_ratio``."""
    found: dict[str, float] = {}
    nested = result.get("figures")
    for source in (result, nested if isinstance(nested, dict) else {}):
        for key, value in source.items():
            if "ratio" not in key or "target" in key:  # a target is a goal, not a measurement
                continue
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.setdefault(key, float(value))
    return found


def _units(result: dict[str, Any]) -> dict[str, str]:
    units = result.get("units")
    return {str(k): str(v) for k, v in units.items()} if isinstance(units, dict) else {}


def _fmt(value: Any, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    elif isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1000):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(outcomes: list[Outcome], info: dict[str, str], *, quick: bool, total_seconds: float,
                  full: Sequence[str] = ()) -> str:  # fmt: skip
    """``docs/PERFORMANCE.md``'s text."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    options = (" --quick" if quick else "") + "".join(f" --full {name}" for name in full if quick)
    lines = [
        "# Callslip performance",
        "",
        f"Generated by `python -m bench{options}` on {now} in {total_seconds:.0f} s. "
        "Regenerate with `python -m bench` (add `--quick` for smaller sizes, `--only NAME` for one benchmark).",
        "Every benchmark seeds its own databases and measures its baseline in the same run, so a ratio compares "
        "like with like on this machine; absolute figures depend on the machine below and on its load.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {_cell(value)} |" for key, value in info.items()]
    lines += ["", "## Summary", "", "| Benchmark | Headline figures | Baseline | Ratio |", "|---|---|---|---|"]
    for outcome in outcomes:
        if outcome.result is None:
            lines.append(f"| `{outcome.name}` | **failed**: {_cell(outcome.error)} | | |")
            continue
        result = outcome.result
        units = _units(result)
        figures = figures_of(result)
        measured = [(key, value) for key, value in figures.items() if "baseline" not in key and "ratio" not in key]
        headline = ", ".join(f"{key} {_fmt(value, units.get(key, ''))}" for key, value in measured[:3])
        ratios = ", ".join(
            _fmt(value) + ("" if key == "ratio" else f" ({key})") for key, value in ratios_of(result).items()
        )
        baseline = str(result.get("baseline", ""))
        status = "" if not outcome.error else f" **({_cell(outcome.error)})**"
        lines.append(f"| `{outcome.name}`{status} | {_cell(headline)} | {_cell(baseline)} | {_cell(ratios) or '—'} |")
    goals = goal_rows(outcomes)
    if goals:
        lines += ["", "## Goals", "", "| Goal | Benchmark | Measured | Verdict |", "|---|---|---|---|"]
        lines += [
            f"| {_cell(label)} | `{name}` | {_cell(value)} | {verdict} |" for label, name, value, verdict in goals
        ]
    for outcome in outcomes:
        lines += ["", f"## {outcome.name}", ""]
        if outcome.result is not None:
            result = outcome.result
            if result.get("description"):
                lines += [str(result["description"]), ""]
            lines += [f"Command: `{' '.join(['python', *outcome.command[1:]])}` ({outcome.seconds:.1f} s).", ""]
            if result.get("parameters"):
                lines += [f"Parameters: {_fmt(result['parameters'])}", ""]
            units = _units(result)
            lines += ["| Figure | Value |", "|---|---|"]
            for key, value in figures_of(result).items():
                lines.append(f"| {key} | {_cell(_fmt(value, units.get(key, '')))} |")
            for key, value in ratios_of(result).items():
                lines.append(f"| **{key}** | **{_fmt(value)}** |")
            if result.get("baseline"):
                lines += ["", f"Baseline: {result['baseline']}."]
            if result.get("ratio_meaning"):
                lines += [f"Ratio: {result['ratio_meaning']}."]
        if outcome.error:
            lines += ["", f"**Failed**: {outcome.error}"]
            if outcome.stderr_tail:
                lines += ["", "```", *outcome.stderr_tail, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the report, return 0 when every benchmark produced its result."""
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run Callslip's benchmarks.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for benchmarks that accept --quick)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--full", action="append", default=[], metavar="NAME",
                        help="run this benchmark at its full size even with --quick (repeatable)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="report file (default docs/PERFORMANCE.md)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark (default 1800)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("CALLSLIP_BENCH_POSTGRES_URL"),
        help="PostgreSQL server for the benchmarks that also measure it (default: $CALLSLIP_BENCH_POSTGRES_URL)",
    )
    args = parser.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    unknown_full = sorted(set(args.full) - set(names))
    if unknown_full:
        parser.error(f"no such benchmark: {', '.join(unknown_full)} (have: {', '.join(names)})")
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
        names = [name for name in names if name in args.only]
    if not names:
        print("no benchmarks found in bench/", file=sys.stderr)
        return 1
    info = machine()
    started = time.perf_counter()
    outcomes = []
    for name in names:
        print(f"running {name}…", file=sys.stderr, flush=True)
        outcome = run_one(name, quick=args.quick and name not in args.full, timeout=args.timeout,
                          postgres=args.postgres)  # fmt: skip
        verdict = f"failed: {outcome.error}" if outcome.error else "ok"
        print(f"  {name}: {verdict} ({outcome.seconds:.1f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    report = render_report(outcomes, info, quick=args.quick, total_seconds=time.perf_counter() - started,
                           full=args.full)  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if any(outcome.error for outcome in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
