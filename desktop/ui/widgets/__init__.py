"""Widgets and models every window shares: the ribbon, read-only tables, the small record model, icons.

Offers (``__all__``): ``ribbon``, ``tables``, ``record_table_model``, ``icons``.
"""

__all__ = ["icons", "record_table_model", "ribbon", "tables"]
