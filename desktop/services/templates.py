"""Notification templates: Jinja2 in a sandbox, strict about unknown names, with staff-friendly errors.

Every template is rendered with ``ImmutableSandboxedEnvironment`` and ``StrictUndefined``: a typo such as
``{{ requst.title }}`` or an escape attempt such as ``{{ ''.__class__ }}`` is an error with a message, never an
empty gap in a patron's e-mail and never access to Python internals. HTML parts are autoescaped; the text part
and the headers are not (they are not HTML). The context is plain data (:func:`sample_context` shows its shape,
:data:`CONTEXT_NAMES` documents it), never ORM objects.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desktop.paths import template_path
from desktop.services.errors import ServiceError

PASSWORD_RESET = "Password Reset"
LOAN_PICKUP = "Loan Pickup"
ARTICLE_PICKUP = "Article Pickup"
PRINT_NOTICE = "Print Notice"

#: Largest rendered part (subject, a body) in characters; a runaway loop must not fill the outbox.
MAX_RENDERED = 200_000
MAX_SUBJECT = 900

#: The names a template may use, with what they hold: shown to staff as the list of variables to insert.
CONTEXT_NAMES: dict[str, str] = {
    "patron.first_name": "Patron's first name",
    "patron.last_name": "Patron's last name",
    "patron.full_name": "First and last name",
    "patron.username": "User name",
    "patron.email": "Primary e-mail address",
    "patron.phone": "Primary phone, formatted",
    "patron.address_lines": "Postal address as a list of lines (for {% for line in … %})",
    "patron.department": "Department",
    "request.transaction_number": "Transaction number",
    "request.request_type": "Loan or Article",
    "request.title": "Loan title, or article title for articles",
    "request.author": "Loan author",
    "request.journal_title": "Journal title (articles)",
    "request.article_title": "Article title (articles)",
    "request.call_number": "Call number",
    "request.lending_library": "Lending library",
    "request.due_date": "Due date (YYYY-MM-DD) or empty",
    "request.status": "Current status",
    "pickup.name": "Pickup location name",
    "pickup.address": "Pickup location address",
    "pickup.hold_days": "Days the item is held",
    "pickup.hold_until": "Last day the item is held (YYYY-MM-DD)",
    "library.name": "Library name",
    "library.address_lines": "Library return address as a list of lines",
    "library.email": "Library e-mail",
    "library.phone": "Library phone",
    "reset.link": "Password reset link (Password Reset template only)",
    "reset.expires_at": "When the reset link expires (Password Reset template only)",
    "reset.hours": "Hours the reset link is valid (Password Reset template only)",
    "today": "Today's date (YYYY-MM-DD)",
}
TOP_LEVEL_NAMES = frozenset(name.split(".")[0] for name in CONTEXT_NAMES)


class TemplateError(ServiceError):
    """A template that cannot be saved or rendered; ``part`` names the field, ``line``/``column`` where known."""

    def __init__(self, message: str, part: str = "", line: int | None = None, column: int | None = None) -> None:
        where = f"{part}" + (f", line {line}" if line else "") + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.part = part
        self.line = line
        self.column = column
        self.reason = message


@dataclass(frozen=True)
class TemplateFields:
    """The editable parts of a template (ILLiad's: From, To, CC, BCC, Subject, bodies)."""

    name: str
    channel: str = "email"
    description: str = ""
    from_name: str = ""
    from_address: str = ""
    to_address: str = "{{ patron.email }}"
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body_text: str = ""
    body_html: str = ""

    def as_dict(self) -> dict[str, str]:
        """Plain dict (for JSON revision snapshots and the editor)."""
        return asdict(self)


#: Parts rendered as templates, and whether they are HTML (autoescaped).
TEMPLATED_PARTS: dict[str, bool] = {
    "from_name": False,
    "from_address": False,
    "to_address": False,
    "cc": False,
    "bcc": False,
    "subject": False,
    "body_text": False,
    "body_html": True,
}


@dataclass(frozen=True)
class RenderedNotice:
    """A template rendered for one patron/request: ready to become an e-mail or a printed page."""

    from_name: str
    from_address: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str


@cache
def _environment(html: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _split_addresses(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    return tuple(p for p in parts if p)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    """Compile once per distinct source: compiling costs ~100x rendering, and the outbox renders the same few
    templates thousands of times per batch (failures raise and are not cached)."""
    return _environment(html).from_string(source)


def render_part(source: str, context: Mapping[str, Any], *, part: str, html: bool = False) -> str:
    """Render one part, turning every Jinja failure into a :class:`TemplateError` that names it."""
    if "{" not in source:
        # Plain text (most CC/BCC/From parts): Jinja would return it unchanged, at the cost of a render context.
        if len(source) > MAX_RENDERED:
            raise TemplateError(f"is {len(source):,} characters, more than the {MAX_RENDERED:,} allowed", part)
        return source
    try:
        template = _compiled(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", part, exc.lineno) from None
    try:
        text = template.render(**context)
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", part) from None
    except UndefinedError as exc:
        raise TemplateError(f"unknown name: {exc.message}", part) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", part, exc.lineno) from None
    except Exception as exc:  # a filter given the wrong type, a division by zero in staff's expression, …
        raise TemplateError(f"cannot render: {type(exc).__name__}: {exc}", part) from None
    if len(text) > MAX_RENDERED:
        raise TemplateError(f"renders to {len(text):,} characters, more than the {MAX_RENDERED:,} allowed", part)
    return text


#: Ends each part in the one-pass rendering of a whole template; no patron data contains a NUL character, and if
#: some did the parts would not come apart cleanly and the template is rendered part by part instead.
_PART_END = "\x00callslip-part-end\x00"


@lru_cache(maxsize=128)
def _together(sources: tuple[tuple[str, bool], ...]) -> Template:
    """The templated parts as one template, each in its own scope, so a notice needs one render, not six.

    Each part sits in a ``{% with %}`` block (a ``{% set %}`` in one part stays invisible to the next, as when
    rendered alone) and starts on a line of its own (``lstrip_blocks`` applies to its first line). ``+%}`` and
    ``{%+`` keep ``trim_blocks``/``lstrip_blocks`` from touching the part's first newline and last line.
    """
    pieces = []
    for source, html in sources:
        opening = "{% with %}{% autoescape true +%}\n" if html else "{% with +%}\n"
        closing = "{%+ endautoescape %}{% endwith %}" if html else "{%+ endwith %}"
        pieces.append(opening + source + closing + _PART_END)
    return _environment(False).from_string("".join(pieces))


def _render_together(fields_: TemplateFields, context: Mapping[str, Any]) -> dict[str, str] | None:
    """Every templated part rendered in one pass; ``None`` when anything is off (the caller then renders part by
    part, which names the failing part and line)."""
    parts = [(part, html) for part, html in TEMPLATED_PARTS.items() if "{" in getattr(fields_, part)]
    if len(parts) < 2:
        return None
    try:
        text = _together(tuple((getattr(fields_, part), html) for part, html in parts)).render(**context)
    except Exception:
        return None
    pieces = text.split(_PART_END)
    if len(pieces) != len(parts) + 1 or pieces[-1] or any(len(p) > MAX_RENDERED + 1 for p in pieces):
        return None
    out = {part: getattr(fields_, part) for part in TEMPLATED_PARTS}
    out |= {part: piece[1:] for (part, _), piece in zip(parts, pieces, strict=False)}  # the opening newline
    return out


def render(fields_: TemplateFields, context: Mapping[str, Any]) -> RenderedNotice:
    """Render every part of ``fields_`` with ``context``.

    Raises:
        TemplateError: the first part that fails, with its reason.
    """
    out = _render_together(fields_, context) or {
        part: render_part(getattr(fields_, part), context, part=part, html=html)
        for part, html in TEMPLATED_PARTS.items()
    }
    subject = out["subject"].strip()
    if "\r" in subject or "\n" in subject:
        raise TemplateError("the subject must be one line (it contains a line break)", "subject")
    if len(subject) > MAX_SUBJECT:
        raise TemplateError(f"the subject is longer than {MAX_SUBJECT} characters", "subject")
    for part in ("from_name", "from_address", "to_address", "cc", "bcc"):
        if "\r" in out[part].strip() or "\n" in out[part].strip():
            raise TemplateError("must be one line (it contains a line break)", part)
    return RenderedNotice(
        from_name=out["from_name"].strip(),
        from_address=out["from_address"].strip(),
        to=_split_addresses(out["to_address"]),
        cc=_split_addresses(out["cc"]),
        bcc=_split_addresses(out["bcc"]),
        subject=subject,
        body_text=out["body_text"],
        body_html=out["body_html"],
    )


def validate(fields_: TemplateFields) -> list[TemplateError]:
    """Every problem that would stop this template being saved: syntax (with line and column), unknown names,
    sandbox violations, a subject with a line break, a Password Reset template without its link.

    An empty list means the template may be saved.
    """
    problems: list[TemplateError] = []
    for part, html in TEMPLATED_PARTS.items():
        source = getattr(fields_, part)
        env = _environment(html)
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append(TemplateError(f"syntax error: {exc.message}", part, exc.lineno, _column(source, exc)))
            continue
        unknown = sorted(meta.find_undeclared_variables(ast) - TOP_LEVEL_NAMES)
        if unknown:
            problems.append(TemplateError("unknown name(s): " + ", ".join(unknown) + _suggest(unknown), part))
            continue
        try:
            render_part(source, sample_context(), part=part, html=html)
        except TemplateError as exc:
            problems.append(exc)
    if "\r" in fields_.subject or "\n" in fields_.subject:
        problems.append(TemplateError("the subject must be one line (it contains a line break)", "subject"))
    if fields_.name == PASSWORD_RESET and not any(
        "reset.link" in getattr(fields_, part).replace(" ", "") for part in ("body_text", "body_html")
    ):
        problems.append(TemplateError("a Password Reset template must contain {{ reset.link }}", "body_text"))
    if fields_.channel == "email" and not fields_.to_address.strip():
        problems.append(TemplateError("an e-mail template needs a To address", "to_address"))
    return problems


def _column(source: str, exc: TemplateSyntaxError) -> int | None:
    """Jinja reports only the line; point at its first non-blank character so the editor can place the cursor."""
    lines = source.splitlines()
    if exc.lineno and 0 < exc.lineno <= len(lines):
        line = lines[exc.lineno - 1]
        return len(line) - len(line.lstrip()) + 1
    return None


def _suggest(unknown: list[str]) -> str:
    import difflib

    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(TOP_LEVEL_NAMES), n=1)
        if close:
            hints.append(f"{name} → {close[0]}?")
    return f" (did you mean: {', '.join(hints)})" if hints else f" (known: {', '.join(sorted(TOP_LEVEL_NAMES))})"


def sample_context() -> dict[str, Any]:
    """A complete context with sample values: the shape every real context has."""
    return {
        "patron": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "full_name": "Ada Lovelace",
            "username": "alovelace",
            "email": "ada@example.org",
            "phone": "(217) 555-0143",
            "address_lines": ["Ada Lovelace", "12 Oak Street", "Springfield, IL 62701"],
            "department": "Mathematics",
        },
        "request": {
            "transaction_number": 100001,
            "request_type": "Loan",
            "title": "Notes on the Analytical Engine",
            "author": "L. F. Menabrea",
            "journal_title": "",
            "article_title": "",
            "call_number": "QA76 .M46",
            "lending_library": "University of Illinois",
            "due_date": "2026-12-31",
            "status": "Awaiting Customer Contact",
        },
        "pickup": {
            "name": "Main Library Circulation Desk",
            "address": "1 Library Way, Springfield",
            "hold_days": 10,
            "hold_until": "2026-12-04",
        },
        "library": {
            "name": "Callslip Demo Library",
            "address_lines": ["Interlibrary Loan Office", "1 Library Way", "Springfield, IL 62701"],
            "email": "ill@library.example.org",
            "phone": "+1 217 555 0100",
        },
        "reset": {
            "link": "https://library.example.org/reset?token=SAMPLE",
            "expires_at": "2026-11-26 10:00 UTC",
            "hours": 48,
        },
        "today": "2026-11-24",
    }


# ----------------------------------------------------------------------------------------------- defaults


def _read_default(path: Path) -> TemplateFields:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(TemplateFields)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    return TemplateFields(**data)


@cache
def default_templates() -> dict[str, TemplateFields]:
    """The default templates shipped in ``templates/*.toml``, by name."""
    found = {}
    for path in sorted(template_path().glob("*.toml")):
        item = _read_default(path)
        found[item.name] = item
    return found


def default_template(name: str) -> TemplateFields:
    """One shipped default (for Restore default).

    Raises:
        TemplateError: no default ships under that name.
    """
    try:
        return default_templates()[name]
    except KeyError:
        raise TemplateError(f"no default template named {name!r} ships with Callslip") from None


def with_name(fields_: TemplateFields, name: str) -> TemplateFields:
    """A copy under another name."""
    return replace(fields_, name=name)
