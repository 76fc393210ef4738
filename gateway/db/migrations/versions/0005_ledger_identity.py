"""ledger: its origin and checkpoint key, recorded with it

Revision ID: 0005_ledger_identity
Revises: 0004_process
Create Date: 2026-12-04 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0005_ledger_identity"
down_revision = "0004_process"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_identity",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_identity")),
    )


def downgrade() -> None:
    op.drop_table("ledger_identity")
