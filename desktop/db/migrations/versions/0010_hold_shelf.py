"""hold shelf: the reminder and expiry templates, and an index for the shelf's daily scan

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-30 08:00:00

Issue 17 adds the status ``Awaiting Return to Lender`` (a string column: no schema change), the shelf policy
and closed days (JSON in ``system_settings``, defaults in code until an administrator saves them), and new
default templates, which a database made before this revision does not have: they are added here (a template
of the same name that an administrator made is left alone). The index lets the System Manager find the shelved
requests (status, then when they were notified) without scanning every request.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime
from desktop.paths import template_path

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: The new default templates, by file under templates/ (read as shipped; the db layer does not import services).
FILES = {
    "Loan Pickup Reminder": "loan_pickup_reminder.toml",
    "Article Pickup Reminder": "article_pickup_reminder.toml",
    "Print Pickup Reminder": "print_reminder.toml",
    "Pickup Expired": "pickup_expired.toml",
}
FIELDS = ("name", "channel", "description", "from_name", "from_address", "to_address", "cc", "bcc", "subject",
          "body_text", "body_html")  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_status_changed", ["status", "status_changed_at"], unique=False)
    bind = op.get_bind()
    templates = sa.table(
        "notice_templates",
        sa.column("name", sa.String),
        sa.column("channel", sa.String),
        sa.column("description", sa.String),
        sa.column("from_name", sa.String),
        sa.column("from_address", sa.String),
        sa.column("to_address", sa.String),
        sa.column("cc", sa.String),
        sa.column("bcc", sa.String),
        sa.column("subject", sa.String),
        sa.column("body_text", sa.Text),
        sa.column("body_html", sa.Text),
        sa.column("deleted", sa.Boolean),
        sa.column("updated_by", sa.String),
        sa.column("updated_at", UTCDateTime()),
        sa.column("version_id", sa.Integer),
    )
    installed = set(bind.execute(sa.select(templates.c.name)).scalars())
    rows = [
        {
            **_default(file_name),
            "deleted": False,
            "updated_by": "System",
            "updated_at": datetime.now(UTC),
            "version_id": 1,
        }
        for name, file_name in FILES.items()
        if name not in installed and template_path(file_name).exists()
    ]
    if rows:
        op.bulk_insert(templates, rows)


def _default(file_name: str) -> dict[str, str]:
    data = tomllib.loads(template_path(file_name).read_text(encoding="utf-8"))
    return {key: str(data.get(key, "")) for key in FIELDS}


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_status_changed")
