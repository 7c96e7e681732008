"""What every window needs: the database handle, the settings, who is signed in, and a background runner.

Widgets hand ``ctx.db`` to service functions that run on ``ctx.runner``; they never open sessions themselves.
``changed`` is the one place windows learn that data moved (a route, a send, another workstation), so each
can refresh without knowing who changed what.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop.config import Settings
from desktop.services.database import Database
from desktop.ui.threads import Callback, TaskRunner


class AppContext(QObject):
    """Shared state of one running Callslip window.

    Signals:
        changed(str): a topic whose data changed: ``requests``, ``patrons``, ``templates``, ``settings``.
        settingsChanged(object): new :class:`desktop.config.Settings` were applied.
        databaseChanged(): ``db`` now points at another database; windows reload everything.
        sendNowRequested(): staff asked for e-mail notices to go out now (the System Manager poller listens).
    """

    changed = Signal(str)
    settingsChanged = Signal(object)
    databaseChanged = Signal()
    sendNowRequested = Signal()

    def __init__(self, db: Database, settings: Settings, parent: QObject | None = None, *, demo: bool = False) -> None:
        super().__init__(parent)
        self.db = db
        self.settings = settings
        #: ``callslip --demo`` / ``--screenshot``: a demo database, no SMTP server; Settings are not saved from it.
        self.demo = demo
        self.runner = TaskRunner("callslip-tasks", self)

    @property
    def staff_name(self) -> str:
        """Name recorded in Tracking rows for this workstation's changes."""
        return self.settings.effective_staff_name

    def run(self, fn: Callable[[], Any], on_success: Callback | None = None, on_failure: Callback | None = None) -> int:
        """Run ``fn`` off the GUI thread (see :class:`desktop.ui.threads.TaskRunner`)."""
        return self.runner.run(fn, on_success, on_failure)

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
