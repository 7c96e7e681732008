"""Reset E-mail Password (Contact Info tab) and redeeming the emailed link (for the patron web site).

A reset, in one transaction: the patron's web password becomes unusable (a safety measure: whoever knew it is
locked out at once), earlier reset tokens are revoked, a new single-use token valid 48 hours is created (random
32 bytes; only its SHA-256 is stored, so a copy of the database cannot be used to take accounts over), and the
"Password Reset" notice is queued in the outbox with the link. The raw token exists only in the queued notice's
``secret``, which the System Manager clears once it has sent the e-mail.

It is refused, with nothing changed, when the address belongs to patrons in different households: the link
would let one household set the other's password (de-dup first, see :mod:`desktop.services.patrons.duplicates`).

Redeeming answers every bad token (unknown, used, revoked, expired) with one generic refusal, so the web site
cannot be used to probe which tokens exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from desktop.config import Settings
from desktop.db.models import ContactPoint, NoticeTemplate, Notification, PasswordResetToken, Patron
from desktop.domain.clock import Clock, as_utc, utcnow
from desktop.domain.contacts import ContactKind, email_key
from desktop.services.admin.shared_settings import reset_link_base
from desktop.services.database import Database
from desktop.services.errors import NotFoundError, ServiceError, ValidationError
from desktop.services.notices import outbox
from desktop.services.notices.sender_identity import NO_FROM_FIX, templates_without_from
from desktop.services.notices.templates import PASSWORD_RESET
from desktop.services.patrons.duplicates import PatronRef, is_cross_household, patrons_with_email

TOKEN_BYTES = 32
TOKEN_HOURS = 48
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
#: A stored hash starting with this can never verify: argon2 hashes start with ``$argon2``.
UNUSABLE_PREFIX = "!"
SECRET_MAX = 500
#: Why a reset e-mail was not sent (the notice is cancelled with it): a link that no longer works helps nobody.
EXPIRED_BEFORE_SENDING = "cancelled: the reset link expired before the e-mail could be sent; reset the password again"
#: Characters a password may not contain: control characters (tab, vertical tab, form feed, CR, NUL…) and the
#: Unicode line and paragraph separators. The old reader cut the password at the first of them and still
#: reported success, so the patron's password was not what they typed.
_FORBIDDEN_IN_PASSWORD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\x85]")
_LINK_RE = re.compile(r"reset\s*(\.\s*link\b|\[\s*['\"]link['\"]\s*\])")

_hasher = PasswordHasher()


class ResetRefusedError(ServiceError):
    """A reset that was not done; nothing was changed and nothing queued.

    Attributes:
        patrons: the patrons sharing the address across households, when that is the reason (else empty).
    """

    def __init__(self, message: str, patrons: tuple[PatronRef, ...] = ()) -> None:
        super().__init__(message)
        self.patrons = patrons


class RedeemRefusedError(ServiceError):
    """The one answer for every unusable token (see the module docstring)."""


GENERIC_REFUSAL = (
    "This password reset link cannot be used: it may have expired or been used already. Ask the library for a new one."
)


@dataclass(frozen=True, slots=True)
class ResetPreview:
    """What a reset of one e-mail row would do, for the confirmation question."""

    contact_id: int
    patron_id: int
    patron_name: str
    email: str
    holders: tuple[PatronRef, ...]
    hours: int = TOKEN_HOURS
    undeliverable: str = ""  # why the e-mail could not be sent from this installation ("" when it could)

    @property
    def refused(self) -> bool:
        """True when the address is shared across households (the reset would be refused)."""
        return is_cross_household(self.holders)


@dataclass(frozen=True, slots=True)
class ResetResult:
    """A reset that was done: which token, which queued notice, until when the link works."""

    token_id: int
    notification_id: int
    patron_id: int
    email: str
    created_at: datetime
    expires_at: datetime


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: what is stored and looked up (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """32 random bytes, URL-safe base64; never starting with ``-`` so ``callslip-manager redeem-reset TOKEN``
    cannot mistake it for an option (costs under 0.1 bit of the 256)."""
    while True:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        if not token.startswith("-"):
            return token


def format_utc(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM UTC``: the form used in reset notices and on the Contact Info tab."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _email_point(session: Session, contact_id: int) -> ContactPoint:
    point = session.get(ContactPoint, contact_id)
    if point is None:
        raise NotFoundError("That e-mail address is no longer on the patron's record.")
    if point.kind != ContactKind.EMAIL.value:
        raise ResetRefusedError("Choose an e-mail row: the reset link is sent by e-mail.")
    return point


def preview_reset(db: Database, contact_id: int, settings: Settings | None = None) -> ResetPreview:
    """Who holds the address of e-mail row ``contact_id``, so the question can say what will happen; with
    ``settings``, also whether the e-mail could be sent at all (staff are told before they are asked)."""
    undeliverable = (undeliverable_reason(db, settings) or "") if settings is not None else ""
    with db.read() as session:
        point = _email_point(session, contact_id)
        return ResetPreview(
            contact_id=point.id,
            patron_id=point.patron_id,
            patron_name=point.patron.full_name,
            email=point.value,
            holders=tuple(patrons_with_email(session, point.value)),
            undeliverable=undeliverable,
        )


def _check_template(session: Session) -> None:
    template = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == PASSWORD_RESET))
    if template is None or template.deleted:
        raise ResetRefusedError(
            f'The "{PASSWORD_RESET}" notice is deleted, so no e-mail would be sent. '
            "Restore it in the Customization Manager first."
        )
    if not _LINK_RE.search(template.body_text + template.body_html):
        raise ResetRefusedError(
            f'The "{PASSWORD_RESET}" notice has no {{{{ reset.link }}}} in its text, so the patron could not use '
            "it. Fix the template in the Customization Manager first."
        )


def reset_link_base_for(db: Database, settings: Settings) -> str:
    """The start of reset links: this workstation's ``web_base_url`` (``CALLSLIP_WEB_BASE_URL``) when set, else
    the library's shared one (``init-db --reset-link-base``); "" when neither is."""
    return settings.web_base_url.strip() or reset_link_base(db)


def undeliverable_reason(db: Database, settings: Settings) -> str | None:
    """Why a reset e-mail could not reach the patron from this installation, or ``None`` when it could.

    Checked before anything is changed: a reset whose e-mail cannot be sent locks the patron out with no way in.
    """
    if not settings.smtp_host.strip():
        return (
            "No reset was done: e-mail sending is not configured on this workstation (no SMTP server in Settings), "
            "so the link could never reach the patron."
        )
    if templates_without_from(db, settings, {PASSWORD_RESET}):
        return f"No reset was done: the reset e-mail would have no From address; {NO_FROM_FIX}."
    if not reset_link_base_for(db, settings):
        return (
            "No reset was done: no web address for reset links is set (Settings → Reset link web address, "
            "CALLSLIP_WEB_BASE_URL, or callslip-manager init-db --reset-link-base)."
        )
    return None


def reset_link_expired(session: Session, dedupe_key: str, now: datetime) -> bool:
    """True when the reset notice ``dedupe_key`` (``reset:<token id>``) carries a link that no longer works."""
    prefix, _, token_id = dedupe_key.partition(":")
    if prefix != "reset" or not token_id.isascii() or not token_id.isdigit():
        return False
    expires = session.scalar(select(PasswordResetToken.expires_at).where(PasswordResetToken.id == int(token_id)))
    return expires is not None and as_utc(expires) <= now


def reset_password(
    db: Database,
    contact_id: int,
    *,
    staff: str,
    settings: Settings,
    clock: Clock = utcnow,
) -> ResetResult:
    """Reset the web password of the patron owning e-mail row ``contact_id`` and queue the reset notice.

    Args:
        settings: this workstation's settings: the SMTP server and From address the e-mail needs, and the reset
            link's start (``web_base_url``, else the library's shared one; the token is appended as it is).

    Raises:
        ResetRefusedError: the e-mail could not be delivered from here (no SMTP server, no From address, no
            reset-link base), the address is shared across households (``patrons`` lists them), or the template
            would not carry the link; nothing was changed.
        NotFoundError: the row was removed meanwhile.
    """
    reason = undeliverable_reason(db, settings)
    if reason is not None:
        raise ResetRefusedError(reason)
    base_url = reset_link_base_for(db, settings)
    now = clock()
    expires = now + timedelta(hours=TOKEN_HOURS)
    token = new_token()
    link = f"{base_url}{token}"
    secret = json.dumps({"link": link, "expires_at": format_utc(expires), "hours": TOKEN_HOURS})
    if len(secret) > SECRET_MAX:
        raise ResetRefusedError("The web site address for reset links is too long; shorten it in Settings.")
    with db.write() as session:
        point = _email_point(session, contact_id)
        holders = tuple(patrons_with_email(session, point.value))
        if is_cross_household(holders):
            names = "; ".join(h.label for h in holders)
            raise ResetRefusedError(
                f"{point.value} belongs to patrons in different households ({names}). "
                "No reset was done and no e-mail queued: remove the duplicate address first.",
                holders,
            )
        _check_template(session)
        patron_id = point.patron_id
        # Core UPDATE, not the ORM: the password is not part of what the Contact Card edits, so it must not bump
        # the patron's version and make an open card's save look like a conflict.
        session.execute(
            update(Patron)
            .where(Patron.id == patron_id)
            .values(web_password_hash=f"{UNUSABLE_PREFIX}reset {format_utc(now)}", password_changed_at=now)
            .execution_options(synchronize_session=False)
        )
        _revoke_live_tokens(session, patron_id, now)
        row = PasswordResetToken(
            patron_id=patron_id,
            email=point.value,
            token_hash=hash_token(token),
            created_by=staff,
            created_at=now,
            expires_at=expires,
        )
        session.add(row)
        session.flush()
        notice_id = outbox.queue_patron_notice(
            session,
            patron_id=patron_id,
            template_name=PASSWORD_RESET,
            to_address=point.value,
            dedupe_key=f"reset:{row.id}",
            secret=secret,
        )
        return ResetResult(row.id, notice_id, patron_id, point.value, now, expires)


def _revoke_live_tokens(session: Session, patron_id: int, now: datetime) -> None:
    """Revoke the patron's unused tokens and cancel their notices not yet being sent (their links are dead)."""
    live = list(
        session.scalars(
            select(PasswordResetToken).where(
                PasswordResetToken.patron_id == patron_id,
                PasswordResetToken.used_at.is_(None),
                PasswordResetToken.revoked_at.is_(None),
            )
        )
    )
    for token in live:
        token.revoked_at = now
    if live:
        keys = [f"reset:{t.id}" for t in live]
        session.execute(
            update(Notification)
            .where(
                Notification.dedupe_key.in_(keys),
                Notification.state.in_((*outbox.WAITING_STATES, outbox.NO_TEMPLATE)),
                or_(Notification.lease_until.is_(None), Notification.lease_until < now),
            )
            .values(
                state=outbox.CANCELLED,
                secret=None,
                lease_owner=None,
                lease_until=None,
                updated_at=now,
                last_reply="cancelled: a newer password reset replaced this one",
            )
            .execution_options(synchronize_session=False)
        )


def _check_new_password(password: str) -> None:
    if len(password) > MAX_PASSWORD_LENGTH:  # first: nothing below looks at more than this
        raise ValidationError(
            f"The new password must have at most {MAX_PASSWORD_LENGTH} characters.",
            {"password": f"At most {MAX_PASSWORD_LENGTH} characters."},
        )
    bad = _FORBIDDEN_IN_PASSWORD.search(password)
    if bad is not None:
        raise ValidationError(
            f"The new password contains a control character or line break (U+{ord(bad.group()):04X}); "
            "nothing was changed. Type it again without it.",
            {"password": "No control characters or line breaks."},
        )
    if not password.strip():
        raise ValidationError("The new password is only spaces; nothing was changed.", {"password": "Not only spaces."})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The new password must have at least {MIN_PASSWORD_LENGTH} characters.",
            {"password": f"At least {MIN_PASSWORD_LENGTH} characters."},
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            f"The new password must have at most {MAX_PASSWORD_LENGTH} characters.",
            {"password": f"At most {MAX_PASSWORD_LENGTH} characters."},
        )


def redeem_reset(db: Database, token: str, new_password: str, *, clock: Clock = utcnow) -> int:
    """Set a new web password with a reset token; returns the patron id.

    The token is consumed by a conditional UPDATE (``used_at IS NULL``), so two simultaneous redemptions of
    one link cannot both succeed on any backend.

    Raises:
        ValidationError: the new password is too short or too long (the token is not touched).
        RedeemRefusedError: the token is unknown, used, revoked or expired (one message for all).
    """
    _check_new_password(new_password)
    now = clock()
    password_hash = _hasher.hash(new_password)
    with db.write() as session:
        row = session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == hash_token(token)))
        if row is None or row.used_at is not None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
            raise RedeemRefusedError(GENERIC_REFUSAL)
        consumed = session.execute(
            update(PasswordResetToken)
            .where(PasswordResetToken.id == row.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(consumed, "rowcount", 0) != 1:
            raise RedeemRefusedError(GENERIC_REFUSAL)
        session.execute(
            update(Patron)
            .where(Patron.id == row.patron_id)
            .values(web_password_hash=password_hash, password_changed_at=now)
            .execution_options(synchronize_session=False)
        )
        return row.patron_id


def set_web_password(db: Database, patron_id: int, password: str, *, clock: Clock = utcnow) -> None:
    """Give a patron a web password directly (imports, and tests that need a known old password)."""
    _check_new_password(password)
    password_hash = _hasher.hash(password)
    with db.write() as session:
        done = session.execute(
            update(Patron)
            .where(Patron.id == patron_id)
            .values(web_password_hash=password_hash, password_changed_at=clock())
            .execution_options(synchronize_session=False)
        )
        if getattr(done, "rowcount", 0) != 1:
            raise NotFoundError(f"Patron {patron_id} does not exist.")


def verify_web_password(db: Database, username: str, password: str) -> bool:
    """True when ``password`` is the web password of ``username`` (what the patron web site would check)."""
    with db.read() as session:
        stored = session.scalar(select(Patron.web_password_hash).where(Patron.username == username))
    if not stored or stored.startswith(UNUSABLE_PREFIX):
        return False
    try:
        return bool(_hasher.verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def reset_notes(session: Session, patron_id: int, now: datetime) -> dict[str, str]:
    """E-mail key → "reset sent at …, expires …" for the patron's live reset tokens (Contact Info tab)."""
    tokens = session.scalars(
        select(PasswordResetToken)
        .where(
            PasswordResetToken.patron_id == patron_id,
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.revoked_at.is_(None),
        )
        .order_by(PasswordResetToken.created_at.desc(), PasswordResetToken.id.desc())
    )
    notes: dict[str, str] = {}
    for token in tokens:
        key = email_key(token.email)
        if key in notes or as_utc(token.expires_at) <= now:
            continue
        notice = session.scalar(select(Notification).where(Notification.dedupe_key == f"reset:{token.id}"))
        expires = format_utc(token.expires_at)
        if notice is not None and notice.sent_at is not None:
            notes[key] = f"reset sent at {format_utc(notice.sent_at)}, expires {expires}"
        elif notice is not None and notice.state in {outbox.FAILED, outbox.NO_TEMPLATE}:
            reason = notice.last_reply.strip().splitlines()[0] if notice.last_reply.strip() else "see the outbox"
            notes[key] = f"reset e-mail failed ({reason}); link expires {expires}"
        else:
            notes[key] = f"reset queued at {format_utc(token.created_at)}, expires {expires}"
    return notes
