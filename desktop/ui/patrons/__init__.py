"""Windows about patrons: search, the patron record with its Contact Info tab, the Contact Card, duplicates,
the Locations code table.

Offers (``__all__``): ``patron_search``, ``patron_record``, ``contact_card``, ``duplicates_view``,
``locations_dialog``,
``bounced_view`` (the Bounced addresses list). Inside only: ``contact_info_tab`` (a tab of the patron
record), ``channel_preferences_editor`` (the Contact Card's Channels section: per-event channels, SMS
carrier). Other windows open these through :mod:`desktop.ui.navigation`.
"""

__all__ = [
    "bounced_view",
    "contact_card",
    "duplicates_view",
    "locations_dialog",
    "patron_record",
    "patron_search",
]
