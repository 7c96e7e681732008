"""Patrons: who they are and how to reach them.

Offers (``__all__``): ``lookup`` (patron search and one patron's record), ``contact_card`` (all contact points
and the postal address saved together, notification and delivery methods), ``duplicates`` (addresses shared
across households), ``password_reset`` (Reset E-mail Password and redeeming the link), ``locations`` (the
Locations code table), ``channel_preferences`` (per-event channels, in order, with history).
"""

__all__ = ["channel_preferences", "contact_card", "duplicates", "locations", "lookup", "password_reset"]
