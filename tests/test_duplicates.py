"""E-mail addresses shared across households (the de-dup list)."""

from __future__ import annotations

from desktop.db.engine import Database
from desktop.services.patrons.duplicates import find_shared_emails, is_cross_household, patrons_with_email
from tests.patron_helpers import make_patron


def test_only_addresses_spanning_households_are_listed(any_db: Database) -> None:
    make_patron(any_db, "ada", "Ada", "A", household_code="H1", emails=[("Home", "family@example.org")])
    make_patron(any_db, "kin", "Kin", "A", household_code="H1", emails=[("Home", "Family@example.org")])
    make_patron(any_db, "grace", "Grace", "H", household_code="H2", emails=[("Home", "shared@example.org")])
    make_patron(any_db, "alan", "Alan", "T", emails=[("Work", "SHARED@example.org"), ("Home", "alan@example.org")])
    make_patron(any_db, "solo", "Solo", "S", emails=[("Home", "solo@example.org")])
    shared = find_shared_emails(any_db)
    assert [s.email for s in shared] == ["shared@example.org"]
    assert [p.username for p in shared[0].patrons] == ["grace", "alan"]
    assert shared[0].household_count == 2
    assert shared[0].patrons[1].household_id is None and shared[0].patrons[1].household_key < 0
    assert "no household" in shared[0].patrons[1].label


def test_patrons_with_email_compares_normalised(sqlite_db: Database) -> None:
    make_patron(sqlite_db, "ada", emails=[("Home", "Ada@Example.org")])
    with sqlite_db.read() as session:
        refs = patrons_with_email(session, " ADA@example.ORG ")
    assert [r.username for r in refs] == ["ada"]
    assert not is_cross_household(refs)


def test_demo_data_has_cross_household_duplicates(seeded_db: Database) -> None:
    shared = find_shared_emails(seeded_db)
    for item in shared:
        assert item.household_count >= 2
        assert len({p.id for p in item.patrons}) == len(item.patrons)
