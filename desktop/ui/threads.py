"""Running service calls off the GUI thread, and keeping track of every QThread so none outlives the app.

Modelled on Anki's ``CollectionOp``: the GUI submits a callable, a worker thread runs it, and the result (or the
exception) comes back on the GUI thread to a callback. Callables run on one worker thread per runner, in the
order submitted, so two edits from one window never race each other.

Shutting down is an ordinary event, not an error: once the runner stopped, :meth:`TaskRunner.run` returns a
cancelled :class:`TaskHandle` and does nothing, and ``stopped`` tells every window to stop its timers. A timer
that fires during quit therefore cannot raise inside the Qt event loop. A callback whose window was deleted
meanwhile (its C++ object is gone) still runs — it may tell the other windows what changed — but its touching
the dead widget is caught here instead of reaching the event loop.
"""

from __future__ import annotations

import functools
import itertools
import logging
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


def register_thread(thread: QThread) -> QThread:
    """Remember ``thread`` so tests (and shutdown) can check it was stopped."""
    _threads.add(thread)
    return thread


def running_threads() -> list[str]:
    """Names of registered QThreads that are still running."""
    alive = []
    for thread in list(_threads):
        try:
            if thread.isRunning():
                alive.append(thread.objectName() or repr(thread))
        except RuntimeError:  # the C++ object is already gone: stopped and deleted
            continue
    return alive


def stop_thread(thread: QThread, timeout_ms: int = 10_000) -> bool:
    """``quit()`` then ``wait()``; True when the thread ended in time."""
    try:
        if not thread.isRunning():
            return True
        thread.quit()
        return bool(thread.wait(timeout_ms))
    except RuntimeError:
        return True


def stop_all_threads(timeout_ms: int = 10_000) -> list[str]:
    """Stop every registered QThread still running; return the names of any that did not end in time.

    Connected to ``QApplication.aboutToQuit``: a window still open at exit (a dialog with its own worker) must
    not leave a running QThread for the garbage collector, which would abort the process.
    """
    stuck = []
    for thread in list(_threads):
        if not stop_thread(thread, timeout_ms):
            stuck.append(thread.objectName() or repr(thread))
    return stuck


@dataclass
class _Job:
    id: int
    fn: Callable[[], Any]


class _Worker(QObject):
    """Lives in the worker thread and runs jobs there."""

    succeeded = Signal(int, object)
    failed = Signal(int, object, str)

    @Slot(object)
    def run_job(self, job: _Job) -> None:
        try:
            result = job.fn()
        except Exception as exc:  # reported to the caller's on_failure, never lost
            self.failed.emit(job.id, exc, traceback.format_exc())
        else:
            self.succeeded.emit(job.id, result)


Callback = Callable[[Any], None]


@dataclass(frozen=True)
class TaskHandle:
    """What :meth:`TaskRunner.run` hands back.

    Attributes:
        id: the job's number (0 when the job was not accepted).
        cancelled: True when the runner had already stopped: the job will never run and no callback comes.
    """

    id: int
    cancelled: bool = False


def _owner(callback: Callback | None) -> QObject | None:
    """The QObject a callback belongs to (a bound method, or a ``functools.partial`` of one), if any."""
    while isinstance(callback, functools.partial):
        callback = callback.func
    owner = getattr(callback, "__self__", None)
    return owner if isinstance(owner, QObject) else None


def _alive(callback: Callback | None) -> bool:
    """False when the callback's widget was deleted (touching it raises)."""
    owner = _owner(callback)
    return owner is None or shiboken6.isValid(owner)


def _deliver(callback: Callback, value: object) -> None:
    """Call back; when the callback's window is already deleted, its reaching for a widget is expected and
    swallowed (logged), never raised into the event loop. A live window's errors are not hidden."""
    if _alive(callback):
        callback(value)
        return
    try:
        callback(value)
    except RuntimeError as exc:  # "Internal C++ object (…) already deleted"
        if "already deleted" not in str(exc):
            raise
        log.debug("callback of a closed window dropped: %s", exc)


class TaskRunner(QObject):
    """Runs callables on a worker QThread and calls back on the GUI thread.

    Signals:
        busyChanged(bool): True while jobs are queued or running (drives a busy indicator).
        stopped(): the runner shut down; windows stop their timers (later submissions are cancelled no-ops).
    """

    busyChanged = Signal(bool)
    stopped = Signal()
    _submit = Signal(object)

    def __init__(self, name: str = "callslip-worker", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callback | None, Callback | None]] = {}
        self._stopped = False
        self._thread = register_thread(QThread())
        self._thread.setObjectName(name)
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run_job)
        self._worker.succeeded.connect(self._on_succeeded)
        self._worker.failed.connect(self._on_failed)
        self._thread.finished.connect(self._worker.deleteLater)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        return bool(self._callbacks)

    @property
    def is_stopped(self) -> bool:
        """True once :meth:`shutdown` ran: nothing more will be run or called back."""
        return self._stopped

    def run(
        self,
        fn: Callable[[], Any],
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
    ) -> TaskHandle:
        """Queue ``fn`` (no arguments: use functools.partial); callbacks run on the GUI thread.

        After shutdown this is a no-op returning a cancelled handle: a window's timer firing during quit is
        normal and must not raise inside the event loop.
        """
        if self._stopped or not self._thread.isRunning():
            log.debug("task not run: the task runner has stopped")
            return TaskHandle(0, cancelled=True)
        job = _Job(next(self._ids), fn)
        was_busy = self.busy
        self._callbacks[job.id] = (on_success, on_failure)
        if not was_busy:
            self.busyChanged.emit(True)
        self._submit.emit(job)
        return TaskHandle(job.id)

    def cancel_owned_by(self, owner: QObject) -> int:
        """Drop the callbacks of ``owner``'s pending jobs (its window closes); return how many were dropped."""
        mine = [
            job_id
            for job_id, (success, failure) in self._callbacks.items()
            if _owner(success) is owner or _owner(failure) is owner
        ]
        for job_id in mine:
            self._callbacks[job_id] = (None, None)
        return len(mine)

    @Slot(int, object)
    def _on_succeeded(self, job_id: int, result: object) -> None:
        on_success, _ = self._finish(job_id)
        if on_success is not None and not self._stopped:
            _deliver(on_success, result)

    @Slot(int, object, str)
    def _on_failed(self, job_id: int, error: object, trace: str) -> None:
        _, on_failure = self._finish(job_id)
        if on_failure is not None:
            if not self._stopped:
                _deliver(on_failure, error)
        else:
            log.error("background task failed:\n%s", trace)

    def _finish(self, job_id: int) -> tuple[Callback | None, Callback | None]:
        if job_id not in self._callbacks:  # dropped at shutdown: nobody waits for it any more
            return None, None
        callbacks = self._callbacks.pop(job_id)
        if not self._callbacks:
            self.busyChanged.emit(False)
        return callbacks

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Finish the running job, drop queued callbacks, stop the thread, tell the windows (call on quit).

        Safe to call twice; ``stopped`` is emitted once.
        """
        first = not self._stopped
        self._stopped = True
        had_jobs = bool(self._callbacks)
        self._callbacks.clear()
        stop_thread(self._thread, timeout_ms)
        if first:
            if had_jobs:
                self.busyChanged.emit(False)
            self.stopped.emit()
