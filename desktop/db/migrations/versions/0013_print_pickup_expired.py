"""hold shelf: the "Print Pickup Expired" default template (the expiry letter to Mail patrons)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 10:20:00

Issue 17's expiry notice went only to E-Mail patrons; Phone and Mail patrons now get a call or a letter to make in
Contact Customers. The call names the "Pickup Expired" template; the letter needs a print template of its own,
which a database made before this revision does not have: it is added here (a template of the same name that an
administrator made is left alone). No schema change.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime
from desktop.paths import template_path

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NAME = "Print Pickup Expired"
FILE = "print_expired.toml"
FIELDS = ("name", "channel", "description", "from_name", "from_address", "to_address", "cc", "bcc", "subject",
          "body_text", "body_html")  # fmt: skip


def _templates() -> sa.TableClause:
    return sa.table(
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


def upgrade() -> None:
    bind = op.get_bind()
    templates = _templates()
    if bind.execute(sa.select(templates.c.name).where(templates.c.name == NAME)).first() is not None:
        return
    if not template_path(FILE).exists():
        return
    data = tomllib.loads(template_path(FILE).read_text(encoding="utf-8"))
    row = {key: str(data.get(key, "")) for key in FIELDS}
    op.bulk_insert(
        templates,
        [{**row, "deleted": False, "updated_by": "System", "updated_at": datetime.now(UTC), "version_id": 1}],
    )


def downgrade() -> None:
    """The template stays: it may have been edited, and a template nobody uses does no harm."""
