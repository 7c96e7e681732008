"""Running service calls off the GUI thread, and keeping track of every QThread so none outlives the app.

Modelled on Anki's ``CollectionOp``: the GUI submits a callable, a worker thread runs it, and the result (or the
exception) comes back on the GUI thread to a callback. Callables run on one worker thread per runner, in the
order submitted, so two edits from one window never race each other.
"""

from __future__ import annotations

import itertools
import logging
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class TaskRunner(QObject):
    """Runs callables on a worker QThread and calls back on the GUI thread.

    Signals:
        busyChanged(bool): True while jobs are queued or running (drives a busy indicator).
    """

    busyChanged = Signal(bool)
    _submit = Signal(object)

    def __init__(self, name: str = "callslip-worker", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callback | None, Callback | None]] = {}
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

    def run(
        self,
        fn: Callable[[], Any],
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
    ) -> int:
        """Queue ``fn`` (no arguments: use functools.partial); callbacks run on the GUI thread."""
        if not self._thread.isRunning():
            raise RuntimeError("the task runner was shut down")
        job = _Job(next(self._ids), fn)
        was_busy = self.busy
        self._callbacks[job.id] = (on_success, on_failure)
        if not was_busy:
            self.busyChanged.emit(True)
        self._submit.emit(job)
        return job.id

    @Slot(int, object)
    def _on_succeeded(self, job_id: int, result: object) -> None:
        on_success, _ = self._finish(job_id)
        if on_success is not None:
            on_success(result)

    @Slot(int, object, str)
    def _on_failed(self, job_id: int, error: object, trace: str) -> None:
        _, on_failure = self._finish(job_id)
        if on_failure is not None:
            on_failure(error)
        else:
            log.error("background task failed:\n%s", trace)

    def _finish(self, job_id: int) -> tuple[Callback | None, Callback | None]:
        callbacks = self._callbacks.pop(job_id, (None, None))
        if not self._callbacks:
            self.busyChanged.emit(False)
        return callbacks

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Finish the running job, drop queued callbacks, stop the thread (call on quit)."""
        self._callbacks.clear()
        stop_thread(self._thread, timeout_ms)
