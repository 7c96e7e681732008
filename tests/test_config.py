"""Settings file, environment overrides, keyring secrets and their failure messages."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from desktop import secrets
from desktop.config import (
    DATABASE_KEYRING_SERVICE,
    SMTP_KEYRING_SERVICE,
    ConfigError,
    Settings,
    config_path,
    load_settings,
    save_settings,
)
from tests.conftest import MemoryKeyring


def test_defaults_without_any_configuration(user_environment: Path) -> None:
    settings = load_settings()
    assert settings.poll_seconds == 0  # the library's shared interval (Routing tab), 300 s unless changed
    assert settings.resolved_database_url().endswith("callslip.sqlite3")
    assert str(user_environment) in settings.resolved_database_url()
    assert settings.effective_smtp_port == 25


def test_file_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    save_settings(Settings(smtp_host="mail.example.org", smtp_security="starttls", poll_seconds=60))
    assert load_settings().effective_smtp_port == 587
    monkeypatch.setenv("CALLSLIP_POLL_SECONDS", "15")
    monkeypatch.setenv("CALLSLIP_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("CALLSLIP_PHONE_REGION", "GB")
    monkeypatch.setenv("CALLSLIP_DATABASE_URL", "postgresql://ill@db.example.org/callslip")
    settings = load_settings()
    assert (settings.smtp_host, settings.poll_seconds, settings.smtp_security) == ("mail.example.org", 15, "ssl")
    assert settings.effective_smtp_port == 465
    assert settings.phone_region == "GB"
    assert settings.resolved_database_url() == "postgresql://ill@db.example.org/callslip"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CALLSLIP_POLL_SECONDS", "soon", "CALLSLIP_POLL_SECONDS"),
        ("CALLSLIP_POLL_SECONDS", "-5", "0 \\(the shared interval\\) or more"),
        ("CALLSLIP_SMTP_SECURITY", "tls1.3", "none, starttls or ssl"),
        ("CALLSLIP_SMTP_PORT", "70000", "65535"),
        ("CALLSLIP_PHONE_REGION", "USA", "two-letter"),
        ("CALLSLIP_DATABASE_URL", "postgresql://u:hunter2@h/db", "keyring"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_broken_file_is_named() -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[callslip\nsmtp_host = ", encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path)):
        load_settings()


def test_passwords_live_in_the_keyring_only(memory_keyring: MemoryKeyring) -> None:
    settings = Settings(smtp_host="mail.example.org", smtp_username="ill", database_url="postgresql://ill@db/ill")
    path = save_settings(settings)
    secrets.set_secret(SMTP_KEYRING_SERVICE, secrets.smtp_account(settings), "s3cret-smtp")
    secrets.set_secret(DATABASE_KEYRING_SERVICE, secrets.database_account(settings.database_url), "s3cret-db")
    assert secrets.smtp_password(settings, allow_env=False) == "s3cret-smtp"
    url = secrets.url_with_password(settings.database_url)
    assert url.password == "s3cret-db"
    assert url.drivername == "postgresql+psycopg"
    text = path.read_text(encoding="utf-8")
    assert "s3cret" not in text
    assert ("Callslip SMTP", "ill@mail.example.org") in memory_keyring.store


def test_headless_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(smtp_host="mail.example.org", smtp_username="ill")
    monkeypatch.setenv("CALLSLIP_SMTP_PASSWORD", "from-env")
    assert secrets.smtp_password(settings, allow_env=True) == "from-env"
    assert secrets.smtp_password(settings, allow_env=False) is None


def test_no_keyring_gives_a_clear_message() -> None:
    keyring.set_keyring(FailKeyring())
    with pytest.raises(secrets.SecretStoreError, match="No password store"):
        secrets.get_secret(SMTP_KEYRING_SERVICE, "x@y")
    with pytest.raises(secrets.SecretStoreError, match="CALLSLIP_SMTP_PASSWORD"):
        secrets.set_secret(SMTP_KEYRING_SERVICE, "x@y", "pw")


def test_without_a_keyring_the_database_url_stays_usable() -> None:
    """A headless server with no keyring still connects (libpq may find the password in ~/.pgpass)."""
    keyring.set_keyring(FailKeyring())
    url = secrets.url_with_password("postgresql://ill@db.example.org/callslip")
    assert url.username == "ill" and url.password is None


@pytest.mark.postgres
def test_keyring_password_reaches_the_engine(pg_url: str) -> None:
    """The keyring password must survive into the engine (``str(URL)`` would have masked it as ***)."""
    from sqlalchemy.engine import make_url

    from desktop.services.database import open_database

    bare = make_url(pg_url).set(password=None)
    account = secrets.database_account(bare)
    secrets.set_secret(DATABASE_KEYRING_SERVICE, account, "pw-from-keyring")
    db, _ = open_database(secrets.url_with_password(bare.render_as_string(hide_password=False)))
    try:
        assert db.engine.url.password == "pw-from-keyring"
    finally:
        db.dispose()
