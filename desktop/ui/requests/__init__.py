"""Windows for working the request lists: the Borrowing tab, the request form, Contact Customers, printing.

Offers (``__all__``): ``borrowing_tab`` (queues and the request list), ``request_form``, ``contact_customers``,
``hold_shelf`` (the Hold Shelf view).
Inside only: ``queue_model``, ``request_table_model``, ``print_notices``, ``send_email_dialog`` (the request
form's Send E-mail preview). Other windows open these through
:mod:`desktop.ui.navigation`, never by importing them.
"""

__all__ = [
    "borrowing_tab",
    "contact_customers",
    "hold_shelf",
    "request_form",
]
