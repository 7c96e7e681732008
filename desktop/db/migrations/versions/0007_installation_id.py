"""installation id: a random id per database, so Message-IDs never repeat across installations

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-30 07:00:00

Message-IDs are deterministic per notice (every attempt, and a duplicate after a crash, carries the same one),
but notice ids and dedupe keys repeat from one database to the next: the same Message-ID went to three patrons
from three installations. The System Manager mixes this id into every Message-ID. It is stored in the shared
``system_settings`` table (JSON text, like every shared setting) and never changes once made.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from desktop.db.types import UTCDateTime

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = "installation_id"


def upgrade() -> None:
    bind = op.get_bind()
    settings = sa.table(
        "system_settings",
        sa.column("key", sa.String),
        sa.column("value", sa.Text),
        sa.column("updated_by", sa.String),
        sa.column("updated_at", UTCDateTime()),
    )
    if bind.execute(sa.select(settings.c.key).where(settings.c.key == KEY)).first() is None:
        op.bulk_insert(
            settings,
            [
                {
                    "key": KEY,
                    "value": json.dumps(secrets.token_hex(8)),
                    "updated_by": "System",
                    "updated_at": datetime.now(UTC),
                }
            ],
        )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM system_settings WHERE key = :key").bindparams(key=KEY))
