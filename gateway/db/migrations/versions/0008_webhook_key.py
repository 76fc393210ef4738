"""push units: the generations of their webhook secrets

Revision ID: 0008_webhook_key
Revises: 0007_vxp_system
Create Date: 2026-12-05 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0008_webhook_key"
down_revision = "0007_vxp_system"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_webhook_key",
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("unit", "generation", name=op.f("pk_gw_webhook_key")),
    )


def downgrade() -> None:
    op.drop_table("gw_webhook_key")
