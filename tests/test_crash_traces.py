"""A crash in native code leaves every thread's Python stack behind (``desktop.crash_traces``): on standard error
when there is one, else in ``crash.log`` (a windowed app has no standard error). Each case crashes a real child
process with a real segmentation fault."""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
from pathlib import Path

from tests.test_setup_identity import ROOT

CRASH = """
import sys
from pathlib import Path
from desktop.crash_traces import enable_crash_traces
{before}
print(enable_crash_traces(Path(sys.argv[1])), flush=True)
import faulthandler
def where_it_crashed():
    faulthandler._sigsegv()
where_it_crashed()
"""


def run_child(code: str, argument: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code argument``, with no handler turned on but the one the code under test turns on."""
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    return subprocess.run(
        [sys.executable, "-c", code, str(argument)], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT
    )


def crash(folder: Path, before: str = "") -> subprocess.CompletedProcess[str]:
    return run_child(CRASH.format(before=before), folder)


def test_a_segfault_prints_the_stack_on_standard_error(tmp_path: Path) -> None:
    done = crash(tmp_path / "logs")
    assert done.returncode == -11
    assert done.stdout.strip() == "None"
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "in where_it_crashed" in done.stderr
    assert not (tmp_path / "logs").exists()  # nothing written where a console shows it


def test_without_standard_error_the_stack_is_appended_to_crash_log(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "logs"
    log = folder / "crash.log"
    for _ in range(2):
        done = crash(folder, before="sys.stderr = None  # a windowed app started from its shortcut")
        assert done.returncode == -11
        assert done.stdout.strip() == str(log)
    text = log.read_text(encoding="utf-8")
    assert text.count("Fatal Python error: Segmentation fault") == 2  # appended, the first crash kept
    assert "in where_it_crashed" in text


def test_a_folder_that_cannot_be_written_keeps_no_trace_and_raises_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    done = crash(blocker / "logs", before="sys.stderr = None")
    assert done.returncode == -11
    assert done.stdout.strip() == "None"


def test_a_handler_already_on_is_left_as_it_is(tmp_path: Path) -> None:
    from desktop.crash_traces import enable_crash_traces

    assert faulthandler.is_enabled()  # pytest's own, writing to its copy of standard error
    assert enable_crash_traces(tmp_path) is None
    assert not any(tmp_path.iterdir())


def test_both_commands_turn_the_traces_on(tmp_path: Path) -> None:
    """``callslip`` (checked by tests/exit_probe.py) and ``callslip-manager``: here a real ``init-db``."""
    code = (
        "import faulthandler, sys; from desktop.manager import main; "
        "code = main(['--database', sys.argv[1], 'init-db']); print(code, faulthandler.is_enabled())"
    )
    done = run_child(code, tmp_path / "new.sqlite3")
    assert done.stdout.split()[-2:] == ["0", "True"], done.stderr
