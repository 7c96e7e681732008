"""Convert ILLiad notification templates (``<#Table.Field>`` tags) into Callslip templates (Jinja2).

ILLiad's tags: ``<#Transaction.LoanTitle>``, ``<#User.FirstName>``, ``<#LocalInfo.…>``, ``<#LenderAddresses.…>``,
the older bare ``<#LoanTitle>``, and ``MaxSize="N"`` (a hard cut, no ellipsis); a NULL field prints as nothing;
names are not case-sensitive. Everything else in ILLiad's text is literal, so Jinja's own ``{{``, ``{%`` and
``{#`` in it are escaped and print as they were.

Nothing is dropped: a tag that cannot be converted (a web-page tag such as ``<#PARAM>``, a field Callslip does not
have) stays in the text as it was, visibly, and is listed as a problem with its line, for staff to fix in the
editor.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from desktop.services.admin.illiad_import import detect_encoding
from desktop.services.notices.templates import ARTICLE_PICKUP, LOAN_PICKUP, PASSWORD_RESET, TemplateFields

#: ILLiad's default template names (case ignored) → Callslip's.
TEMPLATE_NAMES: dict[str, str] = {
    "ill borrowing loan pickup": LOAN_PICKUP,
    "ill borrowing article pickup": ARTICLE_PICKUP,
    "borrowing password reset": PASSWORD_RESET,
}

_LOAN_TITLE = '(request.title if request.request_type == "Loan" else "")'
#: (table, field) with names case-folded → the Jinja expression giving ILLiad's value.
FIELDS: dict[tuple[str, str], str] = {
    ("transaction", "transactionnumber"): "request.transaction_number",
    ("transaction", "loantitle"): _LOAN_TITLE,
    ("transaction", "loanauthor"): "request.author",
    ("transaction", "photojournaltitle"): "request.journal_title",
    ("transaction", "photoarticletitle"): "request.article_title",
    ("transaction", "callnumber"): "request.call_number",
    ("transaction", "lendinglibrary"): "request.lending_library",
    ("transaction", "duedate"): "request.due_date",
    ("transaction", "transactionstatus"): "request.status",
    ("transaction", "requesttype"): "request.request_type",
    ("user", "username"): "patron.username",
    ("user", "firstname"): "patron.first_name",
    ("user", "lastname"): "patron.last_name",
    ("user", "emailaddress"): "patron.email",
    ("user", "phone"): "patron.phone",
    ("user", "department"): "patron.department",
    # LocalInfo and LenderAddresses: shared/ILLIAD_DATA.md names these tables but lists none of their columns, so
    # only ILLiad's own spellings of the columns other tables document (EMailAddress and Phone as in Users,
    # LibraryName and LenderString as LenderAddresses keys lenders) are converted; guessed aliases ("Name",
    # "Email") are not: such a tag stays visible and listed, for staff to check against their own ILLiad.
    ("localinfo", "libraryname"): "library.name",
    ("localinfo", "emailaddress"): "library.email",
    ("localinfo", "phone"): "library.phone",
    # Transactions.LendingLibrary holds the lender's LenderString (the LenderAddresses key): the same text.
    ("lenderaddresses", "lenderstring"): "request.lending_library",
    # The lender's full name is in LenderAddresses, which is not imported: the closest text Callslip has is the
    # request's lending library, so it is converted to that and listed (see APPROXIMATE) for staff to check.
    ("lenderaddresses", "libraryname"): "request.lending_library",
}
#: Fields converted to the closest Callslip value, which may print other text than ILLiad did: listed as problems.
APPROXIMATE: dict[tuple[str, str], str] = {
    ("lenderaddresses", "libraryname"): "ILLiad printed the lender's name from LenderAddresses; Callslip prints "
    "the request's Lending Library (ILLiad's LendingLibrary, usually the lender's symbol): check the text",
}
#: Where a bare ``<#Field>`` (before ILLiad 8.6) is looked up, in order.
BARE_ORDER = ("transaction", "user", "localinfo")
#: Tags of ILLiad's web pages, not of notifications (they may appear in copied text).
WEB_TAGS = frozenset({"param", "status", "include", "table", "option", "action", "error", "form"})

_TAG = re.compile(
    r"<#\s*(?P<table>[A-Za-z_]\w*)(?:\.(?P<field>[A-Za-z_]\w*))?(?P<attrs>(?:\s+[A-Za-z_]\w*\s*=\s*\"[^\"]*\")*)\s*/?>"
)
_ATTR = re.compile(r"([A-Za-z_]\w*)\s*=\s*\"([^\"]*)\"")


@dataclass
class Conversion:
    """A converted text and what could not be converted (each kept in the text as it was)."""

    text: str
    problems: list[str] = field(default_factory=list)


def _literal(text: str) -> str:
    """ILLiad text as Jinja source that prints exactly ``text``: each ``{`` that could open Jinja syntax is escaped."""
    out: list[str] = []
    for i, ch in enumerate(text):
        following = text[i + 1] if i + 1 < len(text) else ""
        if ch == "{" and following in ("{", "%", "#", ""):
            out.append('{{ "{" }}')
        else:
            out.append(ch)
    return "".join(out)


def _expression(table: str | None, name: str) -> str | None:
    if table is not None:
        return FIELDS.get((table, name))
    for candidate in BARE_ORDER:
        found = FIELDS.get((candidate, name))
        if found is not None:
            return found
    return None


def convert_text(text: str, part: str = "body_text") -> Conversion:
    """One ILLiad template part as Callslip template text, with its problems (``part line N: …``)."""
    result = Conversion("")
    pieces: list[str] = []
    position = 0
    for match in _TAG.finditer(text):
        pieces.append(_literal(text[position : match.start()]))
        position = match.end()
        line = text.count("\n", 0, match.start()) + 1
        first, second = match["table"].casefold(), (match["field"] or "").casefold()
        table: str | None = first if second else None
        name: str = second or first
        tag = match.group(0)
        if (table is None and name in WEB_TAGS) or table in WEB_TAGS:
            result.problems.append(
                f"{part} line {line}: {tag} is a web-page tag, not a notification field: kept as text"
            )
            pieces.append(_literal(tag))
            continue
        expression = _expression(table, name)
        if expression is None:
            result.problems.append(f"{part} line {line}: {tag}: Callslip has no such field: kept as text")
            pieces.append(_literal(tag))
            continue
        approximate = APPROXIMATE.get((table or "", name))
        if approximate is not None:
            result.problems.append(f"{part} line {line}: {tag}: {approximate}")
        value = f'(({expression}) if ({expression}) is not none else "")'
        for attr, raw in _ATTR.findall(match["attrs"] or ""):
            if attr.casefold() == "maxsize" and raw.isdigit():
                value = f"(({value})|string)[:{int(raw)}]"
            else:
                result.problems.append(f'{part} line {line}: {tag}: attribute {attr}="{raw}" is not supported: ignored')
        pieces.append("{{ " + value + " }}")
    pieces.append(_literal(text[position:]))
    result.text = "".join(pieces)
    return result


@dataclass
class ConvertedTemplate:
    """One ILLiad template converted: the ILLiad name, Callslip's name (None: Callslip has no such notice)."""

    illiad_name: str
    name: str | None
    fields: TemplateFields
    problems: list[str]


_COLUMNS = {
    "from name": "from_name", "fromname": "from_name", "from address": "from_address", "fromaddress": "from_address",
    "to address": "to_address", "toaddress": "to_address", "cc": "cc", "bcc": "bcc", "subject": "subject",
    "email text": "body_text", "emailtext": "body_text", "body": "body_text", "description": "description",
}  # fmt: skip


def convert_template(illiad_name: str, parts: dict[str, str]) -> ConvertedTemplate:
    """Convert one template's parts (keys: Callslip field names); the subject is cut at ILLiad's 100 characters."""
    name = TEMPLATE_NAMES.get(" ".join(illiad_name.split()).casefold())
    problems: list[str] = []
    fields_ = TemplateFields(name=name or illiad_name)
    values: dict[str, str] = {}
    for part, text in parts.items():
        if part == "description":
            values[part] = text
            continue
        converted = convert_text(text, part)
        values[part] = converted.text
        problems += converted.problems
    if "to_address" not in values:
        values["to_address"] = fields_.to_address
    if name is None:
        problems.insert(0, f"Callslip sends no notice called {illiad_name!r}: not imported (copy what you need)")
    return ConvertedTemplate(illiad_name, name, replace(fields_, **values), problems)


def read_templates(path: Path) -> list[ConvertedTemplate]:
    """ILLiad templates from a file or folder: a CSV export of the template table (Name, Subject, Email Text …),
    or text files whose name is the template's and whose content is the e-mail text.

    Raises:
        ValueError: the file cannot be read as templates (one line naming it).
    """
    paths = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    converted: list[ConvertedTemplate] = []
    for one in paths:
        data = one.read_bytes()
        codec, _name = detect_encoding(data)
        text = data.decode(codec, errors="replace")
        if one.suffix.casefold() != ".csv":
            converted.append(convert_template(one.stem, {"body_text": text}))
            continue
        reader = csv.DictReader(io.StringIO(text, newline=""))
        columns = {c.casefold().strip(): c for c in reader.fieldnames or []}
        if "name" not in columns:
            raise ValueError(f"{one.name}: a template export needs a Name column (found: {', '.join(columns)})")
        for row in reader:
            parts = {
                _COLUMNS[key]: (row[column] or "") if row[column] != "NULL" else ""
                for key, column in columns.items()
                if key in _COLUMNS
            }
            converted.append(convert_template(row[columns["name"]] or "", parts))
    if not converted:
        raise ValueError(f"{path}: no templates found")
    return converted
