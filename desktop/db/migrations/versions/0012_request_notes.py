"""request notes: staff and patron notes on a request (ILLiad's Notes table), so a migration keeps them

Revision ID: 0012
Revises: 0007
Create Date: 2026-11-30 07:40:00

ILLiad keeps free-text notes per transaction (``Notes``: NoteDate, Note, AddedBy, NoteType ``Staff``/``User``).
A library moving over wants them on the request; Callslip had nowhere to put them. One row per note, with who
added it and when, in the order they were written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "request_id",
            sa.Integer(),
            sa.ForeignKey("requests.id", ondelete="CASCADE", name="fk_request_notes_request_id_requests"),
            nullable=False,
        ),
        sa.Column("noted_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(100), nullable=False),
        sa.Column("note_type", sa.String(20), nullable=False),
        sa.Column("source_key", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_request_notes"),
        sa.UniqueConstraint("source_key", name="uq_request_notes_source_key"),
    )
    op.create_index("ix_request_notes_request", "request_notes", ["request_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_request_notes_request", table_name="request_notes")
    op.drop_table("request_notes")
