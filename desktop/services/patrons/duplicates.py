"""E-mail addresses shared across households: the de-dup list, and the check behind reset refusals and warnings.

Two patrons of one household may share an address (a family account); patrons of different households must
not, because a password reset sent there would let one household take over the other's web account. A patron
without a household counts as a household of their own. Comparison uses the normalised (case-folded) key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desktop.db.models import ContactPoint, Household, Patron
from desktop.domain.contacts import ContactKind, email_key
from desktop.services.database import Database


@dataclass(frozen=True, slots=True)
class PatronRef:
    """A patron as named in a warning or a list: enough to recognise and open them.

    Attributes:
        household_key: the household id, or the negated patron id for a patron without one, so "same
            household" is a plain equality.
    """

    id: int
    username: str
    full_name: str
    household_id: int | None
    household_name: str

    @property
    def household_key(self) -> int:
        """Identity of the household for comparisons (a patron alone is their own household)."""
        return self.household_id if self.household_id is not None else -self.id

    @property
    def label(self) -> str:
        """ "Name (username, household)" as shown to staff."""
        where = self.household_name or "no household"
        return f"{self.full_name} ({self.username}, {where})"


@dataclass(frozen=True, slots=True)
class SharedEmail:
    """One e-mail address held by patrons of more than one household."""

    email: str
    patrons: tuple[PatronRef, ...]

    @property
    def household_count(self) -> int:
        """How many distinct households hold the address."""
        return len({p.household_key for p in self.patrons})


def _ref(patron: Patron) -> PatronRef:
    household = patron.household
    return PatronRef(
        id=patron.id,
        username=patron.username,
        full_name=patron.full_name,
        household_id=patron.household_id,
        household_name=(household.name or household.code) if household is not None else "",
    )


def patrons_with_email(session: Session, address: str) -> list[PatronRef]:
    """Every patron holding ``address`` (normalised comparison), ordered by name."""
    key = email_key(address)
    patrons = session.scalars(
        select(Patron)
        .join(ContactPoint, ContactPoint.patron_id == Patron.id)
        .where(ContactPoint.kind == ContactKind.EMAIL.value, ContactPoint.normalized == key)
        .distinct()
        .order_by(Patron.last_name, Patron.first_name, Patron.id)
    )
    return [_ref(p) for p in patrons]


def is_cross_household(refs: Iterable[PatronRef]) -> bool:
    """True when ``refs`` span more than one household."""
    return len({r.household_key for r in refs}) > 1


def other_household_holders(session: Session, patron_id: int, address: str) -> list[PatronRef]:
    """Patrons outside ``patron_id``'s household who hold ``address`` (what the Contact Card warns about)."""
    holders = patrons_with_email(session, address)
    patron = session.get(Patron, patron_id)
    if patron is None:
        return [h for h in holders if h.id != patron_id]
    own = patron.household_id if patron.household_id is not None else -patron.id
    return [h for h in holders if h.household_key != own]


def find_shared_emails(db: Database) -> list[SharedEmail]:
    """All e-mail addresses held in more than one household, with the patrons concerned, by address."""
    with db.read() as session:
        shared_keys = (
            select(ContactPoint.normalized)
            .where(ContactPoint.kind == ContactKind.EMAIL.value)
            .group_by(ContactPoint.normalized)
            .having(func.count(func.distinct(ContactPoint.patron_id)) > 1)
        )
        rows = session.execute(
            select(ContactPoint.normalized, Patron, Household)
            .join(Patron, Patron.id == ContactPoint.patron_id)
            .outerjoin(Household, Household.id == Patron.household_id)
            .where(ContactPoint.kind == ContactKind.EMAIL.value, ContactPoint.normalized.in_(shared_keys))
            .order_by(ContactPoint.normalized, Patron.last_name, Patron.first_name, Patron.id)
        ).all()
        by_key: dict[str, dict[int, PatronRef]] = defaultdict(dict)
        for key, patron, _household in rows:
            by_key[key].setdefault(patron.id, _ref(patron))
    result = []
    for key, refs in by_key.items():
        patrons = tuple(refs.values())
        if is_cross_household(patrons):
            result.append(SharedEmail(email=key, patrons=patrons))
    return result
