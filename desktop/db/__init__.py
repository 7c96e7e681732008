"""Persistence: SQLAlchemy models, engines and migrations. Never imports Qt."""
