"""Run ``callslip`` (``desktop.app.main``) in this process, then say what it left behind for the interpreter's exit.

``python -m tests.exit_probe ARGS...`` (run by ``test_app_startup.py``): ARGS go to ``main``. Without
``--screenshot`` the start is interactive, and the probe closes the main window as staff would once it shows.
The last line of output is JSON: the exit code, the Qt objects Python still owns, the widgets and the running
worker threads, and whether a crash would have left a trace. PySide6 deletes what Python still owns in no fixed
order at exit; ``main`` must leave nothing.
"""

from __future__ import annotations

import faulthandler
import json
import sys

import shiboken6
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from desktop.app import ensure_application, main
from desktop.ui.main_window import MainWindow  # here, not while the start-up's worker thread imports SQLAlchemy
from desktop.ui.threads import running_threads


def _close_main_window_once_shown(app: QApplication) -> None:
    for widget in app.topLevelWidgets():
        if isinstance(widget, MainWindow) and widget.isVisible():
            widget.close()
            return
    QTimer.singleShot(50, lambda: _close_main_window_once_shown(app))


def _python_owned() -> list[str]:
    """The Qt objects whose lifetime Python still decides (the application itself aside)."""
    left = []
    for wrapper in shiboken6.getAllValidWrappers():
        if isinstance(wrapper, QObject) and not isinstance(wrapper, QApplication) and shiboken6.ownedByPython(wrapper):
            left.append(type(wrapper).__name__)
    return sorted(left)


def run(argv: list[str]) -> dict[str, object]:
    app = ensure_application()
    if "--screenshot" not in argv:
        QTimer.singleShot(50, lambda: _close_main_window_once_shown(app))
    code = main(argv)
    return {
        "code": code,
        "python_owned": _python_owned(),
        "widgets": len(app.allWidgets()),
        "threads": running_threads(),
        "crash_traces": faulthandler.is_enabled(),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:])))
