"""service tables: packages, deliveries, recipient states, inboxes, tokens

Revision ID: 0002_service
Revises: 0001_ledger
Create Date: 2026-11-26 13:56:42.885667
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.db.engine import UtcDateTime

revision = "0002_service"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gw_delivery",
        sa.Column("delivery_id", sa.String(length=48), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("document_key", sa.String(length=300), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("transport_at", UtcDateTime(), nullable=False),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_gw_delivery")),
    )
    with op.batch_alter_table("gw_delivery", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gw_delivery_document_key_recipient"),
            ["document_key", "recipient"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_gw_delivery_package_id"), ["package_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_gw_delivery_published"), ["published"], unique=False)

    op.create_table(
        "gw_inbox",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=48), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("queued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_gw_inbox")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_gw_inbox_delivery_id")),
    )
    with op.batch_alter_table("gw_inbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gw_inbox_recipient_state_position"),
            ["recipient", "state", "position"],
            unique=False,
        )

    op.create_table(
        "gw_package",
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("document_id", sa.String(length=255), nullable=False),
        sa.Column("document_key", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.String(length=2), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("signature_state", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("document_identity", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_gw_package")),
        sa.UniqueConstraint(
            "sender", "document_identity", name=op.f("uq_gw_package_sender_document_identity")
        ),
        sa.UniqueConstraint("sender", "sha256", name=op.f("uq_gw_package_sender_sha256")),
    )
    with op.batch_alter_table("gw_package", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gw_package_document_key"), ["document_key"], unique=False
        )

    op.create_table(
        "gw_recipient_state",
        sa.Column("document_key", sa.String(length=300), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("business", sa.String(length=2), nullable=True),
        sa.Column("recall_pending", sa.Boolean(), nullable=False),
        sa.Column("recall_answer", sa.String(length=2), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("document_key", "recipient", name=op.f("pk_gw_recipient_state")),
    )
    op.create_table(
        "gw_token",
        sa.Column("token_id", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_gw_token")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_gw_token_secret_sha256")),
    )


def downgrade() -> None:
    op.drop_table("gw_token")
    op.drop_table("gw_recipient_state")
    with op.batch_alter_table("gw_package", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gw_package_document_key"))

    op.drop_table("gw_package")
    with op.batch_alter_table("gw_inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gw_inbox_recipient_state_position"))

    op.drop_table("gw_inbox")
    with op.batch_alter_table("gw_delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gw_delivery_published"))
        batch_op.drop_index(batch_op.f("ix_gw_delivery_package_id"))
        batch_op.drop_index(batch_op.f("ix_gw_delivery_document_key_recipient"))

    op.drop_table("gw_delivery")
