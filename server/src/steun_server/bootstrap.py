"""``steun init``: the data directory, the org key, the TLS certificate, the schema and the first admin."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from . import audit as events
from .audit import AuditLog
from .auth import users as user_queries
from .auth.passwords import configure_from
from .auth.roles import Role
from .config import ServerConfig
from .errors import InitError
from .keys import (
    ServerKeys,
    default_names,
    generate_org_key,
    generate_tls_certificate,
    load_keys,
    raw_public_key,
)
from .storage import Database
from .storage.tables import users

CONFIG_TEMPLATE = """\
# Steun server settings. Every key can also be set with an environment variable STEUN_<KEY>
# (upper case), which wins over this file. See docs/admin-guide.md for the full list.

# listen_host = "127.0.0.1"
# listen_port = 8443
# public_url = "https://support.example.org:8443"
# database_url = "postgresql+asyncpg://steun@db.example.org/steun"
# tls = true
# tls_cert = "/etc/steun/fullchain.pem"
# tls_key = "/etc/steun/privkey.pem"
# tls_read_buffer = 16384
# session_idle_timeout = 28800.0
# session_absolute_timeout = 86400.0
"""


@dataclasses.dataclass(frozen=True, slots=True)
class InitResult:
    data_dir: Path
    admin_username: str
    #: shown once, never stored in clear
    admin_password: str
    spki_sha256: bytes
    org_public_key: bytes


def is_initialised(config: ServerConfig) -> bool:
    return config.org_key_file.exists()


def _make_data_dir(config: ServerConfig) -> None:
    if is_initialised(config):
        raise InitError(
            f"{config.data_dir} is initialised already (found {config.org_key_file.name}); refusing"
        )
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config.data_dir, 0o700)


def _prepare_files(config: ServerConfig, names: Iterable[str]) -> None:
    generate_org_key(config.org_key_file)
    if not config.tls_cert:
        extra = list(names)
        if config.public_url:
            from urllib.parse import urlsplit

            host = urlsplit(config.public_url).hostname
            if host:
                extra.append(host)
        generate_tls_certificate(config.tls_cert_file, config.tls_key_file, default_names(extra))
    if not config.config_file.exists():
        config.config_file.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        os.chmod(config.config_file, 0o600)


async def initialise(
    config: ServerConfig,
    *,
    admin_username: str = "admin",
    admin_password: str | None = None,
    hostnames: Iterable[str] = (),
) -> InitResult:
    """Initialise ``config.data_dir`` and the database; refuses when either holds a server already."""
    user_queries.check_username(admin_username)
    configure_from(config)
    await asyncio.to_thread(_make_data_dir, config)
    db = await Database.open(config.effective_database_url)
    try:
        await db.migrate()
        async with db.connect() as conn:
            existing = (await conn.execute(sa.select(users.c.id).limit(1))).first()
        if existing is not None:
            raise InitError("the database holds user accounts already; refusing to initialise it again")
        await asyncio.to_thread(_prepare_files, config, list(hostnames))
        keys: ServerKeys = await asyncio.to_thread(load_keys, config)
        audit = AuditLog(db, keys)
        async with db.begin() as conn:
            admin, password = await user_queries.create_user(
                conn, admin_username, role=Role.ADMIN, display_name="Administrator", password=admin_password
            )
        await audit.emit(
            events.SERVER_INITIALISED,
            actor="steun init",
            data={"org_public_key": keys.org_public_key.hex(), "spki_sha256": keys.spki_sha256.hex()},
        )
        await audit.emit(
            events.USER_CREATED,
            actor="steun init",
            data={"user_id": admin.id, "username": admin.username, "role": str(admin.role)},
        )
        await audit.sign_head()
    finally:
        await db.close()
    return InitResult(
        data_dir=config.data_dir,
        admin_username=admin.username,
        admin_password=password,
        spki_sha256=keys.spki_sha256,
        org_public_key=raw_public_key(keys.org_key),
    )
