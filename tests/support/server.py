"""``RunningServer``: the real Steun server, in-process, on ``127.0.0.1:0`` over TLS, with a fresh data dir.

The data directory is made by the real ``steun init`` code (org key, self-signed certificate, schema, first
admin); the server is the real ``create_app`` behind ``steun_server.app.serve``. Nothing is mocked.

    server = await RunningServer.create(tmp_path)              # SQLite
    server = await RunningServer.create(tmp_path, database_url="postgresql+asyncpg://...")
    server.url, server.port, server.spki_sha256, server.org_public_key, server.admin_password
    token = await server.create_enrollment_token("default")    # "st1...."
    await server.stop(); await server.start()                  # same port, same data dir
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from steun_server.app import RunningApp, serve
from steun_server.bootstrap import initialise
from steun_server.config import ServerConfig, load_config
from steun_server.web import AUDIT, DB, KEYS

#: Settings every test server gets unless the test overrides them: throttling delays of 0.2, 0.4, 0.8 s…
#: so tests can watch them grow without waiting minutes.
TEST_DEFAULTS: dict[str, Any] = {
    "listen_host": "127.0.0.1",
    "listen_port": 0,
    "throttle_base_delay": 0.2,
    "throttle_max_delay": 2.0,
    "audit_sign_interval": 3600.0,
    # argon2id at its cheapest: the tests sign in hundreds of times; production keeps RFC 9106's cost
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8 * 1024,
    "password_hash_parallelism": 1,
}


class RunningServer:
    def __init__(self, config: ServerConfig, *, admin_username: str, admin_password: str) -> None:
        self.config = config
        self.admin_username = admin_username
        self.admin_password = admin_password
        self.spki_sha256 = b""
        self.org_public_key = b""
        self._running: RunningApp | None = None

    @classmethod
    async def create(
        cls,
        data_dir: Path,
        *,
        database_url: str = "",
        overrides: Mapping[str, Any] | None = None,
        start: bool = True,
    ) -> RunningServer:
        """Initialise ``data_dir`` with the real init code and (by default) start the server."""
        settings = {**TEST_DEFAULTS, **(overrides or {})}
        if database_url:
            settings["database_url"] = database_url
        # env={}: a developer's STEUN_* variables must not leak into tests
        config = await asyncio.to_thread(load_config, data_dir, env={}, overrides=settings)
        result = await initialise(config)
        server = cls(config, admin_username=result.admin_username, admin_password=result.admin_password)
        server.spki_sha256 = result.spki_sha256
        server.org_public_key = result.org_public_key
        if start:
            await server.start()
        return server

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        admin_username: str = "admin",
        admin_password: str = "",
        database_url: str = "",
        overrides: Mapping[str, Any] | None = None,
    ) -> RunningServer:
        """Start on a data dir that was initialised already (by ``steun init`` in a subprocess, say)."""
        from steun_server.keys import load_keys

        settings = {**TEST_DEFAULTS, **(overrides or {})}
        if database_url:
            settings["database_url"] = database_url
        config = await asyncio.to_thread(load_config, data_dir, env={}, overrides=settings)
        keys = await asyncio.to_thread(load_keys, config)
        server = cls(config, admin_username=admin_username, admin_password=admin_password)
        server.spki_sha256 = keys.spki_sha256
        server.org_public_key = keys.org_public_key
        await server.start()
        return server

    async def start(self) -> None:
        """Start (or restart after ``stop``) on the same port and data dir."""
        if self._running is not None:
            raise RuntimeError("the server is running already")
        self._running = await serve(self.config)
        # port 0 is resolved on the first start; restarts keep the port
        self.config = self._running.config

    async def stop(self) -> None:
        if self._running is not None:
            running, self._running = self._running, None
            await running.stop()

    @property
    def running(self) -> bool:
        return self._running is not None

    @property
    def app(self) -> web.Application:
        if self._running is None:
            raise RuntimeError("the server is not running")
        return self._running.app

    @property
    def port(self) -> int:
        return self.config.listen_port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.url

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    async def create_enrollment_token(self, group: str = "default", ttl: float = 3600.0) -> str:
        """A full ``st1.`` enrollment token made by the fleet module's own function."""
        from steun_server.fleet.enrollment import create_enrollment_token

        app = self.app
        token, _expires = await create_enrollment_token(
            app[DB], app[KEYS], group=group, ttl=ttl, audit=app[AUDIT], actor="tests"
        )
        return str(token)

    async def __aenter__(self) -> RunningServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
