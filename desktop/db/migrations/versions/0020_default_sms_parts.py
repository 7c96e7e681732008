"""default SMS parts: the shipped templates' text-message parts for databases made before templates had them

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 13:40:00

Revision 0018 added ``notice_templates.body_sms`` empty, so a database made before it has no SMS part in any
template, and an SMS-first patron's text would fail with "the template has no SMS part" until an administrator
restored each default. The shipped text is filled in here for every default template whose SMS part is still
empty; a template whose SMS part an administrator wrote is left alone, and no other field is touched (the
e-mail parts staff may have edited stay as they are). Downgrading leaves the texts: an SMS part is harmless
without SMS. No schema change.
"""

from __future__ import annotations

import tomllib

import sqlalchemy as sa
from alembic import op

from desktop.paths import template_path

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _shipped_sms_parts() -> dict[str, str]:
    """Template name → its shipped SMS part, for every default template that has one."""
    parts: dict[str, str] = {}
    for path in sorted(template_path().glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        sms = str(data.get("body_sms", "")).strip()
        if sms:
            parts[str(data["name"])] = sms
    return parts


def upgrade() -> None:
    templates = sa.table("notice_templates", sa.column("name", sa.String), sa.column("body_sms", sa.Text))
    bind = op.get_bind()
    for name, sms in _shipped_sms_parts().items():
        bind.execute(
            sa.update(templates).where(templates.c.name == name, templates.c.body_sms == "").values(body_sms=sms)
        )


def downgrade() -> None:
    """Nothing to undo: the SMS parts stay (see the module docstring)."""
