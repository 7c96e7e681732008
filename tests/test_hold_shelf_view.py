"""The Hold Shelf view: its data (days waiting, reminders sent, the hold's end, the next step), the table and
chart through pytest-qt, qtmodeltester, palette-derived highlighting, and screenshots (light, dark, 200 %)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QPalette, QPixmap
from PySide6.QtWidgets import QToolButton
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.domain.shelf import ClosedDays
from desktop.services.requests.shelf_view import ShelfItem, ShelfListing, load_shelf
from desktop.ui.context import AppContext
from desktop.ui.requests.hold_shelf import HoldShelfView, ShelfModel, open_hold_shelf, urgency_colour
from tests.smtp_sink import SmtpSink, smtp_sink
from tests.test_shelf_reminders import at, cycle, set_shelf, shelve

__all__ = ["smtp_sink"]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def item(n: int, days: int, ends_in: int) -> ShelfItem:
    """A shelved item as of 2026-12-10 whose dates agree with each other (the screenshots show them)."""
    today = date(2026, 12, 10)
    end = today + timedelta(days=ends_in)
    step = (
        f"Expires after {end}"
        if ends_in <= 2
        else f"Reminder 1 (2 days before the hold ends) {end - timedelta(days=2)}"
    )
    return ShelfItem(n, 700_000 + n, f"Patron {n}", f"Title {n}", "Customer Notified via E-Mail", "Main desk",
                     today - timedelta(days=days), days, n % 2, end, ends_in, step)  # fmt: skip


def listing() -> ShelfListing:
    return ShelfListing(tuple(item(n, days, ends) for n, (days, ends) in
                              enumerate([(9, 0), (8, 1), (2, 8), (4, 6), (12, -1), (0, 10), (20, 5)], 1)),
                        date(2026, 12, 10))  # fmt: skip


def test_listing_reads_days_reminders_end_and_next_step(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    request_id = shelve(sqlite_db, smtp_sink)
    set_shelf(sqlite_db, closed=ClosedDays(dates=frozenset({date(2026, 12, 11)})))
    shelf = load_shelf(sqlite_db, now=at(5))
    [row] = [i for i in shelf.items if i.request_id == request_id]
    assert (row.days_waiting, row.reminders_sent, row.hold_end, row.ends_in) == (4, 0, date(2026, 12, 12), 7)
    assert row.next_step == "Reminder 1 (2 days before the hold ends) 2026-12-10"
    cycle(sqlite_db, smtp_sink, at(10))
    [row] = [i for i in load_shelf(sqlite_db, now=at(11)).items if i.request_id == request_id]
    assert (row.reminders_sent, row.ends_in, row.next_step) == (1, 1, "Expires after 2026-12-12")
    assert load_shelf(sqlite_db, now=at(11)).histogram(15)[10] == 1


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    context.shutdown()


def test_model_passes_the_model_tester(qtmodeltester: object, qtbot: QtBot) -> None:
    model = ShelfModel()
    model.set_listing(listing().items, QColor("yellow"))
    qtmodeltester.check(model)  # type: ignore[attr-defined]


def test_view_lists_sorts_filters_and_highlights(ctx: AppContext, qtbot: QtBot, smtp_sink: SmtpSink) -> None:
    shelve(ctx.db, smtp_sink)
    view = open_hold_shelf(ctx)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.listing is not None, timeout=10_000)
    assert view.proxy.rowCount() == 1
    view.on_loaded(listing())  # a fuller shelf, to sort and filter
    proxy: QSortFilterProxyModel = view.proxy
    ends = [proxy.index(r, 7).data() for r in range(proxy.rowCount())]
    assert ends[0].endswith("(today)") or ends[0].endswith("(over)")
    view.table.sortByColumn(5, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, 5).data() for r in range(3)] == ["20", "12", "9"]
    view.filter.setText("patron 2")
    assert proxy.rowCount() == 1 and proxy.index(0, 1).data() == "Patron 2"
    assert proxy.index(0, 0).data(Qt.ItemDataRole.BackgroundRole) == urgency_colour(view.palette())  # tomorrow
    view.filter.clear()
    assert view.chart.counts[0] == 1 and view.chart.counts[14] == 1  # 0 days; 20 days counts as 14+
    assert "3 whose hold ends today or tomorrow, or is over" in view.status.text()


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.Base, "#2b2c2f"),
                         (QPalette.ColorRole.Text, "#e8eaed"), (QPalette.ColorRole.WindowText, "#e8eaed"),
                         (QPalette.ColorRole.Highlight, "#8ab4f8"), (QPalette.ColorRole.Button, "#303134"),
                         (QPalette.ColorRole.ButtonText, "#e8eaed"), (QPalette.ColorRole.AlternateBase, "#323336")):  # fmt: skip
        palette.setColor(role, QColor(colour))
    return palette


def contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("name", ["light", "dark"])
def test_highlight_is_readable_and_screenshots(ctx: AppContext, qtbot: QtBot, name: str) -> None:
    view = HoldShelfView(ctx)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.listing is not None, timeout=10_000)
    if name == "dark":
        view.setPalette(dark_palette())
    view.on_loaded(listing())
    palette = view.palette()
    assert contrast(urgency_colour(palette), palette.color(QPalette.ColorRole.Text)) >= 4.5
    view.resize(1000, 520)
    view.show()
    qtbot.waitExposed(view)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    image = view.grab()
    assert not image.isNull()
    image.save(str(SCREENSHOTS / f"hold_shelf_{name}.png"))


def test_view_at_200_percent(ctx: AppContext, qtbot: QtBot) -> None:
    view = HoldShelfView(ctx)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: view.listing is not None, timeout=10_000)
    view.on_loaded(listing())
    view.resize(1000, 520)
    pixmap = QPixmap(view.size() * 2)
    pixmap.setDevicePixelRatio(2.0)
    view.render(pixmap)
    assert not pixmap.isNull() and pixmap.width() == 2000
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pixmap.save(str(SCREENSHOTS / "hold_shelf_200.png"))
    assert "0 days: 1" in view.chart.toolTip() and "14+ days: 1" in view.chart.toolTip()


def test_ribbon_button_opens_the_view(ctx: AppContext, qtbot: QtBot) -> None:
    from desktop.ui.main_window import MainWindow
    from desktop.ui.requests import hold_shelf

    window = MainWindow(ctx)
    qtbot.addWidget(window)
    button = window.findChild(QToolButton, "holdShelfButton")
    assert button is not None and button.text().replace("&", "") == "Hold Shelf"
    assert window.hold_shelf_action.isEnabled()
    window.hold_shelf_action.trigger()
    qtbot.waitUntil(lambda: any(v.ctx is ctx for v in hold_shelf._open_views), timeout=10_000)
