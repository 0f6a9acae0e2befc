"""Alembic environment: runs on the connection handed in by steun_server.storage (never opens its own)."""

from __future__ import annotations

from alembic import context

from steun_server.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run Steun's migrations through steun_server.storage.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
