"""channels: a patron's channels per kind of notice, in order, and the SMS part of templates (issue 18)

Revision ID: 0018
Revises: 0013
Create Date: 2026-11-30 10:20:00

An empty table keeps every patron's behaviour: a patron without a row for an event follows their single
notification method (``desktop.domain.channels.default_preference``), so no data is rewritten. An empty SMS part
means a template sends no text message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime

revision = "0018"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patron_channel_preferences",
        sa.Column(
            "patron_id",
            sa.Integer(),
            sa.ForeignKey("patrons.id", ondelete="CASCADE", name="fk_patron_channel_preferences_patron_id_patrons"),
            nullable=False,
        ),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("channels", sa.String(60), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("patron_id", "event", name="pk_patron_channel_preferences"),
    )
    with op.batch_alter_table("notice_templates") as batch_op:
        batch_op.add_column(sa.Column("body_sms", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("notice_templates") as batch_op:
        batch_op.drop_column("body_sms")
    op.drop_table("patron_channel_preferences")
