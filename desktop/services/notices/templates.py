"""Notification templates: Jinja2 in a sandbox, strict about unknown names, with staff-friendly errors.

Every template is rendered with ``ImmutableSandboxedEnvironment`` and ``StrictUndefined``: a typo such as
``{{ requst.title }}`` or an escape attempt such as ``{{ ''.__class__ }}`` is an error with a message, never an
empty gap in a patron's e-mail and never access to Python internals. HTML parts are autoescaped; the text part
and the headers are not (they are not HTML). The context is plain data (:func:`sample_context` shows its shape,
:data:`CONTEXT_NAMES` documents it), never ORM objects.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError

from desktop.paths import template_path
from desktop.services.errors import ServiceError
from desktop.services.notices import template_limits
from desktop.services.notices.mail_addresses import AddressError, control_characters, formatted, parse_address_list
from desktop.services.notices.template_limits import BoundedEnvironment, RenderLimitError

PASSWORD_RESET = "Password Reset"
LOAN_PICKUP = "Loan Pickup"
ARTICLE_PICKUP = "Article Pickup"
PRINT_NOTICE = "Print Notice"
#: The hold shelf's default templates (issue 17): reminders by request type, the printed reminder, the expiry.
LOAN_PICKUP_REMINDER = "Loan Pickup Reminder"
ARTICLE_PICKUP_REMINDER = "Article Pickup Reminder"
PRINT_PICKUP_REMINDER = "Print Pickup Reminder"
PICKUP_EXPIRED = "Pickup Expired"
#: The letter to a Mail patron whose hold ended (a Phone patron gets a call, "Pickup Expired" naming it).
PRINT_PICKUP_EXPIRED = "Print Pickup Expired"
HOLD_SHELF_TEMPLATES = (LOAN_PICKUP_REMINDER, ARTICLE_PICKUP_REMINDER, PRINT_PICKUP_REMINDER, PICKUP_EXPIRED,
                        PRINT_PICKUP_EXPIRED)  # fmt: skip

#: Largest rendered part (subject, a body) in characters; a runaway loop must not fill the outbox.
MAX_RENDERED = 200_000
#: Longest template part, in characters (its text, before rendering).
MAX_SOURCE = 100_000
#: Longest subject, in characters: the length of the stored copy's column, so what is kept is what was sent.
MAX_SUBJECT = 500

#: The names a template may use, with what they hold: shown to staff as the list of variables to insert.
CONTEXT_NAMES: dict[str, str] = {
    "patron.first_name": "Patron's first name",
    "patron.last_name": "Patron's last name",
    "patron.full_name": "First and last name",
    "patron.username": "User name",
    "patron.email": "Primary e-mail address",
    "patron.mailbox": "Name and e-mail address as one recipient, quoted as needed (for To)",
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
    "requests": "Every item the message names (a printed letter, or an e-mail/text for several items that "
    "arrived close together; one item otherwise): "
    "{% for item in requests %}{{ item.title }}…{% endfor %}, each with the request.* fields",
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
    #: The text message (plain text, no HTML) sent when the patron's channel is SMS; empty: no SMS for this notice.
    body_sms: str = ""

    def as_dict(self) -> dict[str, str]:
        """Plain dict (for JSON revision snapshots and the editor)."""
        return asdict(self)


#: Parts that hold e-mail addresses (RFC 5322 address lists), and every part that becomes a header.
ADDRESS_PARTS = ("from_address", "to_address", "cc", "bcc")
HEADER_PARTS = ("from_name", *ADDRESS_PARTS, "subject")

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
    "body_sms": False,
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
    #: The SMS text with surrounding blank lines removed (cut to the segment limit only when sent).
    body_sms: str = ""


#: Around each value inserted into an address part while it renders (private-use characters), so that
#: :func:`_quote_inserted` can quote names the template put between quotes or next to an ``<address>``.
_OPEN, _CLOSE = "\ue000", "\ue001"


def _printed(value: Any) -> Any:
    """Every ``{{ value }}`` is measured before it becomes text (``{{ [s, s, s, …] }}`` would be huge)."""
    return template_limits.check_size(value)


def _mark(value: Any) -> Any:
    text = "" if value is None else str(template_limits.check_size(value))
    return _OPEN + text.replace(_OPEN, "").replace(_CLOSE, "") + _CLOSE


@cache
def _environment(html: bool, mark: bool = False) -> BoundedEnvironment:
    """The sandbox (bounded in time and size, see :mod:`template_limits`); ``mark`` wraps every inserted value
    in markers, for address parts."""
    return BoundedEnvironment(
        undefined=StrictUndefined,
        autoescape=html,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_mark if mark else _printed,
    )


_ADDRESS_SPECIALS = set('()<>[]:;@\\,."')


def _looks_like_addresses(value: str) -> bool:
    """Whether ``value`` is itself an address list (``{{ patron.email }}``): it parses, and each address is
    written in it as it is (the parser also reads ``0@ 0``, a name, as the address ``0@0``)."""
    try:
        addresses = parse_address_list(value)
    except AddressError:
        return False
    return bool(addresses) and all(a.addr_spec in value for a in addresses)


def _quote_inserted(text: str) -> str:
    """Make inserted values safe in an address list written by staff.

    ``"{{ patron.last_name }}, {{ patron.first_name }}" <{{ patron.email }}>``: a name with ``"`` or ``\\`` inside
    the template's quotes is escaped; ``{{ patron.full_name }} <{{ patron.email }}>``: a name with a comma, a
    quote or an ``@`` outside quotes is quoted, so it stays one display name and not another recipient. Values
    that are addresses themselves (``{{ patron.email }}``, ``{{ patron.mailbox }}``) are left as they are.
    """
    out: list[str] = []
    quoted = escaped = False
    angle = 0
    pieces = text.split(_OPEN)
    for index, piece in enumerate(pieces):
        if index:
            value, _, piece = piece.partition(_CLOSE)
            if quoted:
                value = value.replace("\\", "\\\\").replace('"', '\\"')
            elif not angle and value.strip() and set(value) & _ADDRESS_SPECIALS and not _looks_like_addresses(value):
                value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append(value)
        for ch in piece:
            if escaped:
                escaped = False
            elif ch == "\\" and quoted:
                escaped = True
            elif ch == '"':
                quoted = not quoted
            elif not quoted and ch == "<":
                angle += 1
            elif not quoted and ch == ">":
                angle = max(angle - 1, 0)
        out.append(piece)
    return "".join(out)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool, mark: bool = False) -> Template:
    """Compile once per distinct source: compiling costs ~100x rendering, and the outbox renders the same few
    templates thousands of times per batch (failures raise and are not cached)."""
    return _environment(html, mark).from_string(source)


def _generate(template: Template, context: Mapping[str, Any], part: str) -> str:
    """Render through ``generate`` so a part that grows too large is stopped while it grows, not after."""
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > MAX_RENDERED:
            raise TemplateError(f"renders to more than the {MAX_RENDERED:,} characters allowed", part)
        chunks.append(chunk)
        if not len(chunks) % 64:
            template_limits.check_time()
    return "".join(chunks)


def render_part(source: str, context: Mapping[str, Any], *, part: str, html: bool = False) -> str:
    """Render one part, turning every Jinja failure into a :class:`TemplateError` that names it.

    Address parts (From address, To, CC, BCC) quote the names inserted into them (:func:`_quote_inserted`).
    """
    if "{" not in source:
        # Plain text (most CC/BCC/From parts): Jinja would return it unchanged, at the cost of a render context.
        if len(source) > MAX_RENDERED:
            raise TemplateError(f"is {len(source):,} characters, more than the {MAX_RENDERED:,} allowed", part)
        return source
    mark = part in ADDRESS_PARTS
    if len(source) > MAX_SOURCE:
        raise TemplateError(f"is {len(source):,} characters long, more than the {MAX_SOURCE:,} allowed", part)
    try:
        template = _compiled(source, html, mark)
    except TemplateSyntaxError as exc:
        raise _syntax_error(source, exc, part) from None
    except RecursionError:
        line = template_limits.deepest_bracket_line(source)
        raise TemplateError("is nested too deeply to be read", part, line) from None
    try:
        with template_limits.deadline():
            text = _generate(template, context, part)
    except TemplateError:
        raise
    except RenderLimitError as exc:
        raise TemplateError(f"stopped: {exc}", part) from None
    except RecursionError:
        raise TemplateError("stopped: it calls itself too deeply (a macro or loop that never ends?)", part) from None
    except SecurityError as exc:
        raise TemplateError(f"not allowed in a template: {exc}", part) from None
    except UndefinedError as exc:
        raise TemplateError(f"unknown name: {exc.message}", part, _template_line(exc)) from None
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", part, exc.lineno) from None
    except MemoryError:
        raise TemplateError("stopped: it needs more memory than the computer has", part) from None
    except Exception as exc:  # a filter given the wrong type, a division by zero in staff's expression, …
        raise TemplateError(f"cannot render: {type(exc).__name__}: {exc}", part) from None
    return _quote_inserted(text) if mark else text


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
    """Every templated part except the address parts rendered in one pass; ``None`` when anything is off (the
    caller then renders part by part, which names the failing part and line)."""
    parts = [
        (part, html)
        for part, html in TEMPLATED_PARTS.items()
        if part not in ADDRESS_PARTS and "{" in getattr(fields_, part)
    ]
    if len(parts) < 2 or any(len(getattr(fields_, part)) > MAX_SOURCE for part, _ in parts):
        return None
    limit = (MAX_RENDERED + len(_PART_END) + 1) * len(parts)
    try:
        template = _together(tuple((getattr(fields_, part), html) for part, html in parts))
        chunks: list[str] = []
        size = 0
        with template_limits.deadline():
            for chunk in template.generate(**context):
                size += len(chunk)
                if size > limit:
                    return None
                chunks.append(chunk)
                if not len(chunks) % 64:
                    template_limits.check_time()
    except RenderLimitError as exc:
        if "longer than" not in str(exc):
            return None  # a size limit: rendering part by part names the part at once
        # Out of time: name the part being rendered (each finished part ends with the marker) rather than spend
        # the time again part by part.
        part = parts[min("".join(chunks).count(_PART_END), len(parts) - 1)][0]
        raise TemplateError(f"stopped: {exc}", part) from None
    except Exception:
        return None
    pieces = "".join(chunks).split(_PART_END)
    if len(pieces) != len(parts) + 1 or pieces[-1] or any(len(p) > MAX_RENDERED + 1 for p in pieces):
        return None
    out = {part: getattr(fields_, part) for part in TEMPLATED_PARTS if part not in ADDRESS_PARTS}
    out |= {part: piece[1:] for (part, _), piece in zip(parts, pieces, strict=False)}  # the opening newline
    return out


def _line_of(source: str, needle: str) -> int:
    """The 1-based line of ``source`` where ``needle`` first appears (1 when it does not)."""
    at = source.find(needle) if needle else -1
    return source.count("\n", 0, at) + 1 if at >= 0 else 1


def _values_with_control_characters(context: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The context names (``library.name``) whose text holds a control character."""
    found: list[str] = []
    for key, value in context.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.extend(_values_with_control_characters(value, name + "."))
        elif isinstance(value, str) and control_characters(value):
            found.append(name)
    return found


def _header_error(part: str, source: str, value: str, context: Mapping[str, Any]) -> TemplateError | None:
    """A control character in a header part: from the template's own text (with its line) or from the data."""
    found = control_characters(value)
    if not found:
        return None
    what = " and ".join(found)
    own = control_characters(source.strip())
    if own:
        stripped = source.strip()
        first = next(i for i, ch in enumerate(stripped) if control_characters(ch))
        line = source[: source.find(stripped)].count("\n") + stripped.count("\n", 0, first) + 1
        return TemplateError(f"contains {what}; a header must be one line of text", part, line)
    names = [n for n in _values_with_control_characters(context) if n.split(".")[-1] in source]
    names = names or _values_with_control_characters(context)
    line = _line_of(source, names[0].split(".")[-1]) if names else 1
    origin = f" (from {', '.join(names)}: fix the data there)" if names else ""
    return TemplateError(f"renders {what}{origin}; a header must be one line of text", part, line)


def _address_list(part: str, source: str, value: str) -> tuple[str, ...]:
    try:
        addresses = parse_address_list(value)
    except AddressError as exc:
        raise TemplateError(f"{exc}", part, _line_of(source, value.strip()[:20]) if "\n" in source else 1) from None
    return tuple(formatted(a) for a in addresses)


def render(fields_: TemplateFields, context: Mapping[str, Any]) -> RenderedNotice:
    """Render every part of ``fields_`` with ``context``: bounded in time and size, headers checked.

    To, CC and BCC are parsed as RFC 5322 address lists (``"O'Brien, Olivia" <o@example.org>`` is one
    recipient); each comes back as one formatted mailbox. No header part may hold a control character.

    Raises:
        TemplateError: the first part that fails, with its reason (and line where known).
    """
    out = _render_together(fields_, context) or {}
    for part, html in TEMPLATED_PARTS.items():
        if part not in out:
            out[part] = render_part(getattr(fields_, part), context, part=part, html=html)
    for part in HEADER_PARTS:
        error = _header_error(part, getattr(fields_, part), out[part].strip(), context)
        if error is not None:
            raise error
    subject = out["subject"].strip()
    if len(subject) > MAX_SUBJECT:
        reason = f"the subject is {len(subject):,} characters, more than the {MAX_SUBJECT} allowed"
        raise TemplateError(reason, "subject")
    from_address = out["from_address"].strip()
    if from_address and fields_.channel == "email":
        try:
            [_] = parse_address_list(from_address)
        except (AddressError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, AddressError) else f"{from_address!r} must be exactly one address"
            raise TemplateError(reason, "from_address") from None
    email = fields_.channel == "email"  # a printed notice has no recipients to parse
    return RenderedNotice(
        from_name=out["from_name"].strip(),
        from_address=from_address,
        to=_address_list("to_address", fields_.to_address, out["to_address"]) if email else (),
        cc=_address_list("cc", fields_.cc, out["cc"]) if email else (),
        bcc=_address_list("bcc", fields_.bcc, out["bcc"]) if email else (),
        subject=subject,
        body_text=out["body_text"],
        body_html=out["body_html"],
        body_sms=out["body_sms"].strip(),
    )


def validate(fields_: TemplateFields, contexts: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> list[TemplateError]:
    """Every problem that would stop this template being saved: syntax (with line and column), unknown names,
    nesting too deep, sandbox violations, rendering limits, a header with a control character, an address that
    is not valid, a To without the patron's address, a Password Reset template without its link.

    Args:
        contexts: real contexts to render as well as the sample, each with a label for messages ("request
            100234"): the requests most likely to break it (longest titles and names, non-ASCII names…).

    An empty list means the template may be saved.
    """
    problems: list[TemplateError] = []
    for part, html in TEMPLATED_PARTS.items():
        source = getattr(fields_, part)
        env = _environment(html)
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append(_syntax_error(source, exc, part))
            continue
        except RecursionError:
            line = template_limits.deepest_bracket_line(source)
            problems.append(TemplateError("is nested too deeply to be read", part, line))
            continue
        nesting = template_limits.nesting_problem(ast)
        if nesting is not None:
            problems.append(TemplateError(nesting[0], part, nesting[1]))
            continue
        unknown = sorted(meta.find_undeclared_variables(ast) - TOP_LEVEL_NAMES)
        if unknown:
            first = next(n for n in ast.find_all(nodes.Name) if n.name in unknown)  # where staff look first
            source_lines = source.splitlines()
            text = source_lines[first.lineno - 1] if first.lineno <= len(source_lines) else ""
            at = text.find(first.name)
            problems.append(
                TemplateError(
                    "unknown name(s): " + ", ".join(unknown) + (_alias_hint(ast, unknown) or _suggest(unknown)),
                    part,
                    first.lineno,
                    at + 1 if at >= 0 else None,
                )
            )
            continue
        misspelt = _unknown_attributes(ast, source, part)
        if misspelt:
            problems.extend(misspelt)
            continue
        try:
            render_part(source, sample_context(), part=part, html=html)
        except TemplateError as exc:
            problems.append(exc)
    subject_breaks = control_characters(fields_.subject.strip())
    if subject_breaks:
        line = _line_of(fields_.subject, "\n") if "\n" in fields_.subject else 1
        problems.append(
            TemplateError(f"the subject must be one line (it contains {' and '.join(subject_breaks)})", "subject", line)
        )
    if fields_.name == PASSWORD_RESET and not any(
        "reset.link" in getattr(fields_, part).replace(" ", "") for part in ("body_text", "body_html")
    ):
        problems.append(TemplateError("a Password Reset template must contain {{ reset.link }}", "body_text"))
    if fields_.channel == "email" and not fields_.to_address.strip():
        problems.append(TemplateError("an e-mail template needs a To address", "to_address"))
    if problems:
        return problems
    samples = (("the sample data", sample_context()), ("the sample data for several items", sample_digest_context()))
    for label, context in (*samples, *contexts):
        errors = check_with(fields_, context)
        if errors:  # the first request that shows a problem is enough (a slow template must not slow the save)
            return [TemplateError(f"{e.reason} — with {label}", e.part, e.line, e.column) for e in errors]
    return problems


def check_with(fields_: TemplateFields, context: Mapping[str, Any]) -> list[TemplateError]:
    """The problems of rendering ``fields_`` for one real context, as the System Manager would send it.

    Renders it (bounded), checks every header and address, and for an e-mail template that the patron's
    address (``patron.email``) is among the To recipients: a To that sends the patron's notice elsewhere is
    a mistake even when every address in it is valid.
    """
    try:
        rendered = render(fields_, context)
    except TemplateError as exc:
        return [exc]
    if fields_.channel != "email":
        return []
    patron = context.get("patron")
    email = str(patron.get("email", "")).strip() if isinstance(patron, Mapping) else ""
    if not email:
        return []
    try:
        wanted = {a.addr_spec.casefold() for a in parse_address_list(email)}
        given = {a.addr_spec.casefold() for value in rendered.to for a in parse_address_list(value)}
    except AddressError:
        return []  # the patron's address is not valid: the notice fails with that reason, not the template
    if not wanted & given:
        shown = ", ".join(rendered.to) or "no one"
        return [
            TemplateError(
                f"To does not contain the patron's address {email} (it renders {shown})",
                "to_address",
                1,
            )
        ]
    return []


#: Tags that need an end tag (``{% set %}`` only in its block form, which is rare enough to leave out).
_BLOCK_TAGS = frozenset({"if", "for", "macro", "call", "filter", "block", "with", "autoescape", "raw", "trans"})


def _unclosed_block(source: str) -> tuple[str, int, int] | None:
    """The innermost block tag never closed: ``(tag, line, column)`` of its ``{%``, or None.

    Jinja notices a missing ``{% endif %}`` only at the end of the template and reports that line; staff need
    the line where the ``{% if %}`` was opened, so the tags are matched here from Jinja's own token stream.
    """
    stack: list[tuple[str, int, int]] = []
    lines = source.splitlines()
    opened_at: tuple[int, int] | None = None
    try:
        for lineno, kind, value in _environment(False).lex(source):
            if kind == "block_begin":
                opened_at = (lineno, 0)
                continue
            if kind == "whitespace" or opened_at is None:
                continue
            if kind == "name":
                line = lines[opened_at[0] - 1] if 0 < opened_at[0] <= len(lines) else ""
                column = line.find("{%") + 1 if "{%" in line else 1
                if value in _BLOCK_TAGS:
                    stack.append((value, opened_at[0], column))
                elif value.startswith("end") and stack and stack[-1][0] == value[3:]:
                    stack.pop()
            opened_at = None
    except TemplateSyntaxError:
        return None
    return stack[-1] if stack else None


def _syntax_error(source: str, exc: TemplateSyntaxError, part: str) -> TemplateError:
    """A syntax error where staff can fix it: an unclosed block at the line that opened it."""
    message = exc.message or ""
    # A missing end tag is found at the end of the template, a wrong one (endif for a for) where it stands.
    if message.startswith("Unexpected end of template") or "innermost block that needs to be closed" in message:
        unclosed = _unclosed_block(source)
        if unclosed is not None:
            tag, line, column = unclosed
            return TemplateError(
                f"syntax error: the {{% {tag} %}} opened here is never closed (add {{% end{tag} %}} where it ends)",
                part,
                line,
                column,
            )
    return TemplateError(f"syntax error: {exc.message}", part, exc.lineno, _column(source, exc))


def _template_line(exc: BaseException) -> int | None:
    """The template line a rendering error happened on (Jinja maps its frames to ``<template>`` lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _known_attributes() -> dict[str, frozenset[str]]:
    """The attributes each top-level name has (``patron`` → first_name, …), from the documented names and the
    sample context (which has the shape of every real one)."""
    known: dict[str, set[str]] = {}
    for name in CONTEXT_NAMES:
        root, _, attr = name.partition(".")
        if attr:
            known.setdefault(root, set()).add(attr)
    for root, value in sample_context().items():
        if isinstance(value, Mapping):
            known.setdefault(root, set()).update(str(key) for key in value)
    return {root: frozenset(attrs) for root, attrs in known.items()}


def _unknown_attributes(ast: nodes.Template, source: str, part: str) -> list[TemplateError]:
    """``patron.frist_name`` and the like, each with its line and column and the likely intended name.

    Found on the parsed template rather than by rendering: a misspelt name inside an ``{% if %}`` that the
    sample data does not enter would otherwise pass and fail on the first real request that enters it.
    """
    known = _known_attributes()
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    problems: list[TemplateError] = []
    lines = source.splitlines()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not isinstance(target, nodes.Name) or target.name in assigned or target.name not in known:
            continue
        key = getattr(node, "arg", None)
        if isinstance(node, nodes.Getattr):
            attr = str(node.attr)
        elif isinstance(key, nodes.Const) and isinstance(key.value, str):
            attr = key.value
        else:
            continue
        if attr in known[target.name]:
            continue
        close = difflib.get_close_matches(attr, sorted(known[target.name]), n=1)
        hint = f" (did you mean {target.name}.{close[0]}?)" if close else ""
        line = lines[node.lineno - 1] if 0 < node.lineno <= len(lines) else ""
        at = line.find(f"{target.name}.{attr}")
        problems.append(
            TemplateError(f"unknown name: {target.name}.{attr}{hint}", part, node.lineno, at + 1 if at >= 0 else None)
        )
    return problems


def _column(source: str, exc: TemplateSyntaxError) -> int | None:
    """Jinja reports only the line; point at its first non-blank character so the editor can place the cursor."""
    lines = source.splitlines()
    if exc.lineno and 0 < exc.lineno <= len(lines):
        line = lines[exc.lineno - 1]
        return len(line) - len(line.lstrip()) + 1
    return None


#: ILLiad's table names for what Callslip calls otherwise (a template written for ILLiad says ``user.…``).
_ILLIAD_NAMES = {"user": "patron", "customer": "patron", "transaction": "request", "localinfo": "library"}


def _alias_hint(ast: nodes.Template, unknown: list[str]) -> str:
    """`` (did you mean patron.first_name?)`` for ILLiad's ``user.frist_name``: its table and field both mapped."""
    known = _known_attributes()
    for node in ast.find_all(nodes.Getattr):
        target = getattr(node, "node", None)
        if isinstance(target, nodes.Name) and target.name in unknown:
            alias = _ILLIAD_NAMES.get(target.name.casefold())
            if alias is None:
                continue
            wanted = str(node.attr).replace("_", "").casefold()
            by_letters = {attr.replace("_", "").casefold(): attr for attr in known.get(alias, ())}
            close = difflib.get_close_matches(wanted, sorted(by_letters), n=1)
            if close:
                return f" (did you mean {alias}.{by_letters[close[0]]}?)"
    return ""


def _suggest(unknown: list[str]) -> str:
    hints = []
    for name in unknown:
        alias = _ILLIAD_NAMES.get(name.casefold())
        close = [alias] if alias else difflib.get_close_matches(name, sorted(TOP_LEVEL_NAMES), n=1)
        if close:
            hints.append(f"{name} → {close[0]}?")
    return f" (did you mean: {', '.join(hints)})" if hints else f" (known: {', '.join(sorted(TOP_LEVEL_NAMES))})"


def sample_context() -> dict[str, Any]:
    """A complete context with sample values: the shape every real context has."""
    context: dict[str, Any] = {
        "patron": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "full_name": "Ada Lovelace",
            "username": "alovelace",
            "email": "ada@example.org",
            "mailbox": "Ada Lovelace <ada@example.org>",
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
    context["requests"] = [context["request"]]
    return context


def sample_digest_context() -> dict[str, Any]:
    """The sample context of a message naming several items (a loan and an article: a digest may mix them), so a
    save also renders the part of a template that only runs for several items."""
    context = sample_context()
    article = dict(context["request"])
    article.update(transaction_number=100002, request_type="Article", title="Sketch of the Analytical Engine",
                   author="", journal_title="Scientific Memoirs", article_title="Sketch of the Analytical Engine",
                   call_number="", due_date="")  # fmt: skip
    context["requests"] = [context["request"], article]
    return context


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
