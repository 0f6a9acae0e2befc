"""Migrations on empty SQLite and PostgreSQL databases; the migrated schema equals the code's metadata."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from steun_server.storage import Database, head_revision, tables

from tests.support.fixtures import BOTH_DATABASES, database_url


@pytest.fixture(params=BOTH_DATABASES)
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_url(request.param, tmp_path) as url:
        database = await Database.open(url)
        try:
            pass
            yield database
        finally:
            await database.close()


def _diff(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, tables.metadata))


async def test_migrations_apply_on_empty_database(empty_db: Database) -> None:
    assert await empty_db.current_revision() is None
    head = await empty_db.migrate()
    assert head == await asyncio.to_thread(head_revision) == await empty_db.current_revision()
    # running again is a no-op
    assert await empty_db.migrate() == head
    async with empty_db.connect() as conn:
        groups = (await conn.execute(sa.select(tables.device_groups.c.name))).scalars().all()
        assert groups == [tables.DEFAULT_GROUP]
        assert await conn.run_sync(_diff) == []


async def test_sqlite_pragmas_and_file_mode(tmp_path: Path) -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        await db.migrate()
        async with db.connect() as conn:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(sa.text("PRAGMA foreign_keys"))).scalar() == 1
        assert (tmp_path / "p.db").stat().st_mode & 0o777 == 0o600
        stats = db.statistics()
        assert stats.dialect == "sqlite"
    finally:
        await db.close()


async def test_foreign_keys_enforced(empty_db: Database) -> None:
    await empty_db.migrate()
    with pytest.raises(sa.exc.IntegrityError):
        async with empty_db.begin() as conn:
            await conn.execute(
                tables.devices.insert().values(
                    id="d1", public_key="k", group_name="no-such-group", hostname="h", os="o", enrolled_at=1.0
                )
            )


@pytest.mark.postgres
async def test_nodes_starting_together_migrate_once(tmp_path: Path) -> None:
    async with database_url("postgresql", tmp_path) as url:
        nodes = [await Database.open(url) for _ in range(3)]
        try:
            revisions = await asyncio.gather(*(node.migrate() for node in nodes))
            assert len(set(revisions)) == 1
        finally:
            for node in nodes:
                await node.close()
