"""One message for several items (a digest): a patron's arrivals close together go out as one e-mail or text.

Issue 18, part 4. Each System Manager cycle runs :func:`gather` before it claims anything:

* **Who waits.** A new arrival notice (``arrival:`` key, e-mail or SMS, pending, never tried, not leased, riding
  in no other message) is *held* — its ``next_attempt_at`` moved to ``created_at + window`` — only while the
  same patron has another request on its way (Request Sent or In Transit to Pickup Location). A patron with
  nothing else coming is not kept waiting: the hold is lifted as soon as the last item on its way has arrived
  (or left the path), and whatever of theirs is waiting goes at once, together. (The brief also held a notice
  while the patron had other pending arrival notices; those are gathered into one message at once anyway, so
  holding them would only add latency.)
* **Riders.** For each (patron, channel, address — case-insensitive) with several such notices, the oldest is
  the *leader*; each other one created within ``leader.created_at + window`` gets ``digest_leader_id`` = the
  leader's id. The outbox then claims a leader with its riders under one lease
  (:func:`desktop.services.notices.outbox.claim_due`), the sender renders one message whose ``requests`` lists
  them all, and records the result for every one of them in one transaction
  (:meth:`desktop.services.notices.result_writer.ResultWriter.record_group`).

A template that does not mention ``requests`` cannot list several items: its riders are then sent as messages
of their own (:func:`group_riders`), as printed letters are (``desktop.services.requests.printing``).

Correct with several System Managers: the pass is one short write transaction — ``BEGIN IMMEDIATE`` on SQLite;
on PostgreSQL a transaction-scoped advisory lock serialises gather passes. The candidates are read without row
locks and every change is written with its conditions in the ``UPDATE`` (still pending, not leased, riding in no
message; a rider's leader not leased either), so a notice another System Manager claimed meanwhile is left alone.
(Locking the candidates ``FOR UPDATE`` made every concurrent claim skip them: with 2,000 notices waiting, one System
Manager sent them all while three others found nothing to claim.)

Functions other channels' send loops use: :func:`template_lists_items`, :func:`group_riders`,
:func:`digest_context` and :func:`digest_note`; the group record is ``ResultWriter.record_group``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, text, update

from desktop.db.engine import Database
from desktop.db.models import Notification, Request
from desktop.domain.statuses import Status
from desktop.services.admin.digest_settings import DigestSettings, read_digest_settings
from desktop.services.notices.templates import TemplateFields

#: Channels whose arrival notices are gathered.
DIGEST_CHANNELS = ("email", "sms")
#: Statuses of a request still on its way to the patron: their arrival may soon join a waiting notice.
ON_THE_WAY = (Status.REQUEST_SENT.value, Status.IN_TRANSIT_TO_PICKUP.value)
#: How the ``last_reply`` of a held notice starts (so the hold, and only it, can be lifted; staff read it).
HOLD_PREFIX = "held for one message with the patron's other items"
#: Any number fixed for this program: the key of PostgreSQL's advisory lock that serialises gather passes.
_PG_LOCK_KEY = 0x43534447  # "CSDG"


@dataclass(frozen=True)
class Gathered:
    """What one :func:`gather` pass changed."""

    held: int = 0  # notices newly held (or held longer)
    released: int = 0  # held notices let go early (nothing of the patron's is on its way any more)
    riders: int = 0  # notices that now ride in another's message


def hold_reason(until: datetime) -> str:
    """``held for one message … until 14:05 UTC``: a held notice's line on Contact Customers."""
    return f"{HOLD_PREFIX} still on their way, until {until:%H:%M} UTC"


def _held(last_reply: str) -> bool:
    return last_reply.startswith(HOLD_PREFIX)


_NOTICES: Any = Notification.__table__


def gather(db: Database, *, now: datetime, settings: DigestSettings | None = None) -> Gathered:
    """Hold new arrival notices while more of the patron's items are coming, and make riders; one transaction.

    Args:
        settings: the digest settings (read from the shared settings in the same transaction when not given).
    """
    with db.write() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        settings = settings or read_digest_settings(session)
        # Table columns, not ORM attributes: plain rows, without the ORM's loading.
        n = _NOTICES.c
        waiting = (
            n.dedupe_key.like("arrival:%"),
            n.channel.in_(DIGEST_CHANNELS),
            n.state == "pending",
            n.attempts == 0,
            n.digest_leader_id.is_(None),
            or_(n.lease_until.is_(None), n.lease_until < now),
        )
        # Only the notices this pass may change: of a patron with several waiting (riders), or with items still on
        # their way (a hold), or held already (a release). After a big import nearly every patron has one item
        # and none coming: reading all the others (tens of thousands) took as long as creating them.
        several = select(n.patron_id).where(*waiting).group_by(n.patron_id).having(func.count() > 1)
        coming_to = select(Request.patron_id).where(Request.status.in_(ON_THE_WAY))
        candidates = (
            select(
                n.id, n.patron_id, n.request_id, n.channel, n.to_address, n.created_at, n.next_attempt_at, n.last_reply
            )
            .where(
                *waiting,
                or_(n.patron_id.in_(several), n.patron_id.in_(coming_to), n.last_reply.like(f"{HOLD_PREFIX}%")),
            )
            .order_by(n.id)
        )
        rows = session.execute(candidates).all()
        if not rows:
            return Gathered()
        if not settings.enabled:  # switched off: whatever is held goes now, each on its own
            release = [{"id": r.id, "next_attempt_at": now, "last_reply": ""} for r in rows if _held(r.last_reply)]
            _guarded(session, release, now)
            return Gathered(released=len(release))
        window = settings.window
        # The candidates' patrons as a subquery, not a list of ids, which may be thousands.
        patrons = candidates.with_only_columns(n.patron_id).order_by(None).scalar_subquery()
        coming: dict[int, set[int]] = {}
        for patron_id, request_id in session.execute(
            select(Request.patron_id, Request.id).where(Request.patron_id.in_(patrons), Request.status.in_(ON_THE_WAY))
        ):
            coming.setdefault(patron_id, set()).add(request_id)
        changes: list[dict[str, Any]] = []
        held = released = 0
        for r in rows:
            until = r.created_at + window
            waiting_for = coming.get(r.patron_id, set()) - {r.request_id}
            if waiting_for and until > now:
                if r.next_attempt_at != until or not _held(r.last_reply):
                    changes.append({"id": r.id, "next_attempt_at": until, "last_reply": hold_reason(until)})
                    held += 1
            elif _held(r.last_reply):
                changes.append({"id": r.id, "next_attempt_at": min(r.next_attempt_at, now), "last_reply": ""})
                released += 1
        groups: dict[tuple[int, str, str], list[Any]] = {}
        for r in rows:
            groups.setdefault((r.patron_id, r.channel, r.to_address.strip().lower()), []).append(r)
        # By primary key, in one executemany each (one statement per leader cost 0.2-0.5 s for 500 patrons), each
        # row only if still as read (see the module docstring).
        riding = [
            {"id": rider_id, "digest_leader_id": leader_id, "updated_at": now}
            for members in groups.values()
            if len(members) > 1  # most patrons have one item waiting: no group to make
            for leader_id, rider_ids in _leaders(members, window).items()
            for rider_id in rider_ids
        ]
        _guarded(session, changes, now)
        _guarded(session, riding, now)
        return Gathered(held=held, released=released, riders=len(riding))


def _free(table: Any, now: datetime) -> Any:
    """SQL: ``table``'s row is not leased (never, or the lease ran out)."""
    return or_(table.c.lease_until.is_(None), table.c.lease_until < now)


def _guarded(session: Any, rows: list[dict[str, Any]], now: datetime) -> None:
    """Write ``rows`` (``id`` plus the same columns each) where the notice is still pending, unleased and leaderless;
    a new rider only while its leader is unleased too (a leader claimed meanwhile goes without it)."""
    if not rows:
        return
    table: Any = _NOTICES
    columns = sorted(key for key in rows[0] if key != "id")
    conditions = [table.c.id == bindparam("b_id"), table.c.state == "pending", table.c.digest_leader_id.is_(None),
                  _free(table, now)]  # fmt: skip
    if "digest_leader_id" in columns:
        leader = table.alias("leader")
        conditions.append(exists().where(leader.c.id == bindparam("b_leader"), _free(leader, now)))
    statement = update(table).where(*conditions).values({c: bindparam(f"v_{c}") for c in columns})
    session.execute(
        statement,
        [
            {"b_id": row["id"], "b_leader": row.get("digest_leader_id"), **{f"v_{c}": row[c] for c in columns}}
            for row in rows
        ],
    )


def _leaders(members: Sequence[Any], window: Any) -> dict[int, list[int]]:
    """Oldest first: each leader takes the members created within its window; the rest start a new group."""
    ordered = sorted(members, key=lambda r: (r.created_at, r.id))
    found: dict[int, list[int]] = {}
    while ordered:
        leader, rest = ordered[0], ordered[1:]
        inside = [r for r in rest if r.created_at <= leader.created_at + window]
        if inside:
            found[leader.id] = [r.id for r in inside]
        ordered = [r for r in rest if r.created_at > leader.created_at + window]
    return found


def template_lists_items(fields: TemplateFields, channel: str = "email") -> bool:
    """Whether a template can list several items: it mentions ``requests`` in a part the channel sends."""
    parts = (fields.body_sms,) if channel == "sms" else (fields.subject, fields.body_text, fields.body_html)
    return any("requests" in part for part in parts)


def group_riders(
    leaders: Mapping[int, int | None], sendable: Iterable[int], lists_items: Callable[[int], bool]
) -> tuple[dict[int, list[int]], set[int]]:
    """Which claimed notices go in one message with which leader, and which riders go on their own.

    Args:
        leaders: each claimed notice's ``digest_leader_id`` (``None``: it leads or goes alone).
        sendable: the notices still to be sent after each was checked on its own (cancelled ones left out).
        lists_items: whether the leader's template can list several items (:func:`template_lists_items`).

    Returns:
        ``{leader id: [rider ids, oldest first]}`` for leaders with riders, and the riders to send alone
        (their leader was not sent, or its template lists one item).
    """
    ok = set(sendable)
    groups: dict[int, list[int]] = {}
    alone: set[int] = set()
    for notice_id in sorted(ok):
        leader = leaders.get(notice_id)
        if leader is None:
            continue
        if leader in ok and leaders.get(leader) is None and lists_items(leader):
            groups.setdefault(leader, []).append(notice_id)
        else:
            alone.add(notice_id)
    return groups, alone


def digest_context(leader: Mapping[str, Any], riders: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The leader's context with ``requests`` = the leader's request, then each rider's (``request`` stays)."""
    context = dict(leader)
    context["requests"] = [leader["request"], *(rider["request"] for rider in riders)]
    return context


def digest_note(medium: str, others: int, message_id: str) -> str:
    """A Tracking line's words for one item of a digest: ``in one e-mail with 2 other items, Message-ID <…>``."""
    items = "item" if others == 1 else "items"
    return f"in one {medium} with {others} other {items}, Message-ID {message_id}"


def count_riders(db: Database) -> int:
    """Notices waiting inside another's message (for tests and the log)."""
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    Notification.digest_leader_id.is_not(None), Notification.state.in_(("pending", "retrying"))
                )
            )
            or 0
        )
