"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with a free port.

It records every accepted message, can refuse chosen recipients (451 temporary, 550 permanent), refuse MAIL FROM
(every one, or after a number accepted: a rate limit; a 421 also closes the connection), require AUTH, offer
STARTTLS or implicit TLS with a self-signed test certificate, drop the connection after DATA, and be stopped and
started again on the same port ("down and comes back"). It counts the connections and MAIL commands it got.

Use the ``smtp_sink`` fixture (plain) or build a :class:`SmtpSink` yourself for TLS/AUTH variants; import the
fixture into a test module with ``from tests.smtp_sink import smtp_sink``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """A message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The parsed message."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


@dataclass
class Behaviour:
    """What the server does; change it while the server runs."""

    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply, e.g. "550 5.1.1 no such user"
    drop_after_data: bool = False
    data_reply: str = "250 2.0.0 Message accepted for delivery"
    #: Called with each message's sender once its text is in, before the server answers the final dot: a test
    #: checks there what the client had done before asking for this acceptance.
    before_accepting: Callable[[str], None] | None = None
    #: The reply to MAIL FROM once ``mail_limit`` MAIL commands were accepted (``None``: from the first one);
    #: e.g. ``"421 4.3.2 busy"`` (the connection is then closed, like Postfix does) or ``"450 4.7.1 rate limit"``.
    mail_reply: str | None = None
    mail_limit: int | None = None


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        sink, behaviour = self.sink, self.sink.behaviour
        with sink.lock:
            sink.mail_commands += 1
            refuse = behaviour.mail_reply is not None and (
                behaviour.mail_limit is None or sink.mail_accepted >= behaviour.mail_limit
            )
            if not refuse:
                sink.mail_accepted += 1
        if refuse:
            assert behaviour.mail_reply is not None
            if behaviour.mail_reply.startswith("421"):
                asyncio.get_running_loop().call_soon(server.transport.close)  # after the reply is written
            return behaviour.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self.sink.behaviour.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.behaviour.drop_after_data:
            server.transport.close()
            return "421 closing"
        if self.sink.behaviour.before_accepting is not None:
            self.sink.behaviour.before_accepting(envelope.mail_from)
        with self.sink.lock:
            self.sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return self.sink.behaviour.data_reply


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (cert path, key path)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _CountingController(Controller):
    """aiosmtpd's controller, counting the connections (one protocol object is made per connection)."""

    def __init__(self, sink: SmtpSink, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sink = sink

    def factory(self) -> Any:
        with self._sink.lock:
            self._sink.connections += 1
        return super().factory()  # type: ignore[no-untyped-call]


class SmtpSink:
    """A running aiosmtpd server and what it received.

    Args:
        tls: ``None`` (plain), ``"starttls"`` or ``"ssl"`` (implicit TLS).
        credentials: ``(user, password)`` to require AUTH; ``None`` for no AUTH.
        cert_dir: where to write the test certificate (needed for TLS).
    """

    def __init__(
        self,
        *,
        tls: str | None = None,
        credentials: tuple[str, str] | None = None,
        cert_dir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.credentials = credentials
        self.behaviour = Behaviour()
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        #: Connections opened to this server (aiosmtpd's own readiness check on start counts too), MAIL FROM
        #: commands received, and those accepted.
        self.connections = 0
        self.mail_commands = 0
        self.mail_accepted = 0
        self.cafile: Path | None = None
        self._context: ssl.SSLContext | None = None
        if tls:
            assert cert_dir is not None, "TLS needs cert_dir"
            cert, key = make_certificate(cert_dir)
            self.cafile = cert
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._context.load_cert_chain(cert, key)
        self._controller: Controller | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            user, password = self.credentials
            if auth_data.login.decode() == user and auth_data.password.decode() == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpSink:
        """Start listening (again) on :attr:`port`."""
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = self.tls is not None
            kwargs["auth_required"] = True
        if self.tls == "starttls":
            kwargs["tls_context"] = self._context
            kwargs["require_starttls"] = True
        elif self.tls == "ssl":
            kwargs["ssl_context"] = self._context
        self._controller = _CountingController(self, _Handler(self), hostname=self.host, port=self.port, **kwargs)
        if self.tls == "ssl":
            # aiosmtpd's readiness check speaks plain SMTP; with implicit TLS it must trust our certificate.
            self._controller.ssl_context = self._context
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (the server is "down")."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server's certificate."""
        assert self.cafile is not None
        return ssl.create_default_context(cafile=str(self.cafile))

    def recipients(self) -> list[str]:
        """Every envelope recipient received, in order."""
        with self.lock:
            return [r for m in self.messages for r in m.rcpt_tos]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server on 127.0.0.1 (no TLS, no AUTH)."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()
