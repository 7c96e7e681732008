"""Rendering is bounded in time, size and nesting; a template is checked with real requests at save and preview.

The inputs are the adversarial tester's: a 10⁹-iteration loop, a 10 GB string, nested loops that are fine on the
sample data and not on a real title, a namespace doubled in a loop, deep nesting that used to raise
``RecursionError``. Each is stopped with a reason; in a System Manager cycle that notice fails and the others
are sent.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import update

from desktop.config import Settings
from desktop.db.engine import Database
from desktop.db.models import NoticeTemplate, Patron
from desktop.domain.statuses import Status
from desktop.services.notices import template_admin as ta
from desktop.services.notices.dispatch import run_cycle
from desktop.services.notices.template_limits import MAX_NESTING
from desktop.services.notices.templates import TemplateError, default_template, render, sample_context, validate
from tests.outbox_support import add_patron, add_request, move, notices, sink_settings
from tests.smtp_sink import SmtpSink, smtp_sink

__all__ = ["smtp_sink"]

NESTED_LOOPS = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
#: Fine for a short title; for a long one, len(title)**4 iterations.
DATA_BOMB = (
    "{% set t = request.title %}{% for a in t %}{% for b in t %}{% for c in t %}{% for d in t %}"
    "{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{% for a in range(10**9) %}x{% endfor %}", "1,000,000,000"),
        ("{{ 'x' * 10**10 }}", "repeats a value"),
        ("{{ ['x'] * 10**10 }}", "repeats a value"),
        ("{{ 10 ** 100000 }}", "number too large"),
        ("{{ (['x' * 999999] * 999999)|join }}", "builds a value"),
        ("{{ range(99999)|join('x' * 100000) }}", "join"),
        ("{{ ('x' * 999999)|wordwrap(1, wrapstring='y' * 999999) }}", "wordwrap"),
        ("{{ [['x']] * 99999|sum(start=[]) }}", "sum"),
        ("{{ 'x'.translate({120: 'y' * 999999}) }}", "translate"),
        ("{{ [['x' * 999999]] * 999 }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ [s, s, s] }}", "builds a value"),
        ("{% set d = {'s': 'x' * 999999} %}{{ [d.s, d.s] }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ ([s, s]|length) ~ [s, s] }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ [s, s] ~ '' }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ [s, s]|string }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ '{}'.format([s, s]) }}", "builds a value"),
        ("{% set s = 'x' * 999999 %}{{ '%s' % ([s, s],) }}", "builds a value"),
        ("{{ '" + "x" * 100_001 + "' }}", "characters long"),
        ("".join(f"{{% set a{i} = range(999999)|list %}}" for i in range(60)), "in all"),
        ("".join(f"{{% set a{i} = 'x' * 999999 %}}" for i in range(60)), "in all"),
        ("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "builds"),
        ("{{ 'x'|center(10**9) }}", "1,000,000,000"),
        ("{{ 'x'.ljust(10**9) }}", "1,000,000,000"),
        ("{{ '%0999999999d'|format(1) }}", "width"),
        ("{{ '%0999999999d' % 1 }}", "width"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{{ ('x' * 100000)|replace('x', 'x' * 100000) }}", "replace"),
        ("{{ ('x' * 100000).join(range(99999)|map('string')) }}", "join"),
        ("{{ ('\t' * 100000).expandtabs(999999) }}", "expandtabs"),
        ("{{ ('\n' * 100000)|indent(999999) }}", "indent"),
        ("{% for a in range(99999) %}xxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}", "characters allowed"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "calls itself"),
        (NESTED_LOOPS, "longer than"),
    ],
)
def test_runaway_templates_are_stopped_with_a_reason(body: str, reason: str) -> None:
    fields_ = replace(default_template("Loan Pickup"), body_text=body)
    problems = validate(fields_)
    assert problems and problems[0].part == "body_text" and reason in problems[0].reason, problems
    with pytest.raises(TemplateError, match="body_text"):
        render(fields_, sample_context())


def test_a_dicts_keys_and_methods_read_as_the_sandbox_reads_them() -> None:
    """``d.key`` is looked up directly in a plain dict, and still finds a dict's own method first, refuses its
    private attributes and is undefined for a missing key; counting a big list builds nothing and is allowed."""
    body = (
        "{% set d = {'items': 'key', 'name': 'Ada'} %}{{ d.name }}|{{ d['items'] }}|{{ d.items is callable }}|"
        "{{ d.missing is undefined }}|{{ library.name }}|{% set s = 'x' * 999999 %}{{ [s, s, s]|length }}"
    )
    fields_ = replace(default_template("Loan Pickup"), body_text=body)
    assert render(fields_, sample_context()).body_text.startswith(
        f"Ada|key|True|True|{sample_context()['library']['name']}|3"
    )
    private = replace(default_template("Loan Pickup"), body_text="{{ library.__class__.__subclasses__() }}")
    with pytest.raises(TemplateError, match="body_text"):
        render(private, sample_context())


def test_lipsum_is_not_available() -> None:
    problems = validate(replace(default_template("Loan Pickup"), body_text="{{ lipsum(10**5) }}"))
    assert problems and "lipsum" in problems[0].reason


def test_deep_nesting_is_a_problem_with_its_line_not_a_recursion_error() -> None:
    blocks = "\n".join("{% if true %}" for _ in range(MAX_NESTING + 1)) + "x" + "{% endif %}" * (MAX_NESTING + 1)
    [problem] = validate(replace(default_template("Loan Pickup"), body_text=blocks))
    assert problem.part == "body_text" and problem.line == MAX_NESTING + 1 and "deep" in problem.reason
    expression = "line one\n{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}"
    [problem] = validate(replace(default_template("Loan Pickup"), body_text=expression))
    assert problem.part == "body_text" and problem.line == 2 and "nested too deeply" in problem.reason


def test_ordinary_templates_stay_untouched() -> None:
    fields_ = replace(
        default_template("Loan Pickup"),
        body_text="{% for line in patron.address_lines %}{{ loop.index }}. {{ line|upper|center(40) }}\n{% endfor %}"
        "{{ '%-10s|' % 'ok' }}{{ '{:>5}'.format(7) }}{{ range(3)|join(',') }}{{ 'ab' * 3 }}{{ 2 ** 10 }}",
    )
    assert validate(fields_) == []
    text = render(fields_, sample_context()).body_text
    assert "1." in text and "ok        |" in text and "    7" in text and "0,1,2" in text and "ababab" in text


def arrived(db: Database, last_name: str, title: str) -> int:
    patron_id = add_patron(db)
    with db.write() as session:
        patron = session.get(Patron, patron_id)
        assert patron is not None
        patron.last_name = last_name
    request_id = add_request(db, patron_id, title=title)
    move(db, request_id, Status.AWAITING_CUSTOMER_CONTACT)
    return request_id


def test_one_runaway_notice_fails_and_the_cycle_sends_the_others(sqlite_db: Database, smtp_sink: SmtpSink) -> None:
    body = "{% if patron.last_name == 'Slow' %}" + NESTED_LOOPS + "{% endif %}Dear {{ patron.full_name }}"
    with sqlite_db.write() as session:
        session.execute(update(NoticeTemplate).where(NoticeTemplate.name == "Loan Pickup")
                        .values(body_text=body, body_html=""))  # fmt: skip
    arrived(sqlite_db, "First", "A book")
    slow = arrived(sqlite_db, "Slow", "A book")
    arrived(sqlite_db, "Third", "A book")
    summary = run_cycle(sqlite_db, sink_settings(smtp_sink))
    assert (summary.sent, summary.failed) == (2, 1)
    [failed] = [n for n in notices(sqlite_db) if n.state == "failed"]
    assert failed.request_id == slow and "took longer than" in failed.last_reply
    assert sorted(m.message["To"].addresses[0].addr_spec for m in smtp_sink.messages) == ["patron@example.org"] * 2


def test_save_renders_with_the_real_requests_most_likely_to_break_it(seeded_db: Database) -> None:
    """A loop that is fine on the sample data but not on the longest real title is refused at save."""
    arrived(seeded_db, "Tester", "An extraordinarily long title " * 3)
    record = ta.load_template_by_name(seeded_db, "Loan Pickup")
    fields_ = replace(record.fields, body_text=DATA_BOMB)
    assert validate(fields_) == []  # the sample title is short: the sample data alone lets it through
    with pytest.raises(ta.TemplateValidationError) as caught:
        ta.save_template(seeded_db, record.id, fields_, expected_version=record.version, changed_by="tester")
    [problem] = caught.value.template_problems
    assert problem.part == "body_text" and "longer than" in problem.message and "with request" in problem.message


def test_to_without_the_patrons_address_is_refused_at_save_and_in_preview(seeded_db: Database) -> None:
    record = ta.load_template_by_name(seeded_db, "Loan Pickup")
    fields_ = replace(record.fields, to_address="{{ library.email }}")
    with pytest.raises(ta.TemplateValidationError) as caught:
        ta.save_template(seeded_db, record.id, fields_, expected_version=record.version, changed_by="tester")
    [problem] = caught.value.template_problems
    assert problem.part == "to_address" and problem.line == 1 and "patron's address" in problem.message
    preview = ta.preview_template(seeded_db, fields_, Settings())
    assert not preview.ok and preview.problems[0].part == "to_address"
    assert "To, line 1: To does not contain the patron's address" in str(preview.problems[0])


def test_a_recipient_that_is_not_an_address_is_refused_with_its_line(seeded_db: Database) -> None:
    record = ta.load_template_by_name(seeded_db, "Loan Pickup")
    fields_ = replace(record.fields, cc="{{ patron.last_name }}")
    with pytest.raises(ta.TemplateValidationError) as caught:
        ta.save_template(seeded_db, record.id, fields_, expected_version=record.version, changed_by="tester")
    [problem] = caught.value.template_problems
    assert problem.part == "cc" and problem.line == 1 and "is not an e-mail address (no @domain)" in problem.message


def test_quoted_comma_names_pass_the_real_check(seeded_db: Database) -> None:
    arrived(seeded_db, 'O\'Brien, "Jr" \\', "A book")
    record = ta.load_template_by_name(seeded_db, "Loan Pickup")
    fields_ = replace(
        record.fields, to_address='"{{ patron.last_name }}, {{ patron.first_name }}" <{{ patron.email }}>'
    )
    saved = ta.save_template(seeded_db, record.id, fields_, expected_version=record.version, changed_by="tester")
    assert saved.fields.to_address == fields_.to_address


def test_the_requests_a_save_checks_with_on_both_databases(any_db: Database) -> None:
    """Longest title, longest name, longest address, a non-ASCII name, the first waiting request (no duplicates)."""
    arrived(any_db, "Short", "A book")
    arrived(any_db, "Short", "A very long title indeed " * 4)
    arrived(any_db, "Featherstonehaugh-Cholmondeley", "A book")
    arrived(any_db, "Åström", "A book")
    contexts = ta.check_contexts(any_db, "Loan Pickup")
    titles = [c["request"]["title"] for _, c in contexts]
    names = [c["patron"]["last_name"] for _, c in contexts]
    assert titles[0].startswith("A very long title") and "Featherstonehaugh-Cholmondeley" in names
    assert "Åström" in names and len(contexts) == len({label for label, _ in contexts}) <= ta.CHECK_SAMPLES
    assert all(label.startswith("request ") for label, _ in contexts)
    resets = ta.check_contexts(any_db, "Password Reset")
    assert resets and resets[0][1]["reset"]["link"].endswith(ta.PREVIEW_TOKEN)
