"""The Contact Card's postal address has a Country (issue 21): card, service, printed address, CSV and ILLiad's
Users.Country."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import Patron
from desktop.services.admin.csv_export import export_patrons
from desktop.services.admin.csv_import import PATRON_COLUMNS, import_patrons
from desktop.services.admin.illiad_import import import_illiad
from desktop.services.notices.notice_context import address_lines
from desktop.services.patrons import contact_card as cc
from desktop.ui.context import AppContext
from desktop.ui.patrons.contact_card import ContactCard, open_contact_card
from tests.main_window_helpers import sql
from tests.patron_helpers import make_patron


@pytest.fixture
def ctx(sqlite_db: Database, settings: Settings, qtbot: QtBot) -> Iterator[AppContext]:
    context = AppContext(sqlite_db, settings)
    yield context
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ContactCard):
            widget.close()
            widget.deleteLater()
    context.shutdown()


def test_service_saves_and_loads_the_country(sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")])
    card = cc.load_card(sqlite_db, patron)
    assert card.address.country == ""
    address = cc.PostalAddress("1 Main St", "", "Toronto", "ON", "M5V 2T6", "  Canada ")
    cc.save_card(sqlite_db, patron, card.version_id, card.points, address)
    assert sql(sqlite_db, "SELECT country FROM patrons WHERE id = ?", patron) == [("Canada",)]
    assert cc.load_card(sqlite_db, patron).address.country == "Canada"
    too_long = cc.PostalAddress("1 Main St", "", "Toronto", "ON", "M5V 2T6", "x" * 101)
    with pytest.raises(cc.ValidationError):
        cc.save_card(sqlite_db, patron, cc.load_card(sqlite_db, patron).version_id, card.points, too_long)


def test_the_card_shows_and_saves_the_country(ctx: AppContext, qtbot: QtBot, sqlite_db: Database) -> None:
    patron = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org")])
    card = open_contact_card(ctx, patron)
    qtbot.waitUntil(lambda: card.data is not None, timeout=5000)
    country = card.address_fields["country"]
    assert country.objectName() == "countryEdit"
    assert country.accessibleName() == "Country"
    country.setText("United Kingdom")
    assert card.address().country == "United Kingdom"
    card.on_save()
    qtbot.waitUntil(
        lambda: sql(sqlite_db, "SELECT country FROM patrons WHERE id = ?", patron) == [("United Kingdom",)],
        timeout=5000,
    )


def test_printed_address_ends_with_the_country_when_there_is_one(sqlite_db: Database) -> None:
    abroad = Patron(first_name="Ada", last_name="L", address1="1 Main St", address2="", city="Toronto", state="ON",
                    zip="M5V 2T6", country="Canada")  # fmt: skip
    home = Patron(first_name="Ada", last_name="L", address1="1 Main St", address2="", city="Springfield", state="IL",
                  zip="62701", country="")  # fmt: skip
    assert address_lines(abroad)[-2:] == ["Toronto, ON M5V 2T6", "Canada"]
    assert address_lines(home)[-1] == "Springfield, IL 62701"


def test_csv_carries_country_and_a_file_without_it_keeps_it(sqlite_db: Database) -> None:
    assert "Country" in PATRON_COLUMNS
    result = import_patrons(sqlite_db, b"UserName,FirstName,Country\nbob,Bob,Canada\n")
    assert result.ok, result.errors
    out = io.StringIO()
    export_patrons(sqlite_db, out)
    header, row = out.getvalue().splitlines()[:2]
    assert row.split(",")[header.split(",").index("Country")] == "Canada"
    assert import_patrons(sqlite_db, b"UserName,FirstName\nbob,Robert\n").ok
    assert sql(sqlite_db, "SELECT first_name, country FROM patrons WHERE username = 'bob'") == [("Robert", "Canada")]


def test_illiad_users_country_comes_along(sqlite_db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "illiad"
    folder.mkdir()
    (folder / "Users.csv").write_text(
        "UserName,FirstName,LastName,EMailAddress,Country\nmia,Mia,Berg,mia@example.se,Sweden\n", encoding="utf-8"
    )
    report = import_illiad(sqlite_db, folder)
    assert report.tables["Users"].read == 1, report
    assert sql(sqlite_db, "SELECT country FROM patrons WHERE username = 'mia'") == [("Sweden",)], (
        report.refused,
        report.skipped,
    )
