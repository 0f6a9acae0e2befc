"""Pytest fixtures for a real server: ``server`` (SQLite), ``server_any_db`` (SQLite and PostgreSQL),
``pg_database_url`` (a fresh PostgreSQL database, dropped afterwards) and ``admin_api`` (a signed-in client).

Loaded by ``tests/conftest.py`` (``pytest_plugins``). PostgreSQL is the one on 127.0.0.1:5432 with trust
auth (user ``postgres``, else ``root``; database ``test`` exists); set ``STEUN_TEST_PG_DSN`` to use another.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from .api import ApiClient
from .server import RunningServer

PG_HOST = os.environ.get("STEUN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("STEUN_TEST_PG_PORT", "5432"))
PG_ADMIN_DATABASE = os.environ.get("STEUN_TEST_PG_DATABASE", "test")
PG_USERS = ("postgres", "root")


async def _pg_admin_connection() -> asyncpg.Connection:
    errors: list[str] = []
    for user in PG_USERS:
        try:
            return await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=user, database=PG_ADMIN_DATABASE, timeout=10
            )
        except (OSError, asyncpg.PostgresError) as exc:
            errors.append(f"{user}: {exc}")
    pytest.fail(f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {'; '.join(errors)}")


async def create_pg_database() -> tuple[str, str]:
    """Create a uniquely named database; returns (name, SQLAlchemy URL)."""
    conn = await _pg_admin_connection()
    try:
        name = f"steun_test_{secrets.token_hex(6)}"
        await conn.execute(f'CREATE DATABASE "{name}"')
        user = await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()
    # A password (ignored under trust auth) and ssl=disable keep asyncpg from reading ~/.pgpass and
    # certificate files at connect time: blocking file I/O on the event loop, which the tests' guard refuses.
    return name, f"postgresql+asyncpg://{user}:unused@{PG_HOST}:{PG_PORT}/{name}?ssl=disable"


async def drop_pg_database(name: str) -> None:
    conn = await _pg_admin_connection()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL to an empty database of ``kind`` ("sqlite" or "postgresql"), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'steun-{secrets.token_hex(4)}.db'}"
        return
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


#: Parameters for fixtures that run on both databases (PostgreSQL ones carry the ``postgres`` marker).
BOTH_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
async def pg_database_url() -> AsyncIterator[str]:
    name, url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await RunningServer.create(tmp_path / "data")
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def server_any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningServer]:
    if request.param == "sqlite":
        running = await RunningServer.create(tmp_path / "data")
        try:
            yield running
        finally:
            await running.stop()
        return
    name, url = await create_pg_database()
    try:
        running = await RunningServer.create(tmp_path / "data", database_url=url)
        try:
            yield running
        finally:
            await running.stop()
    finally:
        await drop_pg_database(name)


@pytest.fixture
async def admin_api(server: RunningServer) -> AsyncIterator[ApiClient]:
    """A client signed in as the server's first admin."""
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        yield client
