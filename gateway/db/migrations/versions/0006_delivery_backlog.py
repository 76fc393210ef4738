"""deliveries: an index for the backlog (copies by state and unit, oldest first)

Revision ID: 0006_delivery_backlog
Revises: 0005_ledger_identity
Create Date: 2026-12-04 23:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0006_delivery_backlog"
down_revision = "0005_ledger_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_gw_delivery_transport_recipient_transport_at"),
        "gw_delivery",
        ["transport", "recipient", "transport_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gw_delivery_transport_recipient_transport_at"), "gw_delivery")
