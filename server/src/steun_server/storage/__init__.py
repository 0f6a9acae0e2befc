"""Storage: the async engine (``Database``), the schema (``tables``) and its Alembic migrations."""

from __future__ import annotations

from . import tables
from .database import Database, DatabaseStatistics, head_revision

__all__ = ["Database", "DatabaseStatistics", "head_revision", "tables"]
