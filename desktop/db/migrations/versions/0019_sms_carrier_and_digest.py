"""sms carrier and digest: the patron's mobile carrier (e-mail-to-SMS gateway) and a notice's digest leader (issue 18)

Revision ID: 0019
Revises: 0016
Create Date: 2026-11-30 13:20:00

``patrons.sms_carrier`` names the carrier whose e-mail-to-SMS gateway reaches the patron's mobile number (empty:
unknown; the HTTP provider needs none). ``notifications.digest_leader_id`` marks a notice that rides in another
notice's message (one message for several items that arrived within the digest window); NULL for every notice
that is its own message, which is every existing one, so no data is rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        batch.add_column(sa.Column("sms_carrier", sa.String(60), nullable=False, server_default=""))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("digest_leader_id", sa.Integer(), nullable=True))
        batch.create_index("ix_notifications_digest_leader", ["digest_leader_id"])


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_digest_leader")
        batch.drop_column("digest_leader_id")
    with op.batch_alter_table("patrons") as batch:
        batch.drop_column("sms_carrier")
