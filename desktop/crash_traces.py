"""A crash in native code (Qt, a database driver) leaves every thread's Python stack behind instead of nothing.

A segfault ends the process at once: no exception, no message, and from a desktop shortcut not even an exit
code. With the standard library's ``faulthandler`` on, the fatal signal prints where each thread was, which is
what a bug report needs. No Qt here: the command line tools use it too.
"""

from __future__ import annotations

import faulthandler
import sys
from pathlib import Path
from typing import TextIO

#: ``crash.log`` stays open for the life of the process: the handler writes to its descriptor at the crash.
_log: TextIO | None = None


def _usable(stream: TextIO | None) -> bool:
    """True when ``stream`` has a real file descriptor (not None, not a closed or in-memory stream)."""
    if stream is None:
        return False
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def enable_crash_traces(folder: Path) -> Path | None:
    """Print every thread's stack on a fatal signal: to standard error when there is one, else appended to
    ``crash.log`` in ``folder`` (a windowed app started without a console has no standard error).

    Returns the log's path when the file is used. Leaves a handler that is already on (pytest's, or
    ``PYTHONFAULTHANDLER``) as it is; a folder that cannot be written only means no trace is kept.
    """
    global _log
    if faulthandler.is_enabled():
        return None
    if _usable(sys.stderr):
        faulthandler.enable(sys.stderr, all_threads=True)
        return None
    path = folder / "crash.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _log = path.open("a", encoding="utf-8")
    except OSError:
        return None
    faulthandler.enable(_log, all_threads=True)
    return path
