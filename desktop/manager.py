"""``callslip-manager``: headless administration and the System Manager, for servers and scheduled tasks.

Every command exits 0 on success and non-zero with a one-line reason on stderr, so it can be scripted.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from desktop import __version__
from desktop.config import ConfigError, Settings, check_database_argument, default_database_path, load_settings
from desktop.crash_traces import enable_crash_traces
from desktop.db.engine import Database
from desktop.db.migrate import SchemaError
from desktop.domain.clock import utcnow
from desktop.domain.statuses import Status, TransitionError, parse_status
from desktop.secrets import SecretStoreError, bounce_imap_password, smtp_password, url_with_password
from desktop.services.admin import csv_export, csv_import, demo, illiad_import
from desktop.services.admin.database_problems import (
    DatabaseLockedError,
    check_exists,
    describe,
    open_checked,
    probe_sqlite_lock,
)
from desktop.services.admin.shared_settings import effective_poll_seconds, load_shared_settings, set_library_identity
from desktop.services.admin.sms_settings import auth_token, load_sms_settings
from desktop.services.errors import ServiceError
from desktop.services.notices import template_files
from desktop.services.notices.bounce_mailbox import MailboxCycle, read_bounce_mailbox
from desktop.services.notices.delivery_problems import DeliveryProblem
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.wakeup import Waiter
from desktop.services.requests.status import route_request

EXIT_OK = 0
EXIT_FAILURE = 1
#: How often ``run`` looks again at a SQLite file locked at start-up.
LOCK_RETRY_SECONDS = 1.0

Handler = Callable[[argparse.Namespace, Settings, TextIO], int]


class CommandError(RuntimeError):
    """A reason to stop, printed as one line."""


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    """The database this command works on: ``--database``, else the configured one (else the default file).

    Raises:
        ConfigError: ``--database`` carries a password (visible to every user in the process list).
    """
    if args.database:
        return check_database_argument(args.database)
    return settings.resolved_database_url()


def _open(args: argparse.Namespace, settings: Settings, *, create: bool = False) -> Database:
    """Open the command's database; a SQLite file that does not exist is refused unless ``create`` (init-db)."""
    db, result = open_checked(url_with_password(database_url(args, settings)), create=create)
    if result.upgraded_from is not None:
        print(f"schema upgraded from {result.upgraded_from} to {result.schema.head_revision}", file=sys.stderr)
    return db


def cmd_init_db(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    identity = {
        "name": args.library_name,
        "address": args.library_address.replace("\\n", "\n") if args.library_address is not None else None,
        "email": args.library_email,
        "phone": args.library_phone,
        "reset_link_base": args.reset_link_base,
    }
    db = _open(args, settings, create=True)
    try:
        written = set_library_identity(db, changed_by=settings.effective_staff_name, **identity)
        print(f"database ready: {db.display_name} (schema {db_revision(db)})", file=out)
        for key, value in written.items():
            print(f"  {key.replace('_', ' ')}: {value!r}", file=out)
        library = load_shared_settings(db).library
        missing = {"name": "--library-name", "e-mail": "--library-email"}
        if library.name:
            del missing["name"]
        if library.email:
            del missing["e-mail"]
        if missing:
            print(
                f"note: the library has no {' or '.join(missing)} yet; notices wait for a From address until it is "
                f"given (init-db {' '.join(missing.values())} …, or the Customization Manager's Library tab)",
                file=sys.stderr,
            )
    finally:
        db.dispose()
    return EXIT_OK


def db_revision(db: Database) -> str:
    from desktop.db.migrate import check_schema

    return check_schema(db.engine).head_revision


def cmd_seed_demo(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.patrons < 0 or args.requests < 0:
        raise CommandError("--patrons and --requests must not be negative")
    db = _open(args, settings)
    try:
        demo.check_may_seed(db, force=args.force)
        step = max(args.requests // 10, 100_000)

        def progress(done: int) -> None:
            if args.requests >= 200_000 and done % step < demo.CHUNK:
                print(f"  {done:,} requests…", file=sys.stderr)

        result = demo.seed_demo(db, args.patrons, args.requests, seed=args.seed, progress=progress)
    finally:
        db.dispose()
    print(
        f"seeded {result.patrons} patrons and {result.requests} requests "
        f"(transaction numbers from {result.first_transaction_number}) in {result.seconds:.1f} s, "
        f"{result.rows_per_second:,.0f} rows/s",
        file=out,
    )
    return EXIT_OK


def _status_back(args: argparse.Namespace) -> csv_import.StatusBack:
    """What ``--allow-status-back`` / ``--keep-newer-status`` ask for (both: refused, they contradict each other)."""
    if args.allow_status_back and args.keep_newer_status:
        raise CommandError("--allow-status-back and --keep-newer-status contradict each other: choose one")
    if args.allow_status_back:
        return csv_import.StatusBack.ALLOW
    return csv_import.StatusBack.KEEP if args.keep_newer_status else csv_import.StatusBack.REFUSE


def _status_flags(parser: argparse.ArgumentParser) -> None:
    """The two ways out of the forward-only status rule, shared by the request and ILLiad imports."""
    parser.add_argument(
        "--allow-status-back",
        action="store_true",
        help="let the file move a status back or re-open a finished or cancelled request (Tracking records it)",
    )
    parser.add_argument(
        "--keep-newer-status",
        action="store_true",
        help="where the stored status is ahead of the file's, keep it and import the rest of the row",
    )


def _import(args: argparse.Namespace, settings: Settings, out: TextIO, which: str) -> int:
    status_back = _status_back(args) if which == "requests" else csv_import.StatusBack.REFUSE
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    db = _open(args, settings)
    try:
        if which == "patrons":
            result = csv_import.import_patrons(
                db, data, region=settings.phone_region, dry_run=args.dry_run, create_sites=args.create_sites
            )
        else:
            result = csv_import.import_requests(
                db, data, changed_by=settings.effective_staff_name, dry_run=args.dry_run, status_back=status_back
            )
    except csv_import.CsvFileError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    finally:
        db.dispose()
    if result.unknown_columns:
        print(f"{args.file}: ignored unknown column(s): {', '.join(result.unknown_columns)}", file=sys.stderr)
    for error in result.errors:
        print(f"{args.file}: {error}", file=sys.stderr)
    if result.ok:
        lines = result.preview(args.show) if args.dry_run else result.note_lines(args.show)
        for line in lines:
            print(line, file=out)
    print(result.summary(), file=out if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILURE


def cmd_import_patrons(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    return _import(args, settings, out, "patrons")


def cmd_import_requests(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    return _import(args, settings, out, "requests")


def cmd_import_illiad(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Import an ILLiad export folder; ``--dry-run`` shows the report and the status map in use, writes nothing."""
    status_back = _status_back(args)
    try:
        table = illiad_import.load_status_map(Path(args.status_map)) if args.status_map else None
        db = _open(args, settings)
        try:
            report = illiad_import.import_illiad(
                db,
                Path(args.folder),
                dry_run=args.dry_run,
                status_map=table,
                region=settings.phone_region,
                status_back=status_back,
            )
        finally:
            db.dispose()
    except csv_import.CsvFileError as exc:
        raise CommandError(str(exc)) from None
    for line in report.lines():
        print(line, file=out)
    if args.dry_run:
        print("", file=out)
        print("Status map in use (save it, edit it, pass it back with --status-map FILE):", file=out)
        print(illiad_import.status_map_toml(report.status_map), end="", file=out)
    return EXIT_OK


def cmd_import_illiad_templates(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Convert ILLiad templates into Callslip's; every problem is listed; exit 1 when any template has one."""
    db = _open(args, settings)
    try:
        outcomes = template_files.import_illiad_templates(
            db, Path(args.source), settings.effective_staff_name, dry_run=args.dry_run
        )
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        db.dispose()
    for outcome in outcomes:
        for line in outcome.lines():
            print(line, file=out)
    return EXIT_FAILURE if any(o.problems for o in outcomes) else EXIT_OK


def cmd_templates_export(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Write one template as TOML (the format of ``templates/``) to standard output."""
    db = _open(args, settings)
    try:
        out.write(template_files.export_template(db, args.name))
    finally:
        db.dispose()
    return EXIT_OK


def cmd_templates_import(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Store a TOML template over the template of the same name, checked as the editor checks it."""
    fields_ = template_files.read_template_file(Path(args.file))
    db = _open(args, settings)
    try:
        record = template_files.import_template(db, fields_, settings.effective_staff_name)
    finally:
        db.dispose()
    print(f"template {record.fields.name!r} saved (version {record.version})", file=out)
    return EXIT_OK


def cmd_export_requests(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    status = _status(args.status) if args.status else None
    db = _open(args, settings)
    try:
        count = csv_export.export_requests(db, out, status)
    finally:
        db.dispose()
    print(f"exported {count} request(s)", file=sys.stderr)
    return EXIT_OK


def cmd_export_patrons(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    db = _open(args, settings)
    try:
        count = csv_export.export_patrons(db, out)
    finally:
        db.dispose()
    print(f"exported {count} patron(s)", file=sys.stderr)
    return EXIT_OK


def cmd_route(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    target = _status(args.status)
    db = _open(args, settings)
    try:
        change = route_request(db, args.transaction_number, target, args.as_staff or settings.effective_staff_name)
    finally:
        db.dispose()
    print(
        f"{change.transaction_number}: {change.from_status} -> {change.to_status} (by {change.changed_by})",
        file=out,
    )
    return EXIT_OK


def _wait_while_locked(args: argparse.Namespace, settings: Settings) -> None:
    """At start-up, wait (saying so once) while another program holds the SQLite file's write lock: a service
    restarted during a long import must not exit and leave notices unsent."""
    url = database_url(args, settings)
    check_exists(url)
    told = False
    while True:
        try:
            probe_sqlite_lock(url)
            return
        except DatabaseLockedError as exc:
            if not told:
                print(f"callslip-manager: {exc}", file=sys.stderr, flush=True)
                told = True
            time.sleep(LOCK_RETRY_SECONDS)


def cmd_run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """The System Manager without a GUI: one cycle (``--once``) or a loop until Ctrl-C / SIGTERM."""
    _wait_while_locked(args, settings)
    db = _open(args, settings)
    # What start-up made (modules, SQLAlchemy's metadata, compiled templates: about 100,000 objects) lives as
    # long as the process, so the collector need not walk it again on every full collection (one such pass
    # cost about 50 ms of a 2,000-notice cycle). Undone when done: tests call this in their own process.
    gc.freeze()
    try:
        password = smtp_password(settings, allow_env=True)
        sms_token = _sms_token(db)
        if args.once:
            summary = run_cycle(db, settings, password=password, sms_token=sms_token)
            print(summary.describe(), file=out)
            for error in summary.errors:
                print(f"callslip-manager: {error}", file=sys.stderr)
            return EXIT_OK if summary.ok else EXIT_FAILURE
        return _run_loop(db, settings, password, out, sms_token)
    finally:
        gc.unfreeze()
        db.dispose()


def _sms_token(db: Database) -> str | None:
    """The SMS provider's auth token: ``CALLSLIP_SMS_AUTH_TOKEN`` (a service has no keyring), else the keyring.

    ``None`` when texts do not use the provider or no token is stored; the cycle then says what is missing.
    """
    try:
        sms = load_sms_settings(db)
        return auth_token(sms, allow_env=True) if sms.transport == "twilio" else None
    except (SecretStoreError, SQLAlchemyError) as exc:
        print(f"callslip-manager: cannot read the SMS provider's auth token: {exc}", file=sys.stderr)
        return None


def _read_bounces_once(db: Database, settings: Settings) -> MailboxCycle:
    """One read of the bounce mailbox; a keyring or database failure becomes the cycle's one-line problem."""
    try:
        return read_bounce_mailbox(db, settings, bounce_imap_password(settings, allow_env=True))
    except Exception as exc:  # the loop must go on; the message stays unflagged and is read again next time
        return MailboxCycle(problem=DeliveryProblem.SESSION_REFUSED, message=f"bounce mailbox: {_first_line(exc)}")


def cmd_read_bounces(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Read the bounce mailbox once (for a timer of the administrator's own; ``run`` also reads it)."""
    db = _open(args, settings)
    try:
        cycle = _read_bounces_once(db, settings)
    finally:
        db.dispose()
    if not cycle.ok:
        print(f"callslip-manager: {cycle.message}", file=sys.stderr)
        return EXIT_FAILURE
    print(cycle.describe(), file=out)
    for line in cycle.left:
        print(f"  {line}", file=out)
    return EXIT_OK


def _run_loop(db: Database, settings: Settings, password: str | None, out: TextIO, sms_token: str | None) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    waiter = Waiter(db, stop)
    how = "LISTEN/NOTIFY and " if waiter.listening else ""
    print(f"System Manager running on {db.display_name}: waking on {how}every "
          f"{effective_poll_seconds(db, settings.poll_seconds)} s "
          "(Ctrl-C stops)", file=out, flush=True)  # fmt: skip
    last_problem = ""
    last_bounce_problem = ""
    next_bounces = utcnow()
    try:
        while not stop.is_set():
            if settings.bounce_imap_host and utcnow() >= next_bounces:  # the bounce mailbox's own schedule
                cycle = _read_bounces_once(db, settings)
                changed = any(cycle.counts.get(k) for k in ("flagged", "counted"))
                if changed or (cycle.message and cycle.message != last_bounce_problem):
                    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
                    print(f"{stamp} {cycle.describe()}", file=out, flush=True)
                last_bounce_problem = cycle.message
                next_bounces = utcnow() + timedelta(seconds=settings.bounce_poll_seconds)
            summary = run_cycle(db, settings, password=password, should_stop=stop.is_set, sms_token=sms_token)
            busy = summary.routed or summary.sent or summary.failed or summary.retrying or summary.created
            problem = "; ".join(summary.errors)
            if busy or (problem and problem != last_problem):
                stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
                print(f"{stamp} {summary.describe()}", file=out, flush=True)
            last_problem = problem
            wait = float(effective_poll_seconds(db, settings.poll_seconds))  # the Routing tab may change it
            if summary.next_due_at is not None:
                wait = min(wait, max((summary.next_due_at - utcnow()).total_seconds(), 0.05))
            if settings.bounce_imap_host:
                wait = min(wait, max((next_bounces - utcnow()).total_seconds(), 0.05))
            waiter.wait(wait)
    finally:
        waiter.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("System Manager stopped", file=out, flush=True)
    return EXIT_OK


def _password_line(data: bytes, source: str) -> str:
    """The first line of ``data`` up to its ``\n`` (a Windows ``\r\n`` too), nothing else removed.

    Not ``str.splitlines()``: that also ends a line at a vertical tab, form feed, lone CR or U+2028, which cut
    the password short while redeem-reset reported success. Such a character stays in and the password is refused.
    """
    line = data.split(b"\n", 1)[0]
    line = line.removesuffix(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"the new password from {source} is not UTF-8 text") from None


def _read_new_password(args: argparse.Namespace) -> str:
    """The new password from --password-file or standard input (first line), never from the command line."""
    if args.password_file:
        try:
            with Path(args.password_file).open("rb") as handle:
                password = _password_line(handle.read(65_536), args.password_file)
        except OSError as exc:
            raise CommandError(f"cannot read {args.password_file}: {exc.strerror or exc}") from None
    elif sys.stdin is not None and sys.stdin.isatty():
        import getpass

        password = getpass.getpass("New password: ")
    elif sys.stdin is not None:
        stream = getattr(sys.stdin, "buffer", None)
        raw = stream.readline(65_536) if stream is not None else sys.stdin.readline(65_536).encode("utf-8")
        password = _password_line(raw, "standard input")
    else:
        password = ""
    if not password:
        raise CommandError("no new password given (standard input or --password-file)")
    return password


def cmd_redeem_reset(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from desktop.services.patrons.password_reset import redeem_reset

    password = _read_new_password(args)
    db = _open(args, settings)
    try:
        patron_id = redeem_reset(db, args.token, password)
    finally:
        db.dispose()
    print(f"new web password set for patron {patron_id}; the reset link is used up", file=out)
    return EXIT_OK


def _status(text: str) -> Status:
    try:
        return parse_status(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _import_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="show what would be created and changed; write nothing")
    p.add_argument(
        "--show", type=_positive, default=csv_import.PREVIEW_ROWS, metavar="N",
        help=f"describe the first N changed rows (with --dry-run) and notes (default {csv_import.PREVIEW_ROWS})",
    )  # fmt: skip


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line, shared by ``--help`` and the tests."""
    parser = argparse.ArgumentParser(
        prog="callslip-manager",
        description="Callslip administration and System Manager (headless).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--database", metavar="URL", help="database URL or SQLite file (default: configured one)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "init-db",
        help="create or upgrade the database, and give the library's identity",
        description="Create or upgrade the database. The options store the library's identity, which notices are "
        "signed with; nothing is invented: without --library-email (or CALLSLIP_SMTP_FROM) no notice is sent. "
        "Run again with any option to change that value only.",
    )
    p.add_argument("--library-name", metavar="NAME", help='e.g. "Springfield University Library"')
    p.add_argument("--library-email", metavar="ADDRESS", help="From address of notices, e.g. ill@library.example.edu")
    p.add_argument("--library-phone", metavar="PHONE", help="phone number printed in notices")
    p.add_argument(
        "--library-address", metavar="LINES", help='return address for printed notices; lines separated by "\\n"'
    )
    p.add_argument(
        "--reset-link-base",
        metavar="URL",
        help="start of password-reset links; the token is appended (e.g. https://library.example.edu/reset?token=)",
    )
    p.set_defaults(handler=cmd_init_db)

    p = sub.add_parser("seed-demo", help="add realistic demo patrons and requests")
    p.add_argument("--patrons", type=int, default=60, help="patrons to add (default 60)")
    p.add_argument("--requests", type=int, default=400, help="requests to add (default 400)")
    p.add_argument("--seed", type=int, default=2026, help="random seed, for repeatable data")
    p.add_argument(
        "--force", action="store_true", help="add demo data even though the database holds real patrons or requests"
    )
    p.set_defaults(handler=cmd_seed_demo)

    p = sub.add_parser("import-patrons", help="import patrons from an ILLiad-style CSV file (all or nothing)")
    p.add_argument("file", help="UTF-8 CSV with a header of ILLiad field names (UserName, FirstName, …)")
    _import_options(p)
    p.add_argument(
        "--create-sites", action="store_true", help="create the pickup locations the file names that do not exist yet"
    )
    p.set_defaults(handler=cmd_import_patrons)

    p = sub.add_parser("import-requests", help="import requests from an ILLiad-style CSV file (all or nothing)")
    p.add_argument("file", help="UTF-8 CSV with a header of ILLiad field names (TransactionNumber, UserName, …)")
    _import_options(p)
    _status_flags(p)
    p.set_defaults(handler=cmd_import_requests)

    p = sub.add_parser(
        "import-illiad",
        help="import an ILLiad export folder: Users, Transactions, Tracking, Notes, EMailCopies (dry run first)",
    )
    p.add_argument("folder", help="folder of ILLiad table exports (Users.csv or UsersALL.csv, Transactions.csv, …)")
    p.add_argument("--dry-run", action="store_true", help="show the migration report and status map; write nothing")
    p.add_argument(
        "--status-map", metavar="FILE", help='TOML lines "ILLiad status" = "Callslip status" overriding the default'
    )
    _status_flags(p)
    p.set_defaults(handler=cmd_import_illiad)

    p = sub.add_parser(
        "import-illiad-templates",
        help="convert ILLiad notification templates (CSV export of the table, or text files) into Callslip's",
    )
    p.add_argument("source", help="a CSV export of ILLiad's templates (Name, Subject, Email Text, …) or a folder")
    p.add_argument("--dry-run", action="store_true", help="convert and check, list every problem; save nothing")
    p.set_defaults(handler=cmd_import_illiad_templates)

    p = sub.add_parser("templates", help="export or import one template as TOML (for version control)")
    tsub = p.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    tp = tsub.add_parser("export", help="write a template as TOML to standard output")
    tp.add_argument("name", help='template name, e.g. "Loan Pickup"')
    tp.set_defaults(handler=cmd_templates_export)
    tp = tsub.add_parser("import", help="store a TOML template over the template of the same name")
    tp.add_argument("file", help="a TOML file written by `templates export`")
    tp.set_defaults(handler=cmd_templates_import)

    p = sub.add_parser("export-requests", help="write requests as CSV to standard output")
    p.add_argument("--status", help='only requests at this status, e.g. "Awaiting Customer Contact"')
    p.set_defaults(handler=cmd_export_requests)

    p = sub.add_parser("export-patrons", help="write patrons as CSV to standard output (imports back unchanged)")
    p.set_defaults(handler=cmd_export_patrons)

    p = sub.add_parser("route", help="change a request's status as staff would (Tracking is written)")
    p.add_argument("transaction_number", type=int)
    p.add_argument("status", help='target status, e.g. "Customer Notified via Phone"')
    p.add_argument("--as", dest="as_staff", metavar="STAFF", help="staff name recorded in Tracking")
    p.set_defaults(handler=cmd_route)

    p = sub.add_parser("run", help="run the System Manager: route requests and send e-mail notices")
    p.add_argument("--once", action="store_true", help="one cycle (route, scan, send), print a summary and exit")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "read-bounces",
        help="read the bounce mailbox once: flag bounced addresses, count what is left (Settings → Bounces)",
    )
    p.set_defaults(handler=cmd_read_bounces)

    p = sub.add_parser("redeem-reset", help="set a patron's web password with a reset token (as the web site would)")
    p.add_argument("token", help="the token at the end of the reset link")
    p.add_argument("--password-file", metavar="FILE", help="read the new password from FILE (default: standard input)")
    p.set_defaults(handler=cmd_redeem_reset)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    enable_crash_traces(default_database_path().parent)  # a service that dies in a driver says where
    out = out or sys.stdout
    settings = Settings()
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(args, settings, out)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        # Point stdout at devnull so the interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CommandError, ConfigError, SchemaError, SecretStoreError, ServiceError, TransitionError) as exc:
        print(f"callslip-manager: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (SQLAlchemyError, OSError) as exc:  # the database failed after opening, a disk that is full, …
        try:
            where_from = database_url(args, settings)
        except Exception:
            where_from = ""
        message = describe(exc, where_from) if where_from else f"{type(exc).__name__}: {_first_line(exc)}"
        print(f"callslip-manager: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # anything else: one line, never a traceback
        print(f"callslip-manager: {type(exc).__name__}: {_first_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


if __name__ == "__main__":
    raise SystemExit(main())
