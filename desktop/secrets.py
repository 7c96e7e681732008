"""Passwords in the OS keyring, and nowhere else.

Keyring failures (no backend on a headless server, a locked wallet) become :class:`SecretStoreError` with a
sentence staff can act on, never a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os

import keyring
import keyring.errors
from sqlalchemy.engine import URL

from desktop.config import DATABASE_KEYRING_SERVICE, SMTP_KEYRING_SERVICE, Settings
from desktop.db.engine import normalize_url

SMTP_PASSWORD_ENV = "CALLSLIP_SMTP_PASSWORD"
#: The bounce mailbox's password (issue 19): keyring service, and the variable a headless server may use.
BOUNCE_IMAP_KEYRING_SERVICE = "callslip-bounce-imap"
BOUNCE_IMAP_PASSWORD_ENV = "CALLSLIP_BOUNCE_IMAP_PASSWORD"
log = logging.getLogger(__name__)


class SecretStoreError(RuntimeError):
    """The OS keyring could not be used."""


def _explain(exc: Exception) -> SecretStoreError:
    if isinstance(exc, keyring.errors.NoKeyringError):
        return SecretStoreError(
            "No password store (OS keyring) is available on this computer. Install or unlock one, or on a "
            f"headless server give the SMTP password in {SMTP_PASSWORD_ENV}."
        )
    return SecretStoreError(f"The password store (OS keyring) refused the request: {type(exc).__name__}")


def get_secret(service: str, account: str) -> str | None:
    """The password stored for ``account`` under ``service``, or ``None``."""
    try:
        return keyring.get_password(service, account)
    except keyring.errors.KeyringError as exc:
        raise _explain(exc) from None


def set_secret(service: str, account: str, password: str) -> None:
    """Store (or, with an empty password, delete) a password."""
    try:
        if password:
            keyring.set_password(service, account, password)
        else:
            with contextlib.suppress(keyring.errors.PasswordDeleteError):
                keyring.delete_password(service, account)
    except keyring.errors.KeyringError as exc:
        raise _explain(exc) from None


def database_account(url: str | URL) -> str:
    """Keyring account name of a database: ``user@host:port/database``."""
    parsed = normalize_url(url)
    return f"{parsed.username or ''}@{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def smtp_account(settings: Settings) -> str:
    """Keyring account name of the SMTP login: ``user@host``."""
    return f"{settings.smtp_username}@{settings.smtp_host}"


def url_with_password(url: str | URL) -> URL:
    """The database URL with its password filled in from the keyring when it has a user but no password."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" or parsed.password or not parsed.username:
        return parsed
    try:
        password = get_secret(DATABASE_KEYRING_SERVICE, database_account(parsed))
    except SecretStoreError as exc:
        # A headless server may have no keyring but a ~/.pgpass (or PGPASSWORD) that libpq reads itself.
        log.warning("%s; connecting without a stored password", exc)
        return parsed
    return parsed.set(password=password) if password else parsed


def smtp_password(settings: Settings, *, allow_env: bool) -> str | None:
    """The SMTP password: from the service environment (headless only) or the keyring; ``None`` if none."""
    if not settings.smtp_username:
        return None
    if allow_env and os.environ.get(SMTP_PASSWORD_ENV):
        return os.environ[SMTP_PASSWORD_ENV]
    return get_secret(SMTP_KEYRING_SERVICE, smtp_account(settings))


def bounce_imap_account(settings: Settings) -> str:
    """Keyring account name of the bounce mailbox login: ``user@host``."""
    return f"{settings.bounce_imap_user}@{settings.bounce_imap_host}"


def bounce_imap_password(settings: Settings, *, allow_env: bool) -> str | None:
    """The bounce mailbox password: the service environment (headless only) or the keyring; ``None`` if none."""
    if allow_env and os.environ.get(BOUNCE_IMAP_PASSWORD_ENV):
        return os.environ[BOUNCE_IMAP_PASSWORD_ENV]
    return get_secret(BOUNCE_IMAP_KEYRING_SERVICE, bounce_imap_account(settings))
