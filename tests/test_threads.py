"""The background runner and the thread registry that guarantees no QThread outlives the app."""

from __future__ import annotations

import threading

from pytestqt.qtbot import QtBot

from desktop.ui.threads import TaskRunner, running_threads, stop_all_threads


def test_runner_calls_back_on_the_gui_thread_and_reports_failures(qtbot: QtBot) -> None:
    runner = TaskRunner("test-runner")
    gui = threading.get_ident()
    seen: dict[str, object] = {}

    def work() -> int:
        seen["worker"] = threading.get_ident()
        return 42

    def fail() -> int:
        raise ValueError("bad input")

    try:
        runner.run(work, lambda r: seen.update(result=r, callback=threading.get_ident()))
        runner.run(fail, None, lambda e: seen.update(error=str(e)))
        qtbot.waitUntil(lambda: "error" in seen and not runner.busy, timeout=5_000)
        assert seen["result"] == 42 and seen["callback"] == gui and seen["worker"] != gui
        assert seen["error"] == "bad input"
    finally:
        runner.shutdown()
    assert "test-runner" not in running_threads()


def test_stop_all_threads_stops_a_forgotten_runner(qtbot: QtBot) -> None:
    runner = TaskRunner("forgotten-runner")
    assert "forgotten-runner" in running_threads()
    assert stop_all_threads() == []
    assert "forgotten-runner" not in running_threads()
    del runner
