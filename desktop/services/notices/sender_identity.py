"""Who a notice is from, and whether this installation can send a given e-mail at all.

The From address of a notice is, in this order: what the template's From renders to, else the library's e-mail
(Customization Manager → Library, or ``init-db --library-email``), else ``CALLSLIP_SMTP_FROM`` / Settings' SMTP From.
There is no invented fallback: with none of the three, nothing is sent and the System Manager says so (notices
wait with :attr:`~desktop.services.notices.delivery_problems.DeliveryProblem.NO_FROM_ADDRESS`), because a
notice signed by a made-up library is worse than a notice a day late.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Notification
from desktop.services.notices import outbox
from desktop.services.notices.notice_context import library_context, system_settings
from desktop.services.notices.templates import TemplateError, render_part, sample_context

#: What staff or an administrator does to give notices a From address.
NO_FROM_FIX = (
    "give the library's e-mail (Customization Manager → Library, or callslip-manager init-db --library-email) "
    "or an SMTP From address in Settings (CALLSLIP_SMTP_FROM)"
)


def resolve_from(template_from: str, library_email: str, smtp_from: str) -> str:
    """The From address: the template's, else the library's e-mail, else the configured SMTP From ("" if none)."""
    return template_from.strip() or library_email.strip() or smtp_from.strip()


def _template_from(template: NoticeTemplate, library: dict[str, Any]) -> str:
    """What the template's From renders to with this library's details (sample values for everything else)."""
    context = sample_context() | {"library": library}
    try:
        return render_part(template.from_address, context, part="from_address", html=False).strip()
    except TemplateError:
        return "?"  # it names something a real notice has; the notice itself will say what is wrong


def templates_without_from(db: Database, settings: Settings, names: set[str] | None = None) -> list[str]:
    """The e-mail templates (of ``names``, default all) whose notices would have no From address."""
    with db.read() as session:
        library = library_context(system_settings(session))
        query = select(NoticeTemplate).where(NoticeTemplate.channel == "email", NoticeTemplate.deleted.is_(False))
        templates = [t for t in session.scalars(query) if names is None or t.name in names]
        return sorted(
            t.name
            for t in templates
            if not resolve_from(_template_from(t, library), library["email"], settings.smtp_from)
        )


def no_from_address(db: Database, settings: Settings) -> str | None:
    """Why the waiting e-mail notices cannot be sent for want of a From address, or ``None`` when they can.

    Only the templates of notices actually waiting count, so a library that set a From on each template it uses
    is never held up by one it does not use.
    """
    with db.read() as session:
        waiting = set(
            session.scalars(
                select(Notification.template_name)
                .where(Notification.state.in_(outbox.WAITING_STATES), Notification.channel == "email")
                .distinct()
            )
        )
    if not waiting:
        return None
    missing = templates_without_from(db, settings, waiting)
    if not missing:
        return None
    return f"no From address for the {', '.join(repr(n) for n in missing)} notice(s): {NO_FROM_FIX}"
