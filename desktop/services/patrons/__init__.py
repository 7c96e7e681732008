"""Patrons: who they are and how to reach them.

Offers (``__all__``): ``lookup`` (patron search and one patron's record), ``contact_card`` (all contact points
and the postal address saved together, notification and delivery methods), ``duplicates`` (addresses shared
across households), ``password_reset`` (Reset E-mail Password and redeeming the link), ``locations`` (the
Locations code table). Per-event channel preferences belong here.
"""

__all__ = ["contact_card", "duplicates", "locations", "lookup", "password_reset"]
