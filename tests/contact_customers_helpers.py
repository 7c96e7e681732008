"""Fixtures shared by the Contact Customers and printing tests: a workstation on seeded data and the form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.services.database import Database
from desktop.ui.context import AppContext
from desktop.ui.requests.contact_customers import ContactCustomersDialog, open_contact_customers


@pytest.fixture
def ctx(seeded_db: Database, settings: Settings) -> Iterator[AppContext]:
    """A workstation on the seeded database; its worker thread is stopped after the test."""
    context = AppContext(seeded_db, settings)
    yield context
    context.shutdown()


@pytest.fixture
def dialog(ctx: AppContext, qtbot: QtBot) -> ContactCustomersDialog:
    """The Contact Customers form, opened as the split button opens it, with its first load applied."""
    form = open_contact_customers(ctx)
    qtbot.addWidget(form)
    # The first load's result is delivered through the event loop, so it cannot arrive before this wait starts.
    with qtbot.waitSignal(form.loaded, timeout=10_000):
        pass
    return form
