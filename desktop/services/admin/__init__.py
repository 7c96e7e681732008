"""Administration: moving data in and out, demo data, settings every workstation shares, connection checks.

Offers (``__all__``): ``csv_import`` and ``csv_export`` (ILLiad field names, dry run, forward-only statuses),
``demo`` (demo data that stays demo), ``shared_settings`` (Customization Manager → Routing and Library),
``connection_check`` (Settings → Test connection), ``database_problems`` (a database error as one sentence),
``shelf_settings`` (each pickup location's shelf policy and the closed days), ``sms_settings`` (the library's
SMS transport, limits and quiet hours), ``digest_settings`` (whether and how long a patron's arrivals wait to go
out as one message).
Inside only: ``json_setting`` (one shared setting kept as a JSON value, saved without undoing another's save).
``illiad_import`` (ILLiad's table exports with their history), ``illiad_templates``
(ILLiad notification templates converted). (Opening a database is ``desktop.services.database``: every package uses it.)
"""

__all__ = [
    "connection_check",
    "csv_export",
    "csv_import",
    "database_problems",
    "demo",
    "digest_settings",
    "illiad_import",
    "illiad_templates",
    "shared_settings",
    "shelf_settings",
    "sms_settings",
]
