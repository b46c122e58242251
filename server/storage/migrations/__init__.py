"""Alembic migrations of the service's database (SQLite and PostgreSQL alike), applied at start by
:func:`server.storage.database.create_database`."""
