"""Administering notification templates (Customization Manager → Notification Templates).

Templates live in the database so every workstation shares them. Every change here is validated first
(:func:`desktop.services.notices.templates.validate`: nothing broken is ever stored), checked against the version the
editor loaded (two administrators cannot overwrite each other silently) and recorded as a
:class:`~desktop.db.models.TemplateRevision` (who, when, the full text). Deleting a template keeps its row but
means that notice is no longer sent, as in ILLiad; Restore default brings back the file shipped in ``templates/``.

Everything returned is a frozen dataclass; ORM rows never leave the ``with`` blocks.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import ContactPoint, NoticeTemplate, Patron, Request, TemplateRevision
from desktop.domain.clock import utcnow
from desktop.domain.contacts import ContactError, normalize_email
from desktop.domain.statuses import Status
from desktop.services.errors import ConcurrentEditError, NotFoundError, ServiceError, ValidationError
from desktop.services.notices import templates
from desktop.services.notices.notice_context import patron_notice_context, request_notice_context, system_settings
from desktop.services.notices.templates import RenderedNotice, TemplateError, TemplateFields

#: The editable columns of :class:`NoticeTemplate` (they match :class:`TemplateFields` one to one).
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(TemplateFields))
#: Shown in the preview's link for Password Reset: obviously not a working token.
PREVIEW_TOKEN = "PREVIEW-ONLY-NOT-A-REAL-TOKEN"
RESET_HOURS = 48
#: Which request type a template is about, so its preview picks a fitting request.
TEMPLATE_REQUEST_TYPE = {templates.LOAN_PICKUP: "Loan", templates.ARTICLE_PICKUP: "Article"}


@dataclass(frozen=True)
class TemplateSummary:
    """One row of the Notification Templates list."""

    id: int
    name: str
    channel: str
    description: str
    deleted: bool
    updated_by: str
    updated_at: datetime
    version: int
    has_default: bool


@dataclass(frozen=True)
class TemplateRecord:
    """A template as the editor loads it: its fields plus the version the next save must match."""

    id: int
    fields: TemplateFields
    deleted: bool
    version: int
    updated_by: str
    updated_at: datetime
    has_default: bool


@dataclass(frozen=True)
class RevisionInfo:
    """One saved version of a template (history: who, when, what)."""

    version: int
    changed_by: str
    changed_at: datetime
    snapshot: dict[str, Any]


@dataclass(frozen=True)
class TemplateProblem:
    """A reason a template cannot be saved or rendered, where the editor can point at it."""

    part: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = PART_LABELS.get(self.part, self.part)
        if self.line:
            where += f", line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}" if where else self.message

    @classmethod
    def from_error(cls, error: TemplateError) -> TemplateProblem:
        """The plain-data form of a :class:`TemplateError` (safe to hand to another thread)."""
        return cls(error.part, error.reason, error.line, error.column)


#: How staff name each part (the editor's labels), used in messages.
PART_LABELS = {
    "from_name": "From name",
    "from_address": "From address",
    "to_address": "To",
    "cc": "CC",
    "bcc": "BCC",
    "subject": "Subject",
    "body_text": "Text body",
    "body_html": "HTML body",
    "body_sms": "SMS text",
}


class TemplateValidationError(ValidationError):
    """The template was refused; ``template_problems`` says why, part by part. Nothing was saved."""

    def __init__(self, name: str, problems: list[TemplateProblem]) -> None:
        lines = "\n".join(f"• {p}" for p in problems)
        super().__init__(f"Template “{name}” was not saved:\n{lines}", {p.part: p.message for p in reversed(problems)})
        self.template_problems = tuple(problems)


class TemplateConflictError(ConcurrentEditError):
    """Someone saved the template after this editor loaded it; says who and when, and the version now stored.

    The editor keeps what was typed; it may offer to save again over ``current_version`` once staff have
    been told (that is no longer a silent overwrite).
    """

    def __init__(self, name: str, changed_by: str, changed_at: datetime, current_version: int) -> None:
        when = changed_at.astimezone().strftime("%Y-%m-%d %H:%M")
        super().__init__(
            f"Template “{name}” was changed by {changed_by} at {when} while you were editing it. "
            "Your text has not been saved and is still in the editor."
        )
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.current_version = current_version


@dataclass(frozen=True)
class Preview:
    """A template rendered for one real request (or patron), or the problems that stopped it.

    Attributes:
        source: what the context came from, for the editor ("Request 100234 — Ada Lovelace").
        transaction_number: the request used, if any.
    """

    rendered: RenderedNotice | None
    problems: tuple[TemplateProblem, ...]
    source: str
    transaction_number: int | None = None

    @property
    def ok(self) -> bool:
        """True when the template rendered."""
        return self.rendered is not None and not self.problems


# ------------------------------------------------------------------------------------------------- reading


def _has_default(name: str) -> bool:
    return name in templates.default_templates()


def _fields_of(row: NoticeTemplate) -> TemplateFields:
    return TemplateFields(**{name: getattr(row, name) for name in FIELD_NAMES})


def _record(row: NoticeTemplate) -> TemplateRecord:
    return TemplateRecord(
        id=row.id,
        fields=_fields_of(row),
        deleted=row.deleted,
        version=row.version_id,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
        has_default=_has_default(row.name),
    )


def list_templates(db: Database) -> list[TemplateSummary]:
    """Every template, deleted ones included (they can be restored), by channel then name."""
    with db.read() as session:
        rows = session.scalars(select(NoticeTemplate).order_by(NoticeTemplate.channel, NoticeTemplate.name))
        return [
            TemplateSummary(
                id=row.id,
                name=row.name,
                channel=row.channel,
                description=row.description,
                deleted=row.deleted,
                updated_by=row.updated_by,
                updated_at=row.updated_at,
                version=row.version_id,
                has_default=_has_default(row.name),
            )
            for row in rows
        ]


def _get(session: Session, template_id: int) -> NoticeTemplate:
    row = session.get(NoticeTemplate, template_id)
    if row is None:
        raise NotFoundError(f"template id {template_id} no longer exists")
    return row


def load_template(db: Database, template_id: int) -> TemplateRecord:
    """One template for the editor.

    Raises:
        NotFoundError: no such template.
    """
    with db.read() as session:
        return _record(_get(session, template_id))


def load_template_by_name(db: Database, name: str) -> TemplateRecord:
    """One template by its name ("Loan Pickup")."""
    with db.read() as session:
        row = session.scalar(select(NoticeTemplate).where(NoticeTemplate.name == name))
        if row is None:
            raise NotFoundError(f"there is no template named “{name}”")
        return _record(row)


def list_revisions(db: Database, template_id: int) -> list[RevisionInfo]:
    """A template's saved versions, newest first."""
    with db.read() as session:
        rows = session.scalars(
            select(TemplateRevision)
            .where(TemplateRevision.template_id == template_id)
            .order_by(TemplateRevision.version.desc(), TemplateRevision.id.desc())
        )
        return [RevisionInfo(r.version, r.changed_by, r.changed_at, json.loads(r.snapshot)) for r in rows]


# ------------------------------------------------------------------------------------------------- writing


def check_template(
    fields_: TemplateFields, contexts: Sequence[tuple[str, dict[str, Any]]] = ()
) -> list[TemplateProblem]:
    """Every reason ``fields_`` cannot be saved (empty when it can), rendered also for ``contexts``."""
    return [TemplateProblem.from_error(e) for e in templates.validate(fields_, contexts)]


#: How many real requests (or patrons) a save renders the template for, besides the sample data.
CHECK_SAMPLES = 6


def check_contexts(db: Database, name: str, *, region: str = "US") -> list[tuple[str, dict[str, Any]]]:
    """Real contexts a template is checked with at save: the records most likely to break it.

    The longest titles, the longest patron names and e-mail addresses, a patron whose name is not plain
    ASCII (among the 500 longest names), and the first request waiting at Awaiting Customer Contact: a loop or
    a header that is fine with the sample data may not be with these. Password Reset gets patrons instead.
    """
    now = utcnow()
    found: list[tuple[str, dict[str, Any]]] = []
    with db.read() as session:
        if name == templates.PASSWORD_RESET:
            name_length = func.length(Patron.first_name) + func.length(Patron.last_name)
            queries = [
                select(Patron.id).order_by(name_length.desc(), Patron.id),
                select(ContactPoint.patron_id)
                .where(ContactPoint.kind == "email")
                .order_by(func.length(ContactPoint.value).desc(), ContactPoint.id),
            ]
            patron_ids: list[int] = []
            for query in queries:
                patron_ids.extend(session.scalars(query.limit(2)))
            for patron_id in dict.fromkeys(patron_ids):
                reset = _reset_part(Settings(), now)
                context = patron_notice_context(session, patron_id, region=region, reset=reset)
                found.append((f"patron {context['patron']['username'] or patron_id}", context))
            return found[:CHECK_SAMPLES]
        title_length = (
            func.length(Request.loan_title) + func.length(Request.photo_article_title)
            + func.length(Request.photo_journal_title) + func.length(Request.loan_author)
        )  # fmt: skip
        name_length = func.length(Patron.first_name) + func.length(Patron.last_name)
        queries = [
            select(Request.id).order_by(title_length.desc(), Request.id),
            select(Request.id).join(Patron, Patron.id == Request.patron_id).order_by(name_length.desc(), Request.id),
            select(Request.id)
            .join(ContactPoint, ContactPoint.patron_id == Request.patron_id)
            .where(ContactPoint.kind == "email")
            .order_by(func.length(ContactPoint.value).desc(), Request.id),
            select(Request.id)
            .where(Request.status == Status.AWAITING_CUSTOMER_CONTACT.value)
            .order_by(Request.transaction_number),
        ]
        request_ids: list[int] = []
        for query in queries:
            request_ids.extend(session.scalars(query.limit(1)))
        named = session.execute(
            select(Request.id, Patron.first_name, Patron.last_name)
            .join(Patron, Patron.id == Request.patron_id)
            .order_by(name_length.desc(), Request.id)
            .limit(500)
        )
        request_ids.extend([rid for rid, first, last in named if not (first + last).isascii()][:1])
        shared = system_settings(session)
        for request_id in list(dict.fromkeys(request_ids))[:CHECK_SAMPLES]:
            context = request_notice_context(session, request_id, region=region, today=now.date(), shared=shared)
            found.append((f"request {context['request']['transaction_number']}", context))
    return found


def _change(
    db: Database,
    template_id: int,
    *,
    expected_version: int,
    changed_by: str,
    now: datetime | None,
    apply: Any,
) -> TemplateRecord:
    """Apply ``apply(row)`` to the template if it is still at ``expected_version``, and record the revision."""
    when = now or utcnow()
    try:
        with db.write() as session:
            row = _get(session, template_id)
            if row.version_id != expected_version:
                raise TemplateConflictError(row.name, row.updated_by, row.updated_at, row.version_id)
            apply(row)
            row.updated_by = changed_by
            row.updated_at = when
            session.flush()  # bumps version_id; the UPDATE is guarded by the old one (races on PostgreSQL)
            snapshot = {name: getattr(row, name) for name in FIELD_NAMES} | {"deleted": row.deleted}
            session.add(
                TemplateRevision(
                    template_id=row.id,
                    version=row.version_id,
                    snapshot=json.dumps(snapshot, ensure_ascii=False),
                    changed_by=changed_by,
                    changed_at=when,
                )
            )
            session.flush()
            return _record(row)
    except StaleDataError:
        # Another transaction updated the row between our read and our UPDATE: report it like any conflict.
        current = load_template(db, template_id)
        raise TemplateConflictError(
            current.fields.name, current.updated_by, current.updated_at, current.version
        ) from None


def save_template(
    db: Database,
    template_id: int,
    fields_: TemplateFields,
    *,
    expected_version: int,
    changed_by: str,
    now: datetime | None = None,
) -> TemplateRecord:
    """Validate and store an edited template.

    The name and channel are the template's identity (the System Manager finds templates by name), so they
    are kept as stored whatever ``fields_`` says. Saving does not change whether the template is deleted.

    Raises:
        TemplateValidationError: the template has problems; nothing was saved.
        TemplateConflictError: someone saved it after ``expected_version`` was loaded; nothing was saved.
        NotFoundError: the template no longer exists.
    """
    with db.read() as session:
        stored = _get(session, template_id)
        identity = {"name": stored.name, "channel": stored.channel}
    fields_ = replace(fields_, **identity)
    problems = check_template(fields_, check_contexts(db, fields_.name))
    if problems:
        raise TemplateValidationError(fields_.name, problems)

    def apply(row: NoticeTemplate) -> None:
        for name in FIELD_NAMES:
            setattr(row, name, getattr(fields_, name))

    return _change(db, template_id, expected_version=expected_version, changed_by=changed_by, now=now, apply=apply)


def delete_template(
    db: Database, template_id: int, *, expected_version: int, changed_by: str, now: datetime | None = None
) -> TemplateRecord:
    """Mark a template deleted: from now on that notice is not sent (the text is kept for Restore/Undelete).

    Raises:
        TemplateConflictError: someone changed it since it was listed.
    """

    def apply(row: NoticeTemplate) -> None:
        row.deleted = True

    return _change(db, template_id, expected_version=expected_version, changed_by=changed_by, now=now, apply=apply)


def undelete_template(
    db: Database, template_id: int, *, expected_version: int, changed_by: str, now: datetime | None = None
) -> TemplateRecord:
    """Send a deleted template's notice again, with the text it had (validated again first).

    Raises:
        TemplateValidationError: the stored text no longer validates (e.g. after an upgrade); edit it first.
    """
    record = load_template(db, template_id)
    problems = check_template(record.fields, check_contexts(db, record.fields.name))
    if problems:
        raise TemplateValidationError(record.fields.name, problems)

    def apply(row: NoticeTemplate) -> None:
        row.deleted = False

    return _change(db, template_id, expected_version=expected_version, changed_by=changed_by, now=now, apply=apply)


def restore_default(
    db: Database, template_id: int, *, expected_version: int, changed_by: str, now: datetime | None = None
) -> TemplateRecord:
    """Replace a template with the default shipped in ``templates/`` and undelete it.

    Raises:
        TemplateError: no default ships under this template's name.
        TemplateConflictError: someone changed it since it was loaded.
    """
    name = load_template(db, template_id).fields.name
    default = templates.default_template(name)

    def apply(row: NoticeTemplate) -> None:
        for field_name in FIELD_NAMES:
            setattr(row, field_name, getattr(default, field_name))
        row.deleted = False

    return _change(db, template_id, expected_version=expected_version, changed_by=changed_by, now=now, apply=apply)


# ------------------------------------------------------------------------------------------------- preview


def _find_request(session: Session, transaction_number: int | None, request_type: str | None) -> Request | None:
    if transaction_number is not None:
        return session.scalar(select(Request).where(Request.transaction_number == transaction_number))
    waiting = select(Request).where(Request.status == Status.AWAITING_CUSTOMER_CONTACT.value)
    ordered = [waiting]
    if request_type:
        ordered.insert(0, waiting.where(Request.request_type == request_type))
    ordered.append(select(Request))
    for query in ordered:
        found = session.scalar(query.order_by(Request.transaction_number).limit(1))
        if found is not None:
            return found
    return None


def _reset_part(settings: Settings, now: datetime) -> dict[str, Any]:
    expires = now + timedelta(hours=RESET_HOURS)
    return {
        "link": settings.web_base_url + PREVIEW_TOKEN,
        "expires_at": expires.strftime("%Y-%m-%d %H:%M UTC"),
        "hours": RESET_HOURS,
    }


def preview_context(
    db: Database,
    name: str,
    settings: Settings,
    *,
    transaction_number: int | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], str, int | None]:
    """The context a template would get for a real request: ``(context, source label, transaction number)``.

    With no ``transaction_number``: the first request at Awaiting Customer Contact (of the template's request
    type when it has one), else any request, else the sample data. Password Reset uses the request's patron (or
    the first patron with an e-mail address) and a sample reset link that cannot be redeemed.

    Raises:
        NotFoundError: no request has ``transaction_number``.
    """
    now = now or utcnow()
    region = settings.phone_region
    with db.read() as session:
        request = _find_request(session, transaction_number, TEMPLATE_REQUEST_TYPE.get(name))
        if request is None and transaction_number is not None:
            raise NotFoundError(f"there is no request with transaction number {transaction_number}")
        if name == templates.PASSWORD_RESET:
            patron_id = request.patron_id if request is not None else _first_patron_with_email(session)
            if patron_id is None:
                return _sample_with_reset(settings, now), "sample data (no patrons in the database)", None
            patron = session.get(Patron, patron_id)
            assert patron is not None
            context = patron_notice_context(session, patron_id, region=region, reset=_reset_part(settings, now))
            return context, f"Patron {patron.username} — {patron.full_name} (sample reset link)", None
        if request is None:
            return templates.sample_context(), "sample data (no requests in the database)", None
        context = request_notice_context(session, request.id, region=region, today=now.date())
        label = f"Request {request.transaction_number} — {request.patron.full_name} ({request.status})"
        return context, label, request.transaction_number


def _first_patron_with_email(session: Session) -> int | None:
    return session.scalar(
        select(ContactPoint.patron_id).where(ContactPoint.kind == "email").order_by(ContactPoint.patron_id).limit(1)
    )


def _sample_with_reset(settings: Settings, now: datetime) -> dict[str, Any]:
    context = templates.sample_context()
    context["reset"] = _reset_part(settings, now)
    return context


def preview_template(
    db: Database,
    fields_: TemplateFields,
    settings: Settings,
    *,
    transaction_number: int | None = None,
    now: datetime | None = None,
) -> Preview:
    """Validate ``fields_`` and render it with a real request's context (see :func:`preview_context`).

    Never raises for a template problem or an unknown transaction number: they come back as ``problems`` so the
    editor can show them while staff type.
    """
    try:
        context, source, tn = preview_context(
            db, fields_.name, settings, transaction_number=transaction_number, now=now
        )
    except NotFoundError as exc:
        return Preview(None, (TemplateProblem("", str(exc)),), "", transaction_number)
    problems = check_template(fields_, [(source, context)])
    if problems:
        return Preview(None, tuple(problems), source, tn)
    try:
        rendered = templates.render(fields_, context)
    except TemplateError as exc:
        return Preview(None, (TemplateProblem.from_error(exc),), source, tn)
    return Preview(rendered, (), source, tn)


# ----------------------------------------------------------------------------------------------- test send


@dataclass(frozen=True)
class TestSendResult:
    """What happened to a test e-mail: the address it went to, the subject, and the server's words.

    Attributes:
        would_to, would_cc, would_bcc: the recipients the real notice would have had (parsed, one mailbox
            each), shown to staff so a test also checks the template's To, CC and BCC.
    """

    to: str
    subject: str
    detail: str
    would_to: tuple[str, ...] = ()
    would_cc: tuple[str, ...] = ()
    would_bcc: tuple[str, ...] = ()

    @property
    def would_have_gone_to(self) -> str:
        """``To: …; CC: …; BCC: …`` for the status line."""
        parts = [("To", self.would_to), ("CC", self.would_cc), ("BCC", self.would_bcc)]
        return "; ".join(f"{label}: {', '.join(values)}" for label, values in parts if values) or "no one"


def send_test_email(
    db: Database,
    settings: Settings,
    fields_: TemplateFields,
    to: str,
    *,
    password: str | None,
    transaction_number: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> TestSendResult:
    """Render ``fields_`` for a real request and send it, through the configured SMTP server, to ``to`` only.

    The rendered To, CC and BCC are checked like at save (valid addresses, the patron's address in To) and then
    replaced by ``to``: a test must never reach the patron whose request was used for the context. The result
    names the recipients the real notice would have had. The mailer marks the subject "[TEST]"; nothing is
    recorded in the outbox.

    Raises:
        ValidationError: ``to`` is not an e-mail address, SMTP is not configured, or the template has problems.
        ServiceError: the server could not be reached or did not accept the message (with its reply).
    """
    from desktop.services.notices import mailer  # the System Manager's SMTP client (one client for the whole program)

    try:
        address = normalize_email(to).display
    except ContactError as exc:
        raise ValidationError(f"Test address: {exc}", {"to": str(exc)}) from None
    if not settings.smtp_host:
        raise ValidationError("No SMTP server is configured: set one in Settings first.", {"smtp_host": "missing"})
    preview = preview_template(db, fields_, settings, transaction_number=transaction_number)
    if preview.rendered is None:
        raise TemplateValidationError(fields_.name, list(preview.problems))
    real = preview.rendered
    rendered = replace(real, to=(address,), cc=(), bcc=())
    try:
        result = mailer.send_test_message(settings, password, address, rendered, ssl_context=ssl_context)
    except ValueError as exc:
        raise ValidationError(f"The test e-mail cannot be sent: {exc}") from None
    if result.outcome is not mailer.Outcome.SENT:
        raise ServiceError(f"The server did not take the test e-mail: {result.reply}")
    return TestSendResult(address, f"[TEST] {rendered.subject}", result.reply, real.to, real.cc, real.bcc)
