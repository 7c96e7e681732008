"""The Settings dialog (``settingsDialog``): this workstation's database, SMTP server and System Manager.

Everything a library would otherwise edit in a file, with a Test connection for the database and for SMTP
that says in one sentence what is wrong. Passwords go to the OS keyring only (:func:`desktop.secrets.set_secret`)
— never into the settings file, the database, a log line or a message; a password field left empty keeps the
stored one. Saving applies at once: new settings reach every window (the poller uses them on its next cycle)
and a different database is opened on a worker thread and swapped in, so nobody restarts the app.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from functools import partial
from typing import cast

import phonenumbers
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.config import (
    DATABASE_KEYRING_SERVICE,
    SMTP_KEYRING_SERVICE,
    ConfigError,
    Settings,
    SmtpSecurity,
    default_database_path,
    save_settings,
)
from desktop.secrets import (
    BOUNCE_IMAP_KEYRING_SERVICE,
    SecretStoreError,
    bounce_imap_account,
    database_account,
    get_secret,
    set_secret,
    smtp_account,
)
from desktop.services.admin.connection_check import (
    DEFAULT_PG_PORT,
    DatabaseCheck,
    SmtpCheck,
    check_database,
    check_smtp,
    postgres_database_url,
    same_database,
    scrub,
    split_database_url,
    sqlite_database_url,
    url_for_opening,
)
from desktop.services.admin.database_problems import missing_sqlite_file, open_checked
from desktop.services.database import Database
from desktop.ui.context import AppContext
from desktop.ui.threads import TaskRunner
from desktop.ui.widgets.colours import Tone, set_tone
from desktop.ui.widgets.paper import page_size_for

STORED_PLACEHOLDER = "stored in the keyring — leave empty to keep it"
SECURITY_LABELS = (
    (SmtpSecurity.NONE.value, "None (plain, port 25)"),
    (SmtpSecurity.STARTTLS.value, "STARTTLS (port 587)"),
    (SmtpSecurity.SSL.value, "TLS / SSL (port 465)"),
)


def _database_password(url: str, typed: str) -> str | None:
    """The typed database password, else the one the keyring holds for that account (worker thread: a locked
    keyring may wait for its owner)."""
    if typed or url.startswith("sqlite"):
        return typed or None
    return get_secret(DATABASE_KEYRING_SERVICE, database_account(url))


def _smtp_password(settings: Settings, typed: str) -> str | None:
    """The typed SMTP password, else the stored one for that account (worker thread)."""
    if typed or not settings.smtp_username:
        return typed or None
    return get_secret(SMTP_KEYRING_SERVICE, smtp_account(settings))


def _check_database_job(url: str, typed_password: str) -> DatabaseCheck:
    return check_database(url, _database_password(url, typed_password))


def _check_smtp_job(settings: Settings, typed_password: str, ssl_context: ssl.SSLContext | None) -> SmtpCheck:
    return check_smtp(settings, _smtp_password(settings, typed_password), ssl_context=ssl_context)


@dataclass(frozen=True)
class _Save:
    """What the form holds when staff press Save: passwords typed (empty keeps the stored one)."""

    settings: Settings
    url: str
    reopen: bool  # the database differs from the one in use
    db_password: str
    smtp_password: str
    bounce_password: str = ""


@dataclass(frozen=True)
class _Saved:
    """A finished save: the database to switch to (``None``: the same one), or nothing if the dialog went."""

    db: Database | None
    settings: Settings | None  # what was saved; None when nothing was


class _Handoff:
    """A finished save's result, until the dialog takes it.

    Why: the worker may finish (database opened, settings written) just before the dialog closes; the runner then
    drops the result's callback, and the new database would stay open with nobody to use or close it while the
    settings file already names it. The dialog takes the result here when it arrives, and applies whatever is left
    when it goes, so the file and the running program agree.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: _Saved | None = None

    def put(self, saved: _Saved) -> None:
        with self._lock:
            self._saved = saved

    def take(self) -> _Saved | None:
        with self._lock:
            saved, self._saved = self._saved, None
            return saved


def _save_job(save: _Save, cancelled: threading.Event, handoff: _Handoff | None = None) -> _Saved:
    """Worker thread: open the chosen database (if it changed), then store typed passwords in the keyring and
    write the settings file. Nothing is stored unless the database opened; if the dialog was closed meanwhile
    nobody takes the new database, so it is closed here and nothing is saved.

    Raises:
        ServiceError, SecretStoreError, OSError: what went wrong (nothing was saved).
    """
    db: Database | None = None
    if save.reopen:
        password = _database_password(save.url, save.db_password)  # SecretStoreError: its own sentence
        # A missing SQLite file is created only because staff were asked and agreed (see SettingsDialog.save).
        db, _result = open_checked(url_for_opening(save.url, password), create=True)
    try:
        if cancelled.is_set():
            if db is not None:
                db.dispose()
            return _Saved(None, None)
        if save.db_password and not save.url.startswith("sqlite"):
            set_secret(DATABASE_KEYRING_SERVICE, database_account(save.url), save.db_password)
        if save.smtp_password and save.settings.smtp_username:
            set_secret(SMTP_KEYRING_SERVICE, smtp_account(save.settings), save.smtp_password)
        if save.bounce_password and save.settings.bounce_imap_host:
            set_secret(BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_account(save.settings), save.bounce_password)
        save_settings(save.settings)
    except BaseException:
        if db is not None:
            db.dispose()
        raise
    saved = _Saved(db, save.settings)
    if handoff is not None:
        handoff.put(saved)
    return saved


class SettingsDialog(QDialog):
    """Per-workstation settings (see the module docstring).

    Attributes:
        saved_settings: the settings stored by the last successful Save (``None`` before).
    """

    def __init__(
        self,
        ctx: AppContext,
        parent: QWidget | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        shown_database_url: str | None = None,
    ) -> None:
        """Args:
        shown_database_url: the database to show when it is not the one open (the start-up page shows the one
            that failed to open); default: the database this workstation has open.
        """
        super().__init__(parent)
        self.ctx = ctx
        #: The database shown when the dialog opened: the one actually open (``--database`` included), so Save
        #: changes the database only when staff changed these fields, and Test Connection tests what is shown.
        self._shown_url = shown_database_url or ctx.db.url.render_as_string(hide_password=True)
        self._loaded_url = ""
        self.switch_box: QMessageBox | None = None
        self._pending_save: _Save | None = None
        self._ssl_context = ssl_context
        self.saved_settings: Settings | None = None
        self._runner = TaskRunner("callslip-settings-checks", self)
        self._closing = threading.Event()
        self._handoff = _Handoff()
        self.setObjectName("settingsDialog")
        self.setAccessibleName("Settings")
        self.setWindowTitle("Settings — this workstation")
        self.setModal(True)
        self.setMinimumWidth(940)
        self._build()
        self._load(ctx.settings)
        self._loaded_url = self.database_url()
        if ctx.demo:  # a demo workstation's settings are not this workstation's: never written over them
            self.saveButton.setEnabled(False)
            self.errorLabel.setText(
                "Demo mode (--demo / --screenshot): nothing here is saved. Start Callslip without --demo to change "
                "this workstation's settings."
            )

    # ------------------------------------------------------------------------------------------------ building

    def _build(self) -> None:
        root = QVBoxLayout(self)
        columns = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(self._build_database())
        left.addWidget(self._build_workstation())
        left.addStretch(1)
        columns.addLayout(left, 1)
        right = QVBoxLayout()
        right.addWidget(self._build_smtp())
        right.addWidget(self._build_bounces())
        right.addStretch(1)
        columns.addLayout(right, 1)
        root.addLayout(columns)

        self.errorLabel = QLabel("", self)
        self.errorLabel.setObjectName("settingsErrorLabel")
        self.errorLabel.setWordWrap(True)
        set_tone(self.errorLabel, Tone.ERROR)
        root.addWidget(self.errorLabel)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.saveButton = QPushButton("&Save", self)
        self.saveButton.setObjectName("saveSettingsButton")
        self.saveButton.setAccessibleName("Save settings")
        self.saveButton.setDefault(True)
        self.saveButton.clicked.connect(self.save)
        self.cancelButton = QPushButton("Cancel", self)
        self.cancelButton.setObjectName("cancelSettingsButton")
        self.cancelButton.setAccessibleName("Cancel")
        self.cancelButton.setAutoDefault(False)
        self.cancelButton.clicked.connect(self.reject)
        buttons.addWidget(self.saveButton)
        buttons.addWidget(self.cancelButton)
        root.addLayout(buttons)

    def _name(self, widget: QWidget, object_name: str, accessible: str) -> None:
        widget.setObjectName(object_name)
        widget.setAccessibleName(accessible)

    def _build_database(self) -> QGroupBox:
        box = QGroupBox("Database", self)
        box.setObjectName("databaseGroup")
        layout = QVBoxLayout(box)
        kinds = QHBoxLayout()
        self.sqliteRadio = QRadioButton("&Local file (SQLite)", box)
        self._name(self.sqliteRadio, "sqliteRadio", "Database is a local SQLite file")
        self.postgresRadio = QRadioButton("Shared server (&PostgreSQL)", box)
        self._name(self.postgresRadio, "postgresRadio", "Database is on a PostgreSQL server")
        group = QButtonGroup(box)
        group.addButton(self.sqliteRadio)
        group.addButton(self.postgresRadio)
        kinds.addWidget(self.sqliteRadio)
        kinds.addWidget(self.postgresRadio)
        kinds.addStretch(1)
        layout.addLayout(kinds)

        sqlite_page = QWidget(box)
        self._sqlite_page = sqlite_page
        sqlite_form = QFormLayout(sqlite_page)
        sqlite_form.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.sqlitePathEdit = QLineEdit(sqlite_page)
        self._name(self.sqlitePathEdit, "sqlitePathEdit", "SQLite database file")
        self.sqlitePathEdit.setPlaceholderText(f"default: {default_database_path()}")
        self.sqlitePathEdit.setToolTip("Leave empty to use this user's own database file")
        self.browseDatabaseButton = QPushButton("&Browse…", sqlite_page)
        self._name(self.browseDatabaseButton, "browseDatabaseButton", "Choose the database file")
        self.browseDatabaseButton.setAutoDefault(False)
        self.browseDatabaseButton.clicked.connect(self.browse_database)
        row.addWidget(self.sqlitePathEdit, 1)
        row.addWidget(self.browseDatabaseButton)
        sqlite_form.addRow("File:", row)
        layout.addWidget(sqlite_page)

        pg_page = QWidget(box)
        self._pg_page = pg_page
        pg_form = QFormLayout(pg_page)
        pg_form.setContentsMargins(0, 0, 0, 0)
        self.pgHostEdit = QLineEdit(pg_page)
        self._name(self.pgHostEdit, "pgHostEdit", "PostgreSQL host")
        self.pgPortSpin = QSpinBox(pg_page)
        self._name(self.pgPortSpin, "pgPortSpin", "PostgreSQL port")
        self.pgPortSpin.setRange(1, 65535)
        self.pgPortSpin.setValue(DEFAULT_PG_PORT)
        self.pgDatabaseEdit = QLineEdit(pg_page)
        self._name(self.pgDatabaseEdit, "pgDatabaseEdit", "PostgreSQL database name")
        self.pgUserEdit = QLineEdit(pg_page)
        self._name(self.pgUserEdit, "pgUserEdit", "PostgreSQL user name")
        self.pgPasswordEdit = QLineEdit(pg_page)
        self._name(self.pgPasswordEdit, "pgPasswordEdit", "PostgreSQL password")
        self.pgPasswordEdit.setEchoMode(QLineEdit.EchoMode.Password)
        for label, widget in (
            ("&Host:", self.pgHostEdit),
            ("Po&rt:", self.pgPortSpin),
            ("Data&base:", self.pgDatabaseEdit),
            ("&User:", self.pgUserEdit),
            ("Pass&word:", self.pgPasswordEdit),
        ):
            pg_form.addRow(label, widget)
        layout.addWidget(pg_page)
        self.sqliteRadio.toggled.connect(self._on_kind_toggled)

        test_row = QHBoxLayout()
        self.testDatabaseButton = QPushButton("&Test Connection", box)
        self._name(self.testDatabaseButton, "testDatabaseButton", "Test the database connection")
        self.testDatabaseButton.setAutoDefault(False)
        self.testDatabaseButton.clicked.connect(self.test_database)
        test_row.addWidget(self.testDatabaseButton)
        test_row.addStretch(1)
        layout.addLayout(test_row)
        self.databaseNoteLabel = QLabel("", box)
        self._name(self.databaseNoteLabel, "databaseNoteLabel", "Which database is open")
        self.databaseNoteLabel.setWordWrap(True)
        self.databaseNoteLabel.setVisible(False)
        layout.addWidget(self.databaseNoteLabel)
        self.databaseResultLabel = QLabel("", box)
        self._name(self.databaseResultLabel, "databaseResultLabel", "Database test result")
        self.databaseResultLabel.setWordWrap(True)
        self.databaseResultLabel.setMinimumHeight(self.fontMetrics().lineSpacing() * 3)
        layout.addWidget(self.databaseResultLabel)
        return box

    def _build_smtp(self) -> QGroupBox:
        box = QGroupBox("Outgoing e-mail (SMTP)", self)
        box.setObjectName("smtpGroup")
        layout = QVBoxLayout(box)
        form = QFormLayout()
        self.smtpHostEdit = QLineEdit(box)
        self._name(self.smtpHostEdit, "smtpHostEdit", "SMTP server")
        self.smtpHostEdit.setPlaceholderText("smtp.library.example.org (empty: e-mail is not sent)")
        self.smtpPortSpin = QSpinBox(box)
        self._name(self.smtpPortSpin, "smtpPortSpin", "SMTP port")
        self.smtpPortSpin.setRange(0, 65535)
        self.smtpPortSpin.setSpecialValueText("usual for the security")
        self.smtpSecurityCombo = QComboBox(box)
        self._name(self.smtpSecurityCombo, "smtpSecurityCombo", "SMTP security")
        for value, label in SECURITY_LABELS:
            self.smtpSecurityCombo.addItem(label, value)
        self.smtpUserEdit = QLineEdit(box)
        self._name(self.smtpUserEdit, "smtpUserEdit", "SMTP user name")
        self.smtpUserEdit.setPlaceholderText("empty: no login")
        self.smtpPasswordEdit = QLineEdit(box)
        self._name(self.smtpPasswordEdit, "smtpPasswordEdit", "SMTP password")
        self.smtpPasswordEdit.setEchoMode(QLineEdit.EchoMode.Password)
        self.smtpFromEdit = QLineEdit(box)
        self._name(self.smtpFromEdit, "smtpFromEdit", "From address")
        self.smtpFromEdit.setPlaceholderText("used when a template has no From address")
        self.smtpCaFileEdit = QLineEdit(box)
        self._name(self.smtpCaFileEdit, "smtpCaFileEdit", "CA certificate file")
        self.smtpCaFileEdit.setPlaceholderText("PEM file of an internal CA (empty: the system's certificates)")
        for label, widget in (
            ("Ser&ver:", self.smtpHostEdit),
            ("P&ort:", self.smtpPortSpin),
            ("S&ecurity:", self.smtpSecurityCombo),
            ("User na&me:", self.smtpUserEdit),
            ("Passwor&d:", self.smtpPasswordEdit),
            ("&From address:", self.smtpFromEdit),
            ("CA certificate f&ile:", self.smtpCaFileEdit),
        ):
            form.addRow(label, widget)
        self.bounceVerpCheck = QCheckBox("Per-notice return &address (ill+n-…@; the mailbox must take + addresses)")
        self._name(self.bounceVerpCheck, "bounceVerpCheck", "Per-notice return address for bounces (VERP)")
        self.bounceVerpCheck.setToolTip(
            "Each notice's envelope sender becomes local+n-<token>@domain, so every bounce names its notice. "
            "Leave off if the library's mailbox refuses sub-addressed mail; bounces are then matched by Message-ID."
        )
        form.addRow(self.bounceVerpCheck)
        layout.addLayout(form)
        test_row = QHBoxLayout()
        self.testSmtpButton = QPushButton("Test &Connection", box)
        self._name(self.testSmtpButton, "testSmtpButton", "Test the SMTP connection")
        self.testSmtpButton.setAutoDefault(False)
        self.testSmtpButton.setToolTip("Connects, secures and logs in, then disconnects: nothing is sent")
        self.testSmtpButton.clicked.connect(self.test_smtp)
        test_row.addWidget(self.testSmtpButton)
        test_row.addStretch(1)
        layout.addLayout(test_row)
        self.smtpResultLabel = QLabel("", box)
        self._name(self.smtpResultLabel, "smtpResultLabel", "SMTP test result")
        self.smtpResultLabel.setWordWrap(True)
        self.smtpResultLabel.setMinimumHeight(self.fontMetrics().lineSpacing() * 3)
        layout.addWidget(self.smtpResultLabel)
        return box

    def _build_bounces(self) -> QGroupBox:
        """The bounce mailbox (issue 19): read over IMAPS by the System Manager; the password goes to the keyring."""
        box = QGroupBox("Bounces (IMAP mailbox of the From address)", self)
        box.setObjectName("bouncesGroup")
        form = QFormLayout(box)
        self.bounceHostEdit = QLineEdit(box)
        self._name(self.bounceHostEdit, "bounceHostEdit", "Bounce mailbox IMAP server")
        self.bounceHostEdit.setPlaceholderText("imap.library.example.org (empty: bounces are not read)")
        self.bouncePortSpin = QSpinBox(box)
        self._name(self.bouncePortSpin, "bouncePortSpin", "Bounce mailbox IMAPS port")
        self.bouncePortSpin.setRange(1, 65535)
        self.bounceUserEdit = QLineEdit(box)
        self._name(self.bounceUserEdit, "bounceUserEdit", "Bounce mailbox user name")
        self.bouncePasswordEdit = QLineEdit(box)
        self._name(self.bouncePasswordEdit, "bouncePasswordEdit", "Bounce mailbox password")
        self.bouncePasswordEdit.setEchoMode(QLineEdit.EchoMode.Password)
        self.bouncePasswordEdit.setPlaceholderText("empty: keep the stored one")
        self.bounceFolderEdit = QLineEdit(box)
        self._name(self.bounceFolderEdit, "bounceFolderEdit", "Bounce mailbox folder")
        self.bounceDoneFolderEdit = QLineEdit(box)
        self._name(self.bounceDoneFolderEdit, "bounceDoneFolderEdit", "Folder for handled bounces")
        self.bounceDoneFolderEdit.setPlaceholderText("empty: handled bounces stay, marked read")
        for label, widget in (
            ("IMAP server:", self.bounceHostEdit),
            ("IMAPS port:", self.bouncePortSpin),
            ("User name:", self.bounceUserEdit),
            ("Password:", self.bouncePasswordEdit),
            ("Folder:", self.bounceFolderEdit),
            ("Move handled to:", self.bounceDoneFolderEdit),
        ):
            form.addRow(label, widget)
        return box

    def _build_workstation(self) -> QGroupBox:
        box = QGroupBox("This workstation", self)
        box.setObjectName("workstationGroup")
        form = QFormLayout(box)
        self.runPollerCheck = QCheckBox("Run the S&ystem Manager here (sends e-mail notices)", box)
        self._name(self.runPollerCheck, "runPollerCheck", "Run the System Manager poller on this workstation")
        form.addRow(self.runPollerCheck)
        self.staffNameEdit = QLineEdit(box)
        self._name(self.staffNameEdit, "staffNameEdit", "Staff name recorded in Tracking")
        self.webBaseUrlEdit = QLineEdit(box)
        self._name(self.webBaseUrlEdit, "webBaseUrlEdit", "Web site base URL for password reset links")
        self.webBaseUrlEdit.setToolTip("The reset token is appended to this address in Password Reset e-mails")
        self.phoneRegionCombo = QComboBox(box)
        self._name(self.phoneRegionCombo, "phoneRegionCombo", "Default phone region")
        self.phoneRegionCombo.setEditable(True)
        self.phoneRegionCombo.addItems(sorted(phonenumbers.SUPPORTED_REGIONS))
        self.phoneRegionCombo.setToolTip("Country of phone numbers typed without a +country code")
        form.addRow("Staff &name:", self.staffNameEdit)
        form.addRow("Reset lin&k base:", self.webBaseUrlEdit)
        self.paperSizeCombo = QComboBox(box)
        self._name(self.paperSizeCombo, "paperSizeCombo", "Paper size of printed notices")
        locale_paper = page_size_for("").name()
        self.paperSizeCombo.addItem(f"As the locale says ({locale_paper})", "")
        for value, label in (("letter", "US Letter"), ("legal", "US Legal"), ("a4", "A4")):
            self.paperSizeCombo.addItem(label, value)
        self.paperSizeCombo.setToolTip(
            "The sheet printed notices are laid out on; the locale's is US Letter in the US and Canada, A4 elsewhere"
        )
        form.addRow("Phone re&gion:", self.phoneRegionCombo)
        form.addRow("Paper si&ze:", self.paperSizeCombo)
        return box

    # ------------------------------------------------------------------------------------------------ loading

    def _load(self, settings: Settings) -> None:
        form = split_database_url(self._shown_url)
        configured = settings.resolved_database_url()
        if not same_database(self._shown_url, configured):
            self.databaseNoteLabel.setText(
                f"Open now: {_where(self._shown_url)} (given when Callslip started). The settings file names "
                f"{_where(configured)}; Save keeps that unless you change the database here."
            )
            self.databaseNoteLabel.setVisible(True)
        if form.kind == "sqlite":
            self.sqliteRadio.setChecked(True)
            default = str(default_database_path())
            self.sqlitePathEdit.setText("" if not settings.database_url and form.path == default else form.path)
        else:
            self.postgresRadio.setChecked(True)
            self.pgHostEdit.setText(form.host)
            self.pgPortSpin.setValue(form.port)
            self.pgDatabaseEdit.setText(form.database)
            self.pgUserEdit.setText(form.user)
        self._on_kind_toggled(self.sqliteRadio.isChecked())
        self.smtpHostEdit.setText(settings.smtp_host)
        self.smtpPortSpin.setValue(settings.smtp_port)
        index = self.smtpSecurityCombo.findData(settings.smtp_security)
        self.smtpSecurityCombo.setCurrentIndex(max(index, 0))
        self.smtpUserEdit.setText(settings.smtp_username)
        self.smtpFromEdit.setText(settings.smtp_from)
        self.smtpCaFileEdit.setText(settings.smtp_ca_file)
        self.bounceVerpCheck.setChecked(settings.bounce_verp)
        self.bounceHostEdit.setText(settings.bounce_imap_host)
        self.bouncePortSpin.setValue(settings.bounce_imap_port)
        self.bounceUserEdit.setText(settings.bounce_imap_user)
        self.bounceFolderEdit.setText(settings.bounce_imap_folder)
        self.bounceDoneFolderEdit.setText(settings.bounce_imap_done_folder)
        self.runPollerCheck.setChecked(settings.run_poller)
        self.staffNameEdit.setText(settings.staff_name)
        self.staffNameEdit.setPlaceholderText(settings.effective_staff_name)
        self.webBaseUrlEdit.setText(settings.web_base_url)
        self.phoneRegionCombo.setCurrentText(settings.phone_region)
        self.paperSizeCombo.setCurrentIndex(max(self.paperSizeCombo.findData(settings.paper_size), 0))
        self._show_stored_passwords()

    def _show_stored_passwords(self) -> None:
        """Say (in the placeholder) which passwords the keyring already holds; never show them.

        The keyring is asked on the worker thread: a locked keyring may wait for its owner to unlock it.
        """
        try:
            db_url = self.database_url()
            settings = self._smtp_settings()
        except (ConfigError, ValueError) as exc:
            self.errorLabel.setText(str(exc))
            return
        self.pgPasswordEdit.setPlaceholderText("checking the keyring…")
        self.smtpPasswordEdit.setPlaceholderText("checking the keyring…")
        self._runner.run(
            partial(_stored_passwords, db_url, settings), self._on_stored_passwords, self._on_stored_passwords_failed
        )

    def _on_stored_passwords(self, found: object) -> None:
        has_db, has_smtp = cast(tuple[bool, bool], found)
        self.pgPasswordEdit.setPlaceholderText(STORED_PLACEHOLDER if has_db else "none stored")
        self.smtpPasswordEdit.setPlaceholderText(STORED_PLACEHOLDER if has_smtp else "none stored")

    def _on_stored_passwords_failed(self, error: object) -> None:
        self.pgPasswordEdit.setPlaceholderText("")
        self.smtpPasswordEdit.setPlaceholderText("")
        self.errorLabel.setText(str(error) if isinstance(error, SecretStoreError) else f"keyring: {error}")

    @Slot(bool)
    def _on_kind_toggled(self, sqlite: bool) -> None:
        # Only the fields of the chosen kind are shown (and take room).
        self._sqlite_page.setVisible(sqlite)
        self._pg_page.setVisible(not sqlite)
        self.databaseResultLabel.setText("")

    @Slot()
    def browse_database(self) -> None:
        """Pick an existing database file, or name a new one."""
        start = self.sqlitePathEdit.text().strip() or str(default_database_path())
        path, _filter = QFileDialog.getSaveFileName(
            self,
            "Choose the Callslip database file",
            start,
            "SQLite databases (*.sqlite3 *.sqlite *.db);;All files (*)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.sqlitePathEdit.setText(path)

    # ------------------------------------------------------------------------------------------------ reading

    def database_url(self) -> str:
        """The database URL the form describes (no password in it)."""
        if self.sqliteRadio.isChecked():
            path = self.sqlitePathEdit.text().strip()
            return sqlite_database_url(path) if path else sqlite_database_url(default_database_path())
        return postgres_database_url(
            self.pgHostEdit.text(), self.pgPortSpin.value(), self.pgDatabaseEdit.text(), self.pgUserEdit.text()
        )

    def database_changed(self) -> bool:
        """True when staff changed the database fields since the dialog opened."""
        return not same_database(self.database_url(), self._loaded_url)

    def _configured_database_url(self) -> str:
        """What goes in the settings file: the configured database unless staff changed the fields (a database
        given with ``--database`` is never written there by surprise); empty for the default local file."""
        if not self.database_changed():
            return self.ctx.settings.database_url
        if self.sqliteRadio.isChecked() and not self.sqlitePathEdit.text().strip():
            return ""
        return self.database_url()

    def _smtp_settings(self) -> Settings:
        return self.ctx.settings.with_changes(
            smtp_host=self.smtpHostEdit.text().strip(),
            smtp_port=self.smtpPortSpin.value(),
            smtp_security=str(self.smtpSecurityCombo.currentData()),
            smtp_username=self.smtpUserEdit.text().strip(),
            smtp_from=self.smtpFromEdit.text().strip(),
            smtp_ca_file=self.smtpCaFileEdit.text().strip(),
            bounce_verp=self.bounceVerpCheck.isChecked(),
            bounce_imap_host=self.bounceHostEdit.text().strip(),
            bounce_imap_port=self.bouncePortSpin.value(),
            bounce_imap_user=self.bounceUserEdit.text().strip(),
            bounce_imap_folder=self.bounceFolderEdit.text().strip() or "INBOX",
            bounce_imap_done_folder=self.bounceDoneFolderEdit.text().strip(),
        )

    def settings_from_form(self) -> Settings:
        """The settings as typed.

        Raises:
            ConfigError: a value that cannot be used (the message names it).
        """
        web = self.webBaseUrlEdit.text().strip()
        if web and not web.lower().startswith(("https://", "http://")):
            raise ConfigError("The reset link base must start with https:// (or http://)")
        if self.postgresRadio.isChecked():
            missing = [
                name
                for name, edit in (
                    ("host", self.pgHostEdit),
                    ("database", self.pgDatabaseEdit),
                    ("user", self.pgUserEdit),
                )
                if not edit.text().strip()
            ]
            if missing:
                raise ConfigError(f"PostgreSQL needs a {', '.join(missing)}")
        return self._smtp_settings().with_changes(
            database_url=self._configured_database_url(),
            run_poller=self.runPollerCheck.isChecked(),
            staff_name=self.staffNameEdit.text().strip(),
            web_base_url=web,
            phone_region=self.phoneRegionCombo.currentText().strip().upper(),
            paper_size=str(self.paperSizeCombo.currentData() or ""),
        )

    # ------------------------------------------------------------------------------------------------ testing

    @Slot()
    def test_database(self) -> None:
        """Try the database described by the form (on a worker thread) and show what happened."""
        try:
            url = self.database_url()
        except ValueError as exc:
            self._show(self.databaseResultLabel, False, str(exc))
            return
        self.testDatabaseButton.setEnabled(False)
        set_tone(self.databaseResultLabel, None)
        self.databaseResultLabel.setText("Testing…")
        job = partial(_check_database_job, url, self.pgPasswordEdit.text())
        self._runner.run(job, self._on_database_tested, self._on_database_error)

    def _on_database_tested(self, result: object) -> None:
        self.testDatabaseButton.setEnabled(True)
        assert isinstance(result, DatabaseCheck)
        self._show(self.databaseResultLabel, result.usable, result.message)

    def _on_database_error(self, error: object) -> None:
        self.testDatabaseButton.setEnabled(True)
        self._show(self.databaseResultLabel, False, scrub(str(error), self.pgPasswordEdit.text()))

    @Slot()
    def test_smtp(self) -> None:
        """Connect to the SMTP server as typed, say whether TLS and AUTH worked; nothing is sent."""
        try:
            settings = self._smtp_settings()
        except ConfigError as exc:
            self._show(self.smtpResultLabel, False, str(exc))
            return
        self.testSmtpButton.setEnabled(False)
        set_tone(self.smtpResultLabel, None)
        self.smtpResultLabel.setText("Testing…")
        job = partial(_check_smtp_job, settings, self.smtpPasswordEdit.text(), self._ssl_context)
        self._runner.run(job, self._on_smtp_tested, self._on_smtp_error)

    def _on_smtp_tested(self, result: object) -> None:
        self.testSmtpButton.setEnabled(True)
        assert isinstance(result, SmtpCheck)
        self._show(self.smtpResultLabel, result.ok, result.message)

    def _on_smtp_error(self, error: object) -> None:
        self.testSmtpButton.setEnabled(True)
        self._show(self.smtpResultLabel, False, scrub(str(error), self.smtpPasswordEdit.text()))

    def _show(self, label: QLabel, ok: bool, message: str) -> None:
        set_tone(label, Tone.OK if ok else Tone.ERROR)
        label.setText(("✔ " if ok else "✖ ") + message)

    @property
    def busy(self) -> bool:
        """True while a test or the opening of a database runs."""
        return self._runner.busy

    # ------------------------------------------------------------------------------------------------ saving

    @Slot()
    def save(self) -> None:
        """Check the form, then on the worker thread: open the database if it changed, store typed passwords in
        the keyring and write the settings file; then apply. On any problem nothing is saved and the form stays
        as typed."""
        self.errorLabel.setText("")
        try:
            new = self.settings_from_form()
        except (ConfigError, ValueError) as exc:
            self.errorLabel.setText(str(exc))
            return
        url = self.database_url()
        reopen = not same_database(url, self.ctx.db.url)
        save = _Save(new, url, reopen, self.pgPasswordEdit.text(), self.smtpPasswordEdit.text(),
                     self.bouncePasswordEdit.text())  # fmt: skip
        missing = missing_sqlite_file(url) if reopen else None
        if self.database_changed() or missing is not None:
            self._ask_before_switching(save, missing=missing is not None, changed=self.database_changed())
            return
        self._start_save(save)

    def _ask_before_switching(self, save: _Save, *, missing: bool, changed: bool) -> None:
        """Name both databases and ask; a file that does not exist is created only if staff say so."""
        if changed:
            text = f"Switch this workstation from {_where(self._loaded_url)} to {_where(save.url)}?"
            if missing:
                text += f"\n\n{_where(save.url)} does not exist yet: a new, empty database will be created there."
            text += "\n\nEvery window then shows the other database's requests and patrons."
        else:
            text = f"{_where(save.url)} does not exist. Create a new, empty database there?"
        box = QMessageBox(QMessageBox.Icon.Question, "Switch database", text, QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("switchDatabaseBox")
        accept = box.addButton("Create and Switch" if missing else "Switch", QMessageBox.ButtonRole.AcceptRole)
        accept.setObjectName("switchDatabaseButton")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self._pending_save = save
        self.switch_box = box
        box.finished.connect(self._on_switch_answered)
        box.open()

    @Slot(int)
    def _on_switch_answered(self, _result: int) -> None:
        box, save = self.switch_box, self._pending_save
        self.switch_box, self._pending_save = None, None
        if box is None or save is None:
            return
        accepted = box.buttonRole(box.clickedButton()) == QMessageBox.ButtonRole.AcceptRole
        box.deleteLater()
        if accepted:
            self._start_save(save)
        else:
            self.errorLabel.setText("Nothing was saved: the database was not switched.")

    def _start_save(self, save: _Save) -> None:
        url, reopen = save.url, save.reopen
        self.saveButton.setEnabled(False)
        set_tone(self.errorLabel, None)
        self.errorLabel.setText(f"Opening {split_database_url(url).path or url}…" if reopen else "Saving…")
        self._runner.run(partial(_save_job, save, self._closing, self._handoff), self._on_saved,
                         self._on_save_failed)  # fmt: skip

    def _on_saved(self, result: object) -> None:
        assert isinstance(result, _Saved)
        self._handoff.take()  # delivered: the result's database is this method's to use
        self.saveButton.setEnabled(True)
        new = result.settings
        if new is None:  # the dialog was closed while the database opened
            return
        self.pgPasswordEdit.clear()
        self.smtpPasswordEdit.clear()
        self.bouncePasswordEdit.clear()
        self.errorLabel.setText("")
        self._apply(result)
        self.accept()

    def _apply(self, result: _Saved) -> None:
        """Make the running program use what was saved: the settings, and the database if it changed."""
        assert result.settings is not None
        self.saved_settings = result.settings
        self.ctx.apply_settings(result.settings)
        if result.db is not None:
            self.ctx.switch_database(result.db)
        self.ctx.changed.emit("settings")

    def _on_save_failed(self, error: object) -> None:
        self.saveButton.setEnabled(True)
        set_tone(self.errorLabel, Tone.ERROR)
        message = scrub(scrub(str(error), self.pgPasswordEdit.text()), self.smtpPasswordEdit.text())
        message = scrub(message, self.bouncePasswordEdit.text())
        self.errorLabel.setText(f"Nothing was saved: {message}")

    def done(self, result: int) -> None:
        """Stop the worker thread before the dialog goes (a running test is waited for; a database still being
        opened is closed again)."""
        self._closing.set()
        self._runner.shutdown()
        left = self._handoff.take()  # saved just before the dialog went: its result will never be delivered
        if left is not None and left.settings is not None:
            self._apply(left)  # the settings file names it already: the program follows the file
        super().done(result)


def open_settings_dialog(ctx: AppContext, parent: QWidget | None = None) -> SettingsDialog:
    """Show the Settings dialog (window-modal) for ``ctx``; the System tab and the first-run page call this."""
    dialog = SettingsDialog(ctx, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    dialog.open()
    return dialog


def _where(url: str) -> str:
    """A database as staff know it: the file path, or ``user@host:port/database``."""
    form = split_database_url(url)
    return form.path if form.kind == "sqlite" else database_account(url)


def _stored_passwords(db_url: str, settings: Settings) -> tuple[bool, bool]:
    """Whether the keyring holds a database password and an SMTP password for these accounts (worker thread)."""
    has_db = not db_url.startswith("sqlite") and bool(get_secret(DATABASE_KEYRING_SERVICE, database_account(db_url)))
    has_smtp = bool(settings.smtp_username) and bool(get_secret(SMTP_KEYRING_SERVICE, smtp_account(settings)))
    return has_db, has_smtp
