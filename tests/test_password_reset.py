"""Reset E-mail Password and redeeming the link: refusals, hashing, single use, 48 hours (injected clock)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification, PasswordResetToken, Patron
from desktop.services.errors import ValidationError
from desktop.services.patrons import password_reset as pr
from desktop.services.patrons.lookup import get_patron_record
from tests.patron_helpers import make_patron, points_of

BASE = "https://library.example.org/reset?token="
#: A workstation that can send the reset e-mail: an SMTP server, a From address and a reset-link base.
SETTINGS = Settings(staff_name="tester", smtp_host="127.0.0.1", smtp_from="ill@example.edu", web_base_url=BASE)
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (the service reads it; nothing sleeps)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def counts(db: Database) -> tuple[int, int]:
    with db.read() as session:
        tokens = session.scalar(select(func.count(PasswordResetToken.id))) or 0
        notices = session.scalar(select(func.count(Notification.id))) or 0
    return tokens, notices


def password_hash(db: Database, patron_id: int) -> str | None:
    with db.read() as session:
        return session.scalar(select(Patron.web_password_hash).where(Patron.id == patron_id))


def token_from_notice(db: Database, notification_id: int) -> str:
    with db.read() as session:
        notice = session.get(Notification, notification_id)
        assert notice is not None and notice.secret
        secret = json.loads(notice.secret)
    assert secret["link"].startswith(BASE)
    return str(secret["link"][len(BASE) :])


@pytest.fixture
def ada(sqlite_db: Database) -> int:
    pid = make_patron(sqlite_db, "ada", emails=[("Home", "ada@example.org"), ("Work", "ada@work.example.edu")])
    pr.set_web_password(sqlite_db, pid, "old-password-1")
    return pid


def email_row(db: Database, patron_id: int, n: int = 0) -> int:
    return points_of(db, patron_id, "email")[n].id


def test_reset_makes_old_password_unusable_and_stores_only_a_hash(sqlite_db: Database, ada: int) -> None:
    assert pr.verify_web_password(sqlite_db, "ada", "old-password-1")
    clock = FakeClock(T0)
    result = pr.reset_password(sqlite_db, email_row(sqlite_db, ada, 1), staff="tester", settings=SETTINGS, clock=clock)
    assert result.email == "ada@work.example.edu" and result.expires_at == T0 + timedelta(hours=48)
    assert not pr.verify_web_password(sqlite_db, "ada", "old-password-1")
    assert password_hash(sqlite_db, ada).startswith(pr.UNUSABLE_PREFIX)  # type: ignore[union-attr]
    token = token_from_notice(sqlite_db, result.notification_id)
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) >= 32
    with sqlite_db.read() as session:
        row = session.get(PasswordResetToken, result.token_id)
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
        assert row.email == "ada@work.example.edu" and row.created_by == "tester"
        notice = session.get(Notification, result.notification_id)
        assert notice is not None
        assert (notice.channel, notice.request_id, notice.patron_id, notice.state) == ("email", None, ada, "pending")
        assert notice.template_name == "Password Reset" and notice.to_address == "ada@work.example.edu"
        assert notice.dedupe_key == f"reset:{result.token_id}"
        assert json.loads(notice.secret or "") == {
            "link": BASE + token,
            "expires_at": "2026-03-04 09:30 UTC",
            "hours": 48,
        }
    record = get_patron_record(sqlite_db, ada, clock=clock)
    work = record.contacts_of("email")[1]
    assert work.reset_note == "reset queued at 2026-03-02 09:30 UTC, expires 2026-03-04 09:30 UTC"
    assert record.contacts_of("email")[0].reset_note == ""


def test_redeem_works_once_and_not_twice(sqlite_db: Database, ada: int) -> None:
    clock = FakeClock(T0)
    result = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS, clock=clock)
    token = token_from_notice(sqlite_db, result.notification_id)
    clock.now = T0 + timedelta(hours=3)
    assert pr.redeem_reset(sqlite_db, token, "brand-new-secret", clock=clock) == ada
    assert pr.verify_web_password(sqlite_db, "ada", "brand-new-secret")
    assert password_hash(sqlite_db, ada).startswith("$argon2")  # type: ignore[union-attr]
    with pytest.raises(pr.RedeemRefusedError) as again:
        pr.redeem_reset(sqlite_db, token, "another-secret", clock=clock)
    assert str(again.value) == pr.GENERIC_REFUSAL
    assert pr.verify_web_password(sqlite_db, "ada", "brand-new-secret")
    assert get_patron_record(sqlite_db, ada, clock=clock).contacts_of("email")[0].reset_note == ""


def test_link_expires_after_48_hours(sqlite_db: Database, ada: int) -> None:
    clock = FakeClock(T0)
    first = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS, clock=clock)
    token = token_from_notice(sqlite_db, first.notification_id)
    clock.now = T0 + timedelta(hours=48)
    with pytest.raises(pr.RedeemRefusedError, match="expired or been used"):
        pr.redeem_reset(sqlite_db, token, "too-late-password", clock=clock)
    assert get_patron_record(sqlite_db, ada, clock=clock).contacts_of("email")[0].reset_note == ""
    clock.now = T0
    second = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS, clock=clock)
    clock.now = T0 + timedelta(hours=47, minutes=59)
    assert pr.redeem_reset(sqlite_db, token_from_notice(sqlite_db, second.notification_id), "just-in-time", clock=clock)


def test_a_new_reset_revokes_the_earlier_token_and_cancels_its_unsent_notice(sqlite_db: Database, ada: int) -> None:
    clock = FakeClock(T0)
    first = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS, clock=clock)
    old_token = token_from_notice(sqlite_db, first.notification_id)
    clock.now = T0 + timedelta(minutes=5)
    second = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS, clock=clock)
    with sqlite_db.read() as session:
        old = session.get(Notification, first.notification_id)
        assert old is not None and old.state == "cancelled" and old.secret is None
        revoked = session.get(PasswordResetToken, first.token_id)
        assert revoked is not None and revoked.revoked_at is not None
    with pytest.raises(pr.RedeemRefusedError):
        pr.redeem_reset(sqlite_db, old_token, "from-the-old-mail", clock=clock)
    assert pr.redeem_reset(
        sqlite_db, token_from_notice(sqlite_db, second.notification_id), "from-new-mail", clock=clock
    )


def test_reset_refused_for_an_address_shared_across_households(sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", household_code="H1", emails=[("Home", "family@example.org")])
    make_patron(sqlite_db, "kin", "Kin", "Lovelace", household_code="H1", emails=[("Home", "family@example.org")])
    make_patron(sqlite_db, "grace", "Grace", "Hopper", household_code="H2", emails=[("Work", "Family@Example.org")])
    pr.set_web_password(sqlite_db, ada, "old-password-1")
    before = password_hash(sqlite_db, ada)
    preview = pr.preview_reset(sqlite_db, email_row(sqlite_db, ada))
    assert preview.refused and {h.username for h in preview.holders} == {"ada", "kin", "grace"}
    with pytest.raises(pr.ResetRefusedError) as caught:
        pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    assert {p.username for p in caught.value.patrons} == {"ada", "kin", "grace"}
    assert "Grace Hopper (grace" in str(caught.value) and "different households" in str(caught.value)
    assert counts(sqlite_db) == (0, 0)
    assert password_hash(sqlite_db, ada) == before
    assert pr.verify_web_password(sqlite_db, "ada", "old-password-1")


def test_patrons_without_household_each_count_as_their_own(sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", emails=[("Home", "one@example.org")])
    make_patron(sqlite_db, "bob", "Bob", "B", emails=[("Home", "one@example.org")])
    with pytest.raises(pr.ResetRefusedError):
        pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    assert counts(sqlite_db) == (0, 0)


def test_reset_allowed_for_an_address_shared_inside_one_household(sqlite_db: Database) -> None:
    ada = make_patron(sqlite_db, "ada", household_code="H1", emails=[("Home", "family@example.org")])
    make_patron(sqlite_db, "kin", "Kin", "Lovelace", household_code="H1", emails=[("Home", "family@example.org")])
    assert not pr.preview_reset(sqlite_db, email_row(sqlite_db, ada)).refused
    pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    assert counts(sqlite_db) == (1, 1)


def test_reset_refused_when_the_template_is_deleted_or_has_no_link(sqlite_db: Database, ada: int) -> None:
    before = password_hash(sqlite_db, ada)
    with sqlite_db.write() as session:
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == "Password Reset"))
        assert template is not None
        template.deleted = True
    with pytest.raises(pr.ResetRefusedError, match="deleted"):
        pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    with sqlite_db.write() as session:
        template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == "Password Reset"))
        assert template is not None
        template.deleted = False
        template.body_text = "Your password was reset. Visit the library."
    with pytest.raises(pr.ResetRefusedError, match=r"reset\.link"):
        pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    assert counts(sqlite_db) == (0, 0) and password_hash(sqlite_db, ada) == before


def test_reset_refused_on_a_phone_row(sqlite_db: Database) -> None:
    pid = make_patron(sqlite_db, "ph", emails=[("Home", "ph@example.org")], phones=[("Cell", "312 555 0100")])
    phone = points_of(sqlite_db, pid, "phone")[0].id
    with pytest.raises(pr.ResetRefusedError, match="e-mail row"):
        pr.reset_password(sqlite_db, phone, staff="tester", settings=SETTINGS)


def test_a_too_short_password_leaves_the_token_usable(sqlite_db: Database, ada: int) -> None:
    result = pr.reset_password(sqlite_db, email_row(sqlite_db, ada), staff="tester", settings=SETTINGS)
    token = token_from_notice(sqlite_db, result.notification_id)
    with pytest.raises(ValidationError, match="at least 8"):
        pr.redeem_reset(sqlite_db, token, "short")
    assert pr.redeem_reset(sqlite_db, token, "long-enough") == ada


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "not a token at all"])
def test_unknown_tokens_get_the_generic_refusal(sqlite_db: Database, token: str) -> None:
    with pytest.raises(pr.RedeemRefusedError) as caught:
        pr.redeem_reset(sqlite_db, token, "whatever-password")
    assert str(caught.value) == pr.GENERIC_REFUSAL


def test_reset_and_redeem_on_both_backends(any_db: Database) -> None:
    pid = make_patron(any_db, "pg", emails=[("Home", "pg@example.org")])
    clock = FakeClock(T0)
    result = pr.reset_password(any_db, email_row(any_db, pid), staff="tester", settings=SETTINGS, clock=clock)
    token = token_from_notice(any_db, result.notification_id)
    assert pr.redeem_reset(any_db, token, "postgres-pass", clock=clock) == pid
    with pytest.raises(pr.RedeemRefusedError):
        pr.redeem_reset(any_db, token, "postgres-pass", clock=clock)
    assert pr.verify_web_password(any_db, "pg", "postgres-pass")


def test_tokens_are_long_random_and_never_look_like_an_option() -> None:
    tokens = {pr.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(len(t) >= 43 and not t.startswith("-") for t in tokens)
