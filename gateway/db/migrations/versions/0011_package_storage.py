"""package bytes stored without compression on PostgreSQL

A signed package is mostly base64 (its attachments), which PostgreSQL's compression cannot
shrink but still tries on every insert: with ``STORAGE EXTERNAL`` the bytes go to the TOAST
table as they are. The insert is made under the ledger lock, where the time matters; rows
already stored keep their form.

Revision ID: 0011_package_storage
Revises: 0010_evidence
Create Date: 2026-12-05 09:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011_package_storage"
down_revision = "0010_evidence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE gw_package ALTER COLUMN raw SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE gw_package ALTER COLUMN raw SET STORAGE EXTENDED")
