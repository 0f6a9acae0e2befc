"""Alembic migrations shipped inside the package; applied by ``steun_server.storage.migrate``."""
