"""ledger_lock_head(): the ledger's lock and the tree's head in one round trip (PostgreSQL)

An append takes ``LOCK TABLE ledger_entry IN EXCLUSIVE MODE``, then reads the tree's size,
frontier and newest checkpoint. Made as two statements, the read waits for the appender's
event loop to take the lock's answer and send it, while every other appender waits for the
lock. The function does both in the server: being VOLATILE, its query takes its snapshot
after the lock is granted, so it sees every entry committed before.

It returns the log's size, its newest checkpoint's id, and the rows that hold the tree's
frontier (for each binary digit of the size, the row of the last leaf of that perfect
subtree: the size with the lower digits cleared, minus one) and its last leaf; one row with
no entry when the log is empty.

Revision ID: 0012_ledger_lock_head
Revises: 0011_package_storage
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0012_ledger_lock_head"
down_revision = "0011_package_storage"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION ledger_lock_head()
RETURNS TABLE (size bigint, checkpoint_id integer, seq bigint, leaf_hash bytea, nodes bytea)
LANGUAGE sql VOLATILE AS $$
    LOCK TABLE ledger_entry IN EXCLUSIVE MODE;
    WITH log AS (SELECT coalesce(max(e.seq) + 1, 0) AS size FROM ledger_entry AS e)
    SELECT log.size, (SELECT max(c.id) FROM ledger_checkpoint AS c), e.seq, e.leaf_hash, e.nodes
    FROM log LEFT JOIN ledger_entry AS e ON e.seq = ANY (ARRAY(
        SELECT ((log.size >> digit) << digit) - 1 FROM generate_series(0, 62) AS digit
        WHERE (log.size >> digit) & 1 = 1
    ) || (log.size - 1));
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_lock_head()")
