"""Pure domain rules: statuses, methods, contact-point kinds and validation. Imports neither Qt nor SQLAlchemy."""
