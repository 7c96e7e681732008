"""The Customization Manager and template editor, driven like staff drive them, over a real SQLite file, with the
real System Manager cycle and a real SMTP server checking what patrons would receive."""

# Fixtures are imported from tests/cm_helpers.py and tests/smtp_sink.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QMessageBox, QPlainTextEdit
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.db.models import NoticeTemplate, Notification, Request
from desktop.services.database import Database
from desktop.services.notices import template_admin
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.templates import (
    CONTEXT_NAMES,
    HOLD_SHELF_TEMPLATES,
    LOAN_PICKUP,
    PASSWORD_RESET,
    PRINT_NOTICE,
    default_template,
    default_templates,
)
from desktop.ui.admin.customization_manager import CustomizationManager, open_customization_manager
from desktop.ui.context import AppContext
from desktop.ui.notices.template_editor import TemplateEditor
from tests.cm_helpers import close_manager, ctx, manager, open_editor, wait_idle, wait_preview, waiting_request  # noqa: F401
from tests.smtp_sink import SmtpSink, smtp_sink  # noqa: F401


def _stored(db: Database, name: str = LOAN_PICKUP) -> NoticeTemplate:
    with db.read() as session:
        row = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == name))
        assert row is not None
        session.expunge(row)
        return row


def _save_and_wait(qtbot: QtBot, editor: TemplateEditor, ctx: AppContext) -> None:
    editor.saveButton.click()
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: editor.saveButton.isEnabled())


def test_list_and_object_names(manager: CustomizationManager) -> None:
    assert manager.objectName() == "customizationManager"
    assert manager.findChild(object, "notificationTemplatesTab") is not None
    names = [row.name for row in manager.templateModel.rows]
    assert sorted(names) == sorted([LOAN_PICKUP, "Article Pickup", PASSWORD_RESET, PRINT_NOTICE, *HOLD_SHELF_TEMPLATES])
    index = manager.templateModel.index(names.index(LOAN_PICKUP), 3)
    assert manager.templateModel.data(index) == "System"
    assert manager.templateModel.data(index.siblingAtColumn(5)) == "Enabled"
    for button in (manager.editButton, manager.deleteButton, manager.restoreButton):
        assert button.objectName() and button.accessibleName()


def test_typo_is_refused_with_the_name_and_nothing_typed_is_lost(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    before = _stored(ctx.db)
    editor.subjectEdit = editor.editors["subject"]
    assert isinstance(editor.subjectEdit, QLineEdit)
    editor.subjectEdit.setText("Arrived: {{ requst.title }}")
    _save_and_wait(qtbot, editor, ctx)
    problems = editor.problems()
    assert problems and "requst" in problems[0] and problems[0].startswith("Subject")
    assert "Not saved" in editor.statusLabel.text()
    assert editor.subjectEdit.text() == "Arrived: {{ requst.title }}"
    after = _stored(ctx.db)
    assert (after.subject, after.version_id) == (before.subject, before.version_id)


def test_sandbox_escape_is_refused(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    body = editor.editors["body_text"]
    assert isinstance(body, QPlainTextEdit)
    body.setPlainText("Hello {{ ''.__class__ }}")
    _save_and_wait(qtbot, editor, ctx)
    assert any("not allowed" in p for p in editor.problems())
    assert "__class__" not in _stored(ctx.db).body_text
    assert body.toPlainText() == "Hello {{ ''.__class__ }}"


def test_syntax_error_puts_the_cursor_on_its_line(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    body = editor.editors["body_html"]
    assert isinstance(body, QPlainTextEdit)
    body.setPlainText("<p>one</p>\n<p>two</p>\n  <p>{{ request.title }</p>\n")
    _save_and_wait(qtbot, editor, ctx)
    assert editor.problems()[0].startswith("HTML body, line 3, column 3: syntax error")
    assert editor.bodyTabs.currentWidget() is body
    cursor = body.textCursor()
    assert (cursor.blockNumber(), cursor.positionInBlock()) == (2, 2)


def test_password_reset_without_link_is_refused(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    editor = open_editor(qtbot, manager, PASSWORD_RESET)
    body = editor.editors["body_text"]
    assert isinstance(body, QPlainTextEdit)
    body.setPlainText(body.toPlainText().replace("{{ reset.link }}", "(ask at the desk)"))
    _save_and_wait(qtbot, editor, ctx)
    assert any("reset.link" in p for p in editor.problems())
    assert "{{ reset.link }}" in _stored(ctx.db, PASSWORD_RESET).body_text


def test_live_preview_follows_typing_and_the_chosen_request(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    waiting_request(ctx.db, 500001, "The Waiting Book")
    waiting_request(ctx.db, 500002, "Another Book", username="other")
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    assert "Subject: Your interlibrary loan has arrived: The Waiting Book" in editor.previewMessage.toPlainText()
    assert "500001" in editor.previewSourceLabel.text()
    editor.editors["subject"].setFocus()
    subject = editor.editors["subject"]
    assert isinstance(subject, QLineEdit)
    subject.setText("Ready: {{ request.title }} for {{ patron.first_name }}")
    wait_preview(qtbot, editor)
    assert "Subject: Ready: The Waiting Book for Ada" in editor.previewMessage.toPlainText()
    editor.previewTransactionEdit.setText("500002")
    editor.previewButton.click()
    wait_preview(qtbot, editor)
    assert "Subject: Ready: Another Book for Ada" in editor.previewMessage.toPlainText()
    assert "The Waiting Book" not in editor.previewHtml.toPlainText()
    assert "Another Book" in editor.previewHtml.toPlainText()
    editor.previewTransactionEdit.setText("999")
    editor.previewButton.click()
    wait_preview(qtbot, editor)
    assert "no request with transaction number 999" in editor.problems()[0]


def test_insert_variable_by_double_click_and_context_menu(qtbot: QtBot, manager: CustomizationManager) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    subject = editor.editors["subject"]
    assert isinstance(subject, QLineEdit)
    subject.setText("Hi  there")
    subject.setFocus()
    subject.setCursorPosition(3)
    qtbot.waitUntil(lambda: editor._last_part == "subject")
    items = editor.variablesList.findItems("patron.first_name", Qt.MatchFlag.MatchExactly, 0)
    editor.variablesList.itemDoubleClicked.emit(items[0], 0)
    assert subject.text() == "Hi {{ patron.first_name }} there"

    body = editor.editors["body_text"]
    assert isinstance(body, QPlainTextEdit)
    body.setPlainText("Title: ")
    cursor = body.textCursor()
    cursor.movePosition(cursor.MoveOperation.End)
    body.setTextCursor(cursor)
    menu = editor.build_context_menu(body)
    insert_menu = next(a.menu() for a in menu.actions() if a.menu() is not None and "Insert" in a.text())
    actions = {a.data(): a for a in insert_menu.actions()}
    assert set(actions) == set(CONTEXT_NAMES)
    actions["request.title"].trigger()
    assert body.toPlainText() == "Title: {{ request.title }}"
    menu.deleteLater()


def test_valid_edit_is_saved_and_used_by_the_next_system_manager_cycle(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, smtp_sink: SmtpSink
) -> None:
    waiting_request(ctx.db, 600001, "Notes on Bridges", email="bridges@example.org")
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    body = editor.editors["body_text"]
    assert isinstance(body, QPlainTextEdit)
    body.setPlainText("Hello {{ patron.first_name }}, “{{ request.title }}” waits at {{ pickup.name }}.\n")
    _save_and_wait(qtbot, editor, ctx)
    assert editor.problems() == []
    assert editor.statusLabel.text().startswith("Saved at")
    assert not editor.dirty
    qtbot.waitUntil(lambda: {r.name: r.updated_by for r in manager.templateModel.rows}[LOAN_PICKUP] == "tester")
    stored = _stored(ctx.db)
    assert stored.updated_by == "tester" and stored.version_id == 2

    settings = ctx.settings.with_changes(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_from="ill@x.edu")
    summary = run_cycle(ctx.db, settings, worker="test")
    assert summary.sent == 1, summary.describe()
    (message,) = smtp_sink.messages
    assert message.rcpt_tos == ["bridges@example.org"]
    assert message.text.strip() == "Hello Ada, “Notes on Bridges” waits at the Interlibrary Loan desk."


def test_delete_stops_the_notice_and_restore_default_brings_it_back(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, smtp_sink: SmtpSink
) -> None:
    assert manager.select_template(LOAN_PICKUP)
    manager.deleteButton.click()
    box = manager.findChild(QMessageBox, "confirmDeleteBox")
    assert isinstance(box, QMessageBox)
    assert "will no longer be sent" in box.informativeText()
    box.button(QMessageBox.StandardButton.Yes).click()
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: {r.name: r.deleted for r in manager.templateModel.rows}[LOAN_PICKUP])
    assert manager.deleteButton.text().replace("&", "") == "Undelete"
    assert _stored(ctx.db).deleted

    request_id = waiting_request(ctx.db, 700001, "A Deleted Notice")
    settings = ctx.settings.with_changes(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_from="ill@x.edu")
    summary = run_cycle(ctx.db, settings, worker="test")
    assert summary.sent == 0 and smtp_sink.messages == []
    with ctx.db.read() as session:
        notice = session.scalar(select(Notification).where(Notification.request_id == request_id))
        assert notice is not None and notice.state == "no_template"
        assert LOAN_PICKUP in notice.last_reply
        status = session.scalar(select(Request.status).where(Request.id == request_id))
    assert status == "Awaiting Customer Contact"

    manager.restoreButton.click()
    box = manager.findChild(QMessageBox, "confirmRestoreBox")
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Yes).click()
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: not {r.name: r.deleted for r in manager.templateModel.rows}[LOAN_PICKUP])
    restored = _stored(ctx.db)
    assert not restored.deleted and restored.body_text == default_template(LOAN_PICKUP).body_text


def test_cancelled_delete_changes_nothing(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    assert manager.select_template(PRINT_NOTICE)
    manager.deleteButton.click()
    box = manager.findChild(QMessageBox, "confirmDeleteBox")
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Cancel).click()
    wait_idle(qtbot, ctx)
    assert not _stored(ctx.db, PRINT_NOTICE).deleted


def test_two_administrators_editing_one_template(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    # Meanwhile, on another workstation, Alice saves the same template.
    theirs = template_admin.load_template_by_name(ctx.db, LOAN_PICKUP)
    template_admin.save_template(
        ctx.db,
        theirs.id,
        replace(theirs.fields, subject="Alice's subject {{ request.title }}"),
        expected_version=theirs.version,
        changed_by="alice",
    )
    subject = editor.editors["subject"]
    assert isinstance(subject, QLineEdit)
    subject.setText("My subject {{ request.title }}")
    _save_and_wait(qtbot, editor, ctx)
    assert editor.conflictBanner.isVisibleTo(editor)
    assert "alice" in editor.conflictLabel.text()
    assert _stored(ctx.db).subject == "Alice's subject {{ request.title }}"
    assert subject.text() == "My subject {{ request.title }}"
    editor.overwriteButton.click()
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: not editor.conflictBanner.isVisibleTo(editor))
    assert _stored(ctx.db).subject == "My subject {{ request.title }}"
    history = template_admin.list_revisions(ctx.db, theirs.id)
    assert [h.changed_by for h in history] == ["tester", "alice"]


def test_closing_with_unsaved_changes_asks_first(qtbot: QtBot, manager: CustomizationManager) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    subject = editor.editors["subject"]
    assert isinstance(subject, QLineEdit)
    subject.setText("Unsaved {{ request.title }}")
    editor.closeButton.click()
    box = editor.findChild(QMessageBox, "discardChangesBox")
    assert isinstance(box, QMessageBox) and editor.isVisible()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert editor.isVisible() and subject.text() == "Unsaved {{ request.title }}"
    editor.closeButton.click()
    box = editor.findChild(QMessageBox, "discardChangesBox")
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: not manager.editors)


def test_print_template_editor_has_only_the_page(qtbot: QtBot, manager: CustomizationManager) -> None:
    editor = open_editor(qtbot, manager, PRINT_NOTICE)
    assert not editor.editors["to_address"].isVisibleTo(editor)
    assert editor.editors["body_html"].isVisibleTo(editor)
    assert not editor.sendTestButton.isVisibleTo(editor)
    assert editor.last_preview is not None and editor.last_preview.ok


def test_routing_tab_saves_delays_and_poll_interval(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    from desktop.services.admin.shared_settings import load_shared_settings

    model = manager.routingModel
    assert model.setData(model.index(0, 2), 45)
    assert model.setData(model.index(0, 3), 14)
    assert not model.setData(model.index(0, 2), -1)
    assert not model.setData(model.index(0, 0), "renamed")
    manager.pollSecondsSpin.setValue(120)
    manager.saveRoutingButton.click()
    wait_idle(qtbot, ctx)
    loaded = load_shared_settings(ctx.db)
    assert (loaded.pickups[0].routing_delay_minutes, loaded.pickups[0].hold_days) == (45, 14)
    assert loaded.poll_seconds == 120
    assert "Routing saved" in manager.statusLabel.text()


def test_library_tab_refuses_a_bad_email_and_keeps_it(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    manager.libraryEmailEdit.setText("ill at library")
    manager.saveLibraryButton.click()
    wait_idle(qtbot, ctx)
    assert "library e-mail" in manager.statusLabel.text()
    assert manager.libraryEmailEdit.text() == "ill at library"
    manager.libraryEmailEdit.setText("ill@riverside.example")
    manager.libraryNameEdit.setText("Riverside Library")
    manager.saveLibraryButton.click()
    wait_idle(qtbot, ctx)
    assert "saved" in manager.statusLabel.text()
    from desktop.services.admin.shared_settings import load_shared_settings

    assert load_shared_settings(ctx.db).library.name == "Riverside Library"


def test_send_test_email_goes_only_to_the_typed_address(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, smtp_sink: SmtpSink
) -> None:
    waiting_request(ctx.db, 800001, "Test Mail Book", email="patron@example.org")
    ctx.apply_settings(
        ctx.settings.with_changes(smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, smtp_from="ill@x.edu")
    )
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    editor.testAddressEdit.setText("not an address")
    editor.sendTestButton.click()
    qtbot.waitUntil(lambda: editor.sendTestButton.isEnabled() and "not sent" in editor.statusLabel.text())
    assert smtp_sink.messages == []
    editor.testAddressEdit.setText("staff@library.example.org")
    editor.sendTestButton.click()
    qtbot.waitUntil(lambda: "sent to" in editor.statusLabel.text(), timeout=10_000)
    (message,) = smtp_sink.messages
    assert message.rcpt_tos == ["staff@library.example.org"]
    assert "patron@example.org" not in message.data.decode()
    assert "Test Mail Book" in message.message["Subject"] and "TEST" in message.message["Subject"]
    assert "would go to To: patron@example.org" in editor.statusLabel.text()  # the recipients it replaced


def test_open_customization_manager_reuses_the_open_window(qtbot: QtBot, ctx: AppContext) -> None:
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    first = open_customization_manager(ctx, parent)
    assert open_customization_manager(ctx, parent) is first
    qtbot.waitUntil(lambda: first.templateModel.rowCount() == len(default_templates()))
    wait_idle(qtbot, ctx)
    close_manager(first)


def test_changed_signal_refreshes_the_list(qtbot: QtBot, manager: CustomizationManager, ctx: AppContext) -> None:
    record = template_admin.load_template_by_name(ctx.db, PASSWORD_RESET)
    template_admin.delete_template(ctx.db, record.id, expected_version=record.version, changed_by="bob")
    ctx.changed.emit("templates")
    qtbot.waitUntil(lambda: {r.name: r.updated_by for r in manager.templateModel.rows}[PASSWORD_RESET] == "bob")


def test_models_pass_the_model_tester(qtmodeltester: object, manager: CustomizationManager) -> None:
    qtmodeltester.check(manager.templateModel)  # type: ignore[attr-defined]
    qtmodeltester.check(manager.routingModel)  # type: ignore[attr-defined]


def test_closing_while_a_change_runs_loses_nothing(qtbot: QtBot, ctx: AppContext) -> None:
    window = CustomizationManager(ctx)
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    window.show()
    qtbot.waitUntil(lambda: window.templateModel.rowCount() == len(default_templates()))
    topics: list[str] = []
    ctx.changed.connect(topics.append)
    assert window.select_template(PRINT_NOTICE)
    window.deleteButton.click()
    box = window.findChild(QMessageBox, "confirmDeleteBox")
    assert isinstance(box, QMessageBox)
    box.button(QMessageBox.StandardButton.Yes).click()
    window.close()  # before the delete's answer comes back: the window is gone when it does
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: "templates" in topics)
    assert _stored(ctx.db, PRINT_NOTICE).deleted


def test_sms_part_shows_its_length_and_where_it_would_be_cut(qtbot: QtBot, manager: CustomizationManager) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    wait_preview(qtbot, editor)
    sms = editor.editors["body_sms"]
    assert isinstance(sms, QPlainTextEdit)
    assert editor.bodyTabs.tabText(editor.bodyTabs.indexOf(sms.parentWidget())) == "Text messa&ge (SMS)"
    # The shipped text fits one GSM-7 segment with the preview's request.
    assert "(GSM-7), 1 segment," in editor.smsLengthLabel.text()
    assert editor.previewSms.toPlainText().endswith(
        "is ready for pickup at Main Library Circulation Desk until 2026-12-04."
    )

    sms.setPlainText("Zoë, your book {{ request.title }} is ready. " + "Please come soon. " * 20)
    qtbot.waitUntil(lambda: "UCS-2" in editor.smsLengthLabel.text())
    label = editor.smsLengthLabel.text()
    # 415 UTF-16 units with the sample title (ë is not GSM-7): 7 segments of 67, cut to 3 at a word.
    assert "415 characters (UCS-2), 7 segments, 54 left in the last." in label
    assert label.endswith(
        "Longer than the 3-segment limit: it will be cut after “…Please come soon. Please come soon.”."
    )

    sms.setPlainText("")
    qtbot.waitUntil(lambda: editor.smsLengthLabel.text().startswith("No text message"))


def test_a_syntax_error_in_the_sms_part_opens_its_tab(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext
) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    sms = editor.editors["body_sms"]
    assert isinstance(sms, QPlainTextEdit)
    sms.setPlainText("Ready: {{ request.title }")
    _save_and_wait(qtbot, editor, ctx)
    assert editor.problems()[0].startswith("SMS text, line 1")
    assert editor.bodyTabs.currentWidget() is sms.parentWidget()
    assert _stored(ctx.db).body_sms == default_template(LOAN_PICKUP).body_sms
