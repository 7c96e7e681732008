"""claimable notices index: a sender's claim reads the due notices of its channel in order, not all of them

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 19:50:00

A claim (``desktop/services/notices/outbox.py::claim_due``) takes the oldest due notices of one channel that are
waiting and lead their own message. No index served its ``ORDER BY next_attempt_at, id``: on PostgreSQL every
claim read and sorted every due notice, so sending a queue of n notices in batches of 100 cost O(n²/100).
``ix_notifications_claimable`` holds exactly the notices a claim may take, in the claim's order, so a claim reads
the first rows of its channel and stops. The claim states the index's condition term by term, the states written
out: neither database uses a partial index whose condition it cannot see in the query.

``ix_notifications_digest_leader`` now holds only riders (``digest_leader_id IS NOT NULL``). The look-ups it is
for name a leader (the riders of claimed leaders, a bounced rider's leader), which a NULL never matches. Its NULL
entries, nearly every notice, only let PostgreSQL walk it for ``digest_leader_id IS NULL``: on a database without
statistics it rated that walk plus a sort of every due notice as cheap as reading the claimable index in order,
and picked one or the other by a hair (the walk with 400 due notices).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_CLAIMABLE = "state IN ('pending', 'retrying') AND digest_leader_id IS NULL"
_RIDER = "digest_leader_id IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_notifications_claimable",
        "notifications",
        ["channel", "next_attempt_at", "id"],
        sqlite_where=sa.text(_CLAIMABLE),
        postgresql_where=sa.text(_CLAIMABLE),
    )
    op.drop_index("ix_notifications_digest_leader", table_name="notifications")
    op.create_index(
        "ix_notifications_digest_leader",
        "notifications",
        ["digest_leader_id"],
        sqlite_where=sa.text(_RIDER),
        postgresql_where=sa.text(_RIDER),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_digest_leader", table_name="notifications")
    op.create_index("ix_notifications_digest_leader", "notifications", ["digest_leader_id"])
    op.drop_index("ix_notifications_claimable", table_name="notifications")
