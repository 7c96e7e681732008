"""Print Request: one request's details as an HTML page (ILLiad's "Print" on the request form).

Plain data in, HTML out, so the window only lays it out and prints it; every value is escaped (titles and
notes are typed by people and imported from other systems).
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from desktop.services.requests.record import RequestDetails

#: Tracking lines and notes printed at most (newest kept): the sheet is one page to clip to the item.
MAX_LINES = 8


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def request_sheet_html(details: RequestDetails) -> str:
    """The request's details, its patron, latest Tracking and notes, as one page of HTML."""
    rows: list[tuple[str, str]] = [
        ("Transaction number", str(details.transaction_number)),
        ("Status", details.status),
        ("Request type", details.request_type),
    ]
    if details.is_article:
        rows += [("Journal", details.photo_journal_title), ("Article", details.photo_article_title)]
    else:
        rows += [("Title", details.loan_title), ("Author", details.loan_author)]
    rows += [
        ("Call number", details.call_number),
        ("Lending library", details.lending_library),
        ("Due date", details.due_date.isoformat() if details.due_date else ""),
        ("Pickup location", details.pickup_location_name),
        ("Requested", _when(details.transaction_date)),
        ("Patron", f"{details.patron_name} ({details.patron_username})"),
        ("Notify by", details.notification_method),
        ("E-mail", details.primary_email),
        ("Phone", details.primary_phone),
    ]
    table = "".join(f"<tr><th align='left'>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    tracking = "".join(
        f"<tr><td>{escape(_when(t.changed_at))}</td><td>{escape(t.to_status)}</td><td>{escape(t.changed_by)}</td></tr>"
        for t in details.tracking[-MAX_LINES:]
    )
    notes = "".join(
        f"<p><b>{escape(_when(n.noted_at))} · {escape(n.added_by)}:</b> {escape(n.note)}</p>"
        for n in details.notes[-MAX_LINES:]
    )
    return (
        f"<h2>Request {details.transaction_number}</h2>"
        f"<table cellspacing='0' cellpadding='3'>{table}</table>"
        f"<h3>Tracking</h3><table cellspacing='0' cellpadding='2'>{tracking or '<tr><td>(none)</td></tr>'}</table>"
        f"<h3>Notes</h3>{notes or '<p>(none)</p>'}"
    )
