"""One-pass rendering of a whole template gives exactly what rendering part by part gives, or falls back to it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from desktop.services.notices import templates
from desktop.services.notices.templates import (
    ADDRESS_PARTS,
    TEMPLATED_PARTS,
    TemplateError,
    TemplateFields,
    default_template,
    render,
    render_part,
    sample_context,
)


def part_by_part(fields_: TemplateFields, context: dict[str, object]) -> dict[str, str]:
    """The parts the one-pass rendering covers (address parts are rendered alone, to quote inserted names)."""
    return {part: render_part(getattr(fields_, part), context, part=part, html=html)
            for part, html in TEMPLATED_PARTS.items() if part not in ADDRESS_PARTS}  # fmt: skip


@pytest.mark.parametrize(
    ("body_text", "body_html"),
    [
        ("  {% if true %}x{% endif %}\n  y  \n", "\n{% set q = 1 %}{{ q }}\n"),  # lstrip on the first line
        ("\nleading newline {{ patron.first_name }}", "trailing newlines {{ patron.first_name }}\n\n"),
        (
            "ends with a tag {% if true %}yes{% endif %}",
            "{% for line in library.address_lines %}{{ line }}\n{% endfor %}",
        ),
        ("text   \n   ", "<b>{{ '<script>' }}</b>   \n  "),  # trailing spaces on the last line stay
    ],
)
def test_one_pass_equals_part_by_part(body_text: str, body_html: str) -> None:
    fields_ = replace(default_template("Loan Pickup"), body_text=body_text, body_html=body_html)
    context = sample_context()
    together = templates._render_together(fields_, context)
    assert together == part_by_part(fields_, context)
    assert "&lt;script&gt;" in together["body_html"] or "<" not in body_html  # the HTML part is still escaped


def test_default_templates_render_the_same_both_ways() -> None:
    context = sample_context()
    for name in ("Loan Pickup", "Article Pickup"):
        fields_ = default_template(name)
        assert templates._render_together(fields_, context) == part_by_part(fields_, context)


def test_a_set_in_one_part_stays_invisible_to_the_next() -> None:
    fields_ = replace(default_template("Loan Pickup"), subject="{% set secret = 'x' %}Hi", body_text="{{ secret }}")
    assert templates._render_together(fields_, sample_context()) is None
    with pytest.raises(TemplateError, match="body_text, line 1: unknown name"):
        render(fields_, sample_context())


def test_data_that_looks_like_the_separator_falls_back_to_part_by_part() -> None:
    context = sample_context()
    context["patron"] = dict(context["patron"], full_name="Ada" + templates._PART_END)
    fields_ = default_template("Loan Pickup")
    assert templates._render_together(fields_, context) is None
    assert render(fields_, context).body_text == part_by_part(fields_, context)["body_text"]
