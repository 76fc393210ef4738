"""Alembic migrations of the gateway database (script location ``gateway.ledger:migrations``)."""
