"""packages: large bodies kept as files, the row naming them

Revision ID: 0003_package_claim
Revises: 0002_service
Create Date: 2026-12-04 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_package_claim"
down_revision = "0002_service"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gw_package") as batch:
        batch.add_column(sa.Column("raw_claim", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gw_package") as batch:
        batch.drop_column("raw_claim")
