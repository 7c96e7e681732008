"""The ILLiad template converter: tags become Callslip fields, MaxSize cuts, NULL prints nothing, ILLiad's own
braces stay literal, and what cannot be converted stays visible and is listed. Rendered with Callslip's real
template engine; the expected texts are ILLiad's output worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.services.admin.illiad_templates import convert_text, read_templates
from desktop.services.notices.templates import LOAN_PICKUP, render_part, sample_context

ILLIAD_BODY = (
    "Dear <#User.FirstName> <#User.LastName>,\n"
    'Your item "<#Transaction.LoanTitle MaxSize="10">" (TN <#TransactionNumber>) has arrived.\n'
    "Call number: <#Transaction.CallNumber>; due <#transaction.duedate>.\n"
    "Lender: <#LenderAddresses.LibraryName>. Questions: <#LocalInfo.EMailAddress>\n"
    "Use {{braces}} and {% freely %} {# too #}.\n"
)


def _context(**request: Any) -> dict[str, Any]:
    context = sample_context()
    context["request"] = {**context["request"], "title": "Harry Potter and the Philosopher's Stone", **request}
    context["patron"] = {**context["patron"], "first_name": "Ada", "last_name": "Lovelace"}
    return context


def test_converted_template_renders_what_illiad_would(tmp_path: Path) -> None:
    converted = convert_text(ILLIAD_BODY)
    assert converted.problems == [
        "body_text line 4: <#LenderAddresses.LibraryName>: ILLiad printed the lender's name from LenderAddresses; "
        "Callslip prints the request's Lending Library (ILLiad's LendingLibrary, usually the lender's symbol): "
        "check the text"
    ]
    text = render_part(converted.text, _context(call_number=None, due_date="2020-07-15"), part="body_text")
    # ILLiad: MaxSize="10" cuts "Harry Potter…" to "Harry Pott"; CallNumber NULL prints nothing.
    assert text == (
        "Dear Ada Lovelace,\n"
        'Your item "Harry Pott" (TN 100001) has arrived.\n'
        "Call number: ; due 2020-07-15.\n"
        "Lender: University of Illinois. Questions: ill@library.example.org\n"
        "Use {{braces}} and {% freely %} {# too #}.\n"
    )


def test_local_info_and_lender_fields_use_illiad_spellings_only() -> None:
    source = (
        "<#LocalInfo.LibraryName>|<#LocalInfo.EMailAddress>|<#localinfo.phone>|<#LenderAddresses.LenderString>\n"
        "<#LocalInfo.Name>|<#LocalInfo.Email>|<#LenderAddresses.Address1>"
    )
    converted = convert_text(source)
    context = _context(lending_library="IUA")
    assert render_part(converted.text, context, part="body_text").split("\n") == [
        f"{context['library']['name']}|ill@library.example.org|{context['library']['phone']}|IUA",
        "<#LocalInfo.Name>|<#LocalInfo.Email>|<#LenderAddresses.Address1>",
    ]
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in converted.problems] == [
        "body_text line 2: <#LocalInfo.Name>",
        "body_text line 2: <#LocalInfo.Email>",
        "body_text line 2: <#LenderAddresses.Address1>",
    ]


def test_loan_title_of_an_article_is_empty_as_in_illiad() -> None:
    converted = convert_text("[<#Transaction.LoanTitle>][<#Transaction.PhotoArticleTitle>]")
    text = render_part(converted.text, _context(request_type="Article", title="Art", article_title="Art"), part="x")
    assert text == "[][Art]"


def test_what_cannot_be_converted_is_kept_visibly_and_listed() -> None:
    source = 'Hi <#PARAM name="x">, <#STATUS>\nvol <#Transaction.PhotoJournalVolume> <#User.FirstName Foo="1">'
    converted = convert_text(source)
    assert converted.problems == [
        'body_text line 1: <#PARAM name="x"> is a web-page tag, not a notification field: kept as text',
        "body_text line 1: <#STATUS> is a web-page tag, not a notification field: kept as text",
        "body_text line 2: <#Transaction.PhotoJournalVolume>: Callslip has no such field: kept as text",
        'body_text line 2: <#User.FirstName Foo="1">: attribute Foo="1" is not supported: ignored',
    ]
    text = render_part(converted.text, _context(), part="body_text")
    assert text == 'Hi <#PARAM name="x">, <#STATUS>\nvol <#Transaction.PhotoJournalVolume> Ada'


_NO_TAGS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r<\x00"), max_size=200)


@given(_NO_TAGS)
def test_text_without_tags_is_unchanged(text: str) -> None:
    converted = convert_text(text)
    assert converted.problems == []
    if "{" not in text:
        assert converted.text == text
    assert render_part(converted.text, _context(), part="body_text") == text


@given(st.lists(st.sampled_from(["{{", "{%", "{#", "}}", "%}", "#}", "{", "}", "a", " ", "\n", "<#User.FirstName>"])))
def test_jinja_syntax_in_illiad_text_stays_literal(pieces: list[str]) -> None:
    text = "".join(pieces)
    rendered = render_part(convert_text(text).text, _context(), part="body_text")
    assert rendered == text.replace("<#User.FirstName>", "Ada")


def test_templates_read_from_a_csv_export_with_names_mapped(tmp_path: Path) -> None:
    export = tmp_path / "templates.csv"
    export.write_text(
        "Name,Description,Subject,Email Text,CC\r\n"
        'ILL Borrowing Loan Pickup,Pickup,"Ready: <#Transaction.LoanTitle MaxSize=""20"">",Dear <#FirstName>,NULL\r\n'
        "Borrowing Overdue Reminder,Overdue,Overdue,Please return <#LoanTitle>,\r\n",
        encoding="utf-16",
    )
    loan, overdue = read_templates(export)
    assert loan.name == LOAN_PICKUP and loan.problems == [] and loan.fields.cc == ""
    assert (
        render_part(loan.fields.subject, _context(), part="subject") == "Ready: Harry Potter and the"
    )  # 20 characters, no ellipsis
    assert overdue.name is None
    assert overdue.problems == ["Callslip sends no notice called 'Borrowing Overdue Reminder': not imported (copy "
                                "what you need)"]  # fmt: skip


def test_an_export_without_names_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "t.csv"
    export.write_text("Subject,Body\nx,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs a Name column"):
        read_templates(export)
