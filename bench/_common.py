"""Helpers shared by the benchmarks in ``bench/`` and by ``python -m bench``.

The contract between a benchmark and the runner is small, so a benchmark needs nothing from this module:

* it is a script ``bench/<name>.py`` that runs with ``python -m bench.<name>``;
* it seeds its own databases (in a temporary folder) and never touches the user's configuration;
* it prints ONE JSON object on one line (the last line of its standard output is the one read), ideally
  ``{"benchmark": ..., "description": ..., "figures": {...}, "units": {...}, "baseline": ..., "ratio": ...}``
  where ``ratio`` compares the measured figure with a baseline measured in the same run (``baseline`` says what
  that was). Other shapes are accepted: every top-level number is shown as a figure, and keys containing
  "ratio" as ratios;
* if its source mentions ``--quick`` it is run with ``--quick`` by ``python -m bench --quick`` (smaller sizes).

:func:`emit` prints that line; :func:`machine` describes the computer for ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def emit(
    benchmark: str,
    figures: Mapping[str, float | int | str],
    *,
    baseline: str,
    ratio: float,
    description: str = "",
    units: Mapping[str, str] | None = None,
    ratio_meaning: str = "",
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the benchmark's one JSON line (and return it, for tests)."""
    record: dict[str, Any] = {
        "benchmark": benchmark,
        "description": description,
        "parameters": dict(parameters or {}),
        "figures": dict(figures),
        "units": dict(units or {}),
        "baseline": baseline,
        "ratio": round(ratio, 4),
        "ratio_meaning": ratio_meaning,
    }
    print(json.dumps(record, ensure_ascii=False), flush=True)
    return record


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, min and max of alternated rounds: on a loaded shared machine one round tells little, the spread
    tells how far to trust the median."""
    return statistics.median(values), min(values), max(values)


def spread_text(values: Sequence[float], digits: int = 3) -> str:
    """``"median (min–max)"`` of ``values``, for the report."""
    middle, low, high = spread(values)
    return f"{middle:.{digits}g} ({low:.{digits}g}–{high:.{digits}g})"


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()``'s result and the seconds it took (``perf_counter``)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


@contextmanager
def scratch_dir(prefix: str = "callslip-bench-") -> Iterator[Path]:
    """A temporary folder for a benchmark's databases, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def isolated_environment(folder: Path) -> dict[str, str]:
    """Environment for a benchmark process: offscreen Qt and a private config, data folder and keyring.

    A benchmark must never read or change the settings, database or passwords of the person running it.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLSLIP_")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        XDG_CONFIG_HOME=str(folder / "config"),
        XDG_DATA_HOME=str(folder / "data"),
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    )
    return env


# --------------------------------------------------------------------------------------------- the machine


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    """The processor's marketing name, as the operating system reports it."""
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
    if sys.platform == "darwin":
        name = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if name:
            return name
    return platform.processor() or platform.machine() or "unknown"


def memory_bytes() -> int | None:
    """Installed memory, or None when it cannot be read."""
    if sys.platform.startswith("linux"):
        try:
            for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
    if sys.platform == "darwin":
        text = _run(["sysctl", "-n", "hw.memsize"])
        return int(text) if text.isdigit() else None
    if sys.platform == "win32":
        import ctypes

        class MemoryStatus(ctypes.Structure):
            _fields_ = [
                ("dwLength", ctypes.c_ulong),
                ("dwMemoryLoad", ctypes.c_ulong),
                ("ullTotalPhys", ctypes.c_ulonglong),
                ("ullAvailPhys", ctypes.c_ulonglong),
                ("ullTotalPageFile", ctypes.c_ulonglong),
                ("ullAvailPageFile", ctypes.c_ulonglong),
                ("ullTotalVirtual", ctypes.c_ulonglong),
                ("ullAvailVirtual", ctypes.c_ulonglong),
                ("sullAvailExtendedVirtual", ctypes.c_ulonglong),
            ]

        status = MemoryStatus()
        status.dwLength = ctypes.sizeof(MemoryStatus)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.ullTotalPhys)
    return None


def machine() -> dict[str, str]:
    """The computer and software versions, for the report."""
    memory = memory_bytes()
    try:
        import PySide6
        from PySide6.QtCore import qVersion

        qt = f"Qt {qVersion()} (PySide6 {PySide6.__version__})"
    except ImportError:
        qt = "not installed"
    try:
        import sqlalchemy

        sqlalchemy_version = sqlalchemy.__version__
    except ImportError:
        sqlalchemy_version = "not installed"
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return {
        "CPU": cpu_model(),
        "Cores": str(os.cpu_count() or "unknown"),
        "RAM": f"{memory / 2**30:.1f} GiB" if memory else "unknown",
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Qt": qt,
        "SQLite": sqlite3.sqlite_version,
        "SQLAlchemy": sqlalchemy_version,
        "Load average at start (1, 5, 15 min)": load or "n/a",
    }
