"""The ``Database``: one async SQLAlchemy engine (SQLite or PostgreSQL), transactions and migrations."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import ConfigError, StorageError
from .tables import metadata

log = logging.getLogger(__name__)

#: PostgreSQL advisory lock key held while migrating ("steun" in ASCII).
MIGRATION_LOCK_ID = 0x737465756E
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclasses.dataclass(frozen=True, slots=True)
class DatabaseStatistics:
    dialect: str
    pool_size: int
    checked_out: int
    overflow: int
    transactions_begun: int


class Database:
    """An async engine plus the few helpers every query module needs.

    ``async with db.begin() as conn:`` runs one transaction (commit on success, rollback on error);
    ``async with db.connect() as conn:`` is for reads. Queries live next to their feature
    (``steun_server.auth.users``, ``steun_server.fleet``); this object only owns the engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._begun = 0

    @classmethod
    async def open(cls, url: str, *, echo: bool = False) -> Database:
        """``from_url`` plus, for SQLite, the file made first with owner-only permissions (in a thread)."""
        # building an SQLite engine touches the file system (path checks): keep it off the event loop
        return await asyncio.to_thread(cls._open_sync, url, echo)

    @classmethod
    def _open_sync(cls, url: str, echo: bool) -> Database:
        db = cls.from_url(url, echo=echo)
        database = db.engine.url.database
        if db.dialect == "sqlite" and database and database != ":memory:":
            _create_private_file(Path(database))
        return db

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        """The engine only (no I/O); prefer :meth:`open`."""
        try:
            parsed = make_url(url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise ConfigError(f"database_url: {exc}") from None
        kwargs: dict[str, Any] = {"echo": echo}
        if parsed.get_backend_name() == "sqlite":
            # one process owns the file; writers wait (busy_timeout) instead of failing at once
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True, pool_recycle=1800)
        engine = create_async_engine(parsed, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction; database errors come out as :class:`StorageError` (IntegrityError kept apart)."""
        self._begun += 1
        async with self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(self) -> str:
        """Bring the schema to the newest revision; returns the revision now in force."""
        # reading the revision files is blocking I/O: done in a thread, before touching the connection
        script = await asyncio.to_thread(load_scripts)
        async with self.engine.begin() as conn:
            return await conn.run_sync(_upgrade, script)

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())

    async def close(self) -> None:
        await self.engine.dispose()

    def statistics(self) -> DatabaseStatistics:
        pool = self.engine.pool
        size = getattr(pool, "size", lambda: 0)()
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        overflow = getattr(pool, "overflow", lambda: 0)()
        return DatabaseStatistics(
            dialect=self.dialect,
            pool_size=int(size),
            checked_out=int(checked_out),
            overflow=int(overflow),
            transactions_begun=self._begun,
        )


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def load_scripts() -> ScriptDirectory:
    """The revision scripts, every module imported (so running them later reads no file)."""
    script = ScriptDirectory.from_config(alembic_config())
    for _revision in script.walk_revisions():
        pass
    return script


def head_revision() -> str:
    head = load_scripts().get_current_head()
    assert head is not None
    return head


def _upgrade(connection: sa.Connection, script: ScriptDirectory) -> str:
    def upgrade_steps(revision: Any, _context: Any) -> Any:
        return script._upgrade_revs("head", revision)

    if connection.dialect.name == "postgresql":
        # several nodes may start at once: one migrates, the others wait here and then find nothing to do
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    # what env.py would do, without loading env.py from disk: run on the connection we were handed
    with EnvironmentContext(alembic_config(), script, fn=upgrade_steps, destination_rev="head") as env:
        env.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        try:
            with env.begin_transaction():
                env.run_migrations()
        except SQLAlchemyError as exc:
            raise StorageError(f"migration failed: {exc}") from exc
    revision = MigrationContext.configure(connection).get_current_revision()
    assert revision is not None
    return revision


def _create_private_file(path: Path) -> None:
    """Make the SQLite file readable by its owner only (it holds password and token hashes)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()
