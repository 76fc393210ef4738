"""The gateway's database: the engine for SQLite or PostgreSQL (``engine``), one declarative
``Base`` on which each owner (the ledger, the service) declares its tables, the one Alembic
chain that builds them (``migrate``, ``migrations/``), and scratch databases for tests
(``testing``). See docs/ledger.md, "Database, migrations, and adding tables"."""
