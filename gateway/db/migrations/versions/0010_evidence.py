"""evidence: recipients' acknowledgements, witnesses' cosignatures, senders' notices

Revision ID: 0010_evidence
Revises: 0009_federation
Create Date: 2026-12-05 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0010_evidence"
down_revision = "0009_federation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_ack",
        sa.Column("delivery_id", sa.String(length=48), nullable=False),
        sa.Column("document_key", sa.String(length=300), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_gw_ack")),
    )
    op.create_index(op.f("ix_gw_ack_document_key"), "gw_ack", ["document_key"])
    op.create_table(
        "gw_notice",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.String(length=48), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("delivery_id", sa.String(length=48), nullable=False),
        sa.Column("document_key", sa.String(length=300), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_gw_notice")),
        sa.UniqueConstraint("notice_id", name=op.f("uq_gw_notice_notice_id")),
    )
    op.create_index(
        op.f("ix_gw_notice_unit_delivered_at_position"),
        "gw_notice",
        ["unit", "delivered_at", "position"],
    )
    op.create_table(
        "ledger_cosignature",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("witness", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_cosignature")),
    )
    op.create_index(
        op.f("ix_ledger_cosignature_checkpoint_id"), "ledger_cosignature", ["checkpoint_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_cosignature_checkpoint_id"), table_name="ledger_cosignature")
    op.drop_table("ledger_cosignature")
    op.drop_index(op.f("ix_gw_notice_unit_delivered_at_position"), table_name="gw_notice")
    op.drop_table("gw_notice")
    op.drop_index(op.f("ix_gw_ack_document_key"), table_name="gw_ack")
    op.drop_table("gw_ack")
