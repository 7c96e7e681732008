"""A local HTTP server implementing Twilio's documented Messages API, for the SMS transport tests.

There is no internet here, so the tests talk to this server instead: it checks what Twilio checks (the URL with
the account SID, HTTP Basic authentication, the form fields ``To``, ``Body`` and ``From`` or
``MessagingServiceSid``) and answers as Twilio documents — ``201`` with the message resource, or an error body
``{"code", "message", "more_info", "status"}``. Numbers pick the behaviour, like Twilio's magic test numbers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token"

#: Destination numbers that make the server answer with one of Twilio's documented errors.
ERRORS = {
    "+15005550001": (400, 21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550009": (400, 21614, "'To' number is not a valid mobile number"),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550002": (429, 20429, "Too Many Requests"),
    "+15005550003": (500, 20500, "Internal Server Error"),
}
SLOW = "+15005550010"  # answers after the client's timeout
HANG_UP = "+15005550011"  # closes the connection without an answer
GARBLED = "+15005550012"  # 201 with a body that is not JSON


@dataclass
class ProviderLog:
    """What the server received, for the tests to compare with what was sent."""

    accepted: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0


@contextmanager
def twilio_server(slow_seconds: float = 3.0, delay_seconds: float = 0.0) -> Iterator[tuple[str, ProviderLog]]:
    """Run the server on a free loopback port; yields its base URL and its log.

    Args:
        delay_seconds: every accepted message is answered this much later (a provider across the internet).
    """
    log = ProviderLog()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: int, message: str) -> None:
            self._answer(
                status,
                {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
            )

        def do_POST(self) -> None:
            with lock:
                log.requests += 1
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
            if self.path.split("?")[0] != path:
                self._error(404, 20404, "The requested resource was not found")
                return
            if self.headers.get("Authorization") != expected:
                self._error(401, 20003, "Authenticate")
                return
            to = form.get("To", "")
            if not to:
                self._error(400, 21604, "A 'To' phone number is required.")
                return
            if not form.get("Body"):
                self._error(400, 21602, "Message body is required.")
                return
            if not (form.get("From") or form.get("MessagingServiceSid")):
                self._error(400, 21603, "A 'From' phone number is required.")
                return
            if to in ERRORS:
                self._error(*ERRORS[to])
                return
            if to == SLOW:
                time.sleep(slow_seconds)
            if to == HANG_UP:
                self.close_connection = True
                self.connection.close()
                return
            if to == GARBLED:
                self.send_response(201)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"<?xml")
                return
            if delay_seconds:
                time.sleep(delay_seconds)
            with lock:
                log.accepted.append(form)
                sid = f"SM{len(log.accepted):032x}"
            self._answer(
                201,
                {
                    "sid": sid,
                    "account_sid": ACCOUNT_SID,
                    "to": to,
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form["Body"],
                    "status": "queued",
                    "num_segments": "1",
                    "error_code": None,
                    "error_message": None,
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = False  # server_close() then waits for every handler: no thread outlives the test
    thread = threading.Thread(target=server.serve_forever, name="twilio-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
