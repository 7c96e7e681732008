"""Widgets and models every window shares: the ribbon, read-only tables, the small record model, icons, paper, the
status colours that stay readable in any palette, and Tab order in reading order.

Offers (``__all__``): ``ribbon``, ``key_tips`` (Alt or F10 shows a letter over each ribbon button), ``tables``,
``record_table_model``, ``icons``, ``paper`` (the page size of printed sheets, from the locale or the setting),
``colours``, ``focus``.
"""

__all__ = ["colours", "focus", "icons", "key_tips", "paper", "record_table_model", "ribbon", "tables"]
