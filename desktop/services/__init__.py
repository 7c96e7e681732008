"""Use cases over one session each: what the GUI and ``callslip-manager`` call. Never imports Qt widgets.

One package per capability, each naming what it offers in its ``__init__`` (``__all__``); packages use each
other only through those public modules (``tests/test_layers.py`` checks it):

- ``notices``: the outbox, the System Manager cycle, SMTP, templates, why notices wait.
- ``patrons``: patron search and record, the Contact Card, duplicates, password reset, Locations.
- ``requests``: queues, status changes, Contact Customers, printing.
- ``admin``: CSV import/export, demo data, shared settings, connection checks.

Shared by all: ``database`` (opening a database, reference data) and ``errors`` (messages for people).
"""
