"""index requests.updated_at: the main window's change marker sees edits made on other workstations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:45:00

Every workstation polls ``max(requests.updated_at)`` every few seconds; with this index that is one index
look-up instead of a scan of a million rows.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.create_index("ix_requests_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_index("ix_requests_updated_at")
