"""federation: the units behind upstream links, and room for link:<name> delivery modes

Revision ID: 0009_federation
Revises: 0008_webhook_key
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0009_federation"
down_revision = "0008_webhook_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_remote_unit",
        sa.Column("link", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("parent_code", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("synced_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("link", "code", name=op.f("pk_gw_remote_unit")),
    )
    op.create_index(op.f("ix_gw_remote_unit_code"), "gw_remote_unit", ["code"], unique=False)
    with op.batch_alter_table("gw_delivery") as batch:
        batch.alter_column(
            "mode",
            existing_type=sa.String(length=8),
            type_=sa.String(length=48),
            existing_nullable=False,
        )


def downgrade() -> None:
    # A copy for a unit behind a link has no place in the older schema; dropping it would
    # lose what was accepted, so the downgrade stops instead.
    copies = op.get_bind().execute(
        sa.text("SELECT count(*) FROM gw_delivery WHERE mode LIKE 'link:%'")
    )
    if copies.scalar_one():
        raise RuntimeError("copies for units behind upstream links exist: not downgrading")
    with op.batch_alter_table("gw_delivery") as batch:
        batch.alter_column(
            "mode",
            existing_type=sa.String(length=48),
            type_=sa.String(length=8),
            existing_nullable=False,
        )
    op.drop_index(op.f("ix_gw_remote_unit_code"), table_name="gw_remote_unit")
    op.drop_table("gw_remote_unit")
