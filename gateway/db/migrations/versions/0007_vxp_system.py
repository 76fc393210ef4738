"""national-axis façade: connected systems with their encrypted secrets, and the signed
requests seen within the clock-skew window (replays)

Revision ID: 0007_vxp_system
Revises: 0006_delivery_backlog
Create Date: 2026-12-05 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0007_vxp_system"
down_revision = "0006_delivery_backlog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_vxp_system",
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("secret_encrypted", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("system_id", name=op.f("pk_gw_vxp_system")),
    )
    op.create_table(
        "gw_vxp_seen",
        sa.Column("system_id", sa.String(length=64), nullable=False),
        sa.Column("stamp", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("system_id", "stamp", "signature", name=op.f("pk_gw_vxp_seen")),
    )
    op.create_index(op.f("ix_gw_vxp_seen_seen_at"), "gw_vxp_seen", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gw_vxp_seen_seen_at"), "gw_vxp_seen")
    op.drop_table("gw_vxp_seen")
    op.drop_table("gw_vxp_system")
