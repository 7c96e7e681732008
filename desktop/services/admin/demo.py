"""Realistic demo data: households, every notification method, requests in every status, shared e-mails.

Demo data stays demo: the ids of the patrons and requests seeding wrote are recorded in ``system_settings``
(:data:`DEMO_MARKER_KEY`), so ``seed-demo`` can refuse a database holding anyone else's records
(:func:`foreign_records`) and never attaches a demo request to a real patron. The demo library's name, address,
e-mail, phone and reset-link base are written here too, and only where the library has none of its own.

Written with bulk inserts (explicit ids, executemany in chunks) so a 1,000,000-request benchmark database
takes seconds to tens of seconds, not hours. Deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, false, func, insert, or_, select, text
from sqlalchemy.orm import Session

from desktop.db.engine import Database
from desktop.db.models import (
    ContactPoint,
    Household,
    Location,
    Patron,
    PickupLocation,
    Request,
    SystemSetting,
    Tracking,
)
from desktop.domain.clock import utcnow
from desktop.domain.contacts import format_phone
from desktop.domain.statuses import Status
from desktop.services.admin.shared_settings import set_library_identity
from desktop.services.errors import ServiceError

FIRST = ["Ada", "Grace", "Alan", "Zoë", "José", "Søren", "Ólafur", "Amara", "Chidi", "Mei", "Hiroshi", "Priya",
         "Fatima", "Liam", "Noah", "Olivia", "Emma", "Mateo", "Aisha", "Yusuf", "Ingrid", "Tomás", "Nadia",
         "王", "李", "Ana", "Björn", "Chloé", "Dmitri", "Elif"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Okafor", "García", "Kierkegaard", "Jónsson", "Nakamura", "Patel",
        "Haddad", "Smith", "Johnson", "Müller", "Novák", "Rossi", "Kowalski", "O'Brien", "Nguyen", "Silva",
        "小明", "华", "Andersen", "Dubois", "Ivanova", "Yılmaz", "Mensah", "Cohen", "Larsen",
        "Costa", "Berg"]  # fmt: skip
STREETS = ["Oak Street", "Maple Avenue", "College Road", "Mill Lane", "River Drive", "Elm Court", "Hill Way"]
CITIES = [
    ("Springfield", "IL", "627"),
    ("Urbana", "IL", "618"),
    ("Decatur", "IL", "625"),
    ("Peoria", "IL", "616"),
]
DEPARTMENTS = ["History", "Chemistry", "Library Science", "Mathematics", "Music", "Nursing", "Law", "Physics"]
PATRON_STATUSES = ["Faculty", "Graduate", "Undergraduate", "Staff", "Community"]
WORDS = ["History", "Theory", "Introduction", "Modern", "Atlas", "Letters", "Rivers", "Light", "Memory", "Cities",
         "Music", "Silence", "Atoms", "Empire", "Gardens", "Migration", "Language", "Machines", "Ocean", "Stars",
         "Medieval", "Quantum", "Ethics", "Bridges", "Poetry", "Winter", "Islands", "Trade", "Faith",
         "Maps"]  # fmt: skip
JOURNALS = ["Journal of Library Science", "Nature", "Annals of Mathematics", "Music Quarterly", "Law Review",
            "Chemical Reviews", "Historical Journal"]  # fmt: skip
LIBRARIES = ["University of Illinois", "Northwestern University", "Ohio State University", "Purdue University",
             "University of Chicago", "Indiana University"]  # fmt: skip

#: Default spread over the queues: every status present, a real Contact Customers workload.
DEFAULT_STATUS_WEIGHTS: dict[Status, float] = {
    Status.AWAITING_REQUEST_PROCESSING: 8,
    Status.REQUEST_SENT: 14,
    Status.IN_TRANSIT_TO_PICKUP: 6,
    Status.AWAITING_CUSTOMER_CONTACT: 8,
    Status.NOTIFIED_VIA_EMAIL: 8,
    Status.NOTIFIED_VIA_PHONE: 3,
    Status.NOTIFIED_VIA_MAIL: 2,
    Status.CHECKED_OUT: 14,
    Status.REQUEST_FINISHED: 33,
    Status.CANCELLED_BY_STAFF: 2,
    Status.CANCELLED_BY_CUSTOMER: 2,
}

CHUNK = 20_000
DEMO_USER = "Demo"
#: ``system_settings`` key listing the id ranges of the patrons and requests seeding created.
DEMO_MARKER_KEY = "demo_data"
#: The invented library notices of a demo database are signed with (never written over a real library's values).
DEMO_LIBRARY: dict[str, str] = {
    "name": "Callslip Demo Library",
    "address": "Interlibrary Loan Office\n1 Library Way\nSpringfield, IL 62701",
    "email": "ill@library.example.org",
    "phone": "+1 217 555 0100",
    "reset_link_base": "https://library.example.org/reset?token=",
}
DEMO_MAIN_DESK_ADDRESS = "1 Library Way, Springfield"


class DemoRefusedError(ServiceError):
    """Seeding was refused: the database holds records seeding did not create (nothing was added)."""


@dataclass(frozen=True)
class ForeignRecords:
    """Patrons and requests in a database that demo seeding did not create."""

    patrons: int
    requests: int

    def __bool__(self) -> bool:
        return bool(self.patrons or self.requests)


def _ranges(session: Session) -> dict[str, list[list[int]]]:
    row = session.get(SystemSetting, DEMO_MARKER_KEY)
    try:
        data = json.loads(row.value) if row is not None else {}
    except ValueError:
        data = {}
    return {kind: [list(map(int, r)) for r in data.get(kind, [])] for kind in ("patrons", "requests")}


def _in_ranges(column: Any, ranges: list[list[int]]) -> ColumnElement[bool]:
    return or_(false(), *(column.between(low, high) for low, high in ranges))


def foreign_records(db: Database) -> ForeignRecords:
    """How many patrons and requests seeding did not create: any makes ``seed-demo`` refuse (without ``--force``)."""
    with db.read() as session:
        ranges = _ranges(session)
        patrons = session.scalar(select(func.count(Patron.id)).where(~_in_ranges(Patron.id, ranges["patrons"])))
        requests = session.scalar(select(func.count(Request.id)).where(~_in_ranges(Request.id, ranges["requests"])))
    return ForeignRecords(int(patrons or 0), int(requests or 0))


def check_may_seed(db: Database, *, force: bool = False) -> None:
    """Refuse to seed a database that holds real patrons or requests, unless ``force``.

    Raises:
        DemoRefusedError: naming how many records are not demo data and the way to override.
    """
    if force:
        return
    foreign = foreign_records(db)
    if foreign:
        raise DemoRefusedError(
            f"{db.display_name} holds {foreign.patrons} patron(s) and {foreign.requests} request(s) that seed-demo "
            "did not create; demo patrons and requests were not added. Use a new database for the demo "
            "(or pass --force to add them anyway)."
        )


def _record_ranges(session: Session, patron_ids: list[int], first_request: int, requests: int) -> None:
    ranges = _ranges(session)
    if patron_ids:
        ranges["patrons"].append([min(patron_ids), max(patron_ids)])
    if requests:
        ranges["requests"].append([first_request, first_request + requests - 1])
    value = json.dumps(ranges)
    row = session.get(SystemSetting, DEMO_MARKER_KEY)
    if row is None:
        session.add(SystemSetting(key=DEMO_MARKER_KEY, value=value, updated_by=DEMO_USER))
    else:
        row.value = value


def _demo_patron_ids(session: Session) -> list[int]:
    ranges = _ranges(session)["patrons"]
    if not ranges:
        return []
    return list(session.scalars(select(Patron.id).where(_in_ranges(Patron.id, ranges)).order_by(Patron.id)))


def _fill_demo_identity(db: Database) -> None:
    """The demo library's identity where the library has none (a real library's values are never touched)."""
    set_library_identity(
        db,
        changed_by=DEMO_USER,
        name=DEMO_LIBRARY["name"],
        address=DEMO_LIBRARY["address"],
        email=DEMO_LIBRARY["email"],
        phone=DEMO_LIBRARY["phone"],
        reset_link_base=DEMO_LIBRARY["reset_link_base"],
        only_if_empty=True,
    )


@dataclass(frozen=True)
class SeedResult:
    """What was added."""

    patrons: int
    requests: int
    first_transaction_number: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Requests (plus their Tracking rows) written per second."""
        return (2 * self.requests + self.patrons) / self.seconds if self.seconds else 0.0


def seed_demo(
    db: Database,
    patrons: int = 60,
    requests: int = 400,
    *,
    seed: int = 2026,
    status_weights: Mapping[Status, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Add ``patrons`` demo patrons and ``requests`` requests spread over the queues.

    Requests go to the patrons added now, else to earlier demo patrons: never to a patron seeding did not create.
    Callers that face staff (``seed-demo``, ``callslip --demo``) call :func:`check_may_seed` first.
    """
    import time

    started = time.perf_counter()
    rng = random.Random(seed)
    weights = dict(status_weights or DEFAULT_STATUS_WEIGHTS)
    _fill_demo_identity(db)
    with db.write() as session:
        ensure_demo_pickups(session)
        patron_ids = _seed_patrons(session, rng, patrons) if patrons else []
        if not patron_ids:
            patron_ids = _demo_patron_ids(session)
        if requests and not patron_ids:
            raise DemoRefusedError(
                "there are no demo patrons to attach demo requests to (demo requests never go to real patrons); "
                "seed some demo patrons too (--patrons)"
            )
        first_request = _next_id(session, Request.id)
        first_tn = _seed_requests(session, rng, patron_ids, requests, weights, progress)
        _record_ranges(session, patron_ids if patrons else [], first_request, requests)
        _advance_sequences(session)
    return SeedResult(patrons, requests, first_tn, time.perf_counter() - started)


def ensure_demo_pickups(session: Session) -> None:
    """Demo pickup locations: one with a routing delay, so routing can be seen at work."""
    main = session.scalar(select(PickupLocation).where(PickupLocation.code == "MAIN"))
    if main is not None and not main.address.strip():
        main.address = DEMO_MAIN_DESK_ADDRESS
    have = set(session.scalars(select(PickupLocation.code)))
    for code, name, address, delay in (
        ("SCI", "Science Library Service Desk", "20 Science Drive, Springfield", 30),
        ("LAW", "Law Library", "5 Court Street, Springfield", 0),
    ):
        if code not in have:
            session.add(PickupLocation(code=code, name=name, address=address, routing_delay_minutes=delay))
    session.flush()


def _next_id(session: Session, column: Any) -> int:
    return int(session.scalar(select(func.coalesce(func.max(column), 0))) or 0) + 1


def _seed_patrons(session: Session, rng: random.Random, count: int) -> list[int]:
    now = utcnow()
    locations = {loc.name: loc.id for loc in session.scalars(select(Location))}
    pickups = list(session.scalars(select(PickupLocation.id).order_by(PickupLocation.id)))
    first_id = _next_id(session, Patron.id)
    first_household = _next_id(session, Household.id)
    household_rows: list[dict[str, Any]] = []
    patron_rows: list[dict[str, Any]] = []
    contact_rows: list[dict[str, Any]] = []
    emails: list[str] = []
    household_id: int | None = None
    household_left = 0
    for n in range(count):
        pid = first_id + n
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if household_left == 0:
            if rng.random() < 0.5:  # a household of two to four members
                household_id = first_household + len(household_rows)
                household_rows.append(
                    {"id": household_id, "code": f"H{household_id:05d}", "name": f"The {last} household"}
                )
                household_left = rng.randint(2, 4)
            else:
                household_id = None
                household_left = 1
        household_left -= 1
        roll = rng.random()
        method = "E-Mail" if roll < 0.6 else "Phone" if roll < 0.85 else "Mail"
        street = f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
        city, state, zip3 = rng.choice(CITIES)
        no_address = method == "Mail" and n % 17 == 5  # a few Mail patrons without an address, as in real life
        patron_rows.append(
            {
                "id": pid,
                "username": f"demo{pid:06d}",
                "first_name": first,
                "last_name": last,
                "status": rng.choice(PATRON_STATUSES),
                "department": rng.choice(DEPARTMENTS),
                "household_id": household_id,
                "notification_method": method,
                "delivery_method": "Mail to Address" if rng.random() < 0.12 else "Hold for Pickup",
                "pickup_location_id": rng.choice(pickups),
                "address1": "" if no_address else street,
                "address2": "",
                "city": "" if no_address else city,
                "state": "" if no_address else state,
                "zip": "" if no_address else f"{zip3}{rng.randint(0, 99):02d}",
                "created_at": now,
                "updated_at": now,
                "version_id": 1,
            }
        )
        local = f"{_ascii(first)}.{_ascii(last)}{pid}".lower()
        if emails and rng.random() < 0.06:
            email = rng.choice(emails)  # shared with another patron, maybe in another household: de-dup material
        else:
            email = f"{local}@example.org"
            emails.append(email)
        points: list[tuple[str, str, str, str, bool]] = [("email", "Home", email, email, True)]
        if rng.random() < 0.25:
            points.append(("email", "Work", f"{local}@work.example.edu", f"{local}@work.example.edu", False))
        home = f"+1217555{rng.randint(100, 199):04d}"
        points.append(("phone", "Home", format_phone(home), home, True))
        if rng.random() < 0.5:
            cell = f"+1312555{rng.randint(100, 199):04d}"
            points.append(("phone", "Cell", format_phone(cell), cell, False))
        if rng.random() < 0.1:
            fax = f"+1217555{rng.randint(100, 199):04d}"
            points.append(("fax", "Work", format_phone(fax), fax, True))
        if rng.random() < 0.1:
            url = f"https://{local.replace('.', '-')}.example.net/"
            points.append(("web", "Work", url, url, True))
        for position, (kind, loc, value, normalized, primary) in enumerate(points):
            contact_rows.append(
                {
                    "patron_id": pid,
                    "kind": kind,
                    "location_id": locations.get(loc),
                    "value": value,
                    "normalized": normalized,
                    "extension": "",
                    "is_primary": primary,
                    "position": position,
                    "created_at": now,
                }
            )
    if household_rows:
        _bulk(session, Household, household_rows)
    for rows, model in ((patron_rows, Patron), (contact_rows, ContactPoint)):
        for chunk in _chunked(rows):
            _bulk(session, model, chunk)
    return [row["id"] for row in patron_rows]


def _seed_requests(
    session: Session,
    rng: random.Random,
    patron_ids: list[int],
    count: int,
    weights: dict[Status, float],
    progress: Callable[[int], None] | None,
) -> int:
    now = utcnow()
    first_id = _next_id(session, Request.id)
    first_tn = max(_next_id(session, Request.transaction_number), 100_001)
    first_tracking = _next_id(session, Tracking.id)
    statuses = list(weights)
    cumulative = list(weights.values())
    picked = rng.choices(statuses, weights=cumulative, k=count)
    titles = [" ".join(rng.sample(WORDS, 3)) for _ in range(500)]
    authors = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(300)]
    done = 0
    while done < count:
        size = min(CHUNK, count - done)
        requests: list[dict[str, Any]] = []
        tracking: list[dict[str, Any]] = []
        for i in range(done, done + size):
            status = picked[i]
            age = timedelta(days=rng.randint(0, 90), minutes=rng.randint(0, 1439))
            changed = (
                now - timedelta(minutes=rng.randint(0, 60 * 24 * 5))
                if status is Status.AWAITING_CUSTOMER_CONTACT
                else now - age / 2
            )
            article = rng.random() < 0.3
            title = titles[i % len(titles)]
            requests.append(
                {
                    "id": first_id + i,
                    "transaction_number": first_tn + i,
                    "patron_id": patron_ids[i % len(patron_ids)] if i < len(patron_ids) else rng.choice(patron_ids),
                    "request_type": "Article" if article else "Loan",
                    "loan_title": "" if article else title,
                    "loan_author": rng.choice(authors),
                    "photo_journal_title": rng.choice(JOURNALS) if article else "",
                    "photo_article_title": f"On {title.lower()}" if article else "",
                    "status": status.value,
                    "status_changed_at": changed,
                    "transaction_date": now - age,
                    "due_date": date.today() + timedelta(days=rng.randint(7, 60)) if not article else None,
                    "call_number": _call_number(rng),
                    "lending_library": rng.choice(LIBRARIES),
                    "pickup_location_id": None,
                    "updated_at": changed,
                    "version_id": 1,
                }
            )
            tracking.append(
                {
                    "id": first_tracking + i,
                    "request_id": first_id + i,
                    "from_status": None,
                    "to_status": status.value,
                    "changed_by": DEMO_USER,
                    "changed_at": changed,
                    "note": "demo data",
                }
            )
        _bulk(session, Request, requests)
        _bulk(session, Tracking, tracking)
        done += size
        if progress:
            progress(done)
    return first_tn


def _bulk(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """One executemany per chunk through Core: the ORM's bulk path splits rows into many small batches."""
    session.connection().execute(insert(model.__table__), rows)


def _advance_sequences(session: Session) -> None:
    """Rows were inserted with explicit ids; PostgreSQL's sequences must move past them (SQLite needs nothing)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in ("households", "patrons", "contact_points", "requests", "tracking"):
        session.execute(
            text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE((SELECT MAX(id) FROM {table}), 1))")
        )


def _chunked(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _ascii(text: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "")
    return plain or "patron"


def _call_number(rng: random.Random) -> str:
    return f"{rng.choice('ABDHPQ')}{rng.randint(1, 999)}.{rng.choice('ABCDEFG')}{rng.randint(1, 99)}"
