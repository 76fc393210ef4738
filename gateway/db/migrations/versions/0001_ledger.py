"""The delivery ledger: entries (with their Merkle nodes) and signed checkpoints, append-only.

Revision ID: 0001_ledger
Revises:
Create Date: 2025-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("ledger_entry", "ledger_checkpoint")

PG_FUNCTION = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""


def upgrade() -> None:
    seq_type = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "ledger_entry",
        sa.Column("seq", seq_type, autoincrement=False, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("document", sa.String(300), nullable=True),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("recipient", sa.String(64), nullable=True),
        sa.Column("package_sha256", sa.String(64), nullable=True),
        sa.Column("code", sa.String(64), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entry")),
    )
    op.create_index(op.f("ix_ledger_entry_document_seq"), "ledger_entry", ["document", "seq"])
    op.create_index(op.f("ix_ledger_entry_sender_seq"), "ledger_entry", ["sender", "seq"])
    op.create_index(op.f("ix_ledger_entry_recipient_seq"), "ledger_entry", ["recipient", "seq"])
    op.create_index(op.f("ix_ledger_entry_time"), "ledger_entry", ["time"])
    op.create_table(
        "ledger_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checkpoint")),
    )
    op.create_index(op.f("ix_ledger_checkpoint_tree_size"), "ledger_checkpoint", ["tree_size"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
        return
    for table in TABLES:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {action} on {table} "
                "refused'); END"
            )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
    else:
        for table in TABLES:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    op.drop_index(op.f("ix_ledger_checkpoint_tree_size"), table_name="ledger_checkpoint")
    op.drop_table("ledger_checkpoint")
    op.drop_index(op.f("ix_ledger_entry_time"), table_name="ledger_entry")
    op.drop_index(op.f("ix_ledger_entry_recipient_seq"), table_name="ledger_entry")
    op.drop_index(op.f("ix_ledger_entry_sender_seq"), table_name="ledger_entry")
    op.drop_index(op.f("ix_ledger_entry_document_seq"), table_name="ledger_entry")
    op.drop_table("ledger_entry")
