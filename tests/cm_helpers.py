"""Fixtures and builders for the Customization Manager and Settings tests: a context over a real database,
an open manager, and requests waiting at Awaiting Customer Contact for the System Manager to notify."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.models import Request
from desktop.domain.statuses import Status
from desktop.services.database import Database
from desktop.services.notices.templates import default_templates
from desktop.services.requests.status import change_status
from desktop.ui.admin.customization_manager import CustomizationManager
from desktop.ui.context import AppContext
from desktop.ui.notices.template_editor import TemplateEditor
from tests.patron_helpers import make_patron


def waiting_request(
    db: Database,
    tn: int,
    title: str,
    *,
    username: str | None = None,
    email: str = "reader@example.org",
    request_type: str = "Loan",
) -> int:
    """A patron notified by e-mail and their request, moved to Awaiting Customer Contact (Tracking written)."""
    patron_id = make_patron(db, username or f"reader{tn}", emails=[("Home", email)])
    with db.write() as session:
        request = Request(
            transaction_number=tn,
            patron_id=patron_id,
            request_type=request_type,
            loan_title=title if request_type == "Loan" else "",
            photo_article_title=title if request_type == "Article" else "",
            loan_author="A. Writer",
            status=Status.IN_TRANSIT_TO_PICKUP.value,
            due_date=date(2030, 1, 31),
        )
        session.add(request)
        session.flush()
        change_status(session, request, Status.AWAITING_CUSTOMER_CONTACT, "tester")
        return request.id


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings) -> Iterator[AppContext]:
    """An application context over a fresh SQLite database; its worker thread is stopped afterwards."""
    context = AppContext(sqlite_db, settings)
    yield context
    context.shutdown()


def close_manager(manager: CustomizationManager) -> None:
    """Close the manager and its editors without questions (their worker threads stop)."""
    for editor in list(manager.editors.values()):
        editor.done(0)
    manager.done(0)


@pytest.fixture
def manager(qtbot: QtBot, ctx: AppContext) -> Iterator[CustomizationManager]:
    """An open Customization Manager with its template list loaded."""
    window = CustomizationManager(ctx)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(
        lambda: window.templateModel.rowCount() == len(default_templates()) and window._routing_base is not None
    )
    yield window
    close_manager(window)


def open_editor(qtbot: QtBot, manager: CustomizationManager, name: str) -> TemplateEditor:
    """Select ``name`` in the list, click Edit, and wait for the editor and its first preview."""
    assert manager.select_template(name)
    manager.editButton.click()
    qtbot.waitUntil(lambda: len(manager.editors) == 1)
    editor = next(iter(manager.editors.values()))
    wait_preview(qtbot, editor)
    return editor


def wait_preview(qtbot: QtBot, editor: TemplateEditor) -> None:
    """Wait until the newest preview has been rendered and shown."""
    qtbot.waitUntil(lambda: not editor.preview_pending and editor.last_preview is not None, timeout=10_000)


def wait_idle(qtbot: QtBot, ctx: AppContext) -> None:
    """Wait until the context's task thread has nothing queued or running."""
    qtbot.waitUntil(lambda: not ctx.runner.busy, timeout=10_000)
