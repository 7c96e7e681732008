"""Administrators' windows: Settings, the Customization Manager, CSV import, and the start-up problem page.

Offers (``__all__``): ``settings_dialog``, ``customization_manager``, ``import_dialog``, ``startup_problem``,
``illiad_import_wizard`` (Moving from ILLiad), ``opening_window`` (what staff see while the database opens),
``shelf_policy_editor`` (Routing → Hold shelf), ``sms_settings_page`` (Text Messages: the SMS transport),
``digest_settings_page`` (One Message for Many Items: the digest setting).
"""

__all__ = [
    "customization_manager",
    "digest_settings_page",
    "illiad_import_wizard",
    "import_dialog",
    "opening_window",
    "settings_dialog",
    "shelf_policy_editor",
    "sms_settings_page",
    "startup_problem",
]
