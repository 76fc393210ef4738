"""Alembic revisions, one linear chain for every table of the gateway database."""
