"""Widgets and models every window shares: the ribbon, read-only tables, the small record model, icons, paper.

Offers (``__all__``): ``ribbon``, ``tables``, ``record_table_model``, ``icons``, ``paper`` (the page size of
printed sheets, from the locale or the setting).
"""

__all__ = ["icons", "paper", "record_table_model", "ribbon", "tables"]
