"""Nothing can post work after the task runner stopped, and nothing raises inside the Qt event loop because of it.

Real main window, real Contact Card, real worker thread: the window's timers fire after the window closed (as
they do during quit on a busy machine), and the test checks that this is an ordinary, silent event.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.services.database import Database
from desktop.ui.context import AppContext
from desktop.ui.main_window import MainWindow
from desktop.ui.patrons.contact_card import ContactCard, open_contact_card
from desktop.ui.threads import TaskRunner
from tests.main_window_helpers import close_window, open_window
from tests.patron_helpers import make_patron

pytest_plugins = ["pytester"]


def _pump() -> None:
    """Deliver everything already posted (timers due now, queued signals) without waiting on a clock."""
    for _ in range(5):
        QCoreApplication.processEvents()


def test_run_after_shutdown_is_a_cancelled_no_op(qtbot: QtBot) -> None:
    runner = TaskRunner("lifecycle-test")
    stopped: list[bool] = []
    runner.stopped.connect(lambda: stopped.append(True))
    done: list[object] = []
    with qtbot.waitSignal(runner.busyChanged, check_params_cb=lambda busy: not busy):
        handle = runner.run(lambda: 41 + 1, done.append)
    assert not handle.cancelled and handle.id > 0 and done == [42]
    runner.shutdown()
    runner.shutdown()  # twice is harmless and says "stopped" once
    assert stopped == [True] and runner.is_stopped
    late = runner.run(lambda: done.append("ran"), done.append)
    _pump()
    assert late.cancelled and late.id == 0
    assert done == [42]  # neither the job nor its callback ran


def test_callback_of_a_deleted_window_runs_but_cannot_raise(qtbot: QtBot) -> None:
    """A window deleted while its job runs: the callback still runs (it may tell other windows what changed),
    and its touching the dead widget does not reach the event loop."""
    runner = TaskRunner("lifecycle-test")
    told: list[object] = []

    class Window(QObject):
        def on_done(self, result: object) -> None:
            told.append(result)  # e.g. ctx.changed.emit(...): still wanted
            self.setObjectName("touched")  # the C++ object is gone: raises RuntimeError

    window = Window()
    gate = threading.Event()
    runner.run(functools.partial(gate.wait, 60), window.on_done)
    shiboken6.delete(window)  # the window is destroyed while its job is in flight
    with qtbot.capture_exceptions() as caught:
        gate.set()
        qtbot.waitUntil(lambda: not runner.busy)
    assert told == [True] and caught == []
    runner.shutdown()


def test_release_drops_a_closing_windows_callbacks(qtbot: QtBot) -> None:
    runner = TaskRunner("lifecycle-test")
    calls: list[object] = []

    class Window(QObject):
        def on_done(self, result: object) -> None:
            calls.append(result)

    window = Window()
    gate = threading.Event()
    runner.run(functools.partial(gate.wait, 60), window.on_done)
    assert runner.cancel_owned_by(window) == 1
    gate.set()
    qtbot.waitUntil(lambda: not runner.busy)
    assert calls == []
    runner.shutdown()


@pytest.fixture
def window(qtbot: QtBot, seeded_db: Database, settings: Settings) -> Iterator[MainWindow]:
    shown = open_window(qtbot, seeded_db, settings)
    yield shown
    close_window(shown)


def test_borrowing_tab_refresh_after_the_window_closed(qtbot: QtBot, window: MainWindow) -> None:
    """The Borrowing tab's refresh (F5, its change timer) firing after close raised "the task runner was shut
    down" inside the event loop."""
    workspace = window.workspace
    close_window(window)
    assert window.ctx.is_stopped
    with qtbot.capture_exceptions() as caught:
        QTimer.singleShot(0, workspace.refresh)
        QTimer.singleShot(0, workspace.poll)
        workspace._changed_timer.start(0)
        workspace._poll.start(0)
        _pump()
    assert caught == []
    assert not workspace._poll.isActive() and not workspace._changed_timer.isActive()


def test_contact_card_timer_after_the_workstation_stopped(
    qtbot: QtBot, sqlite_db: Database, settings: Settings
) -> None:
    """The Contact Card's 400 ms e-mail warning timer firing after the runner stopped."""
    patron = make_patron(sqlite_db, "ada", "Ada", "Lovelace", emails=[("Home", "ada@example.org")])
    ctx = AppContext(sqlite_db, settings)
    card = open_contact_card(ctx, patron)
    qtbot.waitUntil(lambda: card.data is not None and not ctx.runner.busy)
    card.editors["email"][0].value.setText("ada.lovelace@example.org")  # starts the warning timer
    assert card.warning_timer.isActive()
    ctx.shutdown()
    assert not card.warning_timer.isActive()  # stopped by the shutdown, not left to fire
    with qtbot.capture_exceptions() as caught:
        card.warning_timer.start(0)  # and even if something starts it again, it posts nothing
        card.on_reload()
        _pump()
    assert caught == []
    card._discarding = True
    card.close()
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ContactCard):
            widget.deleteLater()


def test_every_window_timer_stops_with_the_workstation(qtbot: QtBot, window: MainWindow) -> None:
    """Every timer a window made through ``ctx.timer`` is inactive once the main window closed."""
    from desktop.ui.requests.contact_customers import open_contact_customers

    dialog = open_contact_customers(window.ctx, window)
    qtbot.waitUntil(lambda: not window.ctx.runner.busy)
    timers = [t for t in window.findChildren(QTimer) if t.isActive()]
    assert dialog._timer in timers and window.workspace._poll in timers
    close_window(window)
    assert not dialog._timer.isActive() and not window.workspace._poll.isActive()


def test_the_fixture_fails_a_test_whose_timer_raises_in_teardown(pytester: pytest.Pytester) -> None:
    """The autouse fixture in conftest fails a test when a slot raises in the event loop, even after the test
    body (pytest-qt alone only watches the body)."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(
        test_raises="""
import pytest
from PySide6.QtCore import QTimer

def boom():
    raise RuntimeError("the task runner was shut down")

@pytest.fixture
def late_timer(qapp):
    yield
    QTimer.singleShot(0, boom)  # fires while the fixtures are torn down

def test_body_is_fine(late_timer):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*an exception reached the Qt event loop*", "*the task runner was shut down*"])
