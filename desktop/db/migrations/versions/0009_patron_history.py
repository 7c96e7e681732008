"""patron_history: who changed a patron's notification or delivery method, and when

Revision ID: 0009
Revises: 0004
Create Date: 2026-11-30 07:00:00

Staff change a patron's methods on the Contact Card; each change is kept (from, to, who, when) and shown there,
as Tracking rows are for requests.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import desktop.db.types

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patron_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patron_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.String(length=200), nullable=False),
        sa.Column("new_value", sa.String(length=200), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", desktop.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["patron_id"], ["patrons.id"], name=op.f("fk_patron_history_patron_id_patrons"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patron_history")),
    )
    with op.batch_alter_table("patron_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patron_history_patron_id"), ["patron_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patron_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patron_history_patron_id"))
    op.drop_table("patron_history")
