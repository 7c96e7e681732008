"""patron country: the Contact Card's postal address gets a Country (ILLiad's Users.Country)

Revision ID: 0016
Revises: 0018
Create Date: 2026-11-30 10:10:00

Staff mailing a notice abroad had nowhere to put the country; ILLiad keeps it in ``Users.Country``. An empty
string (not NULL) means "domestic", like the other address fields, so existing rows need no backfill.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        batch.add_column(sa.Column("country", sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("patrons") as batch:
        batch.drop_column("country")
