"""Fleet queries (devices, groups, enrollment tokens, inventories): SQLAlchemy Core, SQLite and PostgreSQL.

Every list is bounded with LIMIT; every write that must be atomic happens inside one ``db.begin()``.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from steun_protocol.console import MAX_DEVICES_LISTED
from steun_protocol.errors import ErrorCode

from ..storage import Database
from ..storage.tables import device_groups, devices, enrollment_tokens, inventories

#: Largest ``IN (...)`` list sent in one statement (well under SQLite's and asyncpg's parameter limits).
CHUNK = 500
MAX_GROUPS_LISTED = 1000
MAX_QUERY_TERMS = 8


class FleetStoreError(Exception):
    """A fleet write was refused; ``code`` is the stable error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceRecord:
    id: str
    public_key: str
    group: str
    hostname: str
    os: str
    enrolled_at: float
    last_seen: float | None
    revoked: bool


@dataclasses.dataclass(frozen=True, slots=True)
class GroupRecord:
    name: str
    description: str
    created_at: float
    device_count: int


@dataclasses.dataclass(frozen=True, slots=True)
class InventoryRecord:
    json: str
    digest: str
    updated_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class NewDevice:
    public_key: str
    hostname: str
    os: str


_DEVICE_COLUMNS = (
    devices.c.id,
    devices.c.public_key,
    devices.c.group_name,
    devices.c.hostname,
    devices.c.os,
    devices.c.enrolled_at,
    devices.c.last_seen,
    devices.c.revoked,
)


def _device(row: Any) -> DeviceRecord:
    return DeviceRecord(
        id=row.id,
        public_key=row.public_key,
        group=row.group_name,
        hostname=row.hostname,
        os=row.os,
        enrolled_at=row.enrolled_at,
        last_seen=row.last_seen,
        revoked=bool(row.revoked),
    )


def new_device_id() -> str:
    """A random, URL-safe device id (128 bits)."""
    return secrets.token_urlsafe(16)


# -- devices ------------------------------------------------------------------------------------------------


def _search_clause(query: str) -> sa.ColumnElement[bool] | None:
    """Every whitespace-separated term must match the hostname, OS, group or id (case-insensitive)."""
    terms = query.split()[:MAX_QUERY_TERMS]
    if not terms:
        return None
    clauses = []
    for term in terms:
        folded = term.lower()
        clauses.append(
            sa.or_(
                sa.func.lower(devices.c.hostname).contains(folded, autoescape=True),
                sa.func.lower(devices.c.os).contains(folded, autoescape=True),
                sa.func.lower(devices.c.group_name).contains(folded, autoescape=True),
                devices.c.id == term,  # ids are base64url: their case matters
            )
        )
    return sa.and_(*clauses)


async def list_devices(
    db: Database, *, query: str = "", group: str | None = None, limit: int = MAX_DEVICES_LISTED
) -> list[DeviceRecord]:
    """Enrolled, not revoked devices matching ``query``, ordered by hostname; at most ``limit``."""
    stmt = sa.select(*_DEVICE_COLUMNS).where(devices.c.revoked == sa.false())
    clause = _search_clause(query)
    if clause is not None:
        stmt = stmt.where(clause)
    if group is not None:
        stmt = stmt.where(devices.c.group_name == group)
    stmt = stmt.order_by(sa.func.lower(devices.c.hostname), devices.c.id).limit(
        max(0, min(limit, MAX_DEVICES_LISTED))
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [_device(r) for r in rows]


async def get_device(db: Database, device_id: str) -> DeviceRecord | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(*_DEVICE_COLUMNS).where(devices.c.id == device_id))).first()
    return _device(row) if row is not None else None


async def get_devices(db: Database, device_ids: Iterable[str]) -> dict[str, DeviceRecord]:
    """The devices among ``device_ids`` that exist (revoked ones included), by id."""
    ids = list(dict.fromkeys(device_ids))
    found: dict[str, DeviceRecord] = {}
    async with db.connect() as conn:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            stmt = sa.select(*_DEVICE_COLUMNS).where(devices.c.id.in_(chunk))
            for row in (await conn.execute(stmt)).all():
                found[row.id] = _device(row)
    return found


async def get_device_for_auth(db: Database, device_id: str) -> tuple[DeviceRecord, str | None] | None:
    """The device and the digest of its stored inventory (None: none stored), in one query."""
    stmt = (
        sa.select(*_DEVICE_COLUMNS, inventories.c.digest)
        .select_from(devices.outerjoin(inventories, inventories.c.device_id == devices.c.id))
        .where(devices.c.id == device_id)
    )
    async with db.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return _device(row), row.digest


async def set_revoked(db: Database, device_id: str, revoked: bool = True) -> bool:
    async with db.begin() as conn:
        result = await conn.execute(
            sa.update(devices).where(devices.c.id == device_id).values(revoked=revoked)
        )
    return result.rowcount > 0


async def write_last_seen(db: Database, seen: Sequence[tuple[str, float]]) -> None:
    """Record many ``(device_id, time)`` pairs; a time never moves backwards."""
    if not seen:
        return
    stmt = (
        sa.update(devices)
        .where(devices.c.id == sa.bindparam("b_id"))
        .where(sa.or_(devices.c.last_seen.is_(None), devices.c.last_seen < sa.bindparam("b_time")))
        .values(last_seen=sa.bindparam("b_time"))
    )
    for start in range(0, len(seen), CHUNK):
        chunk = seen[start : start + CHUNK]
        async with db.begin() as conn:
            await conn.execute(stmt, [{"b_id": d, "b_time": t} for d, t in chunk])


# -- inventories --------------------------------------------------------------------------------------------


async def get_inventory(db: Database, device_id: str) -> InventoryRecord | None:
    stmt = sa.select(inventories.c.json, inventories.c.digest, inventories.c.updated_at).where(
        inventories.c.device_id == device_id
    )
    async with db.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return InventoryRecord(row.json, row.digest, row.updated_at) if row is not None else None


async def save_inventory(
    db: Database, device_id: str, *, json_text: str, digest: str, now: float, hostname: str | None = None
) -> bool:
    """Store an inventory unless the stored one has the same digest; returns True when it wrote.

    ``hostname``: the machine's current name from the inventory, copied to the device when it changed.
    """
    async with db.begin() as conn:
        current = (
            await conn.execute(sa.select(inventories.c.digest).where(inventories.c.device_id == device_id))
        ).first()
        if current is not None and current.digest == digest:
            return False
        values = {"json": json_text, "digest": digest, "updated_at": now}
        if current is None:
            await conn.execute(sa.insert(inventories).values(device_id=device_id, **values))
        else:
            await conn.execute(
                sa.update(inventories).where(inventories.c.device_id == device_id).values(**values)
            )
        if hostname:
            await conn.execute(
                sa.update(devices)
                .where(devices.c.id == device_id)
                .where(devices.c.hostname != hostname)
                .values(hostname=hostname)
            )
    return True


# -- groups -------------------------------------------------------------------------------------------------


async def list_groups(db: Database, *, limit: int = MAX_GROUPS_LISTED) -> list[GroupRecord]:
    counts = (
        sa.select(devices.c.group_name, sa.func.count().label("n"))
        .where(devices.c.revoked == sa.false())
        .group_by(devices.c.group_name)
        .subquery()
    )
    stmt = (
        sa.select(
            device_groups.c.name,
            device_groups.c.description,
            device_groups.c.created_at,
            sa.func.coalesce(counts.c.n, 0).label("n"),
        )
        .select_from(device_groups.outerjoin(counts, counts.c.group_name == device_groups.c.name))
        .order_by(device_groups.c.name)
        .limit(max(0, min(limit, MAX_GROUPS_LISTED)))
    )
    async with db.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [GroupRecord(r.name, r.description, r.created_at, int(r.n)) for r in rows]


async def _find_group(conn: AsyncConnection, name: str) -> str | None:
    """The stored spelling of group ``name`` (names are unique regardless of case)."""
    stmt = sa.select(device_groups.c.name).where(sa.func.lower(device_groups.c.name) == name.lower()).limit(1)
    row = (await conn.execute(stmt)).first()
    return row.name if row is not None else None


async def find_group(db: Database, name: str) -> str | None:
    async with db.connect() as conn:
        return await _find_group(conn, name)


async def create_group(db: Database, name: str, description: str, *, now: float) -> GroupRecord:
    try:
        async with db.begin() as conn:
            existing = await _find_group(conn, name)
            if existing is not None:
                raise FleetStoreError("conflict", f"a group named {existing!r} already exists")
            await conn.execute(
                sa.insert(device_groups).values(name=name, description=description, created_at=now)
            )
    except sa.exc.IntegrityError:
        raise FleetStoreError("conflict", f"a group named {name!r} already exists") from None
    return GroupRecord(name, description, now, 0)


# -- enrollment tokens --------------------------------------------------------------------------------------


async def insert_enrollment_token(
    db: Database,
    *,
    secret_hash: str,
    group: str,
    created_at: float,
    expires_at: float,
    created_by: int | None,
) -> None:
    values = {
        "secret_hash": secret_hash,
        "group_name": group,
        "created_at": created_at,
        "expires_at": expires_at,
        "created_by": created_by,
    }
    async with db.begin() as conn:
        await conn.execute(sa.insert(enrollment_tokens).values(**values))


async def redeem_token(db: Database, *, secret_hash: str, now: float, device: NewDevice) -> DeviceRecord:
    """Use a token and create its device in one transaction: of two agents racing one token, one wins.

    The conditional ``UPDATE … WHERE used_at IS NULL`` is the arbiter on both databases (PostgreSQL row
    lock, SQLite write lock); the loser sees zero rows updated and then learns why from a read.
    """
    device_id = new_device_id()
    try:
        async with db.begin() as conn:
            claim = (
                sa.update(enrollment_tokens)
                .where(enrollment_tokens.c.secret_hash == secret_hash)
                .where(enrollment_tokens.c.used_at.is_(None))
                .where(enrollment_tokens.c.expires_at > now)
                .values(used_at=now, used_by_device=device_id)
                .returning(enrollment_tokens.c.group_name)
            )
            row = (await conn.execute(claim)).first()
            if row is None:
                raise await _token_refusal(conn, secret_hash)
            group = row.group_name
            taken = (
                await conn.execute(sa.select(devices.c.id).where(devices.c.public_key == device.public_key))
            ).first()
            if taken is not None:
                # rolls the claim back: the token stays usable for a fresh key
                raise FleetStoreError(
                    ErrorCode.INVALID_MESSAGE, "this agent key is already enrolled; log in with auth instead"
                )
            await conn.execute(
                sa.insert(devices).values(
                    id=device_id,
                    public_key=device.public_key,
                    group_name=group,
                    hostname=device.hostname,
                    os=device.os,
                    enrolled_at=now,
                    last_seen=now,
                    revoked=False,
                )
            )
    except sa.exc.IntegrityError:
        raise FleetStoreError(
            ErrorCode.INVALID_MESSAGE, "this agent key is already enrolled; log in with auth instead"
        ) from None
    return DeviceRecord(device_id, device.public_key, group, device.hostname, device.os, now, now, False)


async def _token_refusal(conn: AsyncConnection, secret_hash: str) -> FleetStoreError:
    stmt = sa.select(enrollment_tokens.c.used_at, enrollment_tokens.c.expires_at).where(
        enrollment_tokens.c.secret_hash == secret_hash
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return FleetStoreError(
            ErrorCode.TOKEN_INVALID, "this enrollment token is not known to the server; ask for a new one"
        )
    if row.used_at is not None:
        return FleetStoreError(
            ErrorCode.TOKEN_USED,
            "this enrollment token was already used (tokens are single use); ask for a new one",
        )
    return FleetStoreError(ErrorCode.TOKEN_EXPIRED, "this enrollment token has expired; ask for a new one")


async def purge_expired_tokens(db: Database, *, now: float, keep: float = 30 * 86400.0) -> int:
    """Delete tokens that expired more than ``keep`` seconds ago (used or not)."""
    async with db.begin() as conn:
        result = await conn.execute(
            sa.delete(enrollment_tokens).where(enrollment_tokens.c.expires_at < now - keep)
        )
    return result.rowcount
