"""Every window :mod:`desktop.ui.navigation` can open, registered in one place (the UI's composition root).

Only this module imports all the windows; the windows import only ``navigation``. The main window calls
:func:`register_all` when it is built, and so does the test suite for windows it opens on their own.
"""

from __future__ import annotations

from desktop.ui.admin.customization_manager import open_customization_manager
from desktop.ui.admin.import_dialog import open_import_dialog
from desktop.ui.admin.settings_dialog import open_settings_dialog
from desktop.ui.navigation import Window, register
from desktop.ui.patrons.bounced_view import open_bounced_view
from desktop.ui.patrons.contact_card import open_contact_card
from desktop.ui.patrons.duplicates_view import open_duplicates_view
from desktop.ui.patrons.locations_dialog import open_locations_dialog
from desktop.ui.patrons.patron_record import open_patron_record
from desktop.ui.patrons.patron_search import open_patron_search
from desktop.ui.requests.contact_customers import open_contact_customers
from desktop.ui.requests.hold_shelf import open_hold_shelf
from desktop.ui.requests.request_form import open_request_form


def register_all() -> None:
    """Register every window's opener (idempotent)."""
    register(Window.REQUEST, open_request_form)
    register(Window.PATRON, open_patron_record)
    register(Window.CONTACT_CARD, open_contact_card)
    register(Window.CONTACT_CUSTOMERS, open_contact_customers)
    register(Window.PATRON_SEARCH, open_patron_search)
    register(Window.DUPLICATES, open_duplicates_view)
    register(Window.BOUNCED, open_bounced_view)
    register(Window.HOLD_SHELF, open_hold_shelf)
    register(Window.IMPORT_CSV, open_import_dialog)
    register(Window.CUSTOMIZATION, open_customization_manager)
    register(Window.SETTINGS, open_settings_dialog)
    register(Window.LOCATIONS, open_locations_dialog)
