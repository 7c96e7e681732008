"""Template administration on a real SQLite file: validation before saving, versions, conflicts, delete/restore,
and previews rendered from real requests."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from desktop.config import Settings
from desktop.db.models import NoticeTemplate, Request, TemplateRevision
from desktop.services.database import Database
from desktop.services.errors import NotFoundError
from desktop.services.notices import template_admin as ta
from desktop.services.notices.templates import (
    ARTICLE_PICKUP,
    HOLD_SHELF_TEMPLATES,
    LOAN_PICKUP,
    PASSWORD_RESET,
    PRINT_NOTICE,
    default_template,
)


def _loan(db: Database) -> ta.TemplateRecord:
    return ta.load_template_by_name(db, LOAN_PICKUP)


def _revisions(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count(TemplateRevision.id))) or 0)


def test_list_shows_every_default_with_who_and_when(sqlite_db: Database) -> None:
    rows = ta.list_templates(sqlite_db)
    assert {r.name for r in rows} == {LOAN_PICKUP, ARTICLE_PICKUP, PASSWORD_RESET, PRINT_NOTICE,
                                      *HOLD_SHELF_TEMPLATES}  # fmt: skip
    assert all(r.updated_by == "System" and not r.deleted and r.has_default for r in rows)
    assert {r.channel for r in rows if r.name == PRINT_NOTICE} == {"print"}


@pytest.mark.parametrize(
    ("part", "text", "expected"),
    [
        ("subject", "Arrived: {{ requst.title }}", "requst"),
        ("body_text", "{{ ''.__class__ }}", "not allowed"),
        ("body_text", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("body_html", "{{ request.title|attr('__class__') }}", "not allowed"),
        (
            "body_text",
            "Hello\n{% if patron.first_name %}\nno end",
            "line 2, column 1: syntax error: the {% if %} opened here is never closed",
        ),
        ("subject", "Line one\r\nBcc: victim@example.org", "one line"),
    ],
)
def test_bad_templates_are_refused_and_nothing_is_saved(
    sqlite_db: Database, part: str, text: str, expected: str
) -> None:
    before = _loan(sqlite_db)
    edited = replace(before.fields, **{part: text})
    with pytest.raises(ta.TemplateValidationError) as caught:
        ta.save_template(sqlite_db, before.id, edited, expected_version=before.version, changed_by="alice")
    assert expected in str(caught.value)
    assert caught.value.template_problems[0].part == part
    after = _loan(sqlite_db)
    assert after == before
    assert _revisions(sqlite_db) == 0


def test_syntax_error_gives_line_and_column(sqlite_db: Database) -> None:
    record = _loan(sqlite_db)
    edited = replace(record.fields, body_text="Dear {{ patron.full_name }},\n\n   {{ request.title }\n")
    problems = ta.check_template(edited)
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.part, problem.line, problem.column) == ("body_text", 3, 4)
    assert str(problem).startswith("Text body, line 3, column 4: syntax error")


def test_password_reset_without_link_is_refused(sqlite_db: Database) -> None:
    record = ta.load_template_by_name(sqlite_db, PASSWORD_RESET)
    edited = replace(record.fields, body_text="Dear {{ patron.full_name }}, please call us.", body_html="")
    with pytest.raises(ta.TemplateValidationError, match=r"reset\.link"):
        ta.save_template(sqlite_db, record.id, edited, expected_version=record.version, changed_by="alice")
    assert ta.load_template(sqlite_db, record.id).fields.body_text == record.fields.body_text


def test_valid_save_is_versioned_with_who_and_when(sqlite_db: Database) -> None:
    record = _loan(sqlite_db)
    edited = replace(record.fields, subject="Ready for you: {{ request.title }}", name="Renamed", channel="print")
    saved = ta.save_template(sqlite_db, record.id, edited, expected_version=record.version, changed_by="alice")
    assert saved.version == record.version + 1
    assert saved.updated_by == "alice"
    assert saved.fields.subject == "Ready for you: {{ request.title }}"
    # Identity is kept: the System Manager finds templates by name and channel.
    assert (saved.fields.name, saved.fields.channel) == (LOAN_PICKUP, "email")
    history = ta.list_revisions(sqlite_db, record.id)
    assert [(h.version, h.changed_by) for h in history] == [(saved.version, "alice")]
    assert history[0].snapshot["subject"] == "Ready for you: {{ request.title }}"
    assert history[0].snapshot["deleted"] is False
    listed = {r.name: r for r in ta.list_templates(sqlite_db)}[LOAN_PICKUP]
    assert (listed.updated_by, listed.version) == ("alice", saved.version)


def test_two_administrators_cannot_overwrite_each_other(sqlite_db: Database) -> None:
    alice_copy = _loan(sqlite_db)
    bob_copy = _loan(sqlite_db)
    ta.save_template(
        sqlite_db,
        alice_copy.id,
        replace(alice_copy.fields, subject="Alice: {{ request.title }}"),
        expected_version=alice_copy.version,
        changed_by="alice",
    )
    bob_fields = replace(bob_copy.fields, subject="Bob: {{ request.title }}")
    with pytest.raises(ta.TemplateConflictError) as caught:
        ta.save_template(sqlite_db, bob_copy.id, bob_fields, expected_version=bob_copy.version, changed_by="bob")
    assert "alice" in str(caught.value)
    assert _loan(sqlite_db).fields.subject == "Alice: {{ request.title }}"
    # Told who saved meanwhile, Bob may knowingly save over the version now stored.
    saved = ta.save_template(
        sqlite_db, bob_copy.id, bob_fields, expected_version=caught.value.current_version, changed_by="bob"
    )
    assert saved.fields.subject == "Bob: {{ request.title }}"
    assert [h.changed_by for h in ta.list_revisions(sqlite_db, bob_copy.id)] == ["bob", "alice"]


def test_delete_undelete_and_restore_default(sqlite_db: Database) -> None:
    record = _loan(sqlite_db)
    edited = ta.save_template(
        sqlite_db,
        record.id,
        replace(record.fields, body_text="Custom {{ request.title }}"),
        expected_version=record.version,
        changed_by="alice",
    )
    deleted = ta.delete_template(sqlite_db, record.id, expected_version=edited.version, changed_by="bob")
    assert deleted.deleted and deleted.fields.body_text == "Custom {{ request.title }}"
    with sqlite_db.read() as session:
        assert session.scalar(select(NoticeTemplate.deleted).where(NoticeTemplate.id == record.id)) is True
    with pytest.raises(ta.TemplateConflictError):  # a stale list cannot delete or restore
        ta.restore_default(sqlite_db, record.id, expected_version=edited.version, changed_by="carol")
    undeleted = ta.undelete_template(sqlite_db, record.id, expected_version=deleted.version, changed_by="carol")
    assert not undeleted.deleted and undeleted.fields.body_text == "Custom {{ request.title }}"
    again = ta.delete_template(sqlite_db, record.id, expected_version=undeleted.version, changed_by="carol")
    restored = ta.restore_default(sqlite_db, record.id, expected_version=again.version, changed_by="dave")
    assert not restored.deleted
    assert restored.fields == default_template(LOAN_PICKUP)
    snapshots = [h.snapshot for h in ta.list_revisions(sqlite_db, record.id)]
    assert [s["deleted"] for s in snapshots] == [False, True, False, True, False]
    assert json.dumps(snapshots[0], sort_keys=True) == json.dumps(
        default_template(LOAN_PICKUP).as_dict() | {"deleted": False}, sort_keys=True
    )


def test_missing_template_is_reported(sqlite_db: Database) -> None:
    with pytest.raises(NotFoundError):
        ta.load_template(sqlite_db, 9999)
    with pytest.raises(NotFoundError):
        ta.load_template_by_name(sqlite_db, "Overdue Notice")


def _waiting(db: Database, request_type: str) -> tuple[int, str]:
    with db.read() as session:
        row = session.execute(
            select(Request.transaction_number, Request.loan_title, Request.photo_article_title)
            .where(Request.status == "Awaiting Customer Contact", Request.request_type == request_type)
            .order_by(Request.transaction_number)
            .limit(1)
        ).one()
    return row[0], row[1] if request_type == "Loan" else row[2]


def test_preview_uses_the_first_waiting_request_of_the_templates_type(seeded_db: Database, settings: Settings) -> None:
    for name, kind in ((LOAN_PICKUP, "Loan"), (ARTICLE_PICKUP, "Article")):
        tn, title = _waiting(seeded_db, kind)
        preview = ta.preview_template(seeded_db, ta.load_template_by_name(seeded_db, name).fields, settings)
        assert preview.ok, preview.problems
        assert preview.transaction_number == tn
        assert preview.rendered is not None and title in preview.rendered.subject
        assert str(tn) in preview.source


def test_preview_by_transaction_number_and_unknown_number(seeded_db: Database, settings: Settings) -> None:
    with seeded_db.read() as session:
        tn, title, status = session.execute(
            select(Request.transaction_number, Request.loan_title, Request.status)
            .where(Request.request_type == "Loan", Request.status == "Request Finished")
            .limit(1)
        ).one()
    fields = _loan(seeded_db).fields
    preview = ta.preview_template(seeded_db, fields, settings, transaction_number=tn)
    assert preview.ok and preview.rendered is not None
    assert title in preview.rendered.body_text and status in preview.source
    missing = ta.preview_template(seeded_db, fields, settings, transaction_number=1)
    assert not missing.ok and "no request with transaction number 1" in str(missing.problems[0])


def test_preview_reports_template_problems(seeded_db: Database, settings: Settings) -> None:
    fields = replace(_loan(seeded_db).fields, body_text="{{ patron.nickname }}")
    preview = ta.preview_template(seeded_db, fields, settings)
    assert not preview.ok and "nickname" in str(preview.problems[0])


def test_password_reset_preview_uses_a_patron_and_a_dummy_link(seeded_db: Database) -> None:
    settings = Settings(staff_name="tester", web_base_url="https://lib.example.org/reset?t=")
    fields = ta.load_template_by_name(seeded_db, PASSWORD_RESET).fields
    preview = ta.preview_template(seeded_db, fields, settings)
    assert preview.ok and preview.rendered is not None
    assert f"https://lib.example.org/reset?t={ta.PREVIEW_TOKEN}" in preview.rendered.body_text
    assert preview.rendered.to and "@" in preview.rendered.to[0]
    assert "Patron " in preview.source


def test_preview_on_an_empty_database_uses_sample_data(sqlite_db: Database, settings: Settings) -> None:
    preview = ta.preview_template(sqlite_db, _loan(sqlite_db).fields, settings)
    assert preview.ok and preview.rendered is not None
    assert "sample data" in preview.source and "Analytical Engine" in preview.rendered.subject
