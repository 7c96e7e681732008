"""Per-workstation settings: one typed declaration, a TOML file, ``CALLSLIP_*`` overrides, secrets in keyring.

Order of precedence (later wins): defaults → the user's ``callslip.toml`` → environment → command line.
Passwords are never read from or written to the file; they live in the OS keyring under the service names
:data:`DATABASE_KEYRING_SERVICE` and :data:`SMTP_KEYRING_SERVICE` (a headless System Manager may instead take
``CALLSLIP_SMTP_PASSWORD`` from its service environment).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import platformdirs

from desktop.db.url_text import parse_url, sqlite_url

APP_NAME = "Callslip"
DATABASE_KEYRING_SERVICE = "Callslip database"
SMTP_KEYRING_SERVICE = "Callslip SMTP"
CONFIG_ENV = "CALLSLIP_CONFIG"


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected."""

    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and where it came from."""


#: The ``paper_size`` values: empty follows the locale.
PAPER_SIZES = ("", "letter", "legal", "a4")


def _env(name: str) -> dict[str, str]:
    return {"env": name}


@dataclass(frozen=True)
class Settings:
    """Everything one workstation needs to run; declared once, with the environment variable of each field.

    Attributes:
        database_url: SQLAlchemy URL; empty means the local SQLite file in the user data folder.
        smtp_host: outgoing mail server; empty means e-mail sending is not configured.
        smtp_security: ``none``, ``starttls`` or ``ssl`` (implicit TLS).
        poll_seconds: this workstation's System Manager interval when nothing wakes it sooner; 0 (the default)
            means the library's shared interval from the Customization Manager's Routing tab (300 s, like ILLiad).
        run_poller: whether this workstation runs the System Manager poller.
        web_base_url: start of the password-reset link (the token is appended); empty means the library's shared
            one (``init-db --reset-link-base``). Never an invented default: a reset needs a real page.
        phone_region: ISO country used for phone numbers typed without a country code.
        staff_name: name written into Tracking rows; the OS user by default.
        smtp_ca_file: a PEM file of certificate authorities trusted for the SMTP server besides the system's
            (a library's internal CA); empty: the system's only.
        bounce_verp: send each notice with its own return address (``ill+n-<token>@library…``, VERP) so any
            bounce, however non-standard, names its notice. Off by default: it needs a mailbox that takes
            sub-addressed mail (``+``) for the From address; without it bounces are matched by the returned
            Message-ID and recipient (every RFC 3464 report, see docs/USER_GUIDE.md "Bounces").
        bounce_imap_host: the mailbox bounces arrive in (IMAP over TLS); empty: bounces are not read.
        bounce_imap_folder: the folder read; bounce_imap_done_folder: where handled reports are moved (empty:
            they stay, marked ``\\Seen`` and ``$CallslipHandled``). The password is in the keyring.
        bounce_poll_seconds: how often the System Manager reads the bounce mailbox (its own schedule).
        paper_size: the sheet printed notices are laid out on: ``letter``, ``legal`` or ``a4``; empty (the
            default) follows the workstation's locale (US Letter where CLDR says so, e.g. en_US and en_CA; A4
            elsewhere). A setting of the workstation, since it depends on the printer's paper tray.
    """

    database_url: str = field(default="", metadata=_env("CALLSLIP_DATABASE_URL"))
    smtp_host: str = field(default="", metadata=_env("CALLSLIP_SMTP_HOST"))
    smtp_port: int = field(default=0, metadata=_env("CALLSLIP_SMTP_PORT"))
    smtp_security: str = field(default=SmtpSecurity.NONE.value, metadata=_env("CALLSLIP_SMTP_SECURITY"))
    smtp_username: str = field(default="", metadata=_env("CALLSLIP_SMTP_USERNAME"))
    smtp_from: str = field(default="", metadata=_env("CALLSLIP_SMTP_FROM"))
    smtp_timeout: float = field(default=30.0, metadata=_env("CALLSLIP_SMTP_TIMEOUT"))
    smtp_ca_file: str = field(default="", metadata=_env("CALLSLIP_SMTP_CA_FILE"))
    bounce_verp: bool = field(default=False, metadata=_env("CALLSLIP_BOUNCE_VERP"))
    bounce_imap_host: str = field(default="", metadata=_env("CALLSLIP_BOUNCE_IMAP_HOST"))
    bounce_imap_port: int = field(default=993, metadata=_env("CALLSLIP_BOUNCE_IMAP_PORT"))
    bounce_imap_user: str = field(default="", metadata=_env("CALLSLIP_BOUNCE_IMAP_USER"))
    bounce_imap_folder: str = field(default="INBOX", metadata=_env("CALLSLIP_BOUNCE_IMAP_FOLDER"))
    bounce_imap_done_folder: str = field(default="", metadata=_env("CALLSLIP_BOUNCE_IMAP_DONE_FOLDER"))
    bounce_poll_seconds: int = field(default=600, metadata=_env("CALLSLIP_BOUNCE_POLL_SECONDS"))
    poll_seconds: int = field(default=0, metadata=_env("CALLSLIP_POLL_SECONDS"))
    run_poller: bool = field(default=True, metadata=_env("CALLSLIP_RUN_POLLER"))
    web_base_url: str = field(default="", metadata=_env("CALLSLIP_WEB_BASE_URL"))
    phone_region: str = field(default="US", metadata=_env("CALLSLIP_PHONE_REGION"))
    staff_name: str = field(default="", metadata=_env("CALLSLIP_STAFF_NAME"))
    paper_size: str = field(default="", metadata=_env("CALLSLIP_PAPER_SIZE"))

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def effective_smtp_port(self) -> int:
        """The configured port, or the usual one for the security mode."""
        if self.smtp_port:
            return self.smtp_port
        return {SmtpSecurity.SSL.value: 465, SmtpSecurity.STARTTLS.value: 587}.get(self.smtp_security, 25)

    @property
    def effective_staff_name(self) -> str:
        """Who this workstation's changes are recorded as."""
        return self.staff_name or _os_user()

    def resolved_database_url(self) -> str:
        """The database URL in use: the configured one, or the default local SQLite file."""
        return self.database_url or sqlite_url(default_database_path())

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        return replace(self, **changes)


def _os_user() -> str:
    import getpass  # here, like the other modules only some starts need: start-up imports only what it uses

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some services and containers)
        return "staff"


def _validate(settings: Settings) -> None:
    if settings.smtp_security not in {s.value for s in SmtpSecurity}:
        raise ConfigError(f"smtp_security must be none, starttls or ssl, not {settings.smtp_security!r}")
    if not 0 <= settings.smtp_port <= 65535:
        raise ConfigError(f"smtp_port must be from 0 to 65535, not {settings.smtp_port}")
    if settings.poll_seconds < 0:
        raise ConfigError(f"poll_seconds must be 0 (the shared interval) or more, not {settings.poll_seconds}")
    if not 0 < settings.bounce_imap_port <= 65535:
        raise ConfigError(f"bounce_imap_port must be from 1 to 65535, not {settings.bounce_imap_port}")
    if settings.bounce_poll_seconds < 10:
        raise ConfigError(f"bounce_poll_seconds must be at least 10, not {settings.bounce_poll_seconds}")
    if settings.smtp_timeout <= 0:
        raise ConfigError("smtp_timeout must be more than 0 seconds")
    if len(settings.phone_region) != 2 or not settings.phone_region.isalpha():
        raise ConfigError(f"phone_region must be a two-letter country code, not {settings.phone_region!r}")
    if settings.paper_size not in PAPER_SIZES:
        raise ConfigError(f"paper_size must be letter, legal, a4 or empty (the locale's), not {settings.paper_size!r}")
    if settings.database_url:
        try:
            url = parse_url(settings.database_url)
        except Exception as exc:
            raise ConfigError(f"database_url is not a database URL: {exc}") from None
        if url.password:
            raise ConfigError("database_url must not contain a password: keep it in the OS keyring instead")


def check_database_argument(url: str) -> str:
    """``url`` from ``--database``, refused when it carries a password: a command line is visible to every user of
    the computer (``ps``), so the password belongs in the OS keyring.

    Raises:
        ConfigError: the URL holds a password, or is not a database URL.
    """
    try:
        parsed = parse_url(url)
    except Exception as exc:
        raise ConfigError(f"--database is not a database URL or SQLite file: {exc}") from None
    if parsed.password:
        port = f":{parsed.port}" if parsed.port else ""
        where = f"{parsed.username or ''}@{parsed.host or 'localhost'}{port}/{parsed.database or ''}"
        safe = f"{parsed.backend}://{where}"
        raise ConfigError(
            f"--database must not contain a password (the command line is visible to other users): give {safe} "
            "and keep the password in the OS keyring (Settings → Database, or: "
            f'keyring set "{DATABASE_KEYRING_SERVICE}" '
            f"{parsed.username or ''}@{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''})"
        )
    return url


def config_path() -> Path:
    """Where this user's settings file lives (``CALLSLIP_CONFIG`` overrides, for tests and services)."""
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override)
    return _default_config_path()


def _default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "callslip.toml"


def default_database_path() -> Path:
    """The local SQLite database used when nothing else is configured."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "callslip.sqlite3"


def _coerce(name: str, kind: Any, raw: Any, source: str) -> Any:
    try:
        if kind in (bool, "bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().casefold()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
        return str(raw).strip()
    except ValueError:
        raise ConfigError(f"{name} from {source} is not a valid {getattr(kind, '__name__', kind)}: {raw!r}") from None


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings file (if any) and apply environment overrides.

    Raises:
        ConfigError: unreadable TOML or a value of the wrong type, naming the file or variable.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = config_path()
        # A file named on purpose and missing is a typo, never "no settings".
        if os.environ.get(CONFIG_ENV) and not path.exists():
            raise ConfigError(
                f"the settings file {path} named by {CONFIG_ENV} does not exist; create it (it may be empty) "
                f"or unset {CONFIG_ENV} to use {_default_config_path()}"
            )
    values: dict[str, Any] = {}
    if path.exists():
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"settings file {path} cannot be read: {exc.strerror or exc}") from None
        section = data.get("callslip", data)
        if not isinstance(section, dict):
            raise ConfigError(f"settings file {path}: [callslip] must be a table of settings")
        _check_known_keys(path, data, section)
        for f in fields(Settings):
            if f.name in section:
                values[f.name] = _coerce(f.name, f.type, section[f.name], str(path))
    for f in fields(Settings):
        var = f.metadata["env"]
        if var in environ:
            values[f.name] = _coerce(f.name, f.type, environ[var], var)
    return Settings(**values)


def known_keys() -> list[str]:
    """The setting names a settings file may hold (the :class:`Settings` fields)."""
    return [f.name for f in fields(Settings)]


def _check_known_keys(path: Path, data: dict[str, Any], section: dict[str, Any]) -> None:
    """A key this program does not know is a typo (``smtp_hots``) that would be silently ignored: refuse it."""
    known = known_keys()
    unknown = [key for key in section if key not in known]
    if section is not data:  # the [callslip] table: anything beside it is unknown too
        unknown += [key for key in data if key != "callslip"]
    if unknown:
        import difflib

        close = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
        hints = "".join(f" (did you mean {close[key][0]}?)" for key in unknown[:1] if close[key])
        raise ConfigError(
            f"settings file {path}: unknown setting {', '.join(repr(k) for k in unknown)}{hints}; "
            f"known settings: {', '.join(known)}"
        )


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings file atomically (never a password: the dataclass has no password field)."""
    import tomli_w

    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps({"callslip": asdict(settings)}), encoding="utf-8")
    tmp.replace(path)
    return path
