"""What every window needs: the database handle, the settings, who is signed in, and a background runner.

Widgets hand ``ctx.db`` to service functions that run on ``ctx.runner``; they never open sessions themselves.
``changed`` is the one place windows learn that data moved (a route, a send, another workstation), so each
can refresh without knowing who changed what.

Lifecycle: a window makes its timers with :meth:`AppContext.timer` (owned by the window, stopped when the runner
stops) and calls :meth:`AppContext.release` when it closes (its pending callbacks are dropped). After
:meth:`AppContext.shutdown`, :meth:`AppContext.run` is a no-op returning a cancelled handle, so nothing can post
work after the runner stopped and nothing raises inside the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.config import Settings
from desktop.services.database import Database
from desktop.ui.threads import Callback, TaskHandle, TaskRunner


class AppContext(QObject):
    """Shared state of one running Callslip window.

    Signals:
        changed(str): a topic whose data changed: ``requests``, ``patrons``, ``templates``, ``settings``.
        settingsChanged(object): new :class:`desktop.config.Settings` were applied.
        databaseChanged(): ``db`` now points at another database; windows reload everything.
        sendNowRequested(): staff asked for e-mail notices to go out now (the System Manager poller listens).
        stopped(): the workstation is shutting down; windows stop their timers and post no more work.
    """

    changed = Signal(str)
    settingsChanged = Signal(object)
    databaseChanged = Signal()
    sendNowRequested = Signal()
    stopped = Signal()

    def __init__(self, db: Database, settings: Settings, parent: QObject | None = None, *, demo: bool = False) -> None:
        super().__init__(parent)
        self.db = db
        self.settings = settings
        #: ``callslip --demo`` / ``--screenshot``: a demo database, no SMTP server; Settings are not saved from it.
        self.demo = demo
        self.runner = TaskRunner("callslip-tasks", self)
        self.runner.stopped.connect(self.stopped)

    @property
    def staff_name(self) -> str:
        """Name recorded in Tracking rows for this workstation's changes."""
        return self.settings.effective_staff_name

    @property
    def is_stopped(self) -> bool:
        """True once the workstation shut down its background runner."""
        return self.runner.is_stopped

    def run(
        self, fn: Callable[[], Any], on_success: Callback | None = None, on_failure: Callback | None = None
    ) -> TaskHandle:
        """Run ``fn`` off the GUI thread (see :class:`desktop.ui.threads.TaskRunner`); a cancelled no-op after
        shutdown."""
        return self.runner.run(fn, on_success, on_failure)

    def timer(
        self, owner: QObject, interval_ms: int, slot: Callable[[], object], *, single_shot: bool = False, name: str = ""
    ) -> QTimer:
        """A QTimer owned by ``owner`` (it dies with the window) that stops when the workstation shuts down.

        Created (not started) in the GUI thread; the window starts it when it wants to. Fired after shutdown it
        stops itself instead of calling ``slot``.
        """
        timer = QTimer(owner)
        if name:
            timer.setObjectName(name)
        timer.setSingleShot(single_shot)
        timer.setInterval(interval_ms)

        def fire() -> None:  # the timer and this function live in the GUI thread
            if self.is_stopped:  # started again after shutdown: stay stopped, post nothing
                timer.stop()
                return
            slot()

        timer.timeout.connect(fire)
        self.stopped.connect(timer.stop)
        return timer

    def release(self, owner: QObject) -> None:
        """``owner`` closes: its pending requests' callbacks are dropped (the work itself may still finish)."""
        self.runner.cancel_owned_by(owner)

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings from now on and tell every window."""
        self.settings = settings
        self.settingsChanged.emit(settings)

    def switch_database(self, db: Database) -> None:
        """Point every window at another database (the old handle is disposed)."""
        old, self.db = self.db, db
        self.databaseChanged.emit()
        old.dispose()

    def request_send_now(self) -> None:
        """Ask this workstation's System Manager poller (if it runs) to route and send at once."""
        self.sendNowRequested.emit()

    def shutdown(self) -> None:
        """Stop background work; the main window calls this on close."""
        self.runner.shutdown()
