"""Small counting queries used at start-up."""

from __future__ import annotations

from sqlalchemy import select

from desktop.db.engine import Database
from desktop.db.models import Request


def has_requests(db: Database) -> bool:
    """True when the database holds at least one request."""
    with db.read() as session:
        return session.scalar(select(Request.id).limit(1)) is not None
