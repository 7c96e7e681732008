"""One library-wide setting stored as a JSON value in ``system_settings``: read it, and save it without undoing
another workstation's save.

Why one helper: the SMS settings and the digest setting (and any later page of the Customization Manager that keeps
a small document of its own) are read by every System Manager and edited from any workstation. Each must treat a
damaged value as "the defaults", and each save must be refused — with the name of who saved meanwhile — when the
stored value is neither what the editor loaded nor what it is about to write. That rule is written once here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import SystemSetting
from desktop.services.errors import ConcurrentEditError

T = TypeVar("T")


def read_json_setting(session: Session, key: str, parse: Callable[[Any], T]) -> T:
    """``parse`` of the stored JSON value of ``key``; ``parse(None)`` (its defaults) when none or unreadable."""
    row = session.get(SystemSetting, key)
    if row is None:
        return parse(None)
    try:
        data = json.loads(row.value)
    except ValueError:
        return parse(None)
    return parse(data)


def store_json_setting(
    db: Database,
    key: str,
    *,
    original: Mapping[str, Any],
    new: Mapping[str, Any],
    normalise: Callable[[Any], Mapping[str, Any]],
    what: str,
    changed_by: str,
    now: datetime,
) -> None:
    """Store ``new`` as ``key``'s value unless another workstation saved a different one since ``original`` was read.

    Args:
        normalise: stored JSON (or None) → the same normal form as ``original`` and ``new``, so a value written
            by an older version compares equal to what the editor loaded from it.
        what: how the error names the setting ("the SMS settings").

    Raises:
        ConcurrentEditError: the stored value changed meanwhile; nothing is written.
    """
    with db.write() as session:
        row = session.get(SystemSetting, key)
        current = read_json_setting(session, key, normalise)
        if current not in (original, new):
            who = row.updated_by if row is not None else "another workstation"
            raise ConcurrentEditError(
                f"{what} were changed by {who} while you were editing; nothing was saved. "
                "Reopen the Customization Manager to see the current values."
            )
        value = json.dumps(dict(new))
        if row is None:
            session.add(SystemSetting(key=key, value=value, updated_by=changed_by, updated_at=now))
        else:
            row.value, row.updated_by, row.updated_at = value, changed_by, now
