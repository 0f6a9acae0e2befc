"""Alembic revisions, one file each, numbered."""
