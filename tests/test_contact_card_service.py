"""Contact Card service: load/save all points together, validation, versions, primaries, removal, warnings."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desktop.db.engine import Database
from desktop.services.errors import ConcurrentEditError, NotFoundError, ValidationError
from desktop.services.patrons import contact_card as cc
from desktop.services.patrons.contact_card import CardData, CardPoint, PostalAddress, merge_card
from tests.patron_helpers import location_id, make_patron, points_of, primary_count


@pytest.fixture
def patron(sqlite_db: Database) -> int:
    return make_patron(
        sqlite_db,
        "ada",
        emails=[("Home", "ada@example.org"), ("Work", "ada@work.example.edu")],
        phones=[("Home", "217-555-0101")],
        household_code="H1",
    )


def test_load_card_lists_points_address_and_locations(sqlite_db: Database, patron: int) -> None:
    card = cc.load_card(sqlite_db, patron)
    assert [p.kind for p in card.points] == ["email", "email", "phone"]
    assert card.points[0].is_primary and not card.points[1].is_primary
    assert card.address.city == "Springfield"
    names = [loc.name for loc in card.locations]
    assert names[:5] == ["Home", "Work", "Cell", "Emergency", "Other"]
    cell = next(loc for loc in card.locations if loc.name == "Cell")
    assert cell.allows("phone") and not cell.allows("email")
    assert cc.default_location(card.locations, "phone") == cell
    assert cc.default_location(card.locations, "email").name == "Home"  # type: ignore[union-attr]


def test_save_adds_updates_removes_and_normalises(sqlite_db: Database, patron: int) -> None:
    card = cc.load_card(sqlite_db, patron)
    home, work, phone = card.points
    new_points = [
        home,
        cc.CardPoint(kind="phone", value="(312) 555-0199 x42", location_id=location_id(sqlite_db, "Cell"), id=phone.id),
        cc.CardPoint(kind="fax", value="+44 20 7946 0958", location_id=location_id(sqlite_db, "Work")),
        cc.CardPoint(kind="web", value="Example.ORG/ada", location_id=location_id(sqlite_db, "Work")),
    ]
    address = cc.PostalAddress("2 Elm St", "Apt 3", "Urbana", "IL", "61801")
    result = cc.save_card(sqlite_db, patron, card.version_id, new_points, address)
    assert result.version_id == card.version_id + 1
    rows = points_of(sqlite_db, patron)
    assert [r.kind for r in rows] == ["email", "phone", "fax", "web"]
    assert work.id not in {r.id for r in rows}
    assert rows[1].id == phone.id and rows[1].normalized == "+13125550199" and rows[1].extension == "42"
    assert rows[1].value == "(312) 555-0199"
    assert rows[2].normalized == "+442079460958"
    assert rows[3].normalized == "https://example.org/ada"
    assert all(r.is_primary for r in rows)  # each is the only one of its kind
    again = cc.load_card(sqlite_db, patron)
    assert again.address == address and again.version_id == result.version_id


def test_invalid_fields_are_refused_and_nothing_is_saved(sqlite_db: Database, patron: int) -> None:
    card = cc.load_card(sqlite_db, patron)
    bad = [
        *card.points,
        cc.CardPoint(kind="phone", value="555-01", location_id=location_id(sqlite_db, "Home")),
        cc.CardPoint(kind="email", value="nobody@", location_id=location_id(sqlite_db, "Home")),
        cc.CardPoint(kind="web", value="https://", location_id=location_id(sqlite_db, "Work")),
        cc.CardPoint(kind="email", value="ADA@example.org", location_id=location_id(sqlite_db, "Other")),
        cc.CardPoint(kind="email", value="x@example.org", location_id=location_id(sqlite_db, "Cell")),
    ]
    with pytest.raises(ValidationError) as caught:
        cc.save_card(sqlite_db, patron, card.version_id, bad, card.address)
    problems = caught.value.problems
    assert "phone number" in problems["3"].lower()
    assert "e-mail" in problems["4"].lower()
    assert "host" in problems["5"]
    assert "already on the card" in problems["6"]
    assert "Cell is not used for e-mails" in problems["7"]
    assert str(caught.value).startswith("Nothing was saved: 5 field(s)")
    assert cc.load_card(sqlite_db, patron) == card


def test_save_over_a_newer_version_is_refused(any_db: Database) -> None:
    sqlite_db = any_db  # the same rule on both backends
    patron = make_patron(any_db, "ada", emails=[("Home", "ada@example.org")])
    first = cc.load_card(sqlite_db, patron)
    second = cc.load_card(sqlite_db, patron)
    home = location_id(sqlite_db, "Home")
    cc.save_card(
        sqlite_db,
        patron,
        first.version_id,
        [*first.points, cc.CardPoint("email", "one@example.org", home)],
        first.address,
    )
    with pytest.raises(ConcurrentEditError, match="changed on another workstation"):
        cc.save_card(
            sqlite_db,
            patron,
            second.version_id,
            [*second.points, cc.CardPoint("email", "two@example.org", home)],
            second.address,
        )
    values = [p.normalized for p in points_of(sqlite_db, patron, "email")]
    assert "one@example.org" in values and "two@example.org" not in values


def test_primary_choice_on_save(sqlite_db: Database, patron: int) -> None:
    card = cc.load_card(sqlite_db, patron)
    home, work, phone = card.points
    swapped = [
        cc.CardPoint(kind="email", value=home.value, location_id=home.location_id, id=home.id, is_primary=False),
        cc.CardPoint(kind="email", value=work.value, location_id=work.location_id, id=work.id, is_primary=True),
        phone,
    ]
    cc.save_card(sqlite_db, patron, card.version_id, swapped, card.address)
    emails = points_of(sqlite_db, patron, "email")
    assert [e.is_primary for e in emails] == [False, True]
    assert primary_count(sqlite_db, patron, "email") == 1


def test_make_primary_moves_the_marker_in_one_transaction(any_db: Database) -> None:
    pid = make_patron(any_db, "bob", emails=[("Home", "bob@example.org"), ("Work", "bob@work.example.org")])
    before = cc.load_card(any_db, pid).version_id
    _home, work = points_of(any_db, pid, "email")
    assert cc.make_primary(any_db, work.id) == pid
    emails = points_of(any_db, pid, "email")
    assert [e.is_primary for e in emails] == [False, True]
    assert primary_count(any_db, pid, "email") == 1
    assert cc.load_card(any_db, pid).version_id == before + 1
    cc.make_primary(any_db, work.id)  # already primary: nothing changes
    assert primary_count(any_db, pid, "email") == 1
    with pytest.raises(NotFoundError):
        cc.make_primary(any_db, 999_999)


def test_database_refuses_two_primaries(any_db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    from desktop.db.models import ContactPoint

    pid = make_patron(any_db, "eve", emails=[("Home", "eve@example.org"), ("Work", "eve@work.example.org")])
    _, work = points_of(any_db, pid, "email")
    with pytest.raises(IntegrityError), any_db.write() as session:
        row = session.get(ContactPoint, work.id)
        assert row is not None
        row.is_primary = True


def test_removing_the_primary_promotes_the_next(sqlite_db: Database) -> None:
    pid = make_patron(
        sqlite_db,
        "cy",
        emails=[("Home", "a@example.org"), ("Work", "b@example.org"), ("Other", "c@example.org")],
    )
    a, b, c = points_of(sqlite_db, pid, "email")
    result = cc.remove_contact(sqlite_db, a.id)
    assert result.promoted_id == b.id
    assert [(p.id, p.is_primary) for p in points_of(sqlite_db, pid, "email")] == [(b.id, True), (c.id, False)]
    result = cc.remove_contact(sqlite_db, b.id, promote_id=c.id)
    assert result.promoted_id == c.id
    result = cc.remove_contact(sqlite_db, c.id)
    assert result.promoted_id is None and points_of(sqlite_db, pid, "email") == []


def test_removing_a_secondary_promotes_nothing(sqlite_db: Database, patron: int) -> None:
    _, work = points_of(sqlite_db, patron, "email")
    assert cc.remove_contact(sqlite_db, work.id).promoted_id is None
    assert primary_count(sqlite_db, patron, "email") == 1


def test_email_held_in_another_household_is_a_warning_naming_the_patron(sqlite_db: Database, patron: int) -> None:
    make_patron(sqlite_db, "grace", "Grace", "Hopper", household_code="H2", emails=[("Home", "shared@example.org")])
    make_patron(sqlite_db, "kin", "Kin", "Lovelace", household_code="H1", emails=[("Home", "family@example.org")])
    warnings = cc.email_warnings(sqlite_db, patron, ["Shared@Example.org", "family@example.org", "new@example.org"])
    assert list(warnings) == ["shared@example.org"]
    assert warnings["shared@example.org"][0].full_name == "Grace Hopper"
    card = cc.load_card(sqlite_db, patron)
    home = location_id(sqlite_db, "Home")
    result = cc.save_card(
        sqlite_db,
        patron,
        card.version_id,
        [
            *card.points,
            cc.CardPoint("email", "shared@example.org", home),
            cc.CardPoint("email", "family@example.org", home),
        ],
        card.address,
    )
    assert len(result.warnings) == 1 and "Grace Hopper (grace" in result.warnings[0]
    again = cc.load_card(sqlite_db, patron)
    assert cc.save_card(sqlite_db, patron, again.version_id, again.points, again.address).warnings == ()


def test_deactivated_location_kept_on_old_points_but_not_for_new(sqlite_db: Database, patron: int) -> None:
    from desktop.services.patrons import locations

    other = location_id(sqlite_db, "Other")
    card = cc.load_card(sqlite_db, patron)
    first = card.points[0]
    moved = cc.CardPoint(first.kind, first.value, other, first.extension, first.is_primary, first.id)
    card_v = cc.save_card(sqlite_db, patron, card.version_id, [moved, *card.points[1:]], card.address).version_id
    locations.set_active(sqlite_db, other, False)
    card = cc.load_card(sqlite_db, patron)
    assert cc.save_card(sqlite_db, patron, card_v, card.points, card.address).version_id == card_v + 1
    card = cc.load_card(sqlite_db, patron)
    with pytest.raises(ValidationError) as caught:
        cc.save_card(
            sqlite_db,
            patron,
            card.version_id,
            [*card.points, cc.CardPoint("email", "z@example.org", other)],
            card.address,
        )
    assert "no longer in use" in caught.value.problems["3"]


@given(text=st.text(max_size=40), kind=st.sampled_from(["email", "phone", "fax", "web"]))
def test_check_value_is_ok_with_a_preview_or_refused_with_a_message(text: str, kind: str) -> None:
    check = cc.check_value(kind, text)
    if check.ok:
        assert check.normalized and check.preview and not check.message
        assert cc.check_value(kind, check.normalized).normalized == check.normalized
    else:
        assert check.message and not check.normalized


_point = st.tuples(
    st.sampled_from(["email", "phone"]),
    st.integers(min_value=100, max_value=199),
    st.booleans(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.lists(_point, max_size=6, unique_by=lambda p: (p[0], p[1])))
def test_saving_any_card_leaves_one_primary_per_kind_present(
    sqlite_db: Database, patron: int, spec: list[tuple[str, int, bool]]
) -> None:
    home = location_id(sqlite_db, "Home")
    card = cc.load_card(sqlite_db, patron)
    points = [
        cc.CardPoint(kind, f"p{n}@example.org" if kind == "email" else f"+1217555{n:04d}", home, is_primary=primary)
        for kind, n, primary in spec
    ]
    cc.save_card(sqlite_db, patron, card.version_id, points, card.address)
    saved = points_of(sqlite_db, patron)
    assert len(saved) == len(points)
    for kind in {p.kind for p in points}:
        marked = [i for i, p in enumerate(points) if p.kind == kind and p.is_primary]
        expected = marked[0] if marked else next(i for i, p in enumerate(points) if p.kind == kind)
        assert [r.position for r in saved if r.kind == kind and r.is_primary] == [expected]


# ------------------------------------------------------------------------------------------ reload and merge


def _card(points: list[CardPoint], address: PostalAddress | None = None, version: int = 1) -> CardData:
    return CardData(1, "Ada Lovelace", "", version, tuple(points), address or PostalAddress(), ())


def _email(value: str, point_id: int | None, primary: bool = False) -> CardPoint:
    return CardPoint("email", value, None, "", primary, point_id)


def test_merge_takes_theirs_keeps_mine_and_reports_both() -> None:
    base = _card([_email("a@x.org", 1, True), _email("b@x.org", 2), _email("c@x.org", 3)],
                 PostalAddress("1 Main St", "", "Springfield", "IL", "62701"))  # fmt: skip
    # This card: edited b, removed c, added d, changed the city.
    mine = [_email("a@x.org", 1, True), _email("b2@x.org", 2), _email("d@x.org", None)]
    mine_address = PostalAddress("1 Main St", "", "Urbana", "IL", "62701")
    # The other workstation: edited a, edited b differently, added e, changed the zip and the city.
    theirs = _card([_email("a2@x.org", 1, True), _email("b3@x.org", 2), _email("c@x.org", 3), _email("e@x.org", 4)],
                   PostalAddress("1 Main St", "", "Champaign", "IL", "61820"), version=2)  # fmt: skip
    merged = merge_card(base, mine, mine_address, theirs)
    assert [(p.value, p.id, p.is_primary) for p in merged.points] == [
        ("a2@x.org", 1, True),  # only they changed it: theirs
        ("b2@x.org", 2, False),  # both changed it: mine, reported
        ("d@x.org", None, False),  # added here
        ("e@x.org", 4, False),  # added there
    ]  # c: removed here, untouched there: stays removed
    assert merged.address == PostalAddress("1 Main St", "", "Urbana", "IL", "61820")
    assert merged.taken == 3  # a2, e, the zip
    assert len(merged.conflicts) == 2
    assert "b2@x.org" in merged.conflicts[0] and "b3@x.org" in merged.conflicts[0]
    assert merged.conflicts[1].startswith("City:") and "Champaign" in merged.conflicts[1]


def test_merge_never_drops_what_was_typed_and_follows_their_primary() -> None:
    base = _card([_email("a@x.org", 1, True), _email("b@x.org", 2)])
    mine = [_email("a@x.org", 1, True), _email("b-edited@x.org", 2)]
    theirs = _card([_email("a@x.org", 1, False), _email("z@x.org", 5, True)], version=2)  # b removed, z primary
    merged = merge_card(base, mine, PostalAddress(), theirs)
    assert [(p.value, p.id, p.is_primary) for p in merged.points] == [
        ("a@x.org", 1, False),
        ("b-edited@x.org", None, False),  # removed there, edited here: back as a new line
        ("z@x.org", 5, True),  # this card did not change the primary: theirs is followed
    ]
    assert any("removed on the other workstation" in c for c in merged.conflicts)
    # A primary chosen on this card wins.
    mine_primary = [_email("a@x.org", 1, False), _email("b@x.org", 2, True)]
    kept = merge_card(base, mine_primary, PostalAddress(), _card([_email("a@x.org", 1, True), _email("b@x.org", 2)],
                                                                 version=2))  # fmt: skip
    assert [(p.id, p.is_primary) for p in kept.points] == [(1, False), (2, True)]
