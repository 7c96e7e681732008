"""The loopback Dovecot IMAPS server (``.ci/dovecot_imap.sh``) for the bounce-mailbox tier.

``.ci/run`` runs the script after ``.ci/postfix.sh`` and sets ``CALLSLIP_TEST_IMAP=1``; elsewhere the tier is
skipped with the reason. The fixture empties the test user's mailbox over IMAP and fills it with IMAP APPEND,
so the test never touches the server's files.
"""

from __future__ import annotations

import imaplib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from desktop.config import Settings
from desktop.services.notices.bounce_mailbox import HANDLED_KEYWORD

ENABLE_ENV = "CALLSLIP_TEST_IMAP"
ENV_FILE = Path(os.environ.get("CALLSLIP_TEST_IMAP_ENV", "/etc/callslip-imap-test/env"))
#: Read at import: the autouse fixture in conftest.py clears CALLSLIP_* variables for each test.
ENABLED = os.environ.get(ENABLE_ENV) == "1"
DONE_FOLDER = "Handled bounces"


@dataclass(frozen=True)
class ImapBox:
    """The test user's mailbox on the loopback IMAPS server."""

    host: str
    port: int
    cafile: Path
    user: str
    password: str

    def settings(self, base: Settings | None = None, **changes: object) -> Settings:
        """Settings that read this mailbox (the CA file is the one Settings → CA certificate file names)."""
        values: dict[str, object] = {
            "bounce_imap_host": self.host,
            "bounce_imap_port": self.port,
            "bounce_imap_user": self.user,
            "smtp_ca_file": str(self.cafile),
            **changes,
        }
        return (base or Settings()).with_changes(**values)

    def connect(self, folder: str = "INBOX") -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.cafile))
        imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=10)
        imap.login(self.user, self.password)
        imap.select(f'"{folder}"')
        return imap

    def empty(self) -> None:
        imap = self.connect()
        try:
            imap.create(f'"{DONE_FOLDER}"')  # NO when it exists: fine
            for folder in ("INBOX", DONE_FOLDER):
                _, selected = imap.select(f'"{folder}"')
                if selected and selected[0] not in (b"0", None):
                    imap.store("1:*", "+FLAGS", "(\\Deleted)")
                    imap.expunge()
        finally:
            imap.logout()

    def append(self, *messages: bytes) -> None:
        imap = self.connect()
        try:
            for data in messages:
                status, reply = imap.append("INBOX", None, None, data)
                assert status == "OK", reply
        finally:
            imap.logout()

    def unhandled(self, folder: str = "INBOX") -> int:
        """Messages in ``folder`` without the handled keyword."""
        imap = self.connect(folder)
        try:
            _, data = imap.uid("SEARCH", "UNKEYWORD", HANDLED_KEYWORD)
            return len((data[0] or b"").split())
        finally:
            imap.logout()

    def count(self, folder: str = "INBOX") -> int:
        imap = self.connect(folder)
        try:
            _, data = imap.uid("SEARCH", "ALL")
            return len((data[0] or b"").split())
        finally:
            imap.logout()


def _read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip()
    return values


def _box(user_key: str) -> ImapBox:
    if not ENABLED:
        pytest.skip(f"the IMAP tier needs {ENABLE_ENV}=1 and .ci/dovecot_imap.sh run as root (.ci/run does both)")
    if not ENV_FILE.is_file():
        pytest.fail(f"{ENABLE_ENV}=1 but {ENV_FILE} does not exist: run .ci/dovecot_imap.sh (as root) first")
    env = _read_env(ENV_FILE)
    box = ImapBox(
        host=env["CALLSLIP_IMAP_HOST"],
        port=int(env["CALLSLIP_IMAP_PORT"]),
        cafile=Path(env["CALLSLIP_IMAP_CA_FILE"]),
        user=env[user_key],
        password=env["CALLSLIP_IMAP_PASSWORD"],
    )
    box.empty()
    return box


@pytest.fixture
def imap_box() -> ImapBox:
    """The loopback IMAPS mailbox the fixture fills, emptied before the test."""
    return _box("CALLSLIP_IMAP_USER")


@pytest.fixture
def return_box() -> ImapBox:
    """The mailbox of the end-to-end test's From address (ill@library.callslip.test), where Postfix delivers the
    bounces of what it sent; emptied before the test."""
    return _box("CALLSLIP_IMAP_E2E_USER")
