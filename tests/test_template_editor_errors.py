"""Template editor errors staff can act on (issue 21): a misspelt field named with its line and the field meant,
an unclosed ``{% if %}`` at the line that opened it — in the real editor, with the cursor put there."""

# Fixtures are imported from tests/cm_helpers.py; test arguments name them (F811).
# ruff: noqa: F811

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtWidgets import QPlainTextEdit
from pytestqt.qtbot import QtBot

from desktop.services.notices.templates import LOAN_PICKUP, default_template, validate
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.context import AppContext
from tests.cm_helpers import ctx, manager, open_editor, wait_idle  # noqa: F401


def _save_and_wait(qtbot: QtBot, editor: object, ctx: AppContext) -> None:
    editor.saveButton.click()  # type: ignore[attr-defined]
    wait_idle(qtbot, ctx)
    qtbot.waitUntil(lambda: editor.saveButton.isEnabled())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "expected", "where"),
    [
        (
            "Dear reader,\n\nHello {{ patron.frist_name }},\nyour item is here.\n",
            "Text body, line 3, column 10: unknown name: patron.frist_name (did you mean patron.first_name?)",
            (2, 9),
        ),
        (  # ILLiad's table name: both the table and the field are mapped in the hint
            "Dear reader,\n  {{ user.frist_name }}\n",
            "Text body, line 2, column 6: unknown name(s): user (did you mean patron.first_name?)",
            (1, 5),
        ),
        (
            "Hello\n{% if patron.first_name %}\nDear {{ patron.first_name }},\n\nYour item is here.\n\nThanks\n",
            "Text body, line 2, column 1: syntax error: the {% if %} opened here is never closed",
            (1, 0),
        ),
        (  # the innermost open block is the one named, inside a closed one
            "{% for line in patron.address_lines %}{{ line }}\n{% endfor %}\n{% if request.title %}\n  {% for x in"
            " patron.address_lines %}\n{% endif %}\n",
            "Text body, line 4, column 3: syntax error: the {% for %} opened here is never closed",
            (3, 2),
        ),
    ],
)
def test_editor_names_the_line_to_fix(
    qtbot: QtBot, manager: CustomizationManager, ctx: AppContext, body: str, expected: str, where: tuple[int, int]
) -> None:
    editor = open_editor(qtbot, manager, LOAN_PICKUP)
    text = editor.editors["body_text"]
    assert isinstance(text, QPlainTextEdit)
    text.setPlainText(body)
    _save_and_wait(qtbot, editor, ctx)
    assert editor.problems()[0].startswith(expected), editor.problems()
    assert "Not saved" in editor.statusLabel.text()
    cursor = text.textCursor()
    assert (cursor.blockNumber(), cursor.positionInBlock()) == where


def test_a_misspelt_field_in_a_branch_the_sample_does_not_take_is_still_found() -> None:
    body = "{% if patron.department == 'nowhere' %}\n{{ request.titel }}\n{% endif %}"
    problems = validate(replace(default_template(LOAN_PICKUP), body_text=body))
    assert [(p.line, p.reason) for p in problems] == [(2, "unknown name: request.titel (did you mean request.title?)")]


def test_known_fields_and_loop_variables_pass() -> None:
    body = "{% for line in patron.address_lines %}{{ line.upper() }}\n{% endfor %}{{ request['title'] }} {{ today }}"
    assert validate(replace(default_template(LOAN_PICKUP), body_text=body)) == []
