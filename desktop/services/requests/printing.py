"""Printed notices for patrons notified by Mail: one letter per patron, listing every selected item of theirs.

A patron with three items waiting gets one letter (one envelope, one stamp) naming all three: the template's
context has ``requests``, the list of the letter's items (each with the ``request.*`` fields), and ``request``,
the first of them, so a template written for one item renders exactly as before. A template that does not
mention ``requests`` cannot list several items, so with it each request still gets a page of its own. Each
request is still moved to Customer Notified via Mail on its own once staff confirm the letters printed.

The service only renders HTML (no Qt): ``desktop.ui.requests.print_notices`` lays each page out on paper. The rendered
body is split into its return-address block, its window-envelope address block and the letter, so the page
layout can put the patron's address exactly behind an envelope window whatever the template says around it.
A patron without a postal address gets no blank page: the request comes back as a warning for staff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from desktop.db.engine import Database
from desktop.domain.statuses import Status
from desktop.services.errors import NotFoundError, ServiceError
from desktop.services.notices.notice_context import (
    RequestRow,
    has_postal_address,
    load_request_rows,
    request_row_context,
    system_settings,
)
from desktop.services.notices.template_admin import load_template_by_name
from desktop.services.notices.templates import (
    PRINT_NOTICE,
    PRINT_PICKUP_EXPIRED,
    PRINT_PICKUP_REMINDER,
    TemplateFields,
    render,
)
from desktop.services.requests.shelf_contacts import open_reminders

#: The blocks the default template marks for placement on the page (``<div class="return">`` …).
_BLOCK = re.compile(r'<div\s+class="(return|window)"\s*>(.*?)</div>', re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class NoticePage:
    """One printed notice (one page, one letter), about one or several requests of one patron.

    Attributes:
        request_id, transaction_number, title: the letter's first request.
        request_ids: every request the letter names (first included), in transaction-number order.
        html: the whole rendered body, as the template produced it.
        return_html: the library's return-address block ("" when the template has none).
        window_html: the patron's name and address for the envelope window ("" when the template has none:
            the page is then printed as ``html`` from the top).
        letter_html: everything else: the letter below the window.
    """

    request_id: int
    transaction_number: int
    patron_name: str
    title: str
    subject: str
    html: str
    return_html: str
    window_html: str
    letter_html: str
    request_ids: tuple[int, ...] = ()

    @property
    def items(self) -> tuple[int, ...]:
        """The requests this letter names (``request_ids``, or the one request)."""
        return self.request_ids or (self.request_id,)


@dataclass(frozen=True)
class PrintWarning:
    """A selected request that got no page, and why (listed for staff before printing)."""

    request_id: int
    transaction_number: int
    patron_name: str
    reason: str


@dataclass(frozen=True)
class PrintBatch:
    """The pages to print, in transaction-number order, and the requests left out."""

    pages: tuple[NoticePage, ...]
    warnings: tuple[PrintWarning, ...]

    @property
    def request_ids(self) -> tuple[int, ...]:
        """The requests that have a letter (what moves to Customer Notified via Mail once printed)."""
        return tuple(rid for page in self.pages for rid in page.items)


def split_blocks(html: str) -> tuple[str, str, str]:
    """``(return_html, window_html, letter_html)`` of a rendered notice; the first of each block is used."""
    found: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        kind = match.group(1).lower()
        if kind in found:
            return match.group(0)
        found[kind] = match.group(2).strip()
        return ""

    letter = _BLOCK.sub(take, html)
    return found.get("return", ""), found.get("window", ""), letter.strip()


def print_template(db: Database, name: str = PRINT_NOTICE) -> TemplateFields:
    """The Print Notice template (or ``name``: the Print Pickup Reminder) as staff last saved it.

    Raises:
        ServiceError: it was deleted in the Customization Manager (printing needs it restored first).
    """
    try:
        record = load_template_by_name(db, name)
    except NotFoundError:
        record = None
    if record is None or record.deleted:
        raise ServiceError(
            f"The {name!r} template was deleted; restore it in the Customization Manager "
            "(Notification Templates) to print notices."
        )
    return record.fields


def build_notices(
    db: Database, request_ids: Sequence[int], *, region: str = "US", today: date | None = None
) -> PrintBatch:
    """Render the Print Notice template for each selected request.

    Requests no longer at Awaiting Customer Contact, and patrons without a postal address, become warnings
    instead of pages.

    Raises:
        ServiceError: the template is deleted.
        desktop.services.notices.templates.TemplateError: the template cannot be rendered (its message names the part).
    """
    template = print_template(db)
    pages: list[NoticePage] = []
    warnings: list[PrintWarning] = []
    with db.read() as session:
        # Every selected request with its patron and pickup desk in two queries, the shared settings in one: no
        # query per page.
        rows = load_request_rows(session, request_ids)
        shared = system_settings(session)
        letters = {rid: r for rid, r in open_reminders(session, request_ids).items() if r.channel == "print"}
    # A hold-shelf letter: a pickup reminder, or the "hold ended" letter of a request going back to the lender.
    kinds = {r.expired for r in letters.values()}
    reminder_template = print_template(db, PRINT_PICKUP_REMINDER) if False in kinds else template
    expired_template = print_template(db, PRINT_PICKUP_EXPIRED) if True in kinds else template
    # One letter per (patron, kind of letter, pickup desk): the letter names one desk and one hold date.
    grouped: dict[tuple[int, str, object], list[RequestRow]] = {}
    sources = {"arrival": template, "reminder": reminder_template, "expired": expired_template}
    for request in sorted(rows.values(), key=lambda r: r.transaction_number):
        patron = request.patron
        if request.id in letters:  # a hold-shelf letter: the item is on the shelf (or going back), not arriving
            reason = "" if has_postal_address(patron) else "the patron has no postal address; notify another way"
        elif request.status != Status.AWAITING_CUSTOMER_CONTACT.value:
            reason = f"changed on another workstation, now at {request.status!r}"
        elif not has_postal_address(patron):
            reason = "the patron has no postal address; add one on the patron record or notify another way"
        else:
            reason = ""
        if reason:
            warnings.append(PrintWarning(request.id, request.transaction_number, patron.full_name, reason))
            continue
        letter = letters.get(request.id)
        kind = "arrival" if letter is None else "expired" if letter.expired else "reminder"
        if "requests" in sources[kind].body_html:
            key: tuple[int, str, object] = (patron.id, kind, request.pickup)
        else:  # a template that names one request: a page each, as it always printed
            key = (patron.id, kind, ("alone", request.id))
        grouped.setdefault(key, []).append(request)
    for (_, kind, _), items in grouped.items():
        first = items[0]
        context = request_row_context(first, region=region, today=today, shared=shared)
        context["requests"] = [
            context["request"],
            *(request_row_context(r, region=region, today=today, shared=shared)["request"] for r in items[1:]),
        ]
        notice = render(sources[kind], context)
        return_html, window_html, letter_html = split_blocks(notice.body_html)
        pages.append(
            NoticePage(
                request_id=first.id,
                transaction_number=first.transaction_number,
                patron_name=first.patron.full_name,
                title=first.title,
                subject=notice.subject,
                html=notice.body_html,
                return_html=return_html,
                window_html=window_html,
                letter_html=letter_html,
                request_ids=tuple(r.id for r in items),
            )
        )
    for rid in request_ids:
        if rid not in rows:
            warnings.append(PrintWarning(rid, 0, f"request id {rid}", "it was deleted meanwhile"))
    return PrintBatch(tuple(pages), tuple(warnings))
