"""Backing off the whole SMTP server when it refuses every message for now, shared by every System Manager.

A 421 ("closing connection"), the server closing the connection, a 4xx to ``MAIL FROM`` (a per-client rate limit)
or a server that cannot be reached says nothing about one notice: it says "not now" to this client. Retrying
each notice at once would open a connection per notice (seen: 200 connections in half a second) and spend an
attempt of every notice. So the cycle stops, gives its claims back uncharged and records a back-off here: no
System Manager (the desk's poller or a headless ``callslip-manager run``) connects to that server before it ends.
The delay grows with each refusal in a row — 30 s, 1, 2, 4, 8 minutes, then every 15 minutes — and the first
message the server accepts clears it.

It lives in the shared ``system_settings`` table (one JSON row), not in memory, so every workstation and the
headless manager agree, and a restart does not forget it. It names the server it is about (``host:port``):
changing the SMTP server in Settings is not held back by the old server's refusals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from desktop.db.engine import Database
from desktop.db.models import SystemSetting
from desktop.domain.clock import as_utc
from desktop.services.notices.delivery_problems import DeliveryProblem

#: The ``system_settings`` key holding the back-off.
KEY = "smtp_backoff"
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
#: Who the row is "updated by" (shown where shared settings list their last editor).
UPDATED_BY = "System Manager"


@dataclass(frozen=True)
class Backoff:
    """The server refused every message ``failures`` times in a row; nobody connects to it before ``until``.

    Attributes:
        server: ``host:port`` the refusals came from.
        until: when a System Manager may try again (UTC).
        failures: refusals in a row (the delay doubles with each).
        problem: what kind of refusal: :attr:`DeliveryProblem.SERVER_BUSY` or ``UNREACHABLE``.
        reason: the server's reply or the network error, one line, for staff.
    """

    server: str
    until: datetime
    failures: int
    problem: DeliveryProblem
    reason: str

    def describe(self) -> str:
        """One line for the cycle's errors: what happened and when the next try is."""
        when = f"backing off: no new connection before {self.until:%H:%M:%S} UTC (refusal {self.failures} in a row)"
        if self.problem is DeliveryProblem.UNREACHABLE:
            return f"{self.reason}; {when}"
        return f"the SMTP server {self.server} refused every message for now ({self.reason}); {when}"


def delay(failures: int) -> timedelta:
    """The wait after ``failures`` refusals in a row: 30 s, 1 min, 2 min, … at most 15 minutes."""
    if failures < 1:
        return timedelta(0)
    return min(FIRST_DELAY * (1 << min(failures - 1, 20)), MAX_DELAY)


def _decode(text: str) -> Backoff | None:
    try:
        data = json.loads(text)
        return Backoff(
            server=str(data["server"]),
            until=as_utc(datetime.fromisoformat(data["until"])),
            failures=int(data["failures"]),
            problem=DeliveryProblem(data["problem"]),
            reason=str(data.get("reason", "")),
        )
    except (ValueError, KeyError, TypeError):  # damaged or from another version: as if there were none
        return None


def current(db: Database, server: str) -> Backoff | None:
    """The back-off in force or last recorded for ``server`` (``None``: none, or it was about another server)."""
    with db.read() as session:
        row = session.get(SystemSetting, KEY)
        backoff = _decode(row.value) if row is not None else None
    return backoff if backoff is not None and backoff.server == server else None


def record_refusal(db: Database, server: str, problem: DeliveryProblem, reason: str, now: datetime) -> Backoff:
    """Count one more server-wide refusal and store the longer back-off; returns it.

    Read and written in one write transaction, so two System Managers refused at the same moment count two
    refusals rather than overwriting each other.
    """
    with db.write() as session:
        row = session.get(SystemSetting, KEY)
        previous = _decode(row.value) if row is not None else None
        failures = previous.failures + 1 if previous is not None and previous.server == server else 1
        backoff = Backoff(server, now + delay(failures), failures, problem, " ".join(reason.split())[:300])
        value = json.dumps(
            {
                "server": backoff.server,
                "until": backoff.until.isoformat(),
                "failures": backoff.failures,
                "problem": backoff.problem.value,
                "reason": backoff.reason,
            }
        )
        if row is None:
            session.add(SystemSetting(key=KEY, value=value, updated_by=UPDATED_BY))
        else:
            row.value, row.updated_by = value, UPDATED_BY
    return backoff


def clear(db: Database) -> bool:
    """Forget the back-off (the server accepted a message, or staff pressed Retry now); True if there was one."""
    with db.write() as session:
        row = session.get(SystemSetting, KEY)
        if row is None:
            return False
        session.delete(row)
        return True
