"""Requests: the Borrowing tab's queues and what staff do to a request.

Offers (``__all__``): ``queues`` (a queue read in windows of rows), ``queues_count`` (the counts beside the
queues), ``record`` (one request with Tracking and Notifications, and saving staff's edits), ``status`` (the one
place that changes a status and writes Tracking), ``contact_customers`` (Awaiting Customer Contact grouped by
method, Notified via Phone, Print Notifications), ``printing`` (printed notices as HTML), ``shelf_view``
(the Hold Shelf list), ``shelf_contacts`` (reminder calls and letters staff make by hand),
``email_actions`` (Send E-mail and Resend from the request form), ``request_sheet`` (Print Request as HTML).
"""

__all__ = [
    "contact_customers",
    "email_actions",
    "printing",
    "queues",
    "queues_count",
    "record",
    "request_sheet",
    "shelf_contacts",
    "shelf_view",
    "status",
]
