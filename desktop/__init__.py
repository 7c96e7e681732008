"""Callslip: staff client for an interlibrary-loan borrowing desk."""

__version__ = "0.1.0"
