"""A workstation left open all day: hundreds of count polls and refreshes must not wear anything down.

PySide6 6.12.0 drops a reference to ``True`` on every ``Signal.emit()`` and to ``None`` on every
``QModelIndex.data()`` that returns nothing; a Callslip window then aborts with "Fatal Python error:
bool_dealloc/none_dealloc" after a few thousand polls (minutes at a fast poll, hours at the normal one). This test
runs the real polling path fast and fails on such a binding instead of letting staff find out.
"""

from __future__ import annotations

import sys

from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.services.database import Database
from tests.main_window_helpers import close_window, open_window

POLLS = 300


def test_many_polls_keep_reference_counts(qtbot: QtBot, seeded_db: Database, settings: Settings) -> None:
    window = open_window(qtbot, seeded_db, settings)
    try:
        workspace = window.workspace
        model = workspace.queue_model
        true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
        for _ in range(POLLS):
            workspace.poll()
            qtbot.waitUntil(lambda: not workspace._counting, timeout=5000)
            model.index_of(None).data(0x0101)  # a role the model answers with None
        lost_true = true_before - sys.getrefcount(True)
        lost_none = none_before - sys.getrefcount(None)
        # A healthy binding ends where it started (give or take objects alive right now); a leaking one has lost
        # several references per poll.
        assert lost_true < POLLS // 2, f"{lost_true} references to True lost in {POLLS} polls (PySide6 bug?)"
        assert lost_none < POLLS // 2, f"{lost_none} references to None lost in {POLLS} polls (PySide6 bug?)"
    finally:
        close_window(window)
