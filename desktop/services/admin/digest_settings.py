"""The library's digest setting, shared by every workstation: whether and how long arrivals wait to go together.

A patron with several items arriving close together gets one message listing them all instead of one per item
(issue 18, part 4). An arrival waits at most ``window_minutes`` after it reached Awaiting Customer Contact, and
only while more of that patron's items are on their way (:mod:`desktop.services.notices.digest`). Stored as one
JSON value (``digest``) in ``system_settings``, like the SMS settings, because the System Manager that gathers
the notices may run on any computer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.domain.clock import utcnow
from desktop.services.admin.json_setting import read_json_setting, store_json_setting
from desktop.services.errors import ValidationError

DIGEST_KEY = "digest"
MIN_WINDOW_MINUTES = 1
MAX_WINDOW_MINUTES = 120
DEFAULT_WINDOW_MINUTES = 15


@dataclass(frozen=True)
class DigestSettings:
    """What the Digest page of the Customization Manager edits.

    Attributes:
        enabled: gather a patron's arrivals into one message (default on).
        window_minutes: how long an arrival may wait for the patron's other items (1–120).
    """

    enabled: bool = True
    window_minutes: int = DEFAULT_WINDOW_MINUTES

    @property
    def window(self) -> timedelta:
        """The window as a duration."""
        return timedelta(minutes=self.window_minutes)


def digest_settings_from(value: Any) -> DigestSettings:
    """Stored JSON → settings; damaged entries fall back to the defaults, a window out of range to its bound."""
    if not isinstance(value, dict):
        return DigestSettings()
    enabled = value.get("enabled", True)
    try:
        minutes = int(value.get("window_minutes", DEFAULT_WINDOW_MINUTES))
    except (TypeError, ValueError):
        minutes = DEFAULT_WINDOW_MINUTES
    return DigestSettings(
        enabled=enabled if isinstance(enabled, bool) else True,
        window_minutes=max(MIN_WINDOW_MINUTES, min(MAX_WINDOW_MINUTES, minutes)),
    )


def _as_json(settings: DigestSettings) -> dict[str, Any]:
    return {"enabled": settings.enabled, "window_minutes": settings.window_minutes}


def read_digest_settings(session: Session) -> DigestSettings:
    """The shared digest settings in the caller's session (the defaults when never saved or damaged)."""
    return read_json_setting(session, DIGEST_KEY, digest_settings_from)


def load_digest_settings(db: Database) -> DigestSettings:
    """The shared digest settings (the defaults when never saved or damaged)."""
    with db.read() as session:
        return read_digest_settings(session)


def validate_digest(settings: DigestSettings) -> dict[str, str]:
    """Problems keyed by field; empty when the settings may be saved."""
    problems: dict[str, str] = {}
    if not MIN_WINDOW_MINUTES <= settings.window_minutes <= MAX_WINDOW_MINUTES:
        problems["window_minutes"] = (
            f"The window must be between {MIN_WINDOW_MINUTES} and {MAX_WINDOW_MINUTES} minutes."
        )
    return problems


def save_digest_settings(
    db: Database, original: DigestSettings, new: DigestSettings, *, changed_by: str, now: datetime | None = None
) -> DigestSettings:
    """Store ``new`` unless another workstation saved different settings since ``original`` was loaded.

    Raises:
        ValidationError: a problem from :func:`validate_digest`; nothing saved.
        ConcurrentEditError: another workstation changed them meanwhile; nothing saved.
    """
    problems = validate_digest(new)
    if problems:
        raise ValidationError("Digest settings not saved:\n" + "\n".join(f"• {m}" for m in problems.values()), problems)
    store_json_setting(db, DIGEST_KEY, original=_as_json(original), new=_as_json(new),
                       normalise=lambda data: _as_json(digest_settings_from(data)), what="the digest settings",
                       changed_by=changed_by, now=now or utcnow())  # fmt: skip
    return load_digest_settings(db)
