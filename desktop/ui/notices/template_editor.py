"""The notification template editor (Customization Manager → Notification Templates → Edit).

ILLiad's editor, with what it lacked: every field of the template (From, To, CC, BCC, Subject, text and HTML
bodies — or the page body of a printed notice), the list of variables to insert (double-click, or right-click
in any field → Insert Field, as ILLiad's field list), a live preview rendered from a real request while staff
type (debounced, rendered on a worker thread; stale results are dropped), and Send test e-mail. Saving is
validated by the service: problems are listed with the part, line and column and clicking one puts the cursor
there; nothing typed is ever lost, and a save that would overwrite someone else's newer version is refused
with their name (staff may then knowingly save over it).
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QKeySequence, QPalette, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.config import Settings
from desktop.domain.sms_text import DEFAULT_MAX_SEGMENTS, fit_to_segments, measure
from desktop.secrets import smtp_password
from desktop.services.database import Database
from desktop.services.notices import template_admin
from desktop.services.notices.template_admin import (
    PART_LABELS,
    Preview,
    TemplateConflictError,
    TemplateProblem,
    TemplateRecord,
    TemplateValidationError,
    TestSendResult,
)
from desktop.services.notices.templates import CONTEXT_NAMES, TemplateFields
from desktop.ui.context import AppContext
from desktop.ui.threads import TaskRunner
from desktop.ui.widgets.colours import Tone, set_tone
from desktop.ui.window_state import restore_geometry, save_geometry

PREVIEW_DELAY_MS = 400
SAVING = "Saving…"
#: Parts that are single lines (QLineEdit) versus bodies (QPlainTextEdit), in the editor's order.
LINE_PARTS = ("from_name", "from_address", "to_address", "cc", "bcc", "subject")
BODY_PARTS = ("body_text", "body_html")
ROLE_PROBLEM = Qt.ItemDataRole.UserRole
ROLE_FIELD = Qt.ItemDataRole.UserRole


def insertion_text(name: str) -> str:
    """What inserting a variable types: ``{{ name }}``, or a loop for the lists of lines."""
    if name.endswith("_lines"):
        return f"{{% for line in {name} %}}{{{{ line }}}}\n{{% endfor %}}"
    return f"{{{{ {name} }}}}"


def _send_test(
    db: Database,
    settings: Settings,
    fields: TemplateFields,
    to: str,
    transaction_number: int | None,
    ssl_context: ssl.SSLContext | None,
) -> TestSendResult:
    """Worker-thread job: read the SMTP password from the keyring, then render and send the test."""
    password = smtp_password(settings, allow_env=False)
    return template_admin.send_test_email(
        db, settings, fields, to, password=password, transaction_number=transaction_number, ssl_context=ssl_context
    )


class TemplateEditor(QDialog):
    """Edits one notification template.

    Signals:
        saved(object): the :class:`TemplateRecord` just stored (the list refreshes from it).
    """

    saved = Signal(object)

    def __init__(
        self,
        ctx: AppContext,
        record: TemplateRecord,
        parent: QWidget | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.record = record
        self._ssl_context = ssl_context
        self._generation = 0
        self._discard_confirmed = False
        self._conflict_version: int | None = None
        self._saving = False
        self._last_part = "body_html" if record.fields.channel == "print" else "body_text"
        self._menu_target = ""
        #: Texts longer than this many segments are cut when sent (Settings → SMS; issue 18).
        self.max_sms_segments = DEFAULT_MAX_SEGMENTS
        self.last_preview: Preview | None = None
        self._runner = TaskRunner("callslip-template-editor", self)
        self.setObjectName("templateEditor")
        self.setAccessibleName(f"Template editor: {record.fields.name}")
        self.setWindowTitle(f"Edit Template — {record.fields.name}")
        self.setModal(False)
        self.resize(1240, 820)

        self.editors: dict[str, QLineEdit | QPlainTextEdit] = {}
        self._build()
        self._load(record.fields)
        self._preview_timer = self.ctx.timer(self, PREVIEW_DELAY_MS, self.refresh_preview, single_shot=True)
        for editor in self.editors.values():
            editor.textChanged.connect(self._on_text_changed)
        self.descriptionEdit.textChanged.connect(self._on_text_changed)
        restore_geometry(self, "templateEditor/geometry")
        self.refresh_preview()

    # ------------------------------------------------------------------------------------------------ building

    def _build(self) -> None:
        is_print = self.record.fields.channel == "print"
        root = QVBoxLayout(self)

        title = QLabel(f"<b>{self.record.fields.name}</b> — {'printed notice' if is_print else 'e-mail'}")
        title.setObjectName("templateTitleLabel")
        root.addWidget(title)
        self.deletedBanner = QLabel(
            "This template is deleted: this notice is not sent. Saving keeps it deleted; "
            "use Undelete or Restore default in the template list to send it again."
        )
        self.deletedBanner.setObjectName("deletedBanner")
        set_tone(self.deletedBanner, Tone.WARNING, banner=True)
        self.deletedBanner.setWordWrap(True)
        self.deletedBanner.setVisible(self.record.deleted)
        root.addWidget(self.deletedBanner)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setObjectName("templateEditorSplitter")
        root.addWidget(splitter, 1)

        # Left: the template's fields.
        left = QWidget(splitter)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.descriptionEdit = QLineEdit(left)
        self.descriptionEdit.setObjectName("descriptionEdit")
        self.descriptionEdit.setAccessibleName("Description")
        form.addRow("&Description:", self.descriptionEdit)
        names = {
            "from_name": ("fromNameEdit", "From &name:"),
            "from_address": ("fromAddressEdit", "&From address:"),
            "to_address": ("toEdit", "&To:"),
            "cc": ("ccEdit", "&CC:"),
            "bcc": ("bccEdit", "&BCC:"),
            "subject": ("subjectEdit", "S&ubject:" if not is_print else "T&itle:"),
        }
        for part in LINE_PARTS:
            object_name, label = names[part]
            edit = QLineEdit(left)
            edit.setObjectName(object_name)
            edit.setAccessibleName(PART_LABELS[part])
            self._prepare_editor(edit, part)
            if is_print and part != "subject":
                edit.setVisible(False)  # a printed page has no sender or recipients
                continue
            form.addRow(label, edit)
        left_layout.addLayout(form)

        self.bodyTabs = QTabWidget(left)
        self.bodyTabs.setObjectName("bodyTabs")
        for part, object_name, label in (
            ("body_text", "bodyTextEdit", "Te&xt body"),
            ("body_html", "bodyHtmlEdit", "&Page body (HTML)" if is_print else "&HTML body"),
        ):
            body = QPlainTextEdit(left)
            body.setObjectName(object_name)
            body.setAccessibleName("Page body" if is_print and part == "body_html" else PART_LABELS[part])
            body.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            font = body.font()
            font.setFamily("monospace")
            body.setFont(font)
            self._prepare_editor(body, part)
            if is_print and part == "body_text":
                body.setVisible(False)
                continue
            self.bodyTabs.addTab(body, label)
        if not is_print:
            self.bodyTabs.addTab(self._build_sms_tab(left), "Text messa&ge (SMS)")
        left_layout.addWidget(self.bodyTabs, 1)

        problems_label = QLabel("Problems (click one to go there):")
        problems_label.setObjectName("problemsLabel")
        left_layout.addWidget(problems_label)
        self.problemsList = QListWidget(left)
        self.problemsList.setObjectName("problemsList")
        self.problemsList.setAccessibleName("Template problems")
        self.problemsList.setMaximumHeight(72)
        set_tone(self.problemsList, Tone.ERROR, role=QPalette.ColorRole.Base)
        self.problemsList.itemActivated.connect(self._on_problem_activated)
        self.problemsList.itemClicked.connect(self._on_problem_activated)
        left_layout.addWidget(self.problemsList)
        splitter.addWidget(left)

        # Right: variables above, preview below.
        right = QSplitter(Qt.Orientation.Vertical, splitter)
        variables_box = QWidget(right)
        variables_layout = QVBoxLayout(variables_box)
        variables_layout.setContentsMargins(0, 0, 0, 0)
        variables_label = QLabel("Variab&les (double-click to insert at the cursor):", variables_box)
        variables_layout.addWidget(variables_label)
        self.variablesList = QTreeWidget(variables_box)
        variables_label.setBuddy(self.variablesList)
        self.variablesList.setObjectName("variablesList")
        self.variablesList.setAccessibleName("Variables to insert")
        self.variablesList.setHeaderLabels(["Field", "Holds"])
        self.variablesList.setRootIsDecorated(False)
        self.variablesList.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for name, meaning in CONTEXT_NAMES.items():
            item = QTreeWidgetItem([name, meaning])
            item.setData(0, ROLE_FIELD, name)
            item.setToolTip(0, insertion_text(name))
            item.setToolTip(1, meaning)
            self.variablesList.addTopLevelItem(item)
        self.variablesList.resizeColumnToContents(0)
        self.variablesList.itemDoubleClicked.connect(self._on_variable_double_clicked)
        variables_layout.addWidget(self.variablesList)
        right.addWidget(variables_box)

        preview_box = QWidget(right)
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        chooser = QHBoxLayout()
        chooser_label = QLabel("Preview with &request:", preview_box)
        self.previewTransactionEdit = QLineEdit(preview_box)
        self.previewTransactionEdit.setObjectName("previewTransactionEdit")
        self.previewTransactionEdit.setAccessibleName("Transaction number for the preview")
        self.previewTransactionEdit.setPlaceholderText("transaction number (default: first waiting)")
        self.previewTransactionEdit.setClearButtonEnabled(True)
        self.previewTransactionEdit.returnPressed.connect(self.refresh_preview)
        chooser_label.setBuddy(self.previewTransactionEdit)
        self.previewButton = QPushButton("Pre&view", preview_box)
        self.previewButton.setObjectName("previewButton")
        self.previewButton.setAccessibleName("Refresh preview")
        self.previewButton.setShortcut(QKeySequence(Qt.Key.Key_F5))
        self.previewButton.setToolTip("Render again (F5)")
        self.previewButton.clicked.connect(self.refresh_preview)
        chooser.addWidget(chooser_label)
        chooser.addWidget(self.previewTransactionEdit, 1)
        chooser.addWidget(self.previewButton)
        preview_layout.addLayout(chooser)
        self.previewSourceLabel = QLabel("", preview_box)
        self.previewSourceLabel.setObjectName("previewSourceLabel")
        self.previewSourceLabel.setWordWrap(True)
        preview_layout.addWidget(self.previewSourceLabel)
        self.previewTabs = QTabWidget(preview_box)
        self.previewTabs.setObjectName("previewTabs")
        self.previewMessage = QTextBrowser(preview_box)
        self.previewMessage.setObjectName("previewMessage")
        self.previewMessage.setAccessibleName("Preview of the message as text")
        mono = self.previewMessage.font()
        mono.setFamily("monospace")
        self.previewMessage.setFont(mono)
        self.previewHtml = QTextBrowser(preview_box)
        self.previewHtml.setObjectName("previewHtml")
        self.previewHtml.setAccessibleName("Preview of the HTML")
        self.previewHtml.setOpenLinks(False)
        self.previewSms = QTextBrowser(preview_box)
        self.previewSms.setObjectName("previewSms")
        self.previewSms.setAccessibleName("Preview of the text message")
        if is_print:
            self.previewTabs.addTab(self.previewHtml, "Printed page")
            self.previewTabs.addTab(self.previewMessage, "Details")
        else:
            self.previewTabs.addTab(self.previewMessage, "Message")
            self.previewTabs.addTab(self.previewHtml, "HTML")
            self.previewTabs.addTab(self.previewSms, "SMS")
        preview_layout.addWidget(self.previewTabs, 1)
        right.addWidget(preview_box)
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        # Bottom: test e-mail, conflict banner, status, buttons.
        test_row = QHBoxLayout()
        test_label = QLabel("Send test e-&mail to:", self)
        self.testAddressEdit = QLineEdit(self)
        self.testAddressEdit.setObjectName("testAddressEdit")
        self.testAddressEdit.setAccessibleName("Test e-mail address")
        self.testAddressEdit.setPlaceholderText("your.address@library.example.org")
        test_label.setBuddy(self.testAddressEdit)
        self.sendTestButton = QPushButton("Send T&est", self)
        self.sendTestButton.setObjectName("sendTestButton")
        self.sendTestButton.setAccessibleName("Send test e-mail")
        self.sendTestButton.clicked.connect(self.send_test)
        self.testAddressEdit.returnPressed.connect(self.send_test)
        test_row.addWidget(test_label)
        test_row.addWidget(self.testAddressEdit, 1)
        test_row.addWidget(self.sendTestButton)
        test_widget = QWidget(self)
        test_widget.setLayout(test_row)
        test_widget.setVisible(not is_print)
        root.addWidget(test_widget)

        self.conflictBanner = QWidget(self)
        self.conflictBanner.setObjectName("conflictBanner")
        conflict_row = QHBoxLayout(self.conflictBanner)
        conflict_row.setContentsMargins(0, 0, 0, 0)
        self.conflictLabel = QLabel("", self.conflictBanner)
        self.conflictLabel.setObjectName("conflictLabel")
        self.conflictLabel.setWordWrap(True)
        set_tone(self.conflictLabel, Tone.ERROR)
        self.overwriteButton = QPushButton("&Overwrite with My Version", self.conflictBanner)
        self.overwriteButton.setObjectName("overwriteButton")
        self.overwriteButton.setAccessibleName("Save over the other version")
        self.overwriteButton.clicked.connect(self.overwrite)
        conflict_row.addWidget(self.conflictLabel, 1)
        conflict_row.addWidget(self.overwriteButton)
        self.conflictBanner.setVisible(False)
        root.addWidget(self.conflictBanner)

        buttons = QHBoxLayout()
        self.statusLabel = QLabel("", self)
        self.statusLabel.setObjectName("editorStatusLabel")
        self.statusLabel.setWordWrap(True)
        buttons.addWidget(self.statusLabel, 1)
        self.saveButton = QPushButton("&Save", self)
        self.saveButton.setObjectName("saveTemplateButton")
        self.saveButton.setAccessibleName("Save template")
        self.saveButton.setToolTip("Validate and save (Ctrl+S)")
        self.saveButton.setDefault(False)
        self.saveButton.setAutoDefault(False)
        self.saveButton.clicked.connect(self.save)
        self.closeButton = QPushButton("Close", self)
        self.closeButton.setObjectName("closeTemplateButton")
        self.closeButton.setAccessibleName("Close editor")
        self.closeButton.setAutoDefault(False)
        self.closeButton.clicked.connect(self.reject)
        buttons.addWidget(self.saveButton)
        buttons.addWidget(self.closeButton)
        root.addLayout(buttons)
        save_shortcut = QShortcut(QKeySequence.StandardKey.Save, self)
        save_shortcut.activated.connect(self.save)

    def _build_sms_tab(self, parent: QWidget) -> QWidget:
        """The SMS part: plain text, wrapped as a phone shows it, with its length as the carrier counts it."""
        tab = QWidget(parent)
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(0, 0, 0, 0)
        body = QPlainTextEdit(tab)
        body.setObjectName("bodySmsEdit")
        body.setAccessibleName(PART_LABELS["body_sms"])
        body.setPlaceholderText("Leave empty to send no text message for this notice.")
        self._prepare_editor(body, "body_sms")
        layout.addWidget(body, 1)
        self.smsLengthLabel = QLabel("", tab)
        self.smsLengthLabel.setObjectName("smsLengthLabel")
        self.smsLengthLabel.setWordWrap(True)
        self.smsLengthLabel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.smsLengthLabel)
        return tab

    def _show_sms_length(self, text: str) -> None:
        """Say how long the rendered SMS is, and where it would be cut (staff see it before a patron does)."""
        if not hasattr(self, "smsLengthLabel"):
            return
        self.smsLengthLabel.setText(sms_length_text(text, self.max_sms_segments))

    def _prepare_editor(self, edit: QLineEdit | QPlainTextEdit, part: str) -> None:
        """Remember the part, track focus (for inserting variables) and add Insert Field to its context menu."""
        edit.setProperty("templatePart", part)
        edit.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        edit.customContextMenuRequested.connect(self._on_context_menu)
        edit.installEventFilter(self)
        self.editors[part] = edit

    # ------------------------------------------------------------------------------------------------ fields

    def _load(self, fields: TemplateFields) -> None:
        self.descriptionEdit.setText(fields.description)
        self.descriptionEdit.setCursorPosition(0)
        for part, editor in self.editors.items():
            value = getattr(fields, part)
            if isinstance(editor, QLineEdit):
                editor.setText(value)
                editor.setCursorPosition(0)
            else:
                editor.setPlainText(value)

    def fields(self) -> TemplateFields:
        """The template as currently typed."""
        values: dict[str, Any] = {
            part: editor.text() if isinstance(editor, QLineEdit) else editor.toPlainText()
            for part, editor in self.editors.items()
        }
        return TemplateFields(
            name=self.record.fields.name,
            channel=self.record.fields.channel,
            description=self.descriptionEdit.text(),
            **values,
        )

    @property
    def dirty(self) -> bool:
        """True when what is typed differs from what was loaded or last saved."""
        return self.fields() != self.record.fields

    def transaction_number(self) -> int | None:
        """The request chosen for the preview (``None``: the first waiting one); invalid text counts as none."""
        text = self.previewTransactionEdit.text().strip()
        return int(text) if _is_transaction_number(text) else None

    # ------------------------------------------------------------------------------------------------ inserting

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Remember the last field that had focus: inserting a variable types into it."""
        if event.type() == QEvent.Type.FocusIn:
            part = watched.property("templatePart")
            if isinstance(part, str) and part:
                self._last_part = part
        return super().eventFilter(watched, event)

    def insert_variable(self, name: str, part: str | None = None) -> None:
        """Type ``{{ name }}`` at the cursor of ``part`` (default: the field that last had focus)."""
        editor = self.editors[part or self._last_part]
        text = insertion_text(name)
        if isinstance(editor, QLineEdit):
            if name.endswith("_lines"):
                text = f"{{{{ {name}|join(', ') }}}}"
            editor.insert(text)
        else:
            editor.insertPlainText(text)
        editor.setFocus()

    @Slot(QTreeWidgetItem, int)
    def _on_variable_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.insert_variable(str(item.data(0, ROLE_FIELD)))

    @Slot(QPoint)
    def _on_context_menu(self, pos: QPoint) -> None:
        editor = self.sender()
        if not isinstance(editor, QLineEdit | QPlainTextEdit):
            return
        menu = self.build_context_menu(editor)
        menu.exec(editor.mapToGlobal(pos))
        menu.deleteLater()

    def build_context_menu(self, editor: QLineEdit | QPlainTextEdit) -> QMenu:
        """The field's usual menu plus Insert Field ▸ (every variable), as ILLiad's right-click field list."""
        menu = editor.createStandardContextMenu()
        menu.setObjectName("fieldContextMenu")
        menu.addSeparator()
        submenu = menu.addMenu("Insert &Field")
        submenu.setObjectName("insertFieldMenu")
        for name, meaning in CONTEXT_NAMES.items():
            action = submenu.addAction(name)
            action.setData(name)
            action.setToolTip(meaning)
            action.setStatusTip(meaning)
        self._menu_target = str(editor.property("templatePart"))
        submenu.triggered.connect(self._on_insert_field_action)
        return menu

    @Slot(object)
    def _on_insert_field_action(self, action: Any) -> None:
        name = action.data()
        if isinstance(name, str) and self._menu_target:
            self.insert_variable(name, self._menu_target)

    # ------------------------------------------------------------------------------------------------ preview

    @Slot()
    def _on_text_changed(self) -> None:
        self._preview_timer.start()
        self._update_title()

    def _update_title(self) -> None:
        mark = " *" if self.dirty else ""
        self.setWindowTitle(f"Edit Template — {self.record.fields.name}{mark}")

    @Slot()
    def refresh_preview(self) -> None:
        """Render the current text on the worker thread; only the newest result is shown."""
        self._preview_timer.stop()
        self._generation += 1
        generation = self._generation
        text = self.previewTransactionEdit.text().strip()
        if text and not _is_transaction_number(text):
            self._show_problems([TemplateProblem("", f"“{text}” is not a transaction number")])
            return
        job = partial(
            template_admin.preview_template,
            self.ctx.db,
            self.fields(),
            self.ctx.settings,
            transaction_number=self.transaction_number(),
        )
        self._runner.run(job, partial(self._on_preview_done, generation), partial(self._on_preview_failed, generation))

    @property
    def preview_pending(self) -> bool:
        """True while a preview is waiting to start or being rendered (tests wait on it)."""
        return self._preview_timer.isActive() or self._runner.busy

    def _on_preview_done(self, generation: int, result: object) -> None:
        if generation != self._generation or not isinstance(result, Preview):
            return  # staff typed again meanwhile: a newer preview is on its way
        self.last_preview = result
        self.previewSourceLabel.setText(f"Using: {result.source}" if result.source else "")
        self._show_problems(list(result.problems))
        rendered = result.rendered
        if rendered is None:
            self.previewMessage.setPlainText("(no preview: fix the problems listed on the left)")
            self.previewHtml.setHtml("")
            return
        sender = f"{rendered.from_name} <{rendered.from_address}>" if rendered.from_name else rendered.from_address
        header = [f"From: {sender}", f"To: {', '.join(rendered.to)}"]
        if rendered.cc:
            header.append(f"CC: {', '.join(rendered.cc)}")
        if rendered.bcc:
            header.append(f"BCC: {', '.join(rendered.bcc)}")
        header.append(f"Subject: {rendered.subject}")
        self._show_sms_length(rendered.body_sms)
        self.previewSms.setPlainText(rendered.body_sms or "(no text message for this notice)")
        self.previewMessage.setPlainText("\n".join(header) + "\n\n" + rendered.body_text)
        if rendered.body_html.strip():
            self.previewHtml.setHtml(rendered.body_html)
        else:
            self.previewHtml.setHtml("<p><i>No HTML part: the e-mail is sent as plain text only.</i></p>")

    def _on_preview_failed(self, generation: int, error: object) -> None:
        if generation != self._generation:
            return
        self._show_problems([TemplateProblem("", f"The preview could not be made: {error}")])

    def _show_problems(self, problems: list[TemplateProblem]) -> None:
        self.problemsList.clear()
        for problem in problems:
            item = QListWidgetItem(str(problem))
            item.setData(ROLE_PROBLEM, problem)
            item.setToolTip(str(problem))
            self.problemsList.addItem(item)

    def problems(self) -> list[str]:
        """The problems shown (as text)."""
        return [self.problemsList.item(i).text() for i in range(self.problemsList.count())]

    @Slot(QListWidgetItem)
    def _on_problem_activated(self, item: QListWidgetItem) -> None:
        problem = item.data(ROLE_PROBLEM)
        if isinstance(problem, TemplateProblem):
            self.go_to(problem)

    def go_to(self, problem: TemplateProblem) -> None:
        """Put the cursor where ``problem`` is (the part's tab shown, the line and column selected)."""
        editor = self.editors.get(problem.part)
        if editor is None:
            return
        if isinstance(editor, QPlainTextEdit):
            page = editor if self.bodyTabs.indexOf(editor) >= 0 else editor.parentWidget()
            index = self.bodyTabs.indexOf(page) if page is not None else -1
            if index >= 0:
                self.bodyTabs.setCurrentIndex(index)
            cursor = editor.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            if problem.line:
                cursor.movePosition(QTextCursor.MoveOperation.Down, n=problem.line - 1)
            if problem.column:
                cursor.movePosition(QTextCursor.MoveOperation.Right, n=problem.column - 1)
            editor.setTextCursor(cursor)
        editor.setFocus()

    # ------------------------------------------------------------------------------------------------ saving

    @Slot()
    def save(self, *, over_version: int | None = None) -> None:
        """Validate and store (on the task thread); problems and conflicts are shown, the text stays."""
        version = over_version if over_version is not None else self.record.version
        self.saveButton.setEnabled(False)
        self.overwriteButton.setEnabled(False)
        self.statusLabel.setText(SAVING)
        self._saving = True
        job = partial(
            template_admin.save_template,
            self.ctx.db,
            self.record.id,
            self.fields(),
            expected_version=version,
            changed_by=self.ctx.staff_name,
        )
        self.ctx.run(job, self._on_saved, self._on_save_failed)

    @Slot()
    def overwrite(self) -> None:
        """Save over the version someone else stored, after the conflict was shown."""
        if self._conflict_version is not None:
            self.save(over_version=self._conflict_version)

    def _on_saved(self, result: object) -> None:
        assert isinstance(result, TemplateRecord)
        self._saving = False
        self.record = result
        self._conflict_version = None
        self.conflictBanner.setVisible(False)
        self.saveButton.setEnabled(True)
        self.overwriteButton.setEnabled(True)
        self._show_problems([])
        when = result.updated_at.astimezone().strftime("%H:%M:%S")
        self.statusLabel.setText(f"Saved at {when} as version {result.version}.")
        self._update_title()
        self.saved.emit(result)
        self.ctx.changed.emit("templates")

    def _on_save_failed(self, error: object) -> None:
        self._saving = False
        self.saveButton.setEnabled(True)
        self.overwriteButton.setEnabled(True)
        if isinstance(error, TemplateValidationError):
            self._show_problems(list(error.template_problems))
            self.statusLabel.setText("Not saved: fix the problems listed above (your text is kept).")
            if error.template_problems:
                self.go_to(error.template_problems[0])
        elif isinstance(error, TemplateConflictError):
            self._conflict_version = error.current_version
            self.conflictLabel.setText(
                f"{error} Overwrite the version {error.changed_by} saved with yours, or close without saving."
            )
            self.conflictBanner.setVisible(True)
            self.statusLabel.setText("Not saved: someone else saved this template meanwhile.")
        else:
            self.statusLabel.setText(f"Not saved: {error}")

    # ------------------------------------------------------------------------------------------------ test mail

    @Slot()
    def send_test(self) -> None:
        """Send the template as rendered for the preview request to the typed address (only there)."""
        to = self.testAddressEdit.text().strip()
        if not to:
            self.statusLabel.setText("Type the address the test e-mail should go to.")
            self.testAddressEdit.setFocus()
            return
        self.sendTestButton.setEnabled(False)
        self.statusLabel.setText(f"Sending a test e-mail to {to}…")
        job = partial(
            _send_test,
            self.ctx.db,
            self.ctx.settings,
            self.fields(),
            to,
            self.transaction_number(),
            self._ssl_context,
        )
        self._runner.run(job, self._on_test_sent, self._on_test_failed)

    def _on_test_sent(self, result: object) -> None:
        self.sendTestButton.setEnabled(True)
        if isinstance(result, TestSendResult):
            self.statusLabel.setText(
                f"Test e-mail “{result.subject}” sent to {result.to}: {result.detail}. "
                f"The notice itself would go to {result.would_have_gone_to}."
            )

    def _on_test_failed(self, error: object) -> None:
        self.sendTestButton.setEnabled(True)
        if isinstance(error, TemplateValidationError):
            self._show_problems(list(error.template_problems))
        self.statusLabel.setText(f"Test e-mail not sent: {error}")

    # ------------------------------------------------------------------------------------------------ closing

    @property
    def saving(self) -> bool:
        """True while a save is on its way to the database."""
        return self._saving

    def reject(self) -> None:
        """Close; with unsaved changes, ask first (nothing typed is dropped without being asked)."""
        if self.saving:
            return  # the save's answer must find this editor (it may be a conflict to resolve)
        if self.dirty and not self._discard_confirmed:
            box = QMessageBox(
                QMessageBox.Icon.Question,
                "Unsaved changes",
                f"Template “{self.record.fields.name}” has changes that are not saved. Discard them?",
                QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
                self,
            )
            box.setObjectName("discardChangesBox")
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.finished.connect(self._on_discard_answer)
            box.open()
            return
        super().reject()

    @Slot(int)
    def _on_discard_answer(self, answer: int) -> None:
        box = self.sender()
        if isinstance(box, QMessageBox):
            box.deleteLater()
        if answer == QMessageBox.StandardButton.Discard.value:
            self._discard_confirmed = True
            self.reject()

    def done(self, result: int) -> None:
        """Stop the preview timer and worker thread before the dialog goes; remember the geometry."""
        save_geometry(self, "templateEditor/geometry")
        self._preview_timer.stop()
        self._runner.shutdown()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        """The window's close button behaves like Close (asks about unsaved changes)."""
        if self.saving or (self.dirty and not self._discard_confirmed):
            event.ignore()
            self.reject()
            return
        self._preview_timer.stop()
        self._runner.shutdown()
        super().closeEvent(event)


def sms_length_text(text: str, max_segments: int) -> str:
    """The SMS tab's counter line for the text rendered with the preview's request."""
    if not text:
        return "No text message: this notice is sent by e-mail only."
    length = measure(text)
    segments = "segment" if length.segments == 1 else "segments"
    summary = (
        f"With this request: {length.units} characters ({length.encoding}), {length.segments} {segments}, "
        f"{length.remaining} left in the last."
    )
    if length.encoding == "UCS-2":
        summary += " A character outside the GSM alphabet makes every segment hold 70 (67) instead of 160 (153)."
    if length.segments > max_segments:
        fitted = fit_to_segments(text, max_segments)
        tail = fitted.text[-40:]
        if len(fitted.text) > 40 and " " in tail:
            tail = tail.split(" ", 1)[1]  # start the quote at a word
        summary += f" Longer than the {max_segments}-segment limit: it will be cut after “…{tail}”."
    return summary


def _is_transaction_number(text: str) -> bool:
    """ASCII digits that fit a transaction number: "²" is a digit to ``str.isdigit`` but ``int()`` refuses it."""
    return text.isascii() and text.isdigit() and len(text) <= 18
