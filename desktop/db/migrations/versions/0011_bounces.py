"""bounces: a flag on e-mail contact points, the reports already handled, and Message-ID look-ups

Revision ID: 0011
Revises: 0007
Create Date: 2026-11-30 08:00:00

A bounce that arrives after the server's 250 flags the address it was about ("bounced on <date>: 550 5.1.1 user
unknown") so the desk stops trusting it; a soft bounce (4.x.x: mailbox full) is only counted, and a repeat
flags. Every report handled is a row of ``bounce_reports`` keyed by the report's own Message-ID, so two System
Managers reading the same mailbox never count one report twice. Matching a report to its notice without a
per-notice return address goes by the notice's Message-ID, hence the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounced_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("bounce_reason", sa.String(length=500), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("soft_bounces", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_message_id", ["message_id"], unique=False)
    op.create_table(
        "bounce_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_key", sa.String(length=300), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False, server_default=""),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False, server_default=""),
        sa.Column("diagnostic", sa.String(length=500), nullable=False, server_default=""),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("handled_by", sa.String(length=200), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(
            ["notice_id"],
            ["notifications.id"],
            name=op.f("fk_bounce_reports_notice_id_notifications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_reports")),
        sa.UniqueConstraint("report_key", name=op.f("uq_bounce_reports_report_key")),
    )


def downgrade() -> None:
    op.drop_table("bounce_reports")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_message_id")
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_column("soft_bounces")
        batch_op.drop_column("bounce_reason")
        batch_op.drop_column("bounced_at")
