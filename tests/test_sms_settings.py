"""The library's SMS settings: stored for every workstation, checked, tested against the provider's API."""

from __future__ import annotations

from dataclasses import replace

import pytest

from desktop.db.engine import Database
from desktop.services.admin.sms_settings import (
    SMS_AUTH_TOKEN_ENV,
    SmsSettings,
    auth_token,
    load_sms_settings,
    save_sms_settings,
    send_test_sms,
    store_auth_token,
)
from desktop.services.errors import ConcurrentEditError, ValidationError
from tests.sms_provider_server import ACCOUNT_SID, AUTH_TOKEN, twilio_server

SENDER = "+15005550006"


def test_defaults_until_saved_then_shared(sqlite_db: Database) -> None:
    loaded = load_sms_settings(sqlite_db)
    assert loaded == SmsSettings()
    assert loaded.transport == "off" and loaded.max_segments == 3
    assert loaded.quiet_hours.describe() == "quiet hours 21:00–08:00"
    new = replace(loaded, transport="twilio", account_sid=ACCOUNT_SID, sender=SENDER, quiet_start="22:00")
    saved = save_sms_settings(sqlite_db, loaded, new, changed_by="admin")
    assert saved == load_sms_settings(sqlite_db) == new


def test_bad_settings_are_refused_naming_each_field(sqlite_db: Database) -> None:
    loaded = load_sms_settings(sqlite_db)
    bad = replace(loaded, transport="twilio", account_sid="AC1", sender="+1", max_segments=0, quiet_end="25:00")
    with pytest.raises(ValidationError) as caught:
        save_sms_settings(sqlite_db, loaded, bad, changed_by="admin")
    assert set(caught.value.problems) == {"twilio", "max_segments", "quiet_end"}
    assert "Account SID" in caught.value.problems["twilio"]
    assert load_sms_settings(sqlite_db) == loaded


def test_a_save_over_another_workstations_change_is_refused(sqlite_db: Database) -> None:
    original = load_sms_settings(sqlite_db)
    save_sms_settings(sqlite_db, original, replace(original, max_segments=2), changed_by="desk-2")
    with pytest.raises(ConcurrentEditError, match="changed by desk-2"):
        save_sms_settings(sqlite_db, original, replace(original, max_segments=5), changed_by="desk-1")
    assert load_sms_settings(sqlite_db).max_segments == 2


def test_the_auth_token_lives_in_the_keyring_or_the_service_environment(
    memory_keyring: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SmsSettings(transport="twilio", account_sid=ACCOUNT_SID, sender=SENDER)
    assert auth_token(settings, allow_env=False) is None
    store_auth_token(settings, AUTH_TOKEN)
    assert auth_token(settings, allow_env=False) == AUTH_TOKEN
    monkeypatch.setenv(SMS_AUTH_TOKEN_ENV, "from-env")
    assert auth_token(settings, allow_env=True) == "from-env"
    assert auth_token(settings, allow_env=False) == AUTH_TOKEN  # a desk workstation never reads the variable


def test_send_test_sms_shows_the_providers_answer() -> None:
    with twilio_server() as (base, log):
        settings = SmsSettings(transport="twilio", account_sid=ACCOUNT_SID, sender=SENDER, api_base=base)
        ok = send_test_sms(settings, AUTH_TOKEN, "+15551234567")
        wrong = send_test_sms(settings, "not-the-token", "+15551234567")
        landline = send_test_sms(settings, AUTH_TOKEN, "+15005550009")
        no_token = send_test_sms(settings, None, "+15551234567")
    assert ok.ok and ok.message == f"Sent: the provider accepted it as SM{1:032x}."
    assert log.accepted[0]["Body"].startswith("Callslip test message")
    assert not wrong.ok and "401 Authenticate (error 20003)" in wrong.message
    assert not landline.ok and "21614" in landline.message
    assert not no_token.ok and "Auth Token" in no_token.message
    assert not send_test_sms(SmsSettings(), AUTH_TOKEN, "+15551234567").ok
