"""processes: the gateway processes running, with a heartbeat

Revision ID: 0004_process
Revises: 0003_package_claim
Create Date: 2026-12-04 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0004_process"
down_revision = "0003_package_claim"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_process",
        sa.Column("process_id", sa.String(length=40), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("process_id", name=op.f("pk_gw_process")),
    )


def downgrade() -> None:
    op.drop_table("gw_process")
