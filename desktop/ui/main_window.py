"""The main window (``mainWindow``): ILLiad's layout — a ribbon of tabs with grouped buttons, the queues with
counts on the left and the chosen queue's requests in the middle, and a status bar saying which database is
in use, who is signed in, and what the System Manager is doing.

The window owns the :class:`AppContext` (and stops its worker thread on close) and this workstation's System
Manager poller. Windows built in other issues (Contact Customers, patron search, Customization Manager, …) are
imported only when their button is pressed; a button whose window does not exist yet is disabled and says so.
"""

from __future__ import annotations

import functools
import gc
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.config import default_database_path
from desktop.paths import resource_path
from desktop.services.requests.queues_count import QueueSnapshot
from desktop.ui.context import AppContext
from desktop.ui.navigation import Window, open_window
from desktop.ui.notices.poller import PollerController, PollerIndicator
from desktop.ui.requests.borrowing_tab import BorrowingWorkspace
from desktop.ui.requests.request_form import RequestForm, open_request_form
from desktop.ui.widgets import icons
from desktop.ui.widgets.key_tips import KeyTips
from desktop.ui.widgets.ribbon import Ribbon, RibbonPage, ribbon_button
from desktop.ui.window_state import fit_to_screen, window_state_settings
from desktop.ui.windows import register_all

#: Keys used where this platform binds no standard key (QKeySequence.StandardKey.Preferences is Ctrl+, on macOS,
#: Ctrl+Shift+, on KDE and nothing on Windows or GNOME).
FALLBACK_KEYS = {QKeySequence.StandardKey.Preferences: "Ctrl+,", QKeySequence.StandardKey.Quit: "Ctrl+Q"}

#: Busy indicator appears only for work that takes longer than this (no flicker on quick reads).
BUSY_DELAY_MS = 250


_frozen: set[str] = set()


def freeze_long_lived(moment: str) -> None:
    """Exempt every object alive now from Python's full garbage collections (``gc.freeze``).

    Start-up leaves about 90,000 objects that live as long as the window (modules, Qt wrappers, SQLAlchemy's
    metadata); each full (generation-2) collection walked them all, 160–210 ms with nothing repainting, and one
    came every few Contact Customers refreshes of 12,400 rows. Frozen objects are still freed by reference
    counting; only a cycle among them is never collected, so this is done at two moments of a process only
    (tests open many windows): before the first main window is built (so no full collection walks the modules
    while it is) and on the event-loop turn after it is first shown (its own widgets).

    Args:
        moment: ``"built"`` or ``"shown"``; a moment already passed does nothing.
    """
    if moment not in _frozen:
        _frozen.add(moment)
        gc.freeze()


def _icon(name: str, fallback: QStyle.StandardPixmap) -> QIcon:
    """The app's own icon when it ships one, else a standard one from the style."""
    if resource_path("icons", f"{name}.svg").exists():
        return icons.icon(name)
    return QApplication.style().standardIcon(fallback)


class MainWindow(QMainWindow):
    """Callslip's main window.

    Attributes:
        ctx: the shared context (database, settings, background runner).
        workspace: the Borrowing queues and request table.
        poller: the System Manager poller controller, when this workstation runs it.
    """

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        freeze_long_lived("built")
        self.ctx = ctx
        register_all()  # the windows this one (and every window it opens) may open by id
        self.poller: PollerController | None = None
        self._closed = False
        self._splitter_restored = False
        self._loading_started = False
        self.setObjectName("mainWindow")
        self.setWindowTitle("Callslip — Borrowing")
        self.setAccessibleName("Callslip main window")
        self.resize(1280, 780)

        self.workspace = BorrowingWorkspace(ctx)
        self._build_actions()
        self.ribbon = Ribbon()
        self._build_borrowing_page()
        self._build_system_page()
        self.key_tips = KeyTips(self.ribbon)  # Alt or F10: a letter over each ribbon button
        central = QWidget()
        column = self._central_layout = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.ribbon)
        column.addWidget(self.workspace, 1)
        self.setCentralWidget(central)
        self._build_status_bar()

        self.workspace.openRequested.connect(self.open_request)
        self.workspace.statusMessage.connect(self.show_status_message)
        self.workspace.snapshotChanged.connect(self.on_snapshot)
        ctx.runner.busyChanged.connect(self.on_busy_changed)
        ctx.databaseChanged.connect(self.on_database_changed)
        self._start_poller()
        self.restore_state()
        # The first read is started by the event loop's next turn, not here: building and showing the window
        # is then one turn and sending the queries another (the window was frozen ~150 ms at 12,400 waiting).
        QTimer.singleShot(0, self, self.start_loading)

    @Slot()
    def on_first_shown(self) -> None:
        """The turn after the first show: freeze what start-up made out of full garbage collections."""
        freeze_long_lived("shown")

    @Slot()
    def start_loading(self) -> None:
        """Read the counts and the list (once; not after the window was closed)."""
        if not self._closed and not self._loading_started:
            self._loading_started = True
            self.workspace.start()

    # --- construction -----------------------------------------------------------------------------------------
    def _action(
        self, text: str, name: str, shortcut: str | QKeySequence.StandardKey | None, icon: QIcon | None = None
    ) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        if icon is not None:
            action.setIcon(icon)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            if action.shortcut().isEmpty() and isinstance(shortcut, QKeySequence.StandardKey):
                # A standard key this platform leaves unbound (Preferences on Windows and GNOME): the common one.
                action.setShortcut(QKeySequence(FALLBACK_KEYS[shortcut]))
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{text.replace('&', '')} ({keys})" if keys else text.replace("&", ""))
        self.addAction(action)
        return action

    def _opens(self, window: Window, action: QAction) -> QAction:
        """Wire ``action`` to open ``window`` (through :mod:`desktop.ui.navigation`, so this module imports none)."""
        action.triggered.connect(functools.partial(self.open, window))
        return action

    def _build_actions(self) -> None:
        sp = QStyle.StandardPixmap
        self.open_action = self._action("&Open Request", "openRequestButtonAction", "Ctrl+O",
                                         _icon("open-request", sp.SP_FileDialogDetailedView))  # fmt: skip
        self.open_action.triggered.connect(self.workspace.open_current)
        self.search_action = self._action("&Search Requests", "searchRequestsAction", QKeySequence.StandardKey.Find,
                                          _icon("search", sp.SP_FileDialogContentsView))  # fmt: skip
        self.search_action.triggered.connect(self.search_requests)
        self.refresh_action = self._action("&Refresh", "refreshAction", QKeySequence.StandardKey.Refresh,
                                           _icon("refresh", sp.SP_BrowserReload))  # fmt: skip
        self.refresh_action.triggered.connect(self.workspace.refresh)
        self.contact_action = self._action("&Contact Customers", "contactCustomersAction", "Ctrl+Shift+C",
                                           _icon("contact-customers", sp.SP_DialogYesButton))  # fmt: skip
        self._opens(Window.CONTACT_CUSTOMERS, self.contact_action)
        self.manually_notify_action = self._action("&Manually Notify", "manuallyNotifyAction", None)
        self._opens(Window.CONTACT_CUSTOMERS, self.manually_notify_action)
        self.send_now_action = self._action("&Send E-mail Notifications Now", "sendNowAction", "Ctrl+Shift+E")
        self.send_now_action.triggered.connect(self.send_now)
        self.patron_search_action = self._action("&Patron Search", "patronSearchAction", "Ctrl+Shift+F",
                                                 _icon("patron-search", sp.SP_DirHomeIcon))  # fmt: skip
        self._opens(Window.PATRON_SEARCH, self.patron_search_action)
        self.duplicates_action = self._action("&Duplicates", "duplicatesAction", "Ctrl+Shift+D",
                                              _icon("duplicates", sp.SP_FileDialogListView))  # fmt: skip
        self._opens(Window.DUPLICATES, self.duplicates_action)
        self.bounced_action = self._action("&Bounced Addresses", "bouncedAction", "Ctrl+Shift+B",
                                           _icon("email", sp.SP_MessageBoxWarning))  # fmt: skip
        self._opens(Window.BOUNCED, self.bounced_action)
        self.hold_shelf_action = self._action("&Hold Shelf", "holdShelfAction", "Ctrl+Shift+H",
                                              _icon("hold-shelf", sp.SP_FileDialogListView))  # fmt: skip
        self._opens(Window.HOLD_SHELF, self.hold_shelf_action)
        self.import_action = self._action("&Import CSV…", "importCsvAction", "Ctrl+I",
                                          _icon("import", sp.SP_DialogOpenButton))  # fmt: skip
        self._opens(Window.IMPORT_CSV, self.import_action)
        self.customization_action = self._action("C&ustomization Manager", "customizationManagerAction", "Ctrl+Shift+U",
                                                 _icon("customization", sp.SP_FileDialogInfoView))  # fmt: skip
        self._opens(Window.CUSTOMIZATION, self.customization_action)
        self.settings_action = self._action("Se&ttings", "settingsAction", QKeySequence.StandardKey.Preferences,
                                            _icon("settings", sp.SP_ComputerIcon))  # fmt: skip
        self._opens(Window.SETTINGS, self.settings_action)
        self.locations_action = self._action("&Locations", "locationsAction", "Ctrl+Shift+L",
                                             _icon("locations", sp.SP_DirIcon))  # fmt: skip
        self._opens(Window.LOCATIONS, self.locations_action)
        self.quit_action = self._action("&Quit", "quitAction", QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        self.next_pane_action = self._action("Next Pane", "nextPaneAction", "F6")
        self.next_pane_action.triggered.connect(self.focus_next_pane)
        self.previous_pane_action = self._action("Previous Pane", "previousPaneAction", "Shift+F6")
        self.previous_pane_action.triggered.connect(self.focus_previous_pane)

    def _build_borrowing_page(self) -> None:
        page = self.ribbon.add_page(RibbonPage("borrowingTab", "Borrowing"), "&Borrowing")
        requests = page.add_group("Requests")
        self.search_button = requests.add(ribbon_button(self.search_action, "searchRequestsButton"))
        self.open_button = requests.add(ribbon_button(self.open_action, "openRequestButton"))
        self.refresh_button = requests.add(ribbon_button(self.refresh_action, "refreshButton"))
        customers = page.add_group("Customers")
        self.contact_button = customers.add(ribbon_button(self.contact_action, "contactCustomersButton"))
        self.contact_button.setAccessibleName("Contact Customers")
        self.contact_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.contact_menu = QMenu("Contact Customers", self)
        self.contact_menu.setObjectName("contactCustomersMenu")
        self.contact_menu.addAction(self.manually_notify_action)
        self.contact_menu.addAction(self.send_now_action)
        self.contact_button.setMenu(self.contact_menu)
        self.contact_button.setMinimumWidth(110)
        customers.add(ribbon_button(self.patron_search_action, "patronSearchButton"))
        customers.add(ribbon_button(self.duplicates_action, "duplicatesButton"))
        customers.add(ribbon_button(self.bounced_action, "bouncedButton"))
        customers.add(ribbon_button(self.hold_shelf_action, "holdShelfButton"))
        data = page.add_group("Data")
        data.add(ribbon_button(self.import_action, "importCsvRibbonButton"))

    def _build_system_page(self) -> None:
        page = self.ribbon.add_page(RibbonPage("systemTab", "System"), "S&ystem")
        manage = page.add_group("Customization")
        manage.add(ribbon_button(self.customization_action, "customizationManagerButton"))
        manage.add(ribbon_button(self.locations_action, "locationsButton"))
        workstation = page.add_group("This workstation")
        workstation.add(ribbon_button(self.settings_action, "settingsButton"))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setObjectName("statusBar")
        self.busy_bar = QProgressBar()
        self.busy_bar.setObjectName("busyIndicator")
        self.busy_bar.setAccessibleName("Working")
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(90)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self._busy_timer = QTimer(self)
        self._busy_timer.setSingleShot(True)
        self._busy_timer.setInterval(BUSY_DELAY_MS)
        self._busy_timer.timeout.connect(self.show_busy)
        self.database_label = QLabel()
        self.database_label.setObjectName("databaseLabel")
        self.database_label.setAccessibleName("Database in use")
        self.staff_label = QLabel(f"Signed in: {self.ctx.staff_name}")
        self.staff_label.setObjectName("staffLabel")
        self.staff_label.setAccessibleName("Signed-in staff member")
        bar.addPermanentWidget(self.busy_bar)
        bar.addPermanentWidget(self.database_label)
        bar.addPermanentWidget(self.staff_label)
        self._update_database_label()

    def _update_database_label(self) -> None:
        name = self.ctx.db.display_name
        text = f"Database: {name}"
        if self.ctx.db.backend == "sqlite" and Path(name) == default_database_path():
            text += " (default local SQLite file)"
        self.database_label.setText(text)
        self.database_label.setToolTip(text)

    def _start_poller(self) -> None:
        """This workstation's System Manager: only when configured to run it and once it is built."""
        self.poller_indicator: QWidget | None = None
        if self.ctx.settings.run_poller:
            self.poller = PollerController(self.ctx, self)
            self.poller.start()
            self.poller_indicator = PollerIndicator(self.poller)
            self.statusBar().addPermanentWidget(self.poller_indicator)
        if self.poller is None:
            reason = "The System Manager does not run on this workstation (see Settings)."
            self.send_now_action.setEnabled(False)
            self.send_now_action.setToolTip(reason)
            self.send_now_action.setStatusTip(reason)

    # --- state ------------------------------------------------------------------------------------------------
    def restore_state(self) -> None:
        """Put the window, splitter and columns back as staff left them."""
        settings = window_state_settings()
        geometry = settings.value("mainWindow/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        fit_to_screen(self)
        header = settings.value("mainWindow/requestColumns")
        if isinstance(header, QByteArray):
            self.workspace.table.horizontalHeader().restoreState(header)

    def showEvent(self, event: QShowEvent) -> None:
        """The splitter is restored once the window has its remembered size, so the sizes come back exactly."""
        super().showEvent(event)
        if not self._splitter_restored:
            self._splitter_restored = True
            fit_to_screen(self)  # now that the frame is known
            self._central_layout.activate()
            splitter = window_state_settings().value("mainWindow/splitter")
            if isinstance(splitter, QByteArray):
                self.workspace.splitter.restoreState(splitter)
            QTimer.singleShot(0, self, self.on_first_shown)

    def save_state(self) -> None:
        """Remember the window, splitter and columns."""
        settings = window_state_settings()
        settings.setValue("mainWindow/geometry", self.saveGeometry())
        settings.setValue("mainWindow/splitter", self.workspace.splitter.saveState())
        settings.setValue("mainWindow/requestColumns", self.workspace.table.horizontalHeader().saveState())
        settings.sync()

    # --- slots ------------------------------------------------------------------------------------------------
    @Slot(int)
    def open_request(self, transaction_number: int) -> RequestForm:
        """Open the request form, walking the list on screen with Previous/Next."""
        form = open_request_form(self.ctx, transaction_number, self, query=self.workspace.current_query())
        fit_to_screen(form)
        form.transactionChanged.connect(self.workspace.select_transaction)
        return form

    def open(self, window: Window, _checked: bool = False) -> Any:
        """Open ``window`` (Contact Customers, Settings, …) over this one and return it."""
        return open_window(window, self.ctx, self)

    @Slot()
    def search_requests(self) -> None:
        """Search all requests: choose "All borrowing requests" and put the cursor in the filter."""
        self.ribbon.setCurrentIndex(0)
        self.workspace.select_queue(None)
        self.workspace.focus_filter()

    def panes(self) -> list[QWidget]:
        """The main window's panes in reading order, for F6: ribbon, queue tree, filter, request list."""
        workspace = self.workspace
        panes = [self.ribbon.tabBar(), workspace.queue_tree, workspace.filter_edit, workspace.stack.currentWidget()]
        return [pane for pane in panes if pane is not None]

    def _move_pane(self, step: int) -> None:
        panes = [pane for pane in self.panes() if pane.isVisible() and pane.isEnabled()]
        if not panes:
            return
        focus = self.focusWidget()
        current = next((i for i, pane in enumerate(panes) if focus is not None and pane.isAncestorOf(focus)), -1)
        current = next((i for i, pane in enumerate(panes) if pane is focus), current)
        target = panes[(current + step) % len(panes)] if current >= 0 else panes[0 if step > 0 else -1]
        target.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot()
    def focus_next_pane(self) -> None:
        """F6: the next pane (Windows' convention; reaching the queue tree took eight Tabs)."""
        self._move_pane(1)

    @Slot()
    def focus_previous_pane(self) -> None:
        """Shift+F6: the previous pane."""
        self._move_pane(-1)

    @Slot()
    def send_now(self) -> None:
        """Ask this workstation's System Manager to route and send e-mail notices now."""
        self.ctx.request_send_now()
        self.show_status_message("Asked the System Manager to route requests and send e-mail notifications now.")

    @Slot(str)
    def show_status_message(self, message: str) -> None:
        """A message in the status bar for a while."""
        self.statusBar().showMessage(message, 10_000)

    @Slot(object)
    def on_snapshot(self, snapshot: QueueSnapshot) -> None:
        """Counts arrived: the window title carries the Awaiting Customer Contact count, as a reminder."""
        waiting = snapshot.count("Awaiting Customer Contact")
        self.setWindowTitle(f"Callslip — Borrowing ({waiting} awaiting customer contact)")

    @Slot(bool)
    def on_busy_changed(self, busy: bool) -> None:
        """Show the busy indicator only for work that takes a moment."""
        if busy:
            self._busy_timer.start()
        else:
            self._busy_timer.stop()
            self.busy_bar.hide()
            self.workspace.unsetCursor()

    @Slot()
    def show_busy(self) -> None:
        """Work is still running after the delay: say so (the window keeps repainting)."""
        self.busy_bar.show()
        self.workspace.setCursor(Qt.CursorShape.BusyCursor)
        self.busy_bar.setToolTip(f"Waiting for the database {self.ctx.db.display_name}…")

    @Slot()
    def on_database_changed(self) -> None:
        """Another database is in use: relabel (the workspace reloads itself)."""
        self._update_database_label()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Close request forms (they may ask about unsaved edits), remember the layout, stop background work."""
        if self._closed:
            super().closeEvent(event)
            return
        for form in self.findChildren(RequestForm):
            if form.isVisible() and not form.close():
                event.ignore()
                return
        self._closed = True
        self.save_state()
        self.workspace.stop()
        self._busy_timer.stop()
        if self.poller is not None:
            self.poller.shutdown()
        self.ctx.shutdown()
        super().closeEvent(event)
