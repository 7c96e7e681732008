"""Why notices wait: the one vocabulary the System Manager reports and every view of waiting notices shows.

A cycle that could not send says *which* problem stopped it (not only a line of text), so the desk can show one
banner with the action that fixes it: open Settings for configuration and passwords, Retry now for a server
that was unreachable or asked us to back off.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryProblem(StrEnum):
    """What stopped a System Manager cycle from sending; ``None`` on a summary means nothing did."""

    #: No SMTP server in Settings (or ``CALLSLIP_SMTP_HOST``).
    NOT_CONFIGURED = "not_configured"
    #: No From address: none on the template, no library e-mail, no ``CALLSLIP_SMTP_FROM``.
    NO_FROM_ADDRESS = "no_from_address"
    #: The server could not be reached (refused, timed out, unknown host, network error).
    UNREACHABLE = "unreachable"
    #: The server refused the user name or password.
    AUTH_REFUSED = "auth_refused"
    #: TLS could not be set up: untrusted certificate, host-name mismatch, no STARTTLS offered.
    TLS_FAILED = "tls_failed"
    #: The server refused the whole session or every message for now (421, 4xx at MAIL FROM): backing off.
    SERVER_BUSY = "server_busy"
    #: The server refused the session permanently for another reason (5xx greeting, no AUTH offered).
    SESSION_REFUSED = "session_refused"
    #: Text messages cannot go: no SMS transport chosen, the provider's settings or auth token missing, or the
    #: gateway without an SMTP server (issue 18).
    SMS_NOT_CONFIGURED = "sms_not_configured"
    #: The SMS provider refused the library's account or sender (a wrong token, a sender that cannot text).
    SMS_REFUSED = "sms_refused"
