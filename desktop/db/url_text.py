"""Database URLs read as text, without importing SQLAlchemy.

Reading the configuration happens before the main window can appear; importing SQLAlchemy just to look for a
password in ``database_url`` cost a third of Callslip's start-up. This module follows SQLAlchemy's own URL
grammar (``sqlalchemy.engine.url._parse_url``) for the parts the configuration checks: backend, user, password,
host, port and database. Everything that connects still goes through :func:`desktop.db.engine.normalize_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

# The same grammar SQLAlchemy parses, so a URL accepted here is accepted when the engine is made.
_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


class UrlTextError(ValueError):
    """Text that is not a database URL; the message says what is wrong with it."""


@dataclass(frozen=True)
class UrlParts:
    """What the configuration needs to know about a database URL."""

    backend: str
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None


def sqlite_url(path: Path | str) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def parse_url(text: str) -> UrlParts:
    """The parts of ``text``, a database URL or (without ``://``) a SQLite file path.

    Raises:
        UrlTextError: ``text`` does not follow the URL grammar, or its port is not a number.
    """
    if "://" not in text:
        return UrlParts("sqlite", None, None, None, None, str(Path(text).expanduser().resolve()))
    match = _URL.match(text)
    if match is None:
        raise UrlTextError("Could not parse SQLAlchemy URL from given URL string")
    parts = match.groupdict()
    port_text = parts["port"]
    try:
        port = int(port_text) if port_text is not None else None  # "host:/db" is refused, as SQLAlchemy does
    except ValueError:
        raise UrlTextError(f"invalid literal for int() with base 10: {port_text!r}") from None
    backend = str(parts["name"]).split("+", 1)[0]
    return UrlParts(
        backend="postgresql" if backend == "postgres" else backend,
        username=unquote(parts["username"]) if parts["username"] is not None else None,
        password=unquote(parts["password"]) if parts["password"] is not None else None,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=port,
        database=unquote(parts["database"]) if parts["database"] is not None else None,
    )
