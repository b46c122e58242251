"""Alembic's environment: runs on the connection that :func:`server.storage.database.migrate` hands over."""

from __future__ import annotations

from alembic import context

import server.storage  # noqa: F401  (registers every table on Base.metadata)
from server.storage.database import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
