"""The System Manager inside the GUI: a worker on its own QThread that routes requests and sends e-mail notices.

The worker object lives in a registered QThread; its QTimers (the poll interval, the "wake now" kick and the
retry timer) are created and started in that thread, in :meth:`_PollWorker.setup`. It wakes on the interval,
at once when a window reports a request change (``ctx.changed("requests")``), when staff choose "Send
notifications now" (``ctx.sendNowRequested``) and, on PostgreSQL, when another client's change makes the
database NOTIFY. Results reach the GUI as signals carrying plain data
(:class:`desktop.services.notices.dispatch.CycleSummary`) delivered to ``@Slot`` methods of GUI-thread objects.
A failing cycle never stops the poller; a problem (no keyring, SMTP server down) is reported once, not per
notice, and again only if it changes or comes back after a good cycle.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from PySide6.QtCore import QCoreApplication, QObject, QSocketNotifier, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from desktop.config import Settings
from desktop.domain.clock import utcnow
from desktop.secrets import SecretStoreError, bounce_imap_password, smtp_password
from desktop.services.admin.shared_settings import effective_poll_seconds
from desktop.services.admin.sms_settings import auth_token, load_sms_settings
from desktop.services.database import Database
from desktop.services.notices.bounce_mailbox import read_bounce_mailbox
from desktop.services.notices.delivery_health import DeliveryHealth, explain, read_health, short_state
from desktop.services.notices.dispatch import CycleSummary, run_cycle
from desktop.services.notices.wakeup import PgListener
from desktop.ui.context import AppContext
from desktop.ui.threads import register_thread, stop_thread
from desktop.ui.widgets.colours import Tone, set_tone

log = logging.getLogger(__name__)

#: Seconds between attempts to reopen a lost PostgreSQL LISTEN connection.
RELISTEN_SECONDS = 30


class _PollWorker(QObject):
    """Runs cycles in the poller thread; every slot here runs in that thread."""

    cycleStarted = Signal()
    cycleFinished = Signal(object)
    problem = Signal(str)
    intervalChanged = Signal(int)

    def __init__(self, ctx: AppContext, stop: threading.Event) -> None:
        super().__init__()
        self._ctx = ctx
        self._db: Database = ctx.db
        self._settings: Settings = ctx.settings
        self._stop = stop
        self._worker_name = f"{socket.gethostname()}:{os.getpid()}:gui"
        self._last_problem = ""
        self._next_bounces = utcnow()  # the bounce mailbox is read at the first cycle, then every bounce_poll_seconds
        self._interval: QTimer | None = None
        self._kick: QTimer | None = None
        self._retry: QTimer | None = None
        self._listener: PgListener | None = None
        self._notifier: QSocketNotifier | None = None
        self._relisten: QTimer | None = None

    def _timer(self, single_shot: bool, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(single_shot)
        timer.timeout.connect(slot)
        return timer

    @Slot()
    def setup(self) -> None:
        """Create the timers in this thread, start listening on PostgreSQL, and run a first cycle."""
        self._interval = self._timer(False, self.run_once)
        self._restart_interval()
        self._kick = self._timer(True, self.run_once)
        self._retry = self._timer(True, self.run_once)
        self._relisten = self._timer(False, self._listen)
        self._listen()
        self._kick.start(0)

    @Slot()
    def _listen(self) -> None:
        """(Re)open the LISTEN connection on PostgreSQL; without it the interval still finds all work."""
        self._drop_listener()
        if self._db.backend != "postgresql" or self._stop.is_set():
            return
        listener = PgListener(self._db)
        if listener.open():
            self._listener = listener
            self._notifier = QSocketNotifier(listener.fileno(), QSocketNotifier.Type.Read, self)
            self._notifier.activated.connect(self._on_notify)
            if self._relisten is not None:
                self._relisten.stop()
        elif self._relisten is not None and not self._relisten.isActive():
            self._relisten.start(RELISTEN_SECONDS * 1000)

    def _drop_listener(self) -> None:
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier.deleteLater()
            self._notifier = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @Slot()
    def _on_notify(self) -> None:
        if self._listener is None:
            return
        woken = self._listener.drain()
        if not self._listener.connected:
            self._drop_listener()
            if self._relisten is not None:
                self._relisten.start(RELISTEN_SECONDS * 1000)
        if woken:
            self.wake()

    @Slot()
    def wake(self) -> None:
        """Run a cycle as soon as the current one (if any) is done; many wakes make one cycle."""
        if self._kick is not None and not self._stop.is_set():
            self._kick.start(0)

    @Slot()
    def reload_settings(self) -> None:
        """New settings (SMTP server, interval) apply from the next cycle."""
        self._settings = self._ctx.settings
        self._restart_interval()
        self._last_problem = ""
        self._next_bounces = utcnow()  # a new bounce mailbox is tried at once
        self.wake()

    @Slot()
    def reload_database(self) -> None:
        """Another database: listen there and run a cycle on it."""
        self._db = self._ctx.db
        self._last_problem = ""
        self._listen()
        self.wake()

    @Slot()
    def run_once(self) -> None:
        """One cycle; never raises (a failure becomes a problem message and the poller keeps going)."""
        if self._stop.is_set():
            return
        self.cycleStarted.emit()
        settings = self._settings
        password: str | None = None
        problems: list[str] = []
        send = True
        try:
            password = smtp_password(settings, allow_env=False)
        except SecretStoreError as exc:
            problems.append(f"cannot read the SMTP password: {exc}")
            send = False
        sms_token = self._sms_token(problems)
        try:
            summary = run_cycle(self._db, settings, worker=self._worker_name, password=password,
                                should_stop=self._stop.is_set, send=send, sms_token=sms_token)  # fmt: skip
        except Exception as exc:  # the database is unreachable, …: report, keep polling
            log.exception("System Manager cycle failed")
            problems.append(f"the System Manager cycle failed: {type(exc).__name__}: {exc}")
            summary = None
        problems.extend(self._read_bounces(settings))
        if summary is not None:
            problems.extend(summary.errors)
            self.cycleFinished.emit(summary)
            self._restart_interval(only_if_changed=True)  # the Routing tab may have changed the shared interval
            self._schedule_retry(summary.next_due_at)
        self._report("; ".join(problems))

    def _sms_token(self, problems: list[str]) -> str | None:
        """The SMS provider's auth token from this computer's keyring (on this worker thread: it may block)."""
        try:
            sms = load_sms_settings(self._db)
            return auth_token(sms, allow_env=False) if sms.transport == "twilio" else None
        except SecretStoreError as exc:
            problems.append(f"cannot read the SMS provider's auth token: {exc}")
        except Exception as exc:  # the database is unreachable: the cycle reports it
            log.warning("reading the SMS settings failed: %s", exc)
        return None

    def _read_bounces(self, settings: Settings) -> list[str]:
        """Read the bounce mailbox when its own schedule says so; its problem (one line) joins the banner."""
        if not settings.bounce_imap_host or utcnow() < self._next_bounces or self._stop.is_set():
            return []
        self._next_bounces = utcnow() + timedelta(seconds=settings.bounce_poll_seconds)
        try:
            cycle = read_bounce_mailbox(self._db, settings, bounce_imap_password(settings, allow_env=False),
                                        worker=self._worker_name)  # fmt: skip
        except Exception as exc:  # keyring, database: report, keep polling; the mailbox keeps the message
            log.exception("reading the bounce mailbox failed")
            return [f"reading the bounce mailbox failed: {type(exc).__name__}: {exc}"]
        if cycle.counts.get("flagged") or cycle.counts.get("counted"):
            log.info("%s", cycle.describe())
        return [] if cycle.ok else [cycle.message]

    def _restart_interval(self, *, only_if_changed: bool = False) -> None:
        """(Re)start the poll timer with this workstation's interval, or the library's shared one."""
        if self._interval is None:
            return
        try:
            seconds = effective_poll_seconds(self._db, self._settings.poll_seconds)
        except Exception:  # the database is unreachable: keep the current interval (or ILLiad's 300 s)
            log.warning("cannot read the shared poll interval", exc_info=True)
            seconds = self._settings.poll_seconds or self._interval.interval() // 1000 or 300
        if only_if_changed and self._interval.isActive() and self._interval.interval() == seconds * 1000:
            return
        self._interval.start(seconds * 1000)
        self.intervalChanged.emit(seconds)

    def _schedule_retry(self, due: datetime | None) -> None:
        """Wake for the earliest retry when it comes before the next poll (a 1-minute backoff stays 1 minute)."""
        if due is None or self._retry is None or self._interval is None:
            return
        wait_ms = max(int((due - utcnow()).total_seconds() * 1000), 50)
        if wait_ms < self._interval.remainingTime():
            self._retry.start(wait_ms)

    def _report(self, text: str) -> None:
        if text and text != self._last_problem:
            self.problem.emit(text)
        self._last_problem = text

    @Slot()
    def stop(self) -> None:
        """Stop timers and listening in this thread, hand the object back to the GUI thread, end the thread."""
        for timer in (self._interval, self._kick, self._retry, self._relisten):
            if timer is not None:
                timer.stop()
        self._drop_listener()
        thread = QThread.currentThread()
        app = QCoreApplication.instance()
        if app is not None:
            self.moveToThread(app.thread())
        thread.quit()


class PollerController(QObject):
    """Owns the System Manager thread of this workstation (GUI thread side).

    Signals:
        cycleStarted(): a cycle began (the indicator shows it is working).
        cycleFinished(object): a :class:`desktop.services.notices.dispatch.CycleSummary`.
        problem(str): something stops e-mails from going out; emitted once per distinct problem.
        intervalChanged(int): the poll interval in use now (this workstation's, or the library's shared one).
    """

    cycleStarted = Signal()
    cycleFinished = Signal(object)
    problem = Signal(str)
    intervalChanged = Signal(int)
    _wake = Signal()
    # No arguments: the worker reads ctx.settings / ctx.db itself, so no object is shared between threads.
    _settingsChanged = Signal()
    _databaseChanged = Signal()
    _stopRequested = Signal()

    def __init__(self, ctx: AppContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.last_summary: CycleSummary | None = None
        self.last_problem = ""
        self.interval_seconds = 0
        self._own_change = False
        self._stop = threading.Event()
        self._thread = register_thread(QThread())
        self._thread.setObjectName("callslip-system-manager")
        self._worker = _PollWorker(ctx, self._stop)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.setup)
        self._wake.connect(self._worker.wake)
        self._settingsChanged.connect(self._worker.reload_settings)
        self._databaseChanged.connect(self._worker.reload_database)
        self._stopRequested.connect(self._worker.stop)
        self._worker.cycleStarted.connect(self.on_cycle_started)
        self._worker.cycleFinished.connect(self.on_cycle_finished)
        self._worker.problem.connect(self.on_problem)
        self._worker.intervalChanged.connect(self.on_interval_changed)
        ctx.changed.connect(self.on_changed)
        ctx.sendNowRequested.connect(self.send_now)
        ctx.settingsChanged.connect(self.on_settings_changed)
        ctx.databaseChanged.connect(self.on_database_changed)

    @property
    def running(self) -> bool:
        """True while the System Manager thread runs."""
        return self._thread.isRunning()

    def start(self) -> None:
        """Start the thread (its first cycle runs at once)."""
        if not self._thread.isRunning() and not self._stop.is_set():
            self._thread.start()

    @Slot()
    def send_now(self) -> None:
        """Route and send now instead of at the next poll."""
        self._wake.emit()

    @Slot(str)
    def on_changed(self, topic: str) -> None:
        """A window changed requests (perhaps to Awaiting Customer Contact): a cycle sends its e-mail now."""
        if topic == "requests" and not self._own_change:
            self._wake.emit()

    @Slot(object)
    def on_settings_changed(self, settings: Settings) -> None:
        """Tell the worker; the new settings apply from its next cycle."""
        self._settingsChanged.emit()

    @Slot()
    def on_database_changed(self) -> None:
        """Follow the application to another database."""
        self._databaseChanged.emit()

    @Slot(int)
    def on_interval_changed(self, seconds: int) -> None:
        """Relay: the worker now polls every ``seconds``."""
        self.interval_seconds = seconds
        self.intervalChanged.emit(seconds)

    @Slot()
    def on_cycle_started(self) -> None:
        """Relay: a cycle began."""
        self.cycleStarted.emit()

    @Slot(object)
    def on_cycle_finished(self, summary: CycleSummary) -> None:
        """Relay the summary; when requests changed, tell every window (without waking ourselves again)."""
        self.last_summary = summary
        if not summary.errors:
            self.last_problem = ""
        self.cycleFinished.emit(summary)
        self._own_change = True
        try:
            if summary.routed or summary.sent or summary.created or summary.cancelled:
                self.ctx.changed.emit("requests")
            self.ctx.changed.emit("delivery")  # the recorded verdict changed: banners read it again
        finally:
            self._own_change = False

    @Slot(str)
    def on_problem(self, text: str) -> None:
        """Relay a problem (already de-duplicated by the worker)."""
        self.last_problem = text
        self.problem.emit(text)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Stop the thread: the running cycle stops after its current message, then ``quit()`` + ``wait()``."""
        self._stop.set()
        if self._thread.isRunning():
            self._stopRequested.emit()
            if not self._thread.wait(timeout_ms):
                stop_thread(self._thread, timeout_ms)


class PollerIndicator(QWidget):
    """Status-bar summary of e-mail delivery: why notices wait (if anything stops them), how many wait and how
    many failed *now* (read from the database, not the last cycle's figures), and this System Manager's last run.

    Signals:
        healthLoaded(object): a fresh :class:`desktop.services.notices.delivery_health.DeliveryHealth` is shown.
    """

    healthLoaded = Signal(object)

    def __init__(self, controller: PollerController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pollerIndicator")
        self.setAccessibleName("E-mail notifications status")
        self.controller = controller
        self.ctx = controller.ctx
        self.health: DeliveryHealth | None = None
        self._loading = False
        self._again = False
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        self.label = QLabel("E-mail: starting…")
        self.label.setObjectName("pollerIndicatorLabel")
        self.label.setAccessibleName("E-mail notifications status")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)  # never elided
        layout.addWidget(self.label)
        self._working = False
        controller.cycleStarted.connect(self.on_cycle_started)
        controller.cycleFinished.connect(self.on_cycle_finished)
        controller.problem.connect(self.on_problem)
        self.ctx.changed.connect(self.on_changed)
        if controller.last_summary is not None:
            self.on_cycle_finished(controller.last_summary)

    def text(self) -> str:
        """What the indicator shows (for tests and screen readers)."""
        return self.label.text()

    @Slot()
    def on_cycle_started(self) -> None:
        """Show that a cycle is running."""
        if self.controller.last_summary is None:
            self.label.setText("E-mail: checking…")

    @Slot(object)
    def on_cycle_finished(self, summary: CycleSummary) -> None:
        """A cycle ended: read the current counts and verdict (the cycle's own figures go into the tooltip)."""
        self._show()
        self.refresh()

    @Slot(str)
    def on_changed(self, topic: str) -> None:
        """Notices were queued, sent or retried elsewhere in this app: the counts may differ."""
        if topic in {"requests", "notifications"}:
            self.refresh()

    def refresh(self) -> None:
        """Read the delivery health off the GUI thread (one read at a time; a refresh asked meanwhile follows)."""
        if self._loading:
            self._again = True
            return
        self._loading = True
        handle = self.ctx.run(functools.partial(read_health, self.ctx.db), self.on_health, self.on_health_failed)
        if handle.cancelled:
            self._loading = False

    def on_health(self, health: DeliveryHealth) -> None:
        """Show the current figures."""
        self._loading = False
        self.health = health
        self._show()
        self.healthLoaded.emit(health)
        if self._again:
            self._again = False
            self.refresh()

    def on_health_failed(self, error: object) -> None:
        """The database cannot be read: say so in the tooltip; keep the figures shown."""
        self._loading = False
        self._again = False
        self.label.setToolTip(f"Cannot read the e-mail figures: {error}")

    def _show(self) -> None:
        summary, health = self.controller.last_summary, self.health
        parts = ["E-mail:"]
        problem = "; ".join(summary.errors) if summary is not None else ""
        warn = bool(problem)
        if health is not None:
            state = short_state(health)
            warn = warn or health.blocked or health.failed > 0
            if health.blocked:
                parts.append(state + " ·")
            parts.append(f"waiting {health.waiting} · failed {health.failed}")
        if summary is not None:
            when = summary.started_at.astimezone().strftime("%H:%M:%S")
            parts.append(f"{'· ' if health is not None else ''}last run {when} · sent {summary.sent}")
        text = " ".join(parts)
        if warn:
            text = "⚠ " + text
        self.label.setText(text)
        tip = []
        message = explain(health) if health is not None else None
        if message is not None:
            tip.append(message.text)
        if summary is not None:
            tip.append("This workstation's last run: " + summary.describe())
        if problem:
            tip.append("Problem: " + problem)
        self.label.setToolTip("\n".join(tip))
        set_tone(self.label, Tone.ERROR if warn else None)
        self.setAccessibleDescription(text + (" — " + problem if problem else ""))

    @Slot(str)
    def on_problem(self, text: str) -> None:
        """A problem is shown in the tooltip and the colour until a good cycle clears it."""
        self.label.setToolTip(f"Problem: {text}")
        set_tone(self.label, Tone.ERROR)
