"""outbox wake-up: PostgreSQL NOTIFY when a request may need routing or a notice becomes due

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00

Triggers rather than application code so that *any* client writing the database (another workstation, an
import, a program that is not Callslip) wakes every listening System Manager at once. The payload is constant
per table, so PostgreSQL collapses the notifications of one transaction into one. SQLite has no
LISTEN/NOTIFY: nothing to do there (its pollers are woken in-process and by the poll interval).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHANNEL = "callslip_outbox"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION callslip_notify_outbox() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_requests_wake_outbox
        AFTER INSERT OR UPDATE OF status ON requests
        FOR EACH ROW
        WHEN (NEW.status IN ('In Transit to Pickup Location', 'Awaiting Customer Contact'))
        EXECUTE FUNCTION callslip_notify_outbox()
        """
    )
    op.execute(
        """
        CREATE TRIGGER trg_notifications_wake_outbox
        AFTER INSERT OR UPDATE OF state, next_attempt_at ON notifications
        FOR EACH ROW
        WHEN (NEW.state = 'pending')
        EXECUTE FUNCTION callslip_notify_outbox()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS trg_notifications_wake_outbox ON notifications")
    op.execute("DROP TRIGGER IF EXISTS trg_requests_wake_outbox ON requests")
    op.execute("DROP FUNCTION IF EXISTS callslip_notify_outbox()")
