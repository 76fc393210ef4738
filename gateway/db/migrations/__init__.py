"""Alembic migrations of the gateway database (script location ``gateway.db:migrations``)."""
