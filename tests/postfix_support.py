"""The real-MTA tier: a loopback Postfix (with Dovecot SASL) set up by ``.ci/postfix.sh``.

``.ci/run`` runs the script (as root) and sets ``CALLSLIP_TEST_POSTFIX=1``; elsewhere the tier is skipped with the
reason. The script writes what the tests need (ports, CA file, SASL user, Maildir base, log file) to
``/etc/callslip-postfix-test/env`` (``CALLSLIP_TEST_POSTFIX_ENV`` names another file).

Every address is delivered into its own Maildir ``<base>/<domain>/<local part>/`` (lower case), so each test
sends to a domain of its own (:meth:`Postfix.new_domain`) and reads only that folder. Delivery happens after the
server's 250 (Postfix queues, then delivers): :meth:`Postfix.wait_until_delivered` waits for the queue to empty.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from desktop.config import Settings

ENABLE_ENV = "CALLSLIP_TEST_POSTFIX"
ENV_FILE_ENV = "CALLSLIP_TEST_POSTFIX_ENV"
DEFAULT_ENV_FILE = Path("/etc/callslip-postfix-test/env")
#: Senders the script's access map refuses at MAIL FROM: 421 (and the connection closed), 450.
BUSY_SENDER = "busy@callslip.test"
TEMPFAIL_SENDER = "tempfail@callslip.test"
# Read when the tests are collected: every test runs with the CALLSLIP_* variables cleared (tests/conftest.py).
ENABLED = os.environ.get(ENABLE_ENV) == "1"
ENV_FILE = Path(os.environ.get(ENV_FILE_ENV) or DEFAULT_ENV_FILE)
REPORT_FILE = os.environ.get("CALLSLIP_POSTFIX_REPORT", "")
#: How long to wait for Postfix to deliver what it accepted (a wait, not an assertion about speed).
DELIVERY_WAIT = 120.0


@dataclass(frozen=True)
class Postfix:
    """The running test Postfix and where to look at what it did."""

    host: str
    port: int
    rate_limited_port: int
    submission_port: int
    smtps_port: int
    cafile: Path
    user: str
    password: str
    maildir: Path
    log: Path

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the test CA the script made (as staff would with the CA certificate file setting)."""
        return ssl.create_default_context(cafile=str(self.cafile))

    def settings(self, **changes: object) -> Settings:
        """Settings sending to the plain port (2525) from the library's address, with a short timeout."""
        base = Settings(staff_name="tester", smtp_host=self.host, smtp_port=self.port, smtp_security="none",
                        smtp_from="ill@library.example.org", smtp_timeout=10.0)  # fmt: skip
        return base.with_changes(**changes) if changes else base

    @staticmethod
    def new_domain() -> str:
        """A domain no other test sends to, so its Maildirs are this test's alone."""
        return f"t{uuid.uuid4().hex[:12]}.test"

    def log_offset(self) -> int:
        """Where the log ends now: :meth:`log_since` reads what Postfix logs after it."""
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> list[str]:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace").splitlines()

    def wait_for_listener(self) -> None:
        """Wait until Postfix accepts connections again (after ``postfix start``)."""
        deadline = time.monotonic() + DELIVERY_WAIT
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def queue_ids(self) -> list[str]:
        """Messages Postfix still holds (accepted, not yet delivered or bounced)."""
        out = subprocess.run(["postqueue", "-j"], capture_output=True, text=True, check=True).stdout
        return [json.loads(line)["queue_id"] for line in out.splitlines() if line.strip()]

    def wait_until_delivered(self) -> None:
        """Wait until Postfix has delivered everything it accepted (its queue is empty)."""
        deadline = time.monotonic() + DELIVERY_WAIT
        while self.queue_ids():
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix still holds {self.queue_ids()} after {DELIVERY_WAIT:.0f} s")
            time.sleep(0.1)

    def mailboxes(self, domain: str) -> dict[str, list[EmailMessage]]:
        """Every message delivered to ``domain``, by local part (lower case), parsed with ``email.policy.default``."""
        folder = self.maildir / domain.lower()
        found: dict[str, list[EmailMessage]] = {}
        if not folder.is_dir():
            return found
        for box in sorted(folder.iterdir()):
            messages = []
            for path in sorted((box / "new").iterdir()):
                parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                messages.append(parsed)
            found[box.name] = messages
        return found


def _read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip()
    return values


def find_postfix() -> Postfix:
    """The Postfix ``.ci/postfix.sh`` set up; fails with the reason when the tier is enabled but it is not there."""
    path = ENV_FILE
    if not path.is_file():
        pytest.fail(f"{ENABLE_ENV}=1 but {path} does not exist: run .ci/postfix.sh (as root) first")
    env = _read_env(path)
    postfix = Postfix(
        host=env["CALLSLIP_POSTFIX_HOST"],
        port=int(env["CALLSLIP_POSTFIX_PORT"]),
        rate_limited_port=int(env["CALLSLIP_POSTFIX_RATE_LIMITED_PORT"]),
        submission_port=int(env["CALLSLIP_POSTFIX_SUBMISSION_PORT"]),
        smtps_port=int(env["CALLSLIP_POSTFIX_SMTPS_PORT"]),
        cafile=Path(env["CALLSLIP_POSTFIX_CA_FILE"]),
        user=env["CALLSLIP_POSTFIX_USER"],
        password=env["CALLSLIP_POSTFIX_PASSWORD"],
        maildir=Path(env["CALLSLIP_POSTFIX_MAILDIR"]),
        log=Path(env["CALLSLIP_POSTFIX_LOG"]),
    )
    try:
        with socket.create_connection((postfix.host, postfix.port), timeout=5):
            pass
    except OSError as exc:
        pytest.fail(f"Postfix is not answering on {postfix.host}:{postfix.port} ({exc}): run .ci/postfix.sh")
    return postfix


@pytest.fixture(scope="session")
def postfix_server() -> Iterator[Postfix]:
    """The loopback Postfix; the tier is skipped unless ``CALLSLIP_TEST_POSTFIX=1`` (set by ``.ci/run``)."""
    if not ENABLED:
        pytest.skip(f"the Postfix tier needs {ENABLE_ENV}=1 and .ci/postfix.sh run as root (.ci/run does both)")
    yield find_postfix()


#: The server's own domain: a bare recipient (a name fragment taken for an address) is qualified with it.
OWN_DOMAIN = "mail.callslip.test"


@pytest.fixture
def postfix(postfix_server: Postfix) -> Iterator[Postfix]:
    """The Postfix, with its queue empty before and after the test (nothing of one test reaches another).

    The server's own domain's Maildirs are emptied first: whatever lands there during the test (recipients the
    server had to qualify) is this test's.
    """
    postfix_server.wait_until_delivered()
    shutil.rmtree(postfix_server.maildir / OWN_DOMAIN, ignore_errors=True)
    yield postfix_server
    postfix_server.wait_until_delivered()


def warnings_about_clients(lines: list[str]) -> list[str]:
    """Postfix's warnings (and worse) in ``lines``: what a well-behaved client never causes."""
    return [line for line in lines if any(word in line for word in (" warning: ", " error: ", " fatal: ", " panic: "))]


def report_row(scenario: str, *, sent: int, delivered: int, duplicates: int, lost: int) -> None:
    """Add a row to the results table (``CALLSLIP_POSTFIX_REPORT`` names the file; nothing without it)."""
    if REPORT_FILE:
        with open(REPORT_FILE, "a", encoding="utf-8") as handle:
            handle.write(f"| {scenario} | {sent} | {delivered} | {duplicates} | {lost} |\n")
